//! Directory and sign-in steps over HTTP, as an admin and a frontend take them.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{ADMIN_KEY, Daemon, SIGNIN_KEY, Sim};

pub const MOBILE: &str = "3179e48a-750b-4051-897c-87b9720928f7";
pub const ALTERNATE_MOBILE: &str = "b6332ec1-7057-4abe-9331-3d72feddfe41";
pub const OFFICE: &str = "e37fc753-ff3b-4958-9484-eaa9425c82bc";

pub fn methods_path(tid: &str, uid: &str) -> String {
    format!("/v1/tenants/{tid}/users/{uid}/authentication/phoneMethods")
}

pub fn policy_path(tid: &str) -> String {
    format!(
        "/v1/tenants/{tid}/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/sms"
    )
}

impl Daemon {
    /// An admin call that must answer `expected`.
    pub async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        expected: StatusCode,
    ) -> Value {
        let (status, answer) = self.call(method.clone(), ADMIN_KEY, path, body).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
        answer
    }

    pub async fn create_tenant(&self, tid: &str) {
        self.admin(
            Method::POST,
            "/v1/tenants",
            Some(json!({ "id": tid, "displayName": tid.to_uppercase() })),
            StatusCode::CREATED,
        )
        .await;
    }

    /// Creates a user; returns its id.
    pub async fn create_user(&self, tid: &str, name: &str) -> String {
        let user = self
            .admin(
                Method::POST,
                &format!("/v1/tenants/{tid}/users"),
                Some(json!({
                    "displayName": name,
                    "userPrincipalName": format!("{}@{tid}.test", name.to_lowercase().replace(' ', ".")),
                })),
                StatusCode::CREATED,
            )
            .await;
        user["id"].as_str().expect("user id").to_owned()
    }

    /// Creates a group; returns its id.
    pub async fn create_group(&self, tid: &str, name: &str) -> String {
        let group = self
            .admin(
                Method::POST,
                &format!("/v1/tenants/{tid}/groups"),
                Some(json!({ "displayName": name })),
                StatusCode::CREATED,
            )
            .await;
        group["id"].as_str().expect("gid").to_owned()
    }

    pub async fn join_group(&self, tid: &str, gid: &str, uid: &str) {
        self.admin(
            Method::POST,
            &format!("/v1/tenants/{tid}/groups/{gid}/members"),
            Some(json!({ "id": uid })),
            StatusCode::CREATED,
        )
        .await;
    }

    /// Adds a phone method; returns the method as answered (201).
    pub async fn add_phone(&self, tid: &str, uid: &str, number: &str, kind: &str) -> Value {
        self.admin(
            Method::POST,
            &methods_path(tid, uid),
            Some(json!({ "phoneNumber": number, "phoneType": kind })),
            StatusCode::CREATED,
        )
        .await
    }

    pub async fn method_state(&self, tid: &str, uid: &str, mid: &str) -> String {
        let method = self
            .admin(
                Method::GET,
                &format!("{}/{mid}", methods_path(tid, uid)),
                None,
                StatusCode::OK,
            )
            .await;
        method["smsSignInState"].as_str().expect("state").to_owned()
    }

    pub async fn enable_sign_in(&self, tid: &str, uid: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            ADMIN_KEY,
            &format!("{}/{MOBILE}/enableSmsSignIn", methods_path(tid, uid)),
            None,
        )
        .await
    }

    /// Sets the policy (enabled) to include `targets` for sign-in and exclude `excluded`.
    pub async fn set_policy(&self, tid: &str, include: Value, exclude: Value) -> Value {
        self.admin(
            Method::PATCH,
            &policy_path(tid),
            Some(
                json!({ "state": "enabled", "includeTargets": include, "excludeTargets": exclude }),
            ),
            StatusCode::OK,
        )
        .await
    }

    /// The policy on for all users, sign-in allowed.
    pub async fn policy_all_users(&self, tid: &str) {
        self.set_policy(
            tid,
            json!([{ "id": "all_users", "targetType": "group", "isUsableForSignIn": true }]),
            json!([]),
        )
        .await;
    }

    /// A sign-in start that must be accepted; returns the flow.
    pub async fn start_sign_in(&self, tid: &str, phone: &str) -> String {
        let (status, body) = self.start_raw(SIGNIN_KEY, tid, phone).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body["flow"].as_str().expect("flow").to_owned()
    }

    pub async fn start_raw(&self, key: &str, tid: &str, phone: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            key,
            "/v1/signin/sms/start",
            Some(json!({ "tenant": tid, "phone": phone })),
        )
        .await
    }

    pub async fn complete_sign_in(&self, flow: &str, code: &str) -> Value {
        self.complete_with(SIGNIN_KEY, flow, code).await
    }

    pub async fn complete_with(&self, key: &str, flow: &str, code: &str) -> Value {
        let (status, body) = self
            .call(
                Method::POST,
                key,
                "/v1/signin/sms/complete",
                Some(json!({ "flow": flow, "code": code })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// A whole sign-in: start, the code from the simulator, complete. Returns the answer.
    pub async fn sign_in(&self, sim: &Sim, tid: &str, phone: &str) -> Value {
        let before = sim.messages(phone).await.len();
        let flow = self.start_sign_in(tid, phone).await;
        let code = sim.next_code_after(phone, before).await;
        self.complete_sign_in(&flow, &code).await
    }
}

impl Sim {
    /// The code of the first SMS to `to` after the first `seen` ones (waiting for it).
    pub async fn next_code_after(&self, to: &str, seen: usize) -> String {
        for _ in 0..500 {
            let messages = self.messages(to).await;
            if messages.len() > seen {
                return self.code_for(to).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("no new SMS reached {to}");
    }
}
