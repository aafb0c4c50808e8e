//! What the service tells systemd over `NOTIFY_SOCKET` (sd_notify(3)): READY=1 once it works,
//! STATUS= lines saying what it is doing, RELOADING=1 around a reload, STOPPING=1, and WATCHDOG=1
//! pings. Without `NOTIFY_SOCKET` (not run by systemd) every call does nothing. When to say what
//! is the daemon's business.

use sd_notify::NotifyState;
use std::time::Duration;

/// Startup is over: the service works (and, after a reload, works again).
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// A reload begins; `ready` ends it. Newer systemd (Type=notify-reload) wants the monotonic time
/// with it to tell this reload from an older one.
pub fn reloading(status: &str) {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now, NotifyState::Status(status)]),
        Err(error) => {
            tracing::warn!("cannot read the monotonic clock for systemd: {error}");
            send(&[NotifyState::Reloading, NotifyState::Status(status)]);
        }
    }
}

pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// The service is alive: resets systemd's watchdog timer.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// How often to ping: half of `WatchdogSec=`, as sd_watchdog_enabled(3) advises; `None` when
/// systemd expects no pings.
pub fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|timeout| timeout / 2)
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!("cannot notify systemd: {error}");
    }
}
