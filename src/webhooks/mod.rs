//! `callback_url`: each change of a message's delivery state is POSTed as JSON (the same body as
//! the status routes) to the URL given with the send, retried with back-off a bounded number of
//! times, signed with the sending client's secret (`signature`). Only public addresses are
//! connected to unless a host is opened (`address`). A full queue drops notifications (counted)
//! rather than slow the send path. A URL's query is never logged.

pub mod address;
pub mod signature;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::metrics as m;

pub use address::{PrivateHosts, is_public};
pub use signature::WebhookSecret;

/// Where a message's state changes go, and how they are signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    pub url: Arc<str>,
    /// The sending client's secret; `None`: unsigned (no secret configured).
    pub secret: Option<Arc<WebhookSecret>>,
}

/// One POST to make.
#[derive(Debug)]
pub struct Notification {
    pub callback: Arc<Callback>,
    /// `webhook-id`: the same for every attempt of one notification, so a receiver can drop
    /// duplicates.
    pub id: String,
    pub body: serde_json::Value,
}

/// Where notifications are queued; cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    queue: mpsc::Sender<Notification>,
}

impl Webhooks {
    /// Queues `notification`; a full queue drops it.
    pub fn notify(&self, notification: Notification) {
        if self.queue.try_send(notification).is_err() {
            metrics::counter!(m::WEBHOOKS_TOTAL, m::LABEL_RESULT => "dropped").increment(1);
        }
    }
}

/// How notifications are sent.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub timeout: Duration,
    pub max_attempts: u32,
    pub queue_capacity: usize,
    /// Empty: any host.
    pub allowed_hosts: Vec<String>,
    /// Hosts that may be (or resolve to) loopback, private, link-local or other non-public
    /// addresses; every other host must be public.
    pub private_hosts: PrivateHosts,
    /// The secret of clients without their own (`[callbacks] secret_file` / `secret_env`).
    pub default_secret: Option<Arc<WebhookSecret>>,
}

/// Why a callback_url cannot be used; the text is safe to show the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("callback_url must be an absolute http or https URL of at most 2048 characters")]
    Malformed,
    #[error("callback_url's host is not in [callbacks] allowed_hosts")]
    HostNotAllowed,
    /// Loopback, private, link-local, multicast or unspecified, and not opened.
    #[error("callback_url must point to a public address")]
    NotPublic,
}

impl WebhookSettings {
    /// Checks a callback URL from a request.
    pub fn check(&self, url: &str) -> Result<(), CallbackError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| CallbackError::Malformed)?;
        if url.len() > 2048
            || !matches!(parsed.scheme(), "http" | "https")
            || parsed.host_str().is_none()
        {
            return Err(CallbackError::Malformed);
        }
        let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
        // An IP literal is checked here; a name is checked on every address it resolves to
        // when the callback connects (`address::PublicResolver`).
        let literal = host.trim_matches(['[', ']']).parse::<IpAddr>().ok();
        if literal.is_some_and(|ip| !is_public(ip)) && !self.private_hosts.contains(&host) {
            return Err(CallbackError::NotPublic);
        }
        if !self.allowed_hosts.is_empty()
            && !self
                .allowed_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(&host))
        {
            return Err(CallbackError::HostNotAllowed);
        }
        Ok(())
    }
}

/// An HTTP client (rustls with the system's roots) that does not follow redirects (a callback
/// URL is the caller's choice, not a server's), uses no proxy from the environment, and
/// connects only to public addresses unless a host is opened.
fn client(settings: &WebhookSettings) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(address::PublicResolver {
            open: settings.private_hosts.clone(),
        }))
        .build()
}

/// Starts the sender on `tracker`; it stops with `shutdown`.
pub fn spawn(
    settings: &WebhookSettings,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> Result<Webhooks, reqwest::Error> {
    let (queue, mut notifications) = mpsc::channel::<Notification>(settings.queue_capacity);
    let client = client(settings)?;
    let max_attempts = settings.max_attempts.max(1);
    // At most this many POSTs at once, so a slow receiver cannot take every socket.
    let slots = Arc::new(Semaphore::new(64));
    let tasks = tracker.clone();
    tracker.spawn(async move {
        loop {
            let notification = tokio::select! {
                next = notifications.recv() => match next {
                    Some(notification) => notification,
                    None => break,
                },
                _ = shutdown.cancelled() => break,
            };
            let Ok(slot) = slots.clone().acquire_owned().await else { break };
            let (client, shutdown) = (client.clone(), shutdown.clone());
            tasks.spawn(async move {
                let _slot = slot;
                let result = tokio::select! {
                    delivered = deliver(&client, &notification, max_attempts) => if delivered { "delivered" } else { "failed" },
                    _ = shutdown.cancelled() => "abandoned",
                };
                metrics::counter!(m::WEBHOOKS_TOTAL, m::LABEL_RESULT => result).increment(1);
            });
        }
    });
    Ok(Webhooks { queue })
}

/// POSTs until a 2xx answer or `max_attempts`; waits 0.5 s, 1 s, 2 s, ... between attempts.
/// Each attempt is signed with its own timestamp.
async fn deliver(client: &reqwest::Client, notification: &Notification, max_attempts: u32) -> bool {
    let mut delay = Duration::from_millis(500);
    // Bytes: each attempt sends the same buffer, not a copy.
    let body = bytes::Bytes::from(notification.body.to_string());
    for attempt in 1..=max_attempts {
        let timestamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let mut request = client
            .post(&*notification.callback.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &notification.id)
            .header("webhook-timestamp", timestamp);
        if let Some(secret) = &notification.callback.secret {
            request = request.header(
                "webhook-signature",
                secret.sign(&notification.id, timestamp, &body),
            );
        }
        // reqwest's error text names the URL; without it the query cannot reach the log.
        match request
            .body(body.clone())
            .send()
            .await
            .map_err(|err| err.without_url())
        {
            Ok(response) if response.status().is_success() => return true,
            Ok(response) => debug!(attempt, status = %response.status(), "callback refused"),
            Err(err) => debug!(attempt, %err, "callback failed"),
        }
        if attempt < max_attempts {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(30));
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(allowed: &[&str]) -> WebhookSettings {
        WebhookSettings {
            timeout: Duration::from_secs(1),
            max_attempts: 3,
            queue_capacity: 10,
            allowed_hosts: allowed.iter().map(|h| (*h).to_owned()).collect(),
            private_hosts: PrivateHosts::new(&["127.0.0.1".to_owned()]),
            default_secret: None,
        }
    }

    #[test]
    fn callback_urls_are_checked() {
        let any = settings(&[]);
        assert_eq!(any.check("https://idp.example.com/sms-status"), Ok(()));
        assert_eq!(any.check("http://127.0.0.1:8080/x"), Ok(()));
        for private in [
            "http://10.0.0.1/x",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:8080/x",
            "http://[::ffff:169.254.169.254]/x",
            "http://0.0.0.0/x",
        ] {
            assert_eq!(
                any.check(private),
                Err(CallbackError::NotPublic),
                "{private}"
            );
        }
        assert_eq!(any.check("http://93.184.216.34/cb"), Ok(()));
        assert_eq!(
            any.check("ftp://example.com/"),
            Err(CallbackError::Malformed)
        );
        assert_eq!(any.check("/relative"), Err(CallbackError::Malformed));
        assert_eq!(
            any.check(&format!("https://e.com/{}", "a".repeat(2048))),
            Err(CallbackError::Malformed)
        );
        let some = settings(&["idp.example.com"]);
        assert_eq!(some.check("https://IDP.example.com/cb"), Ok(()));
        assert_eq!(
            some.check("https://evil.example.com/cb"),
            Err(CallbackError::HostNotAllowed)
        );
    }
}
