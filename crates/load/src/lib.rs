//! oxswan's load tester: N IKEv2 clients, at most K handshakes in flight, against the gateways named
//! and no other address, from a range of source addresses; it stops by itself.
//!
//! Each client is an [`oxswan_ike::Endpoint`] of its own (its own identity and EAP user, as real
//! road warriors have), run by one of a few driver threads over non-blocking UDP sockets, one per
//! source address and thread. A handshake counts from the first IKE_SA_INIT request to the CHILD SA
//! being ready (IKE_SA_INIT, IKE_AUTH with any EAP rounds, RFC 7296 §1.2 and §2.16). The clients
//! stay up until every client has had its turn (and `hold` has passed), so a gateway can be
//! measured holding all of them; then they are deleted, K at a time, unless `delete` is off.
//!
//! What makes it safe to point at a production gateway by mistake is that it never sends to an
//! address it was not given: every datagram whose destination is not a named target is dropped and
//! counted ([`Report::refused_sends`]), MOBIKE is not offered (RFC 4555: no other addresses), and
//! the run ends after [`Plan::max_time`] whatever happens.

#![forbid(unsafe_code)]

mod driver;
mod ping;
mod plan;
mod report;

pub use plan::{Auth, GatewayAuth, Plan, parse_sources, parse_target};
pub use report::{Percentiles, Report, Tenths};

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Why a load test cannot run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A plan that cannot be run as given.
    #[error("{0}")]
    Plan(String),
    /// A source address that this host does not have, or a socket that cannot be made.
    #[error("source {addr}: cannot bind a UDP socket (is it an address of this host?)")]
    Socket {
        /// The address.
        addr: IpAddr,
        /// What the kernel said.
        source: std::io::Error,
    },
    /// A driver thread could not be started or ended abnormally.
    #[error("driver thread: {0}")]
    Thread(String),
}

/// Live counters, shared by the driver threads and read for the progress line.
#[derive(Debug, Default)]
pub struct Progress {
    /// Clients whose handshake started.
    pub started: AtomicU64,
    /// Handshakes complete (IKE SA and its CHILD SA up).
    pub established: AtomicU64,
    /// Handshakes that failed.
    pub failed: AtomicU64,
    /// Clients up now (established and not yet deleted or lost).
    pub up: AtomicU64,
    /// Clients whose pings had an answer (`--ping`).
    pub pinged: AtomicU64,
}

impl Progress {
    /// Handshakes started and not yet ended.
    pub fn in_flight(&self) -> u64 {
        let started = self.started.load(Ordering::Relaxed);
        let ended = self.established.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed);
        started.saturating_sub(ended)
    }
}

/// Runs `plan` to its end; `on_tick` is called about every `tick` with the live counters (for a
/// progress line), from the calling thread. `stop`, when set, ends the run early: no more clients
/// start, those up are deleted (unless the plan says not to).
pub fn run(
    plan: &Plan,
    stop: &Arc<AtomicBool>,
    tick: Duration,
    mut on_tick: impl FnMut(&Progress, Duration),
) -> Result<Report, LoadError> {
    plan.check()?;
    let progress = Arc::new(Progress::default());
    // No more threads than clients, nor than handshakes in flight: each thread has at least one
    // in flight, and the plan's bound is for all of them together.
    let threads = plan.threads.min(plan.clients).min(plan.in_flight).max(1);
    let start = Instant::now();
    let mut drivers = Vec::with_capacity(threads);
    for t in 0..threads {
        // Each thread binds its own sockets: the kernel spreads nothing between them, and no socket
        // is shared across threads.
        let d = driver::Driver::new(plan, t, threads, progress.clone(), stop.clone(), start)?;
        let h = thread::Builder::new()
            .name(format!("load-{t}"))
            .spawn(move || d.run())
            .map_err(|e| LoadError::Thread(e.to_string()))?;
        drivers.push(h);
    }
    // Ticks every `tick`, and once at the end, so a caller's last line shows the final counts.
    let tick = tick.max(Duration::from_millis(10));
    let mut next_tick = start + tick;
    while drivers.iter().any(|h| !h.is_finished()) {
        thread::sleep(Duration::from_millis(10));
        if Instant::now() >= next_tick {
            next_tick += tick;
            on_tick(&progress, start.elapsed());
        }
    }
    on_tick(&progress, start.elapsed());
    let mut outcomes = Vec::with_capacity(threads);
    for h in drivers {
        outcomes.push(h.join().map_err(|_| LoadError::Thread("a driver thread panicked".into()))?);
    }
    Ok(Report::new(plan, outcomes, start.elapsed()))
}
