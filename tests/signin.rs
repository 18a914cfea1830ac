//! Passwordless SMS sign-in over HTTP: the real daemon, the real simulator, a SQLite file in a
//! temporary folder. The policy decides who may sign in; a start answers the same for every
//! number; the assertion verifies offline with the published JWKS.

mod common;

use std::time::{Duration, SystemTime};

use common::signin::*;
use common::*;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn setup() -> (Sim, Daemon) {
    setup_with(Options::new).await
}

async fn setup_with(options: impl FnOnce(std::net::SocketAddr) -> Options) -> (Sim, Daemon) {
    let sim = Sim::start().await;
    let mut options = options(sim.smpp);
    options.signin = true;
    let daemon = Daemon::start_bound(options).await;
    (sim, daemon)
}

/// Tenant `tid` with the policy on for all users and one ready user; returns the user id.
async fn ready_user(daemon: &Daemon, tid: &str, name: &str, phone: &str) -> String {
    daemon.create_tenant(tid).await;
    daemon.policy_all_users(tid).await;
    let uid = daemon.create_user(tid, name).await;
    let method = daemon.add_phone(tid, &uid, phone, "mobile").await;
    assert_eq!(method["smsSignInState"], "ready", "{method}");
    uid
}

/// Verifies `token` as an independent frontend would: keys from the published JWKS only.
async fn verify(daemon: &Daemon, token: &str, audience: &str) -> Result<Value, String> {
    let (status, jwks) = daemon.get_json("/.well-known/jwks.json").await;
    assert_eq!(status, StatusCode::OK);
    let set: JwkSet = serde_json::from_value(jwks).expect("a JWKS");
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let jwk = set
        .find(header.kid.as_deref().expect("a kid"))
        .expect("the signing key is published");
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&["https://otpgate.test"]);
    validation.leeway = 0;
    jsonwebtoken::decode::<Value>(
        token,
        &DecodingKey::from_jwk(jwk).expect("usable JWK"),
        &validation,
    )
    .map(|data| data.claims)
    .map_err(|e| format!("{:?}", e.kind()))
}

/// Verifies `token` with PyJWT (`tests/verifier/verify_jwt.py`), a verifier that shares no code
/// with the daemon; `None` (skipped) when PyJWT is missing outside CI.
async fn pyjwt(daemon: &Daemon, token: &str, audience: &str) -> Option<Result<Value, String>> {
    let (_, jwks) = daemon.get_json("/.well-known/jwks.json").await;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/verifier/verify_jwt.py");
    let have = std::process::Command::new("python3")
        .args(["-c", "import jwt, cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs PyJWT (.ci/run installs pyjwt[crypto])"
        );
        eprintln!("SKIPPED the PyJWT check: pip install pyjwt[crypto]");
        return None;
    }
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .args([token, audience, "https://otpgate.test"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(jwks.to_string().as_bytes())
        .expect("write the JWKS");
    let output = child.wait_with_output().expect("exits");
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Some(match output.status.success() {
        true => Ok(serde_json::from_str(&text).expect("claims JSON")),
        false => Err(text),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_user_signs_in_and_the_assertion_verifies_with_the_jwks() {
    let (sim, daemon) = setup().await;
    let uid = ready_user(&daemon, "contoso", "Adele Vance", "+31 6 1234 5678").await;
    // The user types the number the way people do; it is the same number.
    let flow = daemon
        .start_sign_in("contoso", "+31 (0)6 12 34 56 78")
        .await;
    let code = sim.next_code_after("+31612345678", 0).await;
    let answer = daemon.complete_sign_in(&flow, &code).await;
    assert_eq!(answer["status"], "approved", "{answer}");
    assert_eq!(answer["user_id"], uid.as_str());
    assert_eq!(answer["phone_method_id"], MOBILE);
    let token = answer["assertion"].as_str().expect("assertion");
    let claims = verify(&daemon, token, "frontend").await.expect("verifies");
    assert_eq!(claims["sub"], uid.as_str(), "sub is the user id");
    assert_eq!(claims["tid"], "contoso");
    assert_eq!(claims["aud"], "frontend");
    assert_eq!(claims["amr"], json!(["sms"]));
    assert_eq!(claims["phone_method_id"], MOBILE);
    assert_eq!(claims["name"], "Adele Vance");
    let (iat, exp) = (
        claims["iat"].as_u64().expect("iat"),
        claims["exp"].as_u64().expect("exp"),
    );
    assert!(exp > iat && exp - iat <= 120, "iat {iat} exp {exp}");
    assert_eq!(claims["auth_time"], claims["iat"]);
    assert_eq!(claims["jti"].as_str().map(str::len), Some(32));
    assert!(
        !token.contains("31612345678") && !claims.to_string().contains("1234"),
        "the assertion never carries the number"
    );
    // Another audience refuses it; the discovery document names the issuer and keys.
    assert!(verify(&daemon, token, "someone-else").await.is_err());
    // PyJWT, with nothing but the published keys, agrees on all of it.
    if let Some(independent) = pyjwt(&daemon, token, "frontend").await {
        assert_eq!(independent.expect("PyJWT accepts it"), claims);
        assert_eq!(
            pyjwt(&daemon, token, "someone-else").await,
            Some(Err("InvalidAudienceError".to_owned()))
        );
    }
    let (_, discovery) = daemon.get_json("/.well-known/openid-configuration").await;
    assert_eq!(discovery["issuer"], "https://otpgate.test");
    assert_eq!(
        discovery["jwks_uri"],
        "https://otpgate.test/.well-known/jwks.json"
    );
    assert_eq!(
        discovery["id_token_signing_alg_values_supported"],
        json!(["EdDSA"])
    );
    // The code was single use.
    assert_eq!(
        daemon.complete_sign_in(&flow, &code).await["status"],
        "not_found"
    );
    daemon.stop().await;
    sim.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assertion_fails_after_its_exp() {
    // The daemon's wall clock starts 200 s behind: its assertions (exp = iat + 120) are already
    // past their exp for a verifier on real time; after 200 s on the daemon's clock they are not.
    let (sim, daemon) = setup_with(|smsc| Options {
        wall_clock: Some(SystemTime::now() - Duration::from_secs(200)),
        ..Options::new(smsc)
    })
    .await;
    ready_user(&daemon, "contoso", "Adele Vance", "+31612345678").await;
    let old = daemon.sign_in(&sim, "contoso", "+31612345678").await;
    let token = old["assertion"].as_str().expect("assertion");
    assert_eq!(
        verify(&daemon, token, "frontend").await,
        Err("ExpiredSignature".to_owned())
    );
    if let Some(independent) = pyjwt(&daemon, token, "frontend").await {
        assert_eq!(independent, Err("ExpiredSignatureError".to_owned()));
    }
    daemon.clock.advance(Duration::from_secs(200));
    let fresh = daemon.sign_in(&sim, "contoso", "+31612345678").await;
    verify(
        &daemon,
        fresh["assertion"].as_str().expect("assertion"),
        "frontend",
    )
    .await
    .expect("a fresh assertion verifies");
    daemon.stop().await;
    sim.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_answers_alike_for_ready_unknown_and_not_allowed_numbers() {
    let (sim, daemon) = setup().await;
    ready_user(&daemon, "contoso", "Ready User", "+31600000001").await;
    // Not allowed: an excluded user with a registered-looking number.
    let gid = &daemon.create_group("contoso", "Blocked").await;
    let blocked = daemon.create_user("contoso", "Blocked User").await;
    daemon
        .add_phone("contoso", &blocked, "+31600000002", "mobile")
        .await;
    daemon.join_group("contoso", gid, &blocked).await;
    daemon
        .set_policy(
            "contoso",
            json!([{ "id": "all_users", "targetType": "group", "isUsableForSignIn": true }]),
            json!([{ "id": gid, "targetType": "group" }]),
        )
        .await;
    assert_eq!(
        daemon.method_state("contoso", &blocked, MOBILE).await,
        "notAllowedByPolicy"
    );
    let mut answers = Vec::new();
    for (tenant, phone) in [
        ("contoso", "+31600000001"),        // ready
        ("contoso", "+31600000003"),        // unknown
        ("contoso", "+31600000002"),        // excluded
        ("no-such-tenant", "+31600000001"), // unknown tenant
    ] {
        let (status, body) = daemon.start_raw(SIGNIN_KEY, tenant, phone).await;
        answers.push((status, body));
    }
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::ACCEPTED, "{body}");
        let mut keys: Vec<&String> = body.as_object().expect("object").keys().collect();
        keys.sort();
        assert_eq!(keys, ["expires_in", "flow"], "{body}");
        assert_eq!(body["flow"].as_str().map(str::len), Some(32), "{body}");
        assert_eq!(body["expires_in"], answers[0].1["expires_in"]);
    }
    // Only the ready number received an SMS.
    sim.code_for("+31600000001").await;
    for phone in ["+31600000002", "+31600000003"] {
        assert!(sim.messages(phone).await.is_empty(), "{phone} got an SMS");
    }
    // A decoy flow answers a wrong code exactly as a real flow does.
    let real = answers[0].1["flow"].as_str().expect("flow");
    let decoy = answers[1].1["flow"].as_str().expect("flow");
    for left in (0..5).rev() {
        let expected = json!({ "status": "denied", "attempts_left": left });
        assert_eq!(daemon.complete_sign_in(real, "000000").await, expected);
        assert_eq!(daemon.complete_sign_in(decoy, "000000").await, expected);
    }
    for flow in [real, decoy] {
        assert_eq!(
            daemon.complete_sign_in(flow, "000000").await,
            json!({ "status": "max_attempts_reached" })
        );
    }
    daemon.stop().await;
    sim.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_is_bound_to_its_flow_and_client() {
    let (sim, daemon) = setup().await;
    ready_user(&daemon, "contoso", "Adele Vance", "+31612345678").await;
    let first = daemon.start_sign_in("contoso", "+31612345678").await;
    let first_code = sim.next_code_after("+31612345678", 0).await;
    // A newer start replaces the flow: the first code no longer completes anything.
    let second = daemon.start_sign_in("contoso", "+31612345678").await;
    let second_code = sim.next_code_after("+31612345678", 1).await;
    assert_eq!(
        daemon.complete_sign_in(&first, &first_code).await["status"],
        "not_found"
    );
    if first_code != second_code {
        assert_eq!(
            daemon.complete_sign_in(&second, &first_code).await["status"],
            "denied"
        );
    }
    // A code sent by /v1/otp/send to the same number does not complete a sign-in flow.
    let (status, _) = daemon.send("+31612345678").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let otp_code = sim.next_code_after("+31612345678", 2).await;
    if otp_code != second_code {
        assert_eq!(
            daemon.complete_sign_in(&second, &otp_code).await["status"],
            "denied"
        );
    }
    // Another client cannot complete this client's flow, even with the right code.
    assert_eq!(
        daemon
            .complete_with(OTHER_SIGNIN_KEY, &second, &second_code)
            .await["status"],
        "not_found"
    );
    assert_eq!(
        daemon.complete_sign_in(&second, &second_code).await["status"],
        "approved"
    );
    // Nor does the sign-in code verify at /v1/otp/verify (it is no /v1/otp code).
    let (_, verdict) = daemon.verify("+31612345678", &second_code).await;
    assert_ne!(verdict["status"], "approved");
    daemon.stop().await;
    sim.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_start_counts_against_the_number_limits_known_or_not() {
    let (sim, daemon) = setup_with(|smsc| Options {
        limits: "send_burst = 2\nsend_period_seconds = 600".to_owned(),
        ..Options::new(smsc)
    })
    .await;
    ready_user(&daemon, "contoso", "Adele Vance", "+31612345678").await;
    for phone in ["+31612345678", "+31699999999"] {
        for _ in 0..2 {
            daemon.start_sign_in("contoso", phone).await;
        }
        let (status, body) = daemon.start_raw(SIGNIN_KEY, "contoso", phone).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{phone}: {body}");
    }
    daemon.stop().await;
    sim.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_changes_kill_a_pending_code_at_once() {
    let (sim, daemon) = setup_with(|smsc| Options {
        limits: "send_burst = 100".to_owned(),
        ..Options::new(smsc)
    })
    .await;
    let uid = ready_user(&daemon, "contoso", "Adele Vance", "+31612345678").await;
    let methods = methods_path("contoso", &uid);
    let user = format!("/v1/tenants/contoso/users/{uid}");
    type Step = (Method, String, Option<Value>, Method, String, Option<Value>);
    // Each change, and the change that makes the user ready again.
    let steps: Vec<Step> = vec![
        (
            Method::PATCH,
            format!("{methods}/{MOBILE}"),
            Some(json!({ "phoneNumber": "+31687654321" })),
            Method::PATCH,
            format!("{methods}/{MOBILE}"),
            Some(json!({ "phoneNumber": "+31612345678" })),
        ),
        (
            Method::POST,
            format!("{methods}/{MOBILE}/disableSmsSignIn"),
            None,
            Method::POST,
            format!("{methods}/{MOBILE}/enableSmsSignIn"),
            None,
        ),
        (
            Method::PATCH,
            user.clone(),
            Some(json!({ "accountEnabled": false })),
            Method::PATCH,
            user.clone(),
            Some(json!({ "accountEnabled": true })),
        ),
        (
            Method::PATCH,
            policy_path("contoso"),
            Some(json!({ "state": "disabled" })),
            Method::PATCH,
            policy_path("contoso"),
            Some(json!({ "state": "enabled" })),
        ),
    ];
    let mut seen = 0;
    for (change, path, body, undo, undo_path, undo_body) in steps {
        let flow = daemon.start_sign_in("contoso", "+31612345678").await;
        let code = sim.next_code_after("+31612345678", seen).await;
        seen += 1;
        daemon
            .admin(change.clone(), &path, body, StatusCode::OK)
            .await;
        assert_eq!(
            daemon.complete_sign_in(&flow, &code).await["status"],
            "not_found",
            "{change} {path} left the pending code alive"
        );
        // While changed, a start sends nothing.
        daemon.start_sign_in("contoso", "+31612345678").await;
        daemon
            .admin(undo, &undo_path, undo_body, StatusCode::OK)
            .await;
        assert_eq!(daemon.method_state("contoso", &uid, MOBILE).await, "ready");
        let answer = daemon.sign_in(&sim, "contoso", "+31612345678").await;
        assert_eq!(answer["status"], "approved", "after undoing {path}");
        seen += 1;
    }
    assert_eq!(
        sim.messages("+31612345678").await.len(),
        seen,
        "no SMS while not ready"
    );
    // Removing the user from the only targeted group, and deleting the user, do the same.
    let gid = &daemon.create_group("contoso", "Frontline").await;
    daemon.join_group("contoso", gid, &uid).await;
    daemon
        .set_policy(
            "contoso",
            json!([{ "id": gid, "targetType": "group", "isUsableForSignIn": true }]),
            json!([]),
        )
        .await;
    let flow = daemon.start_sign_in("contoso", "+31612345678").await;
    let code = sim.next_code_after("+31612345678", seen).await;
    daemon
        .admin(
            Method::DELETE,
            &format!("/v1/tenants/contoso/groups/{gid}/members/{uid}"),
            None,
            StatusCode::NO_CONTENT,
        )
        .await;
    assert_eq!(
        daemon.complete_sign_in(&flow, &code).await["status"],
        "not_found"
    );
    assert_eq!(
        daemon.method_state("contoso", &uid, MOBILE).await,
        "notAllowedByPolicy"
    );
    daemon.stop().await;
    sim.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_racing_completes_with_the_right_code_approve_once() {
    let (sim, daemon) = setup().await;
    ready_user(&daemon, "contoso", "Adele Vance", "+31612345678").await;
    let flow = daemon.start_sign_in("contoso", "+31612345678").await;
    let code = sim.next_code_after("+31612345678", 0).await;
    let daemon = std::sync::Arc::new(daemon);
    let racers: Vec<_> = (0..20)
        .map(|_| {
            let (daemon, flow, code) = (daemon.clone(), flow.clone(), code.clone());
            tokio::spawn(async move { daemon.complete_sign_in(&flow, &code).await })
        })
        .collect();
    let mut approved = 0;
    for racer in racers {
        let answer = racer.await.expect("no panic");
        match answer["status"].as_str() {
            Some("approved") => approved += 1,
            Some("not_found") => {}
            other => panic!("unexpected {other:?}: {answer}"),
        }
    }
    assert_eq!(approved, 1, "one code, one assertion");
    let daemon = std::sync::Arc::into_inner(daemon).expect("racers done");
    daemon.stop().await;
    sim.kill().await;
}
