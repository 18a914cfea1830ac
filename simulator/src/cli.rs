//! The human side of the tester API: `smsc-sim inbox` prints what phones received,
//! `smsc-sim mo` makes a phone text an ESME, `smsc-sim pcap` saves the SMPP traffic.

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

/// Writes the SMPP traffic of session `session` (all if None) to `output` as a pcap file;
/// returns a line saying what was written.
pub async fn pcap(
    url: &str,
    session: Option<u64>,
    output: &std::path::Path,
) -> anyhow::Result<String> {
    let mut request = reqwest::Client::new().get(format!("{url}/api/pcap"));
    if let Some(session) = session {
        request = request.query(&[("session", session)]);
    }
    let response = request.send().await?;
    let status = response.status();
    if !status.is_success() {
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        let detail = answer["detail"].as_str().unwrap_or("no detail");
        anyhow::bail!("{url} answered {status}: {detail}");
    }
    let bytes = response.bytes().await?;
    std::fs::write(output, &bytes)
        .map_err(|err| anyhow::anyhow!("cannot write {}: {err}", output.display()))?;
    Ok(format!(
        "wrote {} octets to {} (decode with: tshark -r {} -d tcp.port==<smpp port>,smpp)",
        bytes.len(),
        output.display(),
        output.display()
    ))
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
