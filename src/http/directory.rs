//! The admin API: tenants, users, groups, phone methods, the text-message policy and the logs,
//! in Microsoft Graph's shapes (`{"value": [...]}` lists, camelCase fields).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::extract::{ApiJson, Caller};
use super::problem::ApiError;
use crate::directory::policy::SmsPolicyPatch;
use crate::directory::{Actor, Directory, NewUser, PhoneType, UserPatch, UserQuery};
use crate::phone::PhoneNumber;

type Answer = Result<Response, ApiError>;
type Params = Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>;

const DEFAULT_TOP: usize = 100;

fn directory(state: &AppState) -> Result<&Arc<dyn Directory>, ApiError> {
    state.directory.as_ref().ok_or(ApiError::NotFound)
}

/// The directory, once the caller may touch tenant `tid`.
fn in_tenant<'a>(
    state: &'a AppState,
    caller: &Caller,
    tid: &str,
) -> Result<&'a Arc<dyn Directory>, ApiError> {
    caller.tenant(tid)?;
    directory(state)
}

fn actor(caller: &Caller) -> Actor {
    Actor(caller.name().to_owned())
}

fn ok(value: impl serde::Serialize) -> Answer {
    Ok(Json(value).into_response())
}

fn created(value: impl serde::Serialize) -> Answer {
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

fn gone() -> Answer {
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn list<T: serde::Serialize>(items: Vec<T>) -> Answer {
    ok(json!({ "value": items }))
}

fn params(query: Params) -> Result<HashMap<String, String>, ApiError> {
    query
        .map(|Query(map)| map)
        .map_err(|err| ApiError::BadRequest(format!("invalid query: {err}")))
}

fn top(params: &HashMap<String, String>) -> Result<usize, ApiError> {
    match params.get("$top") {
        None => Ok(DEFAULT_TOP),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=999).contains(&n) => Ok(n),
            _ => Err(ApiError::BadRequest(
                "$top must be a number from 1 to 999".to_owned(),
            )),
        },
    }
}

fn method_kind(mid: &str) -> Result<PhoneType, ApiError> {
    PhoneType::from_method_id(mid).ok_or(ApiError::Directory(
        crate::directory::DirectoryError::NotFound("phone method"),
    ))
}

// ---- tenants --------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewTenant {
    id: Option<String>,
    display_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Named {
    display_name: String,
}

pub async fn list_tenants(State(state): State<AppState>, caller: Caller) -> Answer {
    let tenants = directory(&state)?.tenants().await?;
    list(
        tenants
            .into_iter()
            .filter(|t| caller.0.may_touch(&t.id))
            .collect(),
    )
}

pub async fn create_tenant(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewTenant>,
) -> Answer {
    if caller.0.tenants.is_some() {
        // A key bound to tenants manages those, not new ones.
        body.id.as_deref().map_or(
            Err(ApiError::Forbidden(
                "this key may not create tenants".to_owned(),
            )),
            |id| caller.tenant(id),
        )?;
    }
    let tenant = directory(&state)?
        .create_tenant(&actor(&caller), body.id, body.display_name)
        .await?;
    created(tenant)
}

pub async fn get_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
) -> Answer {
    ok(in_tenant(&state, &caller, &tid)?.tenant(&tid).await?)
}

pub async fn update_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    ApiJson(body): ApiJson<Named>,
) -> Answer {
    let dir = in_tenant(&state, &caller, &tid)?;
    ok(dir
        .update_tenant(&actor(&caller), &tid, body.display_name)
        .await?)
}

pub async fn delete_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
) -> Answer {
    in_tenant(&state, &caller, &tid)?
        .delete_tenant(&actor(&caller), &tid)
        .await?;
    gone()
}

// ---- users ----------------------------------------------------------------------------------

pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    query: Params,
) -> Answer {
    let dir = in_tenant(&state, &caller, &tid)?;
    let params = params(query)?;
    let top = top(&params)?;
    let phone = params
        .get("phone")
        .map(|raw| PhoneNumber::parse(raw))
        .transpose()?;
    let upn = params.get("userPrincipalName").cloned();
    let query = UserQuery {
        top,
        after: params.get("$skiptoken").cloned(),
        user_principal_name: upn.clone(),
        phone: phone.clone(),
    };
    let page = dir.users(&tid, query).await?;
    let mut body = json!({ "value": page.items });
    if let (true, Some(last)) = (page.more, page.items.last()) {
        let mut next = format!("/v1/tenants/{tid}/users?$top={top}&$skiptoken={}", last.id);
        if let Some(upn) = upn {
            next.push_str(&format!("&userPrincipalName={}", encode(&upn)));
        }
        if let Some(phone) = phone {
            next.push_str(&format!("&phone={}", encode(phone.as_str())));
        }
        body["@odata.nextLink"] = next.into();
    }
    ok(body)
}

/// Percent-encodes what a query value may not hold as it is.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    ApiJson(body): ApiJson<NewUser>,
) -> Answer {
    let dir = in_tenant(&state, &caller, &tid)?;
    created(dir.create_user(&actor(&caller), &tid, body).await?)
}

pub async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, uid)): Path<(String, String)>,
) -> Answer {
    ok(in_tenant(&state, &caller, &tid)?.user(&tid, &uid).await?)
}

pub async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, uid)): Path<(String, String)>,
    ApiJson(body): ApiJson<UserPatch>,
) -> Answer {
    let dir = in_tenant(&state, &caller, &tid)?;
    ok(dir.update_user(&actor(&caller), &tid, &uid, body).await?)
}

pub async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, uid)): Path<(String, String)>,
) -> Answer {
    in_tenant(&state, &caller, &tid)?
        .delete_user(&actor(&caller), &tid, &uid)
        .await?;
    gone()
}

// ---- groups ---------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberRef {
    id: String,
}

pub async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
) -> Answer {
    list(in_tenant(&state, &caller, &tid)?.groups(&tid).await?)
}

pub async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    ApiJson(body): ApiJson<Named>,
) -> Answer {
    let dir = in_tenant(&state, &caller, &tid)?;
    created(
        dir.create_group(&actor(&caller), &tid, body.display_name)
            .await?,
    )
}

pub async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, gid)): Path<(String, String)>,
) -> Answer {
    ok(in_tenant(&state, &caller, &tid)?.group(&tid, &gid).await?)
}

pub async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, gid)): Path<(String, String)>,
) -> Answer {
    in_tenant(&state, &caller, &tid)?
        .delete_group(&actor(&caller), &tid, &gid)
        .await?;
    gone()
}

pub async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, gid)): Path<(String, String)>,
) -> Answer {
    list(
        in_tenant(&state, &caller, &tid)?
            .members(&tid, &gid)
            .await?,
    )
}

pub async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, gid)): Path<(String, String)>,
    ApiJson(body): ApiJson<MemberRef>,
) -> Answer {
    let dir = in_tenant(&state, &caller, &tid)?;
    created(
        dir.add_member(&actor(&caller), &tid, &gid, &body.id)
            .await?,
    )
}

pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, gid, uid)): Path<(String, String, String)>,
) -> Answer {
    in_tenant(&state, &caller, &tid)?
        .remove_member(&actor(&caller), &tid, &gid, &uid)
        .await?;
    gone()
}

// ---- phone methods --------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewPhoneMethod {
    phone_number: String,
    phone_type: PhoneType,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PhoneMethodPatch {
    phone_number: String,
    /// Graph lets a PATCH name the type; it must be the method's own.
    phone_type: Option<PhoneType>,
}

pub async fn list_methods(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, uid)): Path<(String, String)>,
) -> Answer {
    list(
        in_tenant(&state, &caller, &tid)?
            .phone_methods(&tid, &uid)
            .await?,
    )
}

pub async fn add_method(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, uid)): Path<(String, String)>,
    ApiJson(body): ApiJson<NewPhoneMethod>,
) -> Answer {
    let dir = in_tenant(&state, &caller, &tid)?;
    let number = PhoneNumber::parse(&body.phone_number)?;
    created(
        dir.add_phone_method(&actor(&caller), &tid, &uid, body.phone_type, number)
            .await?,
    )
}

pub async fn get_method(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, uid, mid)): Path<(String, String, String)>,
) -> Answer {
    let dir = in_tenant(&state, &caller, &tid)?;
    let kind = method_kind(&mid)?;
    ok(dir.phone_method(&tid, &uid, kind).await?)
}

pub async fn update_method(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, uid, mid)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<PhoneMethodPatch>,
) -> Answer {
    let dir = in_tenant(&state, &caller, &tid)?;
    let kind = method_kind(&mid)?;
    if body.phone_type.is_some_and(|t| t != kind) {
        return Err(ApiError::BadRequest(
            "phoneType cannot change; delete the method and add another".to_owned(),
        ));
    }
    let number = PhoneNumber::parse(&body.phone_number)?;
    ok(dir
        .update_phone_method(&actor(&caller), &tid, &uid, kind, number)
        .await?)
}

pub async fn delete_method(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, uid, mid)): Path<(String, String, String)>,
) -> Answer {
    let dir = in_tenant(&state, &caller, &tid)?;
    let kind = method_kind(&mid)?;
    dir.delete_phone_method(&actor(&caller), &tid, &uid, kind)
        .await?;
    gone()
}

pub async fn enable_sign_in(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, uid, mid)): Path<(String, String, String)>,
) -> Answer {
    let dir = in_tenant(&state, &caller, &tid)?;
    let kind = method_kind(&mid)?;
    ok(dir
        .enable_sms_sign_in(&actor(&caller), &tid, &uid, kind)
        .await?)
}

pub async fn disable_sign_in(
    State(state): State<AppState>,
    caller: Caller,
    Path((tid, uid, mid)): Path<(String, String, String)>,
) -> Answer {
    let dir = in_tenant(&state, &caller, &tid)?;
    let kind = method_kind(&mid)?;
    ok(dir
        .disable_sms_sign_in(&actor(&caller), &tid, &uid, kind)
        .await?)
}

// ---- policy and logs ------------------------------------------------------------------------

pub async fn get_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
) -> Answer {
    ok(in_tenant(&state, &caller, &tid)?.sms_policy(&tid).await?)
}

pub async fn update_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    ApiJson(patch): ApiJson<SmsPolicyPatch>,
) -> Answer {
    let dir = in_tenant(&state, &caller, &tid)?;
    ok(dir.update_sms_policy(&actor(&caller), &tid, patch).await?)
}

pub async fn directory_audits(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    query: Params,
) -> Answer {
    let top = top(&params(query)?)?;
    list(
        in_tenant(&state, &caller, &tid)?
            .directory_audits(&tid, top)
            .await?,
    )
}

pub async fn sign_ins(
    State(state): State<AppState>,
    caller: Caller,
    Path(tid): Path<String>,
    query: Params,
) -> Answer {
    let top = top(&params(query)?)?;
    list(
        in_tenant(&state, &caller, &tid)?
            .sign_ins(&tid, top)
            .await?,
    )
}
