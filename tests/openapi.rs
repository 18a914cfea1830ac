//! `docs/openapi.yaml` stays true: its routes are the daemon's routes, and what the live daemon
//! answers matches the documented statuses and schemas.

mod common;

use std::collections::BTreeSet;

use common::{Daemon, Options, Sim};
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

fn spec() -> Yaml {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.yaml");
    let text = std::fs::read_to_string(path).expect("docs/openapi.yaml exists");
    YamlLoader::load_from_str(&text)
        .expect("valid YAML")
        .remove(0)
}

fn documented_routes(spec: &Yaml) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in spec["paths"].as_hash().expect("paths") {
        for (method, _) in item.as_hash().expect("path item") {
            let (path, method) = (
                path.as_str().expect("path"),
                method.as_str().expect("method"),
            );
            routes.insert((method.to_ascii_uppercase(), path.to_owned()));
        }
    }
    routes
}

fn statuses(spec: &Yaml, path: &str, method: &str) -> BTreeSet<u16> {
    spec["paths"][path][method]["responses"]
        .as_hash()
        .expect("responses")
        .keys()
        .map(|k| {
            k.as_str()
                .expect("status key")
                .parse()
                .expect("numeric status")
        })
        .collect()
}

fn required(spec: &Yaml, schema: &str) -> BTreeSet<String> {
    spec["components"]["schemas"][schema]["required"]
        .as_vec()
        .expect("required list")
        .iter()
        .map(|v| v.as_str().expect("name").to_owned())
        .collect()
}

fn enumeration(spec: &Yaml, schema: &str, property: &str) -> BTreeSet<String> {
    spec["components"]["schemas"][schema]["properties"][property]["enum"]
        .as_vec()
        .expect("enum")
        .iter()
        .map(|v| v.as_str().expect("string").to_owned())
        .collect()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().expect("object").keys().cloned().collect()
}

#[test]
fn the_spec_documents_exactly_the_served_routes() {
    let served: BTreeSet<(String, String)> = otpgate::http::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented_routes(&spec()), served);
    assert_eq!(spec()["openapi"].as_str(), Some("3.1.0"));
}

#[tokio::test]
async fn live_answers_match_the_documented_statuses_and_schemas() {
    let spec = spec();
    let sim = Sim::start().await;
    let mut options = Options::new(sim.smpp);
    options.signin = true;
    let daemon = Daemon::start_bound(options).await;

    let (send_status, sent) = daemon.send("+31612345678").await;
    let id = sent["id"].as_str().expect("id").to_owned();

    // Every documented route exists on the live daemon (path parameters filled in).
    for (method, path) in documented_routes(&spec) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let path = if path.starts_with("/v1/sms") {
            path.replace("{id}", "sms-0")
        } else {
            path.replace("{id}", &id)
        }
        .replace("{tid}", "t")
        .replace("{uid}", "u")
        .replace("{gid}", "g")
        .replace("{mid}", common::signin::MOBILE);
        let key = if path.starts_with("/v1/sms") {
            common::SMS_KEY
        } else if path.starts_with("/v1/tenants") {
            common::ADMIN_KEY
        } else if path.starts_with("/v1/signin") {
            common::SIGNIN_KEY
        } else {
            common::API_KEY
        };
        let status = daemon
            .client
            .request(method, format!("{}{path}", daemon.url))
            .bearer_auth(key)
            .json(&serde_json::json!({}))
            .send()
            .await
            .expect("answer");
        let status_code = status.status();
        let body: serde_json::Value = status.json().await.unwrap_or(serde_json::Value::Null);
        // The route exists: never 405, and never the 404 of an unknown route (a 404 for an
        // unknown id says so in its detail).
        assert!(status_code != 405, "{path} answered {status_code}");
        assert!(
            body["detail"] != "no such route",
            "{path} is not routed: {body}"
        );
    }
    let (status, record) = daemon.get_json(&format!("/v1/otp/{id}")).await;
    assert!(statuses(&spec, "/v1/otp/{id}", "get").contains(&status.as_u16()));
    assert_eq!(keys(&record), required(&spec, "StatusResponse"));
    let delivery_keys: BTreeSet<String> =
        spec["components"]["schemas"]["StatusResponse"]["properties"]["delivery"]["required"]
            .as_vec()
            .expect("required")
            .iter()
            .map(|v| v.as_str().expect("name").to_owned())
            .collect();
    assert_eq!(keys(&record["delivery"]), delivery_keys);
    assert!(statuses(&spec, "/v1/otp/send", "post").contains(&send_status.as_u16()));
    assert_eq!(keys(&sent), required(&spec, "SendResponse"));
    let code = sim.code_for("+31612345678").await;
    let (status, denied) = daemon
        .verify("+31612345678", &common::wrong_code(&code))
        .await;
    assert!(statuses(&spec, "/v1/otp/verify", "post").contains(&status.as_u16()));
    let verdicts = enumeration(&spec, "VerifyResponse", "status");
    assert!(verdicts.contains(denied["status"].as_str().expect("status")));
    let (_, approved) = daemon.verify("+31612345678", &code).await;
    assert!(verdicts.contains(approved["status"].as_str().expect("status")));
    assert_eq!(keys(&approved), required(&spec, "VerifyResponse"));
    assert_eq!(
        verdicts,
        [
            "approved",
            "denied",
            "expired",
            "max_attempts_reached",
            "not_found"
        ]
        .map(String::from)
        .into()
    );

    // The directory and sign-in answers carry what their schemas require.
    use reqwest::Method;
    daemon.create_tenant("contoso").await;
    daemon.policy_all_users("contoso").await;
    let uid = daemon.create_user("contoso", "Adele Vance").await;
    let method = daemon
        .add_phone("contoso", &uid, "+31600000042", "mobile")
        .await;
    assert_eq!(keys(&method), required(&spec, "PhoneMethod"));
    assert!(
        enumeration(&spec, "PhoneMethod", "smsSignInState")
            .contains(method["smsSignInState"].as_str().expect("state"))
    );
    let user = daemon
        .admin(
            Method::GET,
            &format!("/v1/tenants/contoso/users/{uid}"),
            None,
            reqwest::StatusCode::OK,
        )
        .await;
    assert_eq!(keys(&user), required(&spec, "User"));
    let policy = daemon
        .admin(
            Method::GET,
            &common::signin::policy_path("contoso"),
            None,
            reqwest::StatusCode::OK,
        )
        .await;
    assert_eq!(keys(&policy), required(&spec, "SmsPolicy"));
    let (status, started) = daemon
        .start_raw(common::SIGNIN_KEY, "contoso", "+31600000042")
        .await;
    assert!(statuses(&spec, "/v1/signin/sms/start", "post").contains(&status.as_u16()));
    assert_eq!(keys(&started), required(&spec, "SignInStartResponse"));
    let flow = started["flow"].as_str().expect("flow");
    let code = sim.code_for("+31600000042").await;
    let approved = daemon.complete_sign_in(flow, &code).await;
    assert!(
        enumeration(&spec, "SignInCompleteResponse", "status")
            .contains(approved["status"].as_str().expect("status"))
    );
    let (status, problem) = daemon
        .call(Method::GET, common::API_KEY, "/v1/tenants", None)
        .await;
    assert!(statuses(&spec, "/v1/tenants", "get").contains(&status.as_u16()));
    assert!(
        enumeration(&spec, "Problem", "type").contains(problem["type"].as_str().expect("type"))
    );

    // Problem bodies carry the documented fields and one of the documented types.
    let (status, problem) = daemon.send("not a number").await;
    assert!(statuses(&spec, "/v1/otp/send", "post").contains(&status.as_u16()));
    assert!(required(&spec, "Problem").is_subset(&keys(&problem)));
    assert!(
        enumeration(&spec, "Problem", "type").contains(problem["type"].as_str().expect("type"))
    );
    for status in [400, 401, 408, 413, 415, 429, 503] {
        assert!(
            statuses(&spec, "/v1/otp/send", "post").contains(&status),
            "send documents {status}"
        );
    }
    for status in [200, 400, 401, 408, 413, 415, 429] {
        assert!(
            statuses(&spec, "/v1/otp/verify", "post").contains(&status),
            "verify documents {status}"
        );
    }
    daemon.stop().await;
}
