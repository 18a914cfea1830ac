//! systemd readiness (`Type=notify`): READY once serving, STOPPING when shutdown starts.
//! Outside systemd (no NOTIFY_SOCKET) these do nothing.

use sd_notify::NotifyState;

pub fn ready() {
    if let Err(err) = sd_notify::notify(false, &[NotifyState::Ready]) {
        tracing::warn!(%err, "sd_notify READY failed");
    }
}

pub fn stopping() {
    if let Err(err) = sd_notify::notify(false, &[NotifyState::Stopping]) {
        tracing::warn!(%err, "sd_notify STOPPING failed");
    }
}
