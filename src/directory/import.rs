//! `otpgate directory import` and `export`: users, phone methods, groups and sign-in
//! registrations as CSV, through the [`Directory`] interface (so audited like any admin change).
//!
//! Columns (a header row first, in any order): `userPrincipalName`, `displayName`,
//! `phoneNumber`, `phoneType` (`mobile` when empty), `groups` (group display names separated by
//! `;`, created when missing), `smsSignIn` (`true`/`false`, empty is false). A user is matched by
//! userPrincipalName, so importing the same file twice changes nothing the second time. Rows
//! with `smsSignIn` true need the tenant's policy to allow their users (enable it first); rows
//! it refuses are reported with the reason.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};

use super::{
    Actor, Directory, DirectoryError, NewUser, PhoneType, SmsSignInState, User, UserPatch,
    UserQuery,
};
use crate::phone::PhoneNumber;

pub const COLUMNS: [&str; 6] = [
    "userPrincipalName",
    "displayName",
    "phoneNumber",
    "phoneType",
    "groups",
    "smsSignIn",
];

/// A row the import refused, by its line in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    pub line: u64,
    pub reason: String,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub rows: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub bad: Vec<BadRow>,
}

/// One row, checked before anything is written.
struct Row {
    upn: String,
    display_name: String,
    phone: Option<(PhoneType, PhoneNumber)>,
    groups: Vec<String>,
    sign_in: bool,
}

/// Why the file as a whole cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the CSV header lacks the column {0}")]
    MissingColumn(&'static str),
    #[error("cannot read the CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

/// Imports `input` into tenant `tid` (created if missing); `progress` is called every 1,000 rows.
pub async fn import(
    directory: &dyn Directory,
    actor: &Actor,
    tid: &str,
    input: impl Read,
    mut progress: impl FnMut(&ImportSummary),
) -> Result<ImportSummary, ImportError> {
    match directory.tenant(tid).await {
        Err(DirectoryError::NotFound(_)) => {
            directory
                .create_tenant(actor, Some(tid.to_owned()), tid.to_owned())
                .await?;
        }
        other => {
            other?;
        }
    }
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(input);
    let header = reader.headers()?.clone();
    let column = |name: &'static str| header.iter().position(|h| h == name);
    let upn_at =
        column("userPrincipalName").ok_or(ImportError::MissingColumn("userPrincipalName"))?;
    let name_at = column("displayName").ok_or(ImportError::MissingColumn("displayName"))?;
    let at = [
        column("phoneNumber"),
        column("phoneType"),
        column("groups"),
        column("smsSignIn"),
    ];
    let mut groups: HashMap<String, String> = HashMap::new();
    // Memberships already there: adding one again would record a failed change in the audit
    // log on every re-run.
    let mut members: HashSet<(String, String)> = HashSet::new();
    for group in directory.groups(tid).await? {
        for member in directory.members(tid, &group.id).await? {
            members.insert((group.id.clone(), member.id));
        }
        groups.insert(group.display_name, group.id);
    }
    let mut summary = ImportSummary::default();
    for record in reader.records() {
        summary.rows += 1;
        // The header is line 1; a record's own position wins (quoted fields may span lines).
        let mut line = summary.rows + 1;
        let outcome = match record {
            Err(err) => Err(format!("unreadable row: {err}")),
            Ok(record) => {
                line = record.position().map_or(line, |p| p.line());
                let field = |i: Option<usize>| i.and_then(|i| record.get(i)).unwrap_or("");
                let row = parse_row(
                    field(Some(upn_at)),
                    field(Some(name_at)),
                    field(at[0]),
                    field(at[1]),
                    field(at[2]),
                    field(at[3]),
                );
                match row {
                    Err(reason) => Err(reason),
                    Ok(row) => apply(directory, actor, tid, &row, &mut groups, &mut members)
                        .await
                        .map_err(|err| err.to_string()),
                }
            }
        };
        match outcome {
            Ok(Change::Created) => summary.created += 1,
            Ok(Change::Updated) => summary.updated += 1,
            Ok(Change::Unchanged) => summary.unchanged += 1,
            Err(reason) => summary.bad.push(BadRow { line, reason }),
        }
        if summary.rows.is_multiple_of(1000) {
            progress(&summary);
        }
    }
    Ok(summary)
}

fn parse_row(
    upn: &str,
    display_name: &str,
    phone: &str,
    kind: &str,
    groups: &str,
    sign_in: &str,
) -> Result<Row, String> {
    if upn.is_empty() {
        return Err("userPrincipalName is empty".to_owned());
    }
    if display_name.is_empty() {
        return Err("displayName is empty".to_owned());
    }
    let kind = match kind {
        "" => PhoneType::Mobile,
        other => PhoneType::parse(other).ok_or_else(|| {
            format!("phoneType {other:?} is not mobile, alternateMobile or office")
        })?,
    };
    let phone = match phone {
        "" => None,
        raw => Some((
            kind,
            PhoneNumber::parse(raw).map_err(|err| format!("phoneNumber: {err}"))?,
        )),
    };
    let sign_in = match sign_in.to_ascii_lowercase().as_str() {
        "" | "false" | "no" | "0" => false,
        "true" | "yes" | "1" => true,
        other => return Err(format!("smsSignIn {other:?} is not true or false")),
    };
    if sign_in && phone.as_ref().is_none_or(|(k, _)| *k != PhoneType::Mobile) {
        return Err("smsSignIn needs a mobile phoneNumber".to_owned());
    }
    Ok(Row {
        upn: upn.to_owned(),
        display_name: display_name.to_owned(),
        phone,
        groups: groups
            .split(';')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(str::to_owned)
            .collect(),
        sign_in,
    })
}

enum Change {
    Created,
    Updated,
    Unchanged,
}

async fn apply(
    directory: &dyn Directory,
    actor: &Actor,
    tid: &str,
    row: &Row,
    groups: &mut HashMap<String, String>,
    members: &mut HashSet<(String, String)>,
) -> Result<Change, DirectoryError> {
    let found = directory
        .users(
            tid,
            UserQuery {
                top: 1,
                user_principal_name: Some(row.upn.clone()),
                ..UserQuery::default()
            },
        )
        .await?
        .items
        .pop();
    let mut change = Change::Unchanged;
    let user: User = match found {
        Some(user) if user.display_name == row.display_name => user,
        Some(user) => {
            change = Change::Updated;
            let patch = UserPatch {
                display_name: Some(row.display_name.clone()),
                ..UserPatch::default()
            };
            directory.update_user(actor, tid, &user.id, patch).await?
        }
        None => {
            change = Change::Created;
            let new = NewUser {
                display_name: row.display_name.clone(),
                user_principal_name: row.upn.clone(),
                account_enabled: true,
            };
            directory.create_user(actor, tid, new).await?
        }
    };
    for name in &row.groups {
        let gid = match groups.get(name) {
            Some(gid) => gid.clone(),
            None => {
                let group = directory.create_group(actor, tid, name.clone()).await?;
                groups.insert(name.clone(), group.id.clone());
                group.id
            }
        };
        if members.insert((gid.clone(), user.id.clone())) {
            directory.add_member(actor, tid, &gid, &user.id).await?;
            mark(&mut change);
        }
    }
    if let Some((kind, number)) = &row.phone {
        let methods = match change {
            Change::Created => Vec::new(),
            _ => directory.phone_methods(tid, &user.id).await?,
        };
        let mut method = methods.into_iter().find(|m| m.kind == *kind);
        match &method {
            Some(m) if m.number == *number => {}
            Some(_) => {
                mark(&mut change);
                method = Some(
                    directory
                        .update_phone_method(actor, tid, &user.id, *kind, number.clone())
                        .await?,
                );
            }
            None => {
                mark(&mut change);
                method = Some(
                    directory
                        .add_phone_method(actor, tid, &user.id, *kind, number.clone())
                        .await?,
                );
            }
        }
        let ready = method
            .as_ref()
            .is_some_and(|m| m.state == SmsSignInState::Ready);
        if row.sign_in && !ready {
            directory
                .enable_sms_sign_in(actor, tid, &user.id, *kind)
                .await?;
            mark(&mut change);
        }
        // The column is the truth: a mobile the policy registered on its own when it was
        // added is unregistered again when the row says false.
        if !row.sign_in && ready && *kind == PhoneType::Mobile {
            directory
                .disable_sms_sign_in(actor, tid, &user.id, *kind)
                .await?;
            mark(&mut change);
        }
    }
    Ok(change)
}

fn mark(change: &mut Change) {
    if matches!(change, Change::Unchanged) {
        *change = Change::Updated;
    }
}

/// Writes tenant `tid` as CSV in the import's columns; returns the number of users.
pub async fn export(
    directory: &dyn Directory,
    tid: &str,
    output: impl Write,
) -> Result<u64, ImportError> {
    directory.tenant(tid).await?;
    let mut membership: HashMap<String, Vec<String>> = HashMap::new();
    for group in directory.groups(tid).await? {
        for member in directory.members(tid, &group.id).await? {
            membership
                .entry(member.id)
                .or_default()
                .push(group.display_name.clone());
        }
    }
    let mut writer = csv::Writer::from_writer(output);
    writer.write_record(COLUMNS)?;
    let mut query = UserQuery {
        top: 500,
        ..UserQuery::default()
    };
    let mut count = 0;
    loop {
        let page = directory.users(tid, query.clone()).await?;
        for user in &page.items {
            count += 1;
            let groups = membership
                .get(&user.id)
                .map(|g| g.join(";"))
                .unwrap_or_default();
            let methods = directory.phone_methods(tid, &user.id).await?;
            if methods.is_empty() {
                writer.write_record([
                    user.user_principal_name.as_str(),
                    &user.display_name,
                    "",
                    "",
                    &groups,
                    "false",
                ])?;
            }
            for method in methods {
                let sign_in = method.state == SmsSignInState::Ready;
                writer.write_record([
                    user.user_principal_name.as_str(),
                    &user.display_name,
                    method.number.as_str(),
                    method.kind.as_str(),
                    &groups,
                    if sign_in { "true" } else { "false" },
                ])?;
            }
        }
        match (page.more, page.items.last()) {
            (true, Some(last)) => query.after = Some(last.id.clone()),
            _ => break,
        }
    }
    writer.flush().map_err(csv::Error::from)?;
    Ok(count)
}
