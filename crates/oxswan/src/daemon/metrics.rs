//! `[daemon] metrics` on the IKE thread: the snapshot it publishes once a second for the HTTP
//! endpoint, from the engine, the data plane, the TCP streams, the pools and the RADIUS client.

use super::*;
use crate::metrics::{Recorder, Snapshot, http};

/// Starts the endpoint on `at`; the IKE thread publishes into what it serves.
pub(super) fn serve(at: SocketAddr, now: Instant) -> anyhow::Result<Recorder> {
    let published = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
    let server = http::start(at, published.clone(), http::Limits::default())?;
    tracing::info!(target: "daemon", "Prometheus metrics on http://{}/metrics", server.local);
    Ok(Recorder::new(published, now))
}

impl Ike {
    /// Publishes a snapshot when one is due: one walk over the SAs and the installed pairs, as
    /// [`Ike::report_usage`] does ten times as often.
    pub(super) fn publish_metrics(&mut self, now: Instant) {
        let Some(m) = self.metrics.as_ref().filter(|m| m.due(now)) else { return };
        let pairs = self.dp.counters();
        let mut traffic = m.tally.gone;
        for (_, k) in &pairs {
            traffic.add(k);
        }
        let s = Snapshot {
            ike_sas: self.endpoint.sa_counts(),
            half_open: self.endpoint.half_open_count() as u64,
            cookie_mode: self.endpoint.cookie_mode(),
            engine: self.endpoint.stats(),
            handshakes: m.tally.handshakes,
            failures: m.tally.failures.clone(),
            ike_rekeys: m.tally.ike_rekeys,
            child_sas: pairs.len() as u64,
            child_rekeys: m.tally.child_rekeys,
            traffic,
            datapath: self.dp.stats(),
            tcp_esp_dropped: self.streams.status().esp_dropped,
            pools: self.endpoint.pool_usage(),
            radius: self.radius.as_ref().map(crate::radius::Radius::metrics),
            cluster: self.cluster.as_ref().map(crate::cluster::Node::metrics),
        };
        if let Some(m) = self.metrics.as_mut() {
            m.publish(now, s);
        }
    }
}
