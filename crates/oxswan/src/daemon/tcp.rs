//! The IKE thread's side of the TCP streams (RFC 9329): what it does when one ends, and closing
//! the idle ones.

use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::Ike;

/// `OXSWAN_TEST_TCP_IDLE`: seconds after which a silent TCP stream without an IKE SA is closed
/// (tests only; [`crate::streams::IDLE`] otherwise).
pub(super) fn tcp_idle() -> anyhow::Result<Duration> {
    match std::env::var("OXSWAN_TEST_TCP_IDLE") {
        Ok(v) => {
            let secs: u64 = v.parse().with_context(|| format!("OXSWAN_TEST_TCP_IDLE={v:?}"))?;
            tracing::warn!(target: "daemon", "testing: idle TCP streams close after {secs} s");
            Ok(Duration::from_secs(secs))
        }
        Err(_) => Ok(crate::streams::IDLE),
    }
}

impl Ike {
    /// A TCP stream ended. One we opened is opened again at once if IKE SAs use it (RFC 9329 §6:
    /// the initiator reestablishes the stream; the responder waits for it): the engine sends their
    /// requests in flight again on the new stream, or a liveness check, which moves the peer's side
    /// of the SA and its ESP there.
    pub(super) fn stream_closed(&mut self, key: crate::streams::StreamKey, opener: bool, connected: bool) {
        let on_it = self.endpoint.tcp_stream_closed(Instant::now(), key, opener, connected);
        if on_it == 0 {
            return;
        }
        if opener {
            tracing::info!(target: "ike", "the TCP stream to {} ended: opening it again for {on_it} IKE SA(s)", key.1);
        } else {
            tracing::info!(target: "ike", "the TCP stream from {} ended: waiting for the peer to open it again", key.1);
        }
    }

    /// Closes the TCP streams no established IKE SA uses that were idle long enough (once a
    /// second).
    pub(super) fn idle_streams(&mut self, now: Instant) {
        if now.saturating_duration_since(self.streams_checked) < Duration::from_secs(1) {
            return;
        }
        self.streams_checked = now;
        if self.streams.count() == 0 {
            return;
        }
        let used: std::collections::HashSet<crate::streams::StreamKey> = self
            .endpoint
            .established()
            .into_iter()
            .filter_map(|sa| self.endpoint.info(sa))
            .filter(|i| i.transport == oxswan_ike::Transport::Tcp)
            .map(|i| (i.local.ip(), i.remote))
            .collect();
        self.streams.close_idle(&used);
    }
}
