//! The final figures of a run: rate, setup-time percentiles, failures by reason.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::Plan;
use crate::driver::Outcome;

/// Setup times in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// The slowest.
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `samples` (unsorted).
    pub fn of(samples: &mut [Duration]) -> Self {
        samples.sort_unstable();
        let at = |q: f64| -> f64 {
            if samples.is_empty() {
                return 0.0;
            }
            // Nearest rank: the smallest sample with at least q of all at or below it.
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples.get(rank - 1).map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        Self { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1.0) }
    }
}

/// The rate at the start and at the end of the run: a gateway whose cost per handshake grows with
/// the SAs it holds slows down from the first tenth to the last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Tenths {
    /// Handshakes per second over the first tenth of those established (in the order they ended).
    pub first: f64,
    /// Over the last tenth.
    pub last: f64,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The gateways.
    pub targets: Vec<String>,
    /// Clients in the plan.
    pub clients: usize,
    /// Handshakes in flight at most.
    pub in_flight: usize,
    /// Source addresses.
    pub sources: usize,
    /// Driver threads.
    pub threads: usize,
    /// Handshakes complete (IKE SA and CHILD SA up).
    pub established: u64,
    /// Handshakes that failed.
    pub failed: u64,
    /// Failures by reason.
    pub failures: BTreeMap<String, u64>,
    /// From the first handshake's start to the last one's end, in seconds.
    pub setup_seconds: f64,
    /// Handshakes per second over that time.
    pub rate: f64,
    /// Setup times (first IKE_SA_INIT request to the CHILD SA), milliseconds.
    pub setup_ms: Percentiles,
    /// Rate in the first and last tenth (when at least 20 were established).
    pub tenths: Option<Tenths>,
    /// Datagrams not sent because they were for an address that is not a target.
    pub refused_sends: u64,
    /// Those addresses.
    pub refused_to: Vec<String>,
    /// Clients that were up and ended before the end (the gateway deleted them, or stopped answering).
    pub lost: u64,
    /// Clients deleted at the end, answered.
    pub deleted: u64,
    /// DELETEs at the end not answered in time.
    pub delete_unanswered: u64,
    /// Datagrams received that no client was waiting for.
    pub stray: u64,
    /// Datagrams the kernel refused to send.
    pub send_errors: u64,
    /// Clients left when max-time ended the run.
    pub cut_off: u64,
    /// The whole run, deletes included, in seconds.
    pub wall_seconds: f64,
    /// The ping target (`--ping`), if any.
    pub ping: Option<String>,
    /// Clients that had at least one echo reply through their CHILD SA; `None` without `--ping`.
    pub pinged: Option<u64>,
    /// Why the other established clients had none, by reason.
    pub ping_failures: BTreeMap<String, u64>,
    /// Echo requests sent.
    pub ping_requests: u64,
    /// Echo replies accepted (opened, and the reply to a request sent).
    pub ping_replies: u64,
    /// Their round-trip times, milliseconds.
    pub ping_rtt_ms: Percentiles,
    /// ESP packets for the clients' SPIs refused, by reason (integrity, not the reply, ...).
    pub ping_rejected: BTreeMap<String, u64>,
}

impl Report {
    pub(crate) fn new(plan: &Plan, outcomes: Vec<Outcome>, wall: Duration) -> Self {
        let mut setup: Vec<(Duration, Duration)> = Vec::new();
        let mut failures: BTreeMap<String, u64> = BTreeMap::new();
        let mut refused: BTreeMap<std::net::IpAddr, u64> = BTreeMap::new();
        let mut first_start: Option<Duration> = None;
        let (mut lost, mut deleted, mut unanswered, mut stray, mut send_errors, mut cut_off) = (0, 0, 0, 0, 0, 0);
        let (mut pinged, mut ping_requests, mut ping_replies) = (0, 0, 0);
        let mut ping_failures: BTreeMap<String, u64> = BTreeMap::new();
        let mut ping_rejected: BTreeMap<String, u64> = BTreeMap::new();
        let mut rtt: Vec<Duration> = Vec::new();
        for o in outcomes {
            pinged += o.pinged;
            ping_requests += o.ping_requests;
            ping_replies += o.ping_replies;
            rtt.extend(o.ping_rtt);
            for (k, v) in o.ping_failures {
                *ping_failures.entry(k).or_insert(0) += v;
            }
            for (k, v) in o.ping_rejected {
                *ping_rejected.entry(k).or_insert(0) += v;
            }
            setup.extend(o.setup);
            for (k, v) in o.failures {
                *failures.entry(k).or_insert(0) += v;
            }
            for (k, v) in o.refused {
                *refused.entry(k).or_insert(0) += v;
            }
            first_start = match (first_start, o.first_start) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            lost += o.lost;
            deleted += o.deleted;
            unanswered += o.delete_unanswered;
            stray += o.stray;
            send_errors += o.send_errors;
            cut_off += o.cut_off;
        }
        setup.sort_unstable_by_key(|(end, _)| *end);
        let established = setup.len() as u64;
        let last_end = setup.last().map_or(Duration::ZERO, |(end, _)| *end);
        let setup_seconds = last_end.saturating_sub(first_start.unwrap_or_default()).as_secs_f64();
        let rate = if setup_seconds > 0.0 { established as f64 / setup_seconds } else { 0.0 };
        let tenths = (setup.len() >= 20).then(|| {
            let ends: Vec<Duration> = setup.iter().map(|(end, _)| *end).collect();
            let tenth = ends.len() / 10;
            let span = |from: Duration, to: Duration| to.saturating_sub(from).as_secs_f64();
            let per_s = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
            let start = first_start.unwrap_or_default();
            // The first tenth from the run's first start; the last from the end before it.
            let first = ends.get(tenth - 1).map_or(0.0, |e| per_s(tenth, span(start, *e)));
            let n = ends.len();
            let last = match (ends.get(n - tenth - 1), ends.last()) {
                (Some(a), Some(b)) => per_s(tenth, span(*a, *b)),
                _ => 0.0,
            };
            Tenths { first, last }
        });
        let mut times: Vec<Duration> = setup.iter().map(|(_, d)| *d).collect();
        Self {
            targets: plan.targets.iter().map(ToString::to_string).collect(),
            clients: plan.clients,
            in_flight: plan.in_flight,
            sources: plan.sources.len(),
            threads: plan.threads,
            established,
            failed: failures.values().sum(),
            failures,
            setup_seconds,
            rate,
            setup_ms: Percentiles::of(&mut times),
            tenths,
            refused_sends: refused.values().sum(),
            refused_to: refused.keys().map(ToString::to_string).collect(),
            lost,
            deleted,
            delete_unanswered: unanswered,
            stray,
            send_errors,
            cut_off,
            wall_seconds: wall.as_secs_f64(),
            ping: plan.ping.map(|a| a.to_string()),
            pinged: plan.ping.map(|_| pinged),
            ping_failures,
            ping_requests,
            ping_replies,
            ping_rtt_ms: Percentiles::of(&mut rtt),
            ping_rejected,
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.setup_ms;
        writeln!(
            f,
            "{} clients to {} from {} source address(es), {} in flight, {} thread(s)",
            self.clients,
            self.targets.join(", "),
            self.sources,
            self.in_flight,
            self.threads
        )?;
        writeln!(f, "  established      {:>10}", self.established)?;
        writeln!(f, "  failed           {:>10}", self.failed)?;
        writeln!(f, "  rate             {:>10.1} handshakes/s over {:.2} s", self.rate, self.setup_seconds)?;
        if let Some(t) = self.tenths {
            writeln!(f, "  first/last tenth {:>10.1} / {:.1} handshakes/s", t.first, t.last)?;
        }
        writeln!(f, "  setup p50        {:>10.2} ms", p.p50)?;
        writeln!(f, "  setup p90        {:>10.2} ms", p.p90)?;
        writeln!(f, "  setup p99        {:>10.2} ms", p.p99)?;
        writeln!(f, "  setup max        {:>10.2} ms", p.max)?;
        if let (Some(n), Some(to)) = (self.pinged, &self.ping) {
            writeln!(f, "  pinged           {n:>10} of {} ({to})", self.established)?;
            writeln!(
                f,
                "  echo replies     {:>10} of {} requests, round trip p50 {:.2} ms, max {:.2} ms",
                self.ping_replies, self.ping_requests, self.ping_rtt_ms.p50, self.ping_rtt_ms.max
            )?;
        }
        if self.lost > 0 {
            writeln!(f, "  lost after setup {:>10}", self.lost)?;
        }
        if self.deleted + self.delete_unanswered > 0 {
            writeln!(f, "  deleted          {:>10} ({} unanswered)", self.deleted, self.delete_unanswered)?;
        }
        if self.refused_sends > 0 {
            writeln!(f, "  refused sends    {:>10} (to {})", self.refused_sends, self.refused_to.join(", "))?;
        }
        if self.send_errors > 0 {
            writeln!(f, "  send errors      {:>10}", self.send_errors)?;
        }
        if self.cut_off > 0 {
            writeln!(f, "  cut off          {:>10} (max-time)", self.cut_off)?;
        }
        if !self.failures.is_empty() {
            writeln!(f, "  failures by reason:")?;
            for (why, n) in &self.failures {
                writeln!(f, "    {n:>8}  {why}")?;
            }
        }
        if !self.ping_failures.is_empty() {
            writeln!(f, "  clients without an echo reply, by reason:")?;
            for (why, n) in &self.ping_failures {
                writeln!(f, "    {n:>8}  {why}")?;
            }
        }
        if !self.ping_rejected.is_empty() {
            writeln!(f, "  ESP refused, by reason:")?;
            for (why, n) in &self.ping_rejected {
                writeln!(f, "    {n:>8}  {why}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let p = Percentiles::of(&mut v);
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
        let mut one = vec![Duration::from_millis(7)];
        assert_eq!(Percentiles::of(&mut one).p50, 7.0);
        assert_eq!(Percentiles::of(&mut []), Percentiles::default());
    }
}
