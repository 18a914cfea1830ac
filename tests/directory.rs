//! The directory's admin API over HTTP: `smsSignInState` through every value, uniqueness of
//! sign-in numbers (also under concurrent enables), the policy for all users and for a group,
//! scoped keys, the audit and sign-in logs, and data that survives a restart.

mod common;

use common::signin::*;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn setup_at(directory: Option<std::path::PathBuf>) -> (Sim, Daemon) {
    let sim = Sim::start().await;
    let mut options = Options::new(sim.smpp);
    options.signin = true;
    options.directory_path = directory;
    let daemon = Daemon::start_bound(options).await;
    (sim, daemon)
}

async fn setup() -> (Sim, Daemon) {
    setup_at(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_sign_in_state_goes_through_every_value() {
    let (sim, daemon) = setup().await;
    daemon.create_tenant("contoso").await;
    let adele = daemon.create_user("contoso", "Adele Vance").await;
    let office = daemon
        .add_phone("contoso", &adele, "+31 20 123 4567", "office")
        .await;
    assert_eq!(office["smsSignInState"], "notSupported");
    assert_eq!(office["id"], OFFICE);
    // An alternateMobile needs a mobile first.
    let (status, problem) = daemon
        .call(
            Method::POST,
            ADMIN_KEY,
            &methods_path("contoso", &adele),
            Some(json!({ "phoneNumber": "+31611111111", "phoneType": "alternateMobile" })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["type"], "urn:otpgate:problem:mobile-required");
    // Policy off (a new tenant's default): not allowed.
    let mobile = daemon
        .add_phone("contoso", &adele, "+31 6 1234 5678", "mobile")
        .await;
    assert_eq!(mobile["smsSignInState"], "notAllowedByPolicy");
    assert_eq!(
        mobile["phoneNumber"], "+31 612345678",
        "shown as Graph shows it"
    );
    assert_eq!(mobile["phoneNumberE164"], "+31612345678");
    assert_eq!(mobile["id"], MOBILE);
    // Policy on: the number predates the user's scope, so it waits for enableSmsSignIn.
    daemon.policy_all_users("contoso").await;
    assert_eq!(
        daemon.method_state("contoso", &adele, MOBILE).await,
        "notEnabled"
    );
    let (status, enabled) = daemon.enable_sign_in("contoso", &adele).await;
    assert_eq!(status, StatusCode::OK, "{enabled}");
    assert_eq!(enabled["smsSignInState"], "ready");
    // Enabling again is not a silent no-op: it answers the state it leaves.
    let (status, again) = daemon.enable_sign_in("contoso", &adele).await;
    assert_eq!(
        (status, &again["smsSignInState"]),
        (StatusCode::OK, &json!("ready"))
    );
    // A second user may keep the same number as a method, but not for sign-in.
    let megan = daemon.create_user("contoso", "Megan Bowen").await;
    let duplicate = daemon
        .add_phone("contoso", &megan, "+31612345678", "mobile")
        .await;
    assert_eq!(duplicate["smsSignInState"], "phoneNumberNotUnique");
    let (status, problem) = daemon.enable_sign_in("contoso", &megan).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(
        problem["type"],
        "urn:otpgate:problem:phone-number-not-unique"
    );
    assert_eq!(problem["holder"]["id"], adele.as_str());
    assert_eq!(
        problem["holder"]["userPrincipalName"],
        "adele.vance@contoso.test"
    );
    // enableSmsSignIn on an office method.
    let (status, problem) = daemon
        .call(
            Method::POST,
            ADMIN_KEY,
            &format!(
                "{}/{OFFICE}/enableSmsSignIn",
                methods_path("contoso", &adele)
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["type"], "urn:otpgate:problem:not-supported");
    // Deleting the holder frees the number: the second user can now register it.
    daemon
        .admin(
            Method::DELETE,
            &format!("/v1/tenants/contoso/users/{adele}"),
            None,
            StatusCode::NO_CONTENT,
        )
        .await;
    assert_eq!(
        daemon.method_state("contoso", &megan, MOBILE).await,
        "notEnabled"
    );
    let (status, _) = daemon.enable_sign_in("contoso", &megan).await;
    assert_eq!(status, StatusCode::OK);
    let answer = daemon.sign_in(&sim, "contoso", "+31612345678").await;
    assert_eq!(answer["user_id"], megan.as_str());
    daemon.stop().await;
    sim.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_enables_of_one_number_register_exactly_one() {
    let (sim, daemon) = setup().await;
    daemon.create_tenant("contoso").await;
    let mut users = Vec::new();
    for n in 0..20 {
        let uid = daemon.create_user("contoso", &format!("User {n}")).await;
        // Policy still off: no registration is attempted yet.
        daemon
            .add_phone("contoso", &uid, "+31655555555", "mobile")
            .await;
        users.push(uid);
    }
    daemon.policy_all_users("contoso").await;
    let daemon = std::sync::Arc::new(daemon);
    let racers: Vec<_> = users
        .iter()
        .map(|uid| {
            let (daemon, uid) = (daemon.clone(), uid.clone());
            tokio::spawn(async move { daemon.enable_sign_in("contoso", &uid).await })
        })
        .collect();
    let mut ok = Vec::new();
    let mut refused = 0;
    for (racer, uid) in racers.into_iter().zip(&users) {
        let (status, body) = racer.await.expect("no panic");
        match status {
            StatusCode::OK => ok.push(uid.clone()),
            StatusCode::CONFLICT => {
                assert_eq!(body["type"], "urn:otpgate:problem:phone-number-not-unique");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((ok.len(), refused), (1, 19));
    let mut ready = 0;
    for uid in &users {
        if daemon.method_state("contoso", uid, MOBILE).await == "ready" {
            ready += 1;
        }
    }
    assert_eq!(ready, 1);
    let answer = daemon.sign_in(&sim, "contoso", "+31655555555").await;
    assert_eq!(answer["user_id"], ok[0].as_str());
    let daemon = std::sync::Arc::into_inner(daemon).expect("racers done");
    daemon.stop().await;
    sim.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_for_one_group_and_for_all_users() {
    let (sim, daemon) = setup().await;
    daemon.create_tenant("contoso").await;
    let frontline = daemon.create_group("contoso", "Frontline").await;
    let member = daemon.create_user("contoso", "Frontline Worker").await;
    let other = daemon.create_user("contoso", "Office Worker").await;
    daemon.join_group("contoso", &frontline, &member).await;
    daemon
        .set_policy(
            "contoso",
            json!([{ "id": frontline, "targetType": "group", "isUsableForSignIn": true }]),
            json!([]),
        )
        .await;
    // Added while in scope: registration is attempted at once.
    let m = daemon
        .add_phone("contoso", &member, "+31600000011", "mobile")
        .await;
    assert_eq!(m["smsSignInState"], "ready");
    let o = daemon
        .add_phone("contoso", &other, "+31600000012", "mobile")
        .await;
    assert_eq!(o["smsSignInState"], "notAllowedByPolicy");
    assert_eq!(
        daemon.sign_in(&sim, "contoso", "+31600000011").await["status"],
        "approved"
    );
    let flow = daemon.start_sign_in("contoso", "+31600000012").await;
    assert_eq!(
        daemon.complete_sign_in(&flow, "123456").await["status"],
        "denied"
    );
    assert!(sim.messages("+31600000012").await.is_empty());
    // A group target usable for MFA only does not allow sign-in.
    daemon
        .set_policy(
            "contoso",
            json!([{ "id": frontline, "targetType": "group", "isUsableForSignIn": false }]),
            json!([]),
        )
        .await;
    assert_eq!(
        daemon.method_state("contoso", &member, MOBILE).await,
        "notAllowedByPolicy"
    );
    // All users: the other worker's number predates the scope; enable it.
    daemon.policy_all_users("contoso").await;
    assert_eq!(
        daemon.method_state("contoso", &member, MOBILE).await,
        "ready"
    );
    assert_eq!(
        daemon.method_state("contoso", &other, MOBILE).await,
        "notEnabled"
    );
    daemon.enable_sign_in("contoso", &other).await;
    assert_eq!(
        daemon.sign_in(&sim, "contoso", "+31600000012").await["status"],
        "approved"
    );
    // Exclusion wins over all users.
    daemon
        .set_policy(
            "contoso",
            json!([{ "id": "all_users", "targetType": "group", "isUsableForSignIn": true }]),
            json!([{ "id": frontline, "targetType": "group" }]),
        )
        .await;
    assert_eq!(
        daemon.method_state("contoso", &member, MOBILE).await,
        "notAllowedByPolicy"
    );
    let before = sim.messages("+31600000011").await.len();
    daemon.start_sign_in("contoso", "+31600000011").await;
    // A bad policy is refused with the reason, and changes nothing.
    let (status, problem) = daemon
        .call(
            Method::PATCH,
            ADMIN_KEY,
            &policy_path("contoso"),
            Some(json!({ "includeTargets": [{ "id": "no-such-group", "targetType": "group" }] })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let policy = daemon
        .admin(Method::GET, &policy_path("contoso"), None, StatusCode::OK)
        .await;
    assert_eq!(policy["excludeTargets"][0]["id"], frontline.as_str());
    assert_eq!(
        policy["@odata.type"],
        "#microsoft.graph.smsAuthenticationMethodConfiguration"
    );
    daemon.sign_in(&sim, "contoso", "+31600000012").await;
    assert_eq!(
        sim.messages("+31600000011").await.len(),
        before,
        "excluded: no SMS"
    );
    daemon.stop().await;
    sim.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_need_their_scope_and_their_tenant() {
    let (sim, daemon) = setup().await;
    daemon.create_tenant("contoso").await;
    let users = "/v1/tenants/contoso/users";
    let body = json!({ "displayName": "X", "userPrincipalName": "x@contoso.test" });
    let cases: [(&str, Method, &str, Option<Value>, StatusCode); 8] = [
        (
            "unknown-key-0000",
            Method::GET,
            users,
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (API_KEY, Method::GET, users, None, StatusCode::FORBIDDEN),
        (SIGNIN_KEY, Method::GET, users, None, StatusCode::FORBIDDEN),
        (READER_KEY, Method::GET, users, None, StatusCode::OK),
        (
            READER_KEY,
            Method::POST,
            users,
            Some(body.clone()),
            StatusCode::FORBIDDEN,
        ),
        (BOUND_KEY, Method::GET, users, None, StatusCode::FORBIDDEN),
        (
            READER_KEY,
            Method::GET,
            "/v1/tenants/contoso/auditLogs/directoryAudits",
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            ADMIN_KEY,
            Method::POST,
            "/v1/otp/send",
            Some(json!({ "phone": "+31612345678" })),
            StatusCode::FORBIDDEN,
        ),
    ];
    for (key, method, path, body, expected) in cases {
        let (status, problem) = daemon.call(method.clone(), key, path, body).await;
        assert_eq!(status, expected, "{key} {method} {path}: {problem}");
        if expected == StatusCode::FORBIDDEN {
            assert_eq!(
                problem["type"], "urn:otpgate:problem:forbidden",
                "{problem}"
            );
        }
    }
    // A key bound to tenant "bound" manages that tenant, sees only it, and starts no others.
    let (status, _) = daemon
        .call(
            Method::POST,
            BOUND_KEY,
            "/v1/tenants",
            Some(json!({ "id": "bound", "displayName": "Bound" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = daemon
        .call(
            Method::POST,
            BOUND_KEY,
            "/v1/tenants",
            Some(json!({ "id": "elsewhere", "displayName": "Elsewhere" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, tenants) = daemon
        .call(Method::GET, BOUND_KEY, "/v1/tenants", None)
        .await;
    assert_eq!(
        tenants["value"],
        json!([{ "id": "bound", "displayName": "Bound" }])
    );
    daemon.stop().await;
    sim.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_page_and_filter_by_principal_name_or_phone() {
    let (sim, daemon) = setup().await;
    daemon.create_tenant("contoso").await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let uid = daemon.create_user("contoso", &format!("Person {n}")).await;
        daemon
            .add_phone("contoso", &uid, &format!("+3160000010{n}"), "mobile")
            .await;
        ids.push(uid);
    }
    let mut seen = Vec::new();
    let mut next = Some("/v1/tenants/contoso/users?$top=2".to_owned());
    while let Some(path) = next {
        let page = daemon.admin(Method::GET, &path, None, StatusCode::OK).await;
        for user in page["value"].as_array().expect("list") {
            seen.push(user["id"].as_str().expect("id").to_owned());
        }
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
    }
    ids.sort();
    assert_eq!(seen, ids, "every user once, in id order");
    let found = daemon
        .admin(
            Method::GET,
            "/v1/tenants/contoso/users?userPrincipalName=PERSON.3@contoso.test",
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(found["value"][0]["displayName"], "Person 3");
    let by_phone = daemon
        .admin(
            Method::GET,
            "/v1/tenants/contoso/users?phone=%2B31%206%2000000104",
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(by_phone["value"].as_array().map(Vec::len), Some(1));
    assert_eq!(by_phone["value"][0]["displayName"], "Person 4");
    let (status, problem) = daemon
        .call(
            Method::GET,
            ADMIN_KEY,
            "/v1/tenants/contoso/users?$top=0",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    // A duplicate principal name and a bad number are refused with the reason.
    let (status, problem) = daemon
        .call(
            Method::POST,
            ADMIN_KEY,
            "/v1/tenants/contoso/users",
            Some(json!({ "displayName": "Again", "userPrincipalName": "person.0@CONTOSO.test" })),
        )
        .await;
    assert_eq!(
        (status, &problem["type"]),
        (StatusCode::CONFLICT, &json!("urn:otpgate:problem:conflict"))
    );
    let (status, problem) = daemon
        .call(
            Method::POST,
            ADMIN_KEY,
            &methods_path("contoso", &ids[0]),
            Some(json!({ "phoneNumber": "0612345678", "phoneType": "office" })),
        )
        .await;
    assert_eq!(
        (status, &problem["type"]),
        (
            StatusCode::BAD_REQUEST,
            &json!("urn:otpgate:problem:invalid-phone")
        )
    );
    daemon.stop().await;
    sim.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_and_sign_in_logs_hold_the_events_and_no_code_or_number() {
    let (sim, daemon) = setup().await;
    daemon.create_tenant("contoso").await;
    daemon.policy_all_users("contoso").await;
    let uid = daemon.create_user("contoso", "Adele Vance").await;
    daemon
        .add_phone("contoso", &uid, "+31612345678", "mobile")
        .await;
    let other = daemon.create_user("contoso", "Megan Bowen").await;
    daemon
        .add_phone("contoso", &other, "+31612345678", "mobile")
        .await;
    let (status, _) = daemon.enable_sign_in("contoso", &other).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let answer = daemon.sign_in(&sim, "contoso", "+31612345678").await;
    assert_eq!(answer["status"], "approved");
    let code = sim.code_for("+31612345678").await;
    let flow = daemon.start_sign_in("contoso", "+31699999999").await;
    daemon.complete_sign_in(&flow, "000000").await;

    let audits = daemon
        .admin(
            Method::GET,
            "/v1/tenants/contoso/auditLogs/directoryAudits",
            None,
            StatusCode::OK,
        )
        .await;
    let activities: Vec<(&str, &str)> = audits["value"]
        .as_array()
        .expect("list")
        .iter()
        .map(|a| {
            (
                a["activityDisplayName"].as_str().unwrap_or(""),
                a["result"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for expected in [
        ("Add tenant", "success"),
        ("Update authentication methods policy", "success"),
        ("Add user", "success"),
        ("Admin registered security info", "success"),
        ("Admin enabled SMS sign-in", "failure"),
    ] {
        assert!(
            activities.contains(&expected),
            "{expected:?} in {activities:?}"
        );
    }
    assert_eq!(
        audits["value"][0]["initiatedBy"]["app"]["displayName"],
        "admin"
    );
    // The sign-in log is written behind the request; wait (bounded) for the four records.
    let mut sign_ins = Value::Null;
    for _ in 0..300 {
        sign_ins = daemon
            .admin(
                Method::GET,
                "/v1/tenants/contoso/auditLogs/signIns",
                None,
                StatusCode::OK,
            )
            .await;
        if sign_ins["value"].as_array().map_or(0, Vec::len) >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let records = sign_ins["value"].as_array().expect("list");
    let summary: Vec<(&str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["phase"].as_str().unwrap_or(""),
                r["result"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("complete", "denied"),
            ("start", "notReady"),
            ("complete", "approved"),
            ("start", "codeSent")
        ]
    );
    assert_eq!(records[2]["userId"], uid.as_str());
    assert_eq!(records[2]["appDisplayName"], "frontend");
    assert_eq!(records[2]["ipAddress"], "127.0.0.1");
    assert_eq!(records[2]["phoneNumber"], "+316******78");
    for log in [audits.to_string(), sign_ins.to_string()] {
        assert!(!log.contains("612345678"), "a full number in {log}");
        assert!(!log.contains(&code), "the code in {log}");
    }
    daemon.stop().await;
    sim.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("directory.db");
    let (sim, daemon) = setup_at(Some(db.clone())).await;
    daemon.create_tenant("contoso").await;
    daemon.policy_all_users("contoso").await;
    let uid = daemon.create_user("contoso", "Adele Vance").await;
    daemon
        .add_phone("contoso", &uid, "+31612345678", "mobile")
        .await;
    daemon.stop().await;
    sim.kill().await;

    let (sim, daemon) = setup_at(Some(db)).await;
    let user = daemon
        .admin(
            Method::GET,
            &format!("/v1/tenants/contoso/users/{uid}"),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(user["displayName"], "Adele Vance");
    assert_eq!(daemon.method_state("contoso", &uid, MOBILE).await, "ready");
    // The sign-in index was rebuilt from the file: the user signs in at once.
    assert_eq!(
        daemon.sign_in(&sim, "contoso", "+31612345678").await["user_id"],
        uid.as_str()
    );
    let audits = daemon
        .admin(
            Method::GET,
            "/v1/tenants/contoso/auditLogs/directoryAudits",
            None,
            StatusCode::OK,
        )
        .await;
    assert!(audits["value"].as_array().map_or(0, Vec::len) >= 4);
    daemon.stop().await;
    sim.kill().await;
}
