//! The human side of the tester API: `smsc-sim inbox` prints what phones received,
//! `smsc-sim mo` makes a phone text an ESME.

use serde_json::{Value, json};

/// Prints the newest messages (to `to`, if given), one per line, newest first.
pub async fn inbox(
    url: &str,
    to: Option<&str>,
    limit: usize,
    raw_json: bool,
) -> anyhow::Result<String> {
    let mut query = vec![("limit", limit.to_string())];
    if let Some(to) = to {
        query.push(("to", to.to_owned()));
    }
    let response = reqwest::Client::new()
        .get(format!("{url}/api/messages"))
        .query(&query)
        .send()
        .await?;
    if !response.status().is_success() {
        anyhow::bail!("{} answered {}", url, response.status());
    }
    let messages: Vec<Value> = response.json().await?;
    if raw_json {
        return Ok(serde_json::to_string_pretty(&messages)?);
    }
    if messages.is_empty() {
        return Ok("no messages".to_owned());
    }
    let lines: Vec<String> = messages
        .iter()
        .map(|m| {
            let field = |name: &str| m[name].as_str().unwrap_or("").to_owned();
            let code = m["otp"]
                .as_str()
                .map(|c| format!("  [{c}]"))
                .unwrap_or_default();
            format!(
                "{}  {:>2}  {} -> {}  {}{code}  {}",
                field("received_at"),
                field("direction"),
                field("from"),
                field("to"),
                field("state"),
                field("text").replace('\n', " ")
            )
        })
        .collect();
    Ok(lines.join("\n"))
}

/// Sends an MO through the simulator; returns its message id.
pub async fn mo(
    url: &str,
    from: &str,
    to: &str,
    text: &str,
    account: Option<&str>,
) -> anyhow::Result<String> {
    let body = json!({ "from": from, "to": to, "text": text, "account": account });
    let response = reqwest::Client::new()
        .post(format!("{url}/api/mo"))
        .json(&body)
        .send()
        .await?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let detail = answer["detail"].as_str().unwrap_or("no detail");
        anyhow::bail!("{url} refused the MO ({status}): {detail}");
    }
    Ok(answer["id"].as_str().unwrap_or_default().to_owned())
}
