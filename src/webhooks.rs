//! `callback_url`: each change of a message's delivery state is POSTed as JSON (the same body as
//! the status routes) to the URL given with the send, retried with back-off a bounded number of
//! times. A full queue drops notifications (counted) rather than slow the send path.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::metrics as m;

/// One POST to make.
#[derive(Debug)]
pub struct Notification {
    pub url: Arc<str>,
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
}

/// Why a callback_url cannot be used; the text is safe to show the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("callback_url must be an absolute http or https URL of at most 2048 characters")]
    Malformed,
    #[error("callback_url's host is not in [callbacks] allowed_hosts")]
    HostNotAllowed,
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

/// An HTTP client (rustls with the system's roots) that does not follow redirects: a callback
/// URL is the caller's choice, not a server's.
fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// Starts the sender on `tracker`; it stops with `shutdown`.
pub fn spawn(
    settings: &WebhookSettings,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> Result<Webhooks, reqwest::Error> {
    let (queue, mut notifications) = mpsc::channel::<Notification>(settings.queue_capacity);
    let client = client(settings.timeout)?;
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
async fn deliver(client: &reqwest::Client, notification: &Notification, max_attempts: u32) -> bool {
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=max_attempts {
        match client
            .post(&*notification.url)
            .json(&notification.body)
            .send()
            .await
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
        }
    }

    #[test]
    fn callback_urls_are_checked() {
        let any = settings(&[]);
        assert_eq!(any.check("https://idp.example.com/sms-status"), Ok(()));
        assert_eq!(any.check("http://127.0.0.1:8080/x"), Ok(()));
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
