//! The whole life of an IKE SA on a hostile link, 1,000 seeds: 30% loss, 10% duplication, 10 ms of
//! latency with up to 50 ms of jitter (which reorders). Every seed runs one scripted lifetime:
//!
//! 1. alice starts the connection (`start_action = start`): the IKE SA and its two CHILD SAs, `net`
//!    in IKE_AUTH and `web` with CREATE_CHILD_SA;
//! 2. CHILD SA rekeys (RFC 7296 §1.3.3): one by alice, one by bob, then both peers rekeying the same
//!    pair at once (§2.8.1), then both rekeying both pairs at once;
//! 3. IKE SA rekeys (§1.3.2, §2.18): one by alice, one by bob, then both at once (§2.8.2), then
//!    one side's crossing the other's CHILD SA rekey, each way;
//! 4. a reauthentication by alice (§2.8.3: a new IKE SA with all its CHILD SAs, make before break),
//!    then one while bob rekeys the IKE SA it replaces;
//! 5. bob deleting `net` while alice rekeys it (§2.25.1), both peers deleting `web` at once
//!    (§1.4.1), alice deleting `net` if its rekey survived, which leaves the IKE SA without CHILD
//!    SAs, and both made again on it (what `oxswan up` does for a bare IKE SA);
//! 6. the link fails until alice declares bob dead (§2.4: her liveness check goes unanswered), then
//!    heals to 30% loss again; her restart policy (`dpd_action = restart`) sets the SA up again. By
//!    seed, in turn ([`Variant`]): everything is lost and bob declares alice dead first; only what
//!    bob sends is lost; everything is lost and bob, slower to check, learns of her restart from
//!    INITIAL_CONTACT;
//! 7. the link heals completely (no loss, no jitter) and everything settles; a quiet window follows.
//!
//! No tolerance: every seed must end with one IKE SA, the same on both sides, the two CHILD SAs
//! installed with matching keys, nothing half-open or lingering, no timer but dead peer detection's,
//! and exactly one restart.
//!
//! The restart policy lives in the daemon, not the engine (`PeerConfig` has no `dpd_action`,
//! `close_action` or `start_action`), so the test drives it as the daemon's IKE thread does
//! (crates/oxswan/src/daemon: `IkeSaDown` with `Timeout` and `dpd_action = restart`, or
//! `PeerDeleted` and `close_action = start`, or any while restarting, schedules a restart 2 s
//! later; when it is due and no IKE SA of the connection is established, the connection is
//! initiated, unless an attempt is still connecting, which is looked at again 20 s later: see
//! [`Life::restart_due`]). Bob is a gateway: no `remote_addrs`, so no restarts of his own.
//!
//! The peers are configured for the link: a request is retransmitted every 2 s, 30 times, so that
//! an exchange fails only after 31 lost round trips (0.51^31 ≈ 1e-9 at 30% loss each way) and not
//! by the bad luck a default configuration meets here (six tries fail 1.8% of the time); a
//! responder keeps a half-open SA for 120 s, longer than an initiator retransmits IKE_AUTH.
//!
//! `cargo test -p oxswan-ike --test lifecycle_sim -- --nocapture` prints the counts of each test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::*;
use oxswan_ike::{ChildSa, DownReason, EndpointConfig, Event, IkeSaInfo, PeerConfig, Retransmit, SaHandle};
use oxswan_wire::ExchangeType;

/// The connection's name on alice's side.
const CONN: &str = "to-bob";

/// 2 s between retransmissions, 30 of them: 62 s before a request is given up.
const RETRANSMIT: Retransmit = Retransmit { timeout: Duration::from_secs(2), base: 1.0, tries: 30 };

/// Alice checks liveness after 30 s without a word from bob; bob after 10 s, or 60 s (see
/// [`Variant`]).
const ALICE_DPD: Duration = Duration::from_secs(30);
const BOB_DPD_SHORT: Duration = Duration::from_secs(10);
const BOB_DPD_LONG: Duration = Duration::from_secs(60);

/// How the link fails in the blackout, and how often bob checks liveness: by seed, in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// Everything is lost; bob, who checks every 10 s, declares alice dead before she declares him
    /// dead.
    Blackout,
    /// Only what bob sends is lost: alice's requests reach him and he answers each retransmission
    /// from his cache, in vain. His own liveness check, sent before hers, runs out first: he
    /// declares her dead although he hears her (his messages do not reach her: the SA is broken).
    BobUnheard,
    /// Everything is lost; bob checks only every 60 s: alice declares him dead and restarts while
    /// he still holds the SA, and her new IKE SA's INITIAL_CONTACT (§2.4) makes him forget it (or,
    /// if the restart takes long on the lossy link, his own check runs out first).
    BobSlow,
}

impl Variant {
    fn of(seed: u64) -> Self {
        match seed % 3 {
            0 => Variant::Blackout,
            1 => Variant::BobUnheard,
            _ => Variant::BobSlow,
        }
    }
    fn bob_dpd(self) -> Duration {
        if self == Variant::BobSlow { BOB_DPD_LONG } else { BOB_DPD_SHORT }
    }
}

/// The daemon's wait before a restart (crates/oxswan/src/daemon/mod.rs `RESTART_RETRY`), and before
/// it initiates again while the first attempt is neither up nor down.
const RESTART_RETRY: Duration = Duration::from_secs(2);
const RESTART_AGAIN: Duration = Duration::from_secs(20);

/// How long each phase may take to converge (virtual time): far more than the few round trips it
/// needs, far less than forever.
const PHASE_LIMIT: Duration = Duration::from_secs(900);

fn hostile() -> Link {
    Link {
        latency: Duration::from_millis(10),
        jitter: Duration::from_millis(50),
        loss: 0.3,
        duplicate: 0.1,
        mtu: 1500,
        drop_ip_fragments: false,
    }
}

fn healed() -> Link {
    Link { latency: Duration::from_millis(10), jitter: Duration::ZERO, loss: 0.0, duplicate: 0.0, ..hostile() }
}

fn alice_config() -> PeerConfig {
    let mut p = alice_psk();
    p.children.push(child_config("web", &["10.3.0.0/16"], &["10.4.0.0/16"]));
    p.retransmit = RETRANSMIT;
    p.dpd_delay = Some(ALICE_DPD);
    // What makes the daemon restart the connection: it knows where the peer is.
    p.remote_addrs = vec![BOB_IP.parse().unwrap()];
    p
}

fn bob_config(variant: Variant) -> PeerConfig {
    let mut p = bob_psk();
    p.children.push(child_config("web", &["10.4.0.0/16"], &["10.3.0.0/16"]));
    p.retransmit = RETRANSMIT;
    p.dpd_delay = Some(variant.bob_dpd());
    p
}

fn endpoint_config() -> EndpointConfig {
    EndpointConfig { half_open_timeout: Duration::from_secs(120), ..EndpointConfig::default() }
}

/// The two halves of one pair: SPIs and keys crosswise.
fn halves(a: &ChildSa, b: &ChildSa) -> bool {
    a.name == b.name
        && a.spi_in == b.spi_out
        && a.spi_out == b.spi_in
        && a.encr_in == b.encr_out
        && a.encr_out == b.encr_in
        && a.integ_in == b.integ_out
        && a.integ_out == b.integ_in
}

/// One event in a line, without keys.
fn brief(e: &Event) -> String {
    match e {
        Event::IkeSaUp { sa, info } => {
            format!("IkeSaUp #{} {:?}/{:?} initiator={}", sa.0, info.spi_i, info.spi_r, info.initiator)
        }
        Event::IkeSaDown { sa, reason, .. } => format!("IkeSaDown #{} {reason:?}", sa.0),
        Event::IkeSaRekeyed { old, new, info } => {
            format!(
                "IkeSaRekeyed #{} -> #{} {:?}/{:?} initiator={}",
                old.0, new.0, info.spi_i, info.spi_r, info.initiator
            )
        }
        Event::ChildSaReady { sa, child } => format!(
            "ChildSaReady #{} {} in={:08x} out={:08x} replaces={:?} outbound={}",
            sa.0,
            child.name,
            child.spi_in,
            child.spi_out,
            child.replaces.map(|s| format!("{s:08x}")),
            child.outbound
        ),
        Event::ChildSaDeleted { sa, spi_in, spi_out } => {
            format!("ChildSaDeleted #{} in={spi_in:08x} out={spi_out:08x}", sa.0)
        }
        Event::ChildSaOutbound { sa, spi_in } => format!("ChildSaOutbound #{} in={spi_in:08x}", sa.0),
        Event::LivenessConfirmed { sa } => format!("LivenessConfirmed #{}", sa.0),
        other => format!("{other:?}").chars().take(200).collect(),
    }
}

/// The established state both sides agree on.
#[derive(Clone)]
struct Agreed {
    alice: (SaHandle, IkeSaInfo),
    bob: (SaHandle, IkeSaInfo),
    /// By child name: alice's half and bob's.
    pairs: BTreeMap<String, (ChildSa, ChildSa)>,
}

impl Agreed {
    fn spis(&self) -> (oxswan_wire::IkeSpi, oxswan_wire::IkeSpi) {
        (self.alice.1.spi_i, self.alice.1.spi_r)
    }
    /// Alice's inbound SPI of the pair `name`.
    fn spi(&self, name: &str) -> u32 {
        self.pairs[name].0.spi_in
    }
    fn child_spis(&self) -> BTreeMap<String, u32> {
        self.pairs.iter().map(|(n, (a, _))| (n.clone(), a.spi_in)).collect()
    }
}

/// Counts over seeds.
#[derive(Debug, Default, Clone)]
struct Tally {
    seeds: usize,
    /// CHILD SA rekeys asked for by command, and pairs made by rekeys (alice's ChildSaReady with
    /// `replaces`: a collision makes two).
    child_rekey_commands: usize,
    child_rekey_pairs: usize,
    /// Simultaneous CHILD rekeys in which both requests reached their responders: a side made two
    /// pairs replacing its old one, and one of them went again (§2.8.1). In the others one request
    /// came after the other exchange had finished, or waited behind another exchange.
    child_collisions: usize,
    child_collision_phases: usize,
    ike_rekey_commands: usize,
    /// IKE rekeys completed on alice's side (IkeSaRekeyed).
    ike_rekeys: usize,
    /// Likewise for the IKE SA (§2.8.2): a redundant IKE SA was made and went again.
    ike_collisions: usize,
    ike_collision_phases: usize,
    reauths: usize,
    /// Alice's connection started again by the restart policy.
    restarts: usize,
    /// Restarts that came due while an IKE SA of the connection was up (nothing done).
    restarts_not_needed: usize,
    /// Bob's DELETE of net crossing alice's rekey of it: which won.
    deletes_crossing_rekey_delete_won: usize,
    deletes_crossing_rekey_rekey_won: usize,
    /// Restarts due again while the previous attempt was still connecting (nothing done).
    restart_attempts_under_way: usize,
    /// How bob's side of the SA that died in the blackout ended.
    bob_declared_dead: [usize; 3],
    bob_told_by_initial_contact: usize,
    /// IKE SAs that ended, by side and reason.
    downs: BTreeMap<String, usize>,
    datagrams: usize,
    retransmissions: usize,
    lost: usize,
    /// Datagrams the blackouts dropped.
    blackout_lost: usize,
    answered_from_cache: u64,
    virtual_time: Duration,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.seeds += o.seeds;
        self.child_rekey_commands += o.child_rekey_commands;
        self.child_rekey_pairs += o.child_rekey_pairs;
        self.child_collisions += o.child_collisions;
        self.child_collision_phases += o.child_collision_phases;
        self.ike_rekey_commands += o.ike_rekey_commands;
        self.ike_rekeys += o.ike_rekeys;
        self.ike_collisions += o.ike_collisions;
        self.ike_collision_phases += o.ike_collision_phases;
        self.reauths += o.reauths;
        self.restarts += o.restarts;
        self.restarts_not_needed += o.restarts_not_needed;
        self.deletes_crossing_rekey_delete_won += o.deletes_crossing_rekey_delete_won;
        self.deletes_crossing_rekey_rekey_won += o.deletes_crossing_rekey_rekey_won;
        self.restart_attempts_under_way += o.restart_attempts_under_way;
        for (x, y) in self.bob_declared_dead.iter_mut().zip(o.bob_declared_dead) {
            *x += y;
        }
        self.bob_told_by_initial_contact += o.bob_told_by_initial_contact;
        for (k, v) in &o.downs {
            *self.downs.entry(k.clone()).or_default() += v;
        }
        self.datagrams += o.datagrams;
        self.retransmissions += o.retransmissions;
        self.lost += o.lost;
        self.blackout_lost += o.blackout_lost;
        self.answered_from_cache += o.answered_from_cache;
        self.virtual_time += o.virtual_time;
    }
}

/// One seed's simulation with the daemon's restart policy for alice around it, and a record of what
/// happened for the failure messages.
struct Life {
    sim: Sim,
    seed: u64,
    /// The script's own choices (offsets, pauses), apart from the link's.
    rng: Rng,
    /// When alice's connection is to be started again (the daemon's `restarts`).
    restart_at: Option<Instant>,
    /// Events of each side already looked at.
    seen: BTreeMap<IpAddr, usize>,
    /// (time, side, what): events and the script's steps, for the failure message.
    timeline: Vec<(Duration, &'static str, String)>,
    phase: String,
    tally: Tally,
}

fn side(ip: &str) -> &'static str {
    if ip == ALICE_IP { "alice" } else { "bob" }
}

impl Life {
    fn new(seed: u64) -> Self {
        let mut sim = Sim::new(seed, hostile());
        sim.add(ALICE_IP, endpoint_config(), vec![alice_config()]);
        sim.add(BOB_IP, endpoint_config(), vec![bob_config(Variant::of(seed))]);
        Self {
            sim,
            seed,
            rng: Rng::new(seed ^ 0x6c69_6665),
            restart_at: None,
            seen: BTreeMap::new(),
            timeline: Vec::new(),
            phase: String::new(),
            tally: Tally { seeds: 1, ..Tally::default() },
        }
    }

    fn note(&mut self, who: &'static str, what: String) {
        self.timeline.push((self.sim.elapsed(), who, what));
    }

    fn begin(&mut self, phase: &str) {
        self.phase = phase.to_string();
        self.note("script", format!("--- {phase}"));
    }

    /// Looks at the new events: the timeline, the tallies, and alice's restart policy.
    fn observe(&mut self) {
        for ip in [ALICE_IP, BOB_IP] {
            let key: IpAddr = ip.parse().unwrap();
            let from = self.seen.get(&key).copied().unwrap_or(0);
            let new: Vec<Event> = self.sim.events(ip)[from..].to_vec();
            self.seen.insert(key, from + new.len());
            for e in new {
                self.note(side(ip), brief(&e));
                if let Event::IkeSaDown { reason, .. } = &e {
                    let why = format!("{reason:?}");
                    let why = why.split('(').next().unwrap_or_default().to_string();
                    *self.tally.downs.entry(format!("{} {why}", side(ip))).or_default() += 1;
                }
                if ip == ALICE_IP {
                    self.restart_policy(&e);
                }
            }
        }
    }

    /// crates/oxswan/src/daemon/events.rs: an SA of the connection up ends the restarting; one that
    /// timed out (`dpd_action = restart`) or that the peer deleted (`close_action = restart`), or any
    /// while restarting, schedules the next attempt.
    fn restart_policy(&mut self, e: &Event) {
        match e {
            Event::IkeSaUp { info, .. } if info.name == CONN => self.restart_at = None,
            Event::IkeSaDown { name: Some(n), reason, .. } if n == CONN => {
                let restart =
                    self.restart_at.is_some() || matches!(reason, DownReason::Timeout | DownReason::PeerDeleted);
                if restart {
                    self.restart_at = Some(self.sim.now + RESTART_RETRY);
                    self.note("daemon", format!("restart scheduled in {RESTART_RETRY:?}"));
                }
            }
            _ => {}
        }
    }

    /// crates/oxswan/src/daemon/mod.rs `restart_due`.
    fn restart_due(&mut self) {
        self.restart_at = Some(self.sim.now + RESTART_AGAIN);
        let busy = {
            let ep = self.sim.ep_ref(ALICE_IP);
            ep.established().iter().any(|sa| ep.info(*sa).is_some_and(|i| i.name == CONN))
        };
        if busy {
            self.restart_at = None;
            self.tally.restarts_not_needed += 1;
            self.note("daemon", "restart due, but an IKE SA is up: nothing to do".into());
            return;
        }
        // On this link an IKE_SA_INIT and IKE_AUTH often take longer than the 20 s until the next
        // look: a second attempt in parallel made a second IKE SA, whose INITIAL_CONTACT made bob
        // forget the first while alice kept it until it timed out (seed 196 showed it, when the
        // daemon still did that). The attempt under way goes on.
        if self.sim.ep_ref(ALICE_IP).connecting(CONN) {
            self.tally.restart_attempts_under_way += 1;
            self.note("daemon", "restart due, the last attempt is still connecting: wait for it".into());
            return;
        }
        self.tally.restarts += 1;
        self.note("daemon", "restarting the connection".into());
        let now = self.sim.now;
        if let Err(e) = self.sim.ep(ALICE_IP).initiate(now, CONN, addr(ALICE_IP, 500), addr(BOB_IP, 500)) {
            self.note("daemon", format!("restart failed: {e}"));
            self.restart_at = Some(now + RESTART_RETRY);
        }
    }

    /// The next thing: a datagram, an engine timer or a restart, whichever comes first.
    fn step(&mut self) -> bool {
        let next = self.sim.next_event_at();
        if let Some(at) = self.restart_at
            && next.is_none_or(|n| at <= n)
        {
            if at > self.sim.now {
                self.sim.now = at;
            }
            self.restart_due();
            self.observe();
            return true;
        }
        let moved = self.sim.step();
        self.observe();
        moved
    }

    /// Runs until `done`, or fails the seed after `limit` with what happened.
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Life) -> bool) {
        let deadline = self.sim.now + limit;
        loop {
            if done(self) {
                return;
            }
            if self.sim.now > deadline || !self.step() {
                if done(self) {
                    return;
                }
                self.fail(&format!("did not converge within {limit:?}"));
            }
        }
    }

    /// Advances the clock by `d`, handling everything due meanwhile.
    fn advance(&mut self, d: Duration) {
        let target = self.sim.now + d;
        loop {
            let next = [self.sim.next_event_at(), self.restart_at].into_iter().flatten().min();
            match next {
                Some(n) if n <= target => {
                    self.step();
                }
                _ => break,
            }
        }
        if self.sim.now < target {
            self.sim.now = target;
        }
    }

    /// A random pause of up to `max`, so that phases start while the last exchanges of the previous
    /// one are still finishing, or not.
    fn pause(&mut self, max: Duration) {
        let d = Duration::from_millis(self.rng.below(max.as_millis() as u64 + 1));
        self.advance(d);
    }

    /// Both sides hold exactly one established IKE SA, the same one, with the children `names`
    /// installed on both as the two halves of one pair each, sending on them, and nothing connecting
    /// or half-open.
    fn agreed(&mut self, names: &[&str]) -> Option<Agreed> {
        let mut sides = Vec::new();
        for ip in [ALICE_IP, BOB_IP] {
            let ep = self.sim.ep_ref(ip);
            let counts = ep.sa_counts();
            if counts.connecting != 0 || counts.half_open != 0 || ep.half_open_count() != 0 {
                return None;
            }
            let sas = ep.established();
            if sas.len() != 1 {
                return None;
            }
            let info = ep.info(sas[0])?;
            let children = self.sim.installed(ip, sas[0]);
            sides.push(((sas[0], info), children));
        }
        let (bob, bob_children) = sides.pop().unwrap();
        let (alice, alice_children) = sides.pop().unwrap();
        if (alice.1.spi_i, alice.1.spi_r) != (bob.1.spi_i, bob.1.spi_r) || alice.1.initiator == bob.1.initiator {
            return None;
        }
        if alice_children.len() != names.len() || bob_children.len() != names.len() {
            return None;
        }
        let mut pairs = BTreeMap::new();
        for name in names {
            let a: Vec<&ChildSa> = alice_children.iter().filter(|c| c.name == *name).collect();
            let b: Vec<&ChildSa> = bob_children.iter().filter(|c| c.name == *name).collect();
            if a.len() != 1 || b.len() != 1 || !halves(a[0], b[0]) || !a[0].outbound || !b[0].outbound {
                return None;
            }
            pairs.insert(name.to_string(), (a[0].clone(), b[0].clone()));
        }
        Some(Agreed { alice, bob, pairs })
    }

    /// Runs until both sides agree on `names` and `goal` holds of what they agree on.
    fn converge(&mut self, names: &[&str], mut goal: impl FnMut(&Agreed) -> bool) -> Agreed {
        let mut found = None;
        self.run_until(PHASE_LIMIT, |l| match l.agreed(names) {
            Some(a) if goal(&a) => {
                found = Some(a);
                true
            }
            _ => false,
        });
        let a = found.unwrap();
        self.note(
            "script",
            format!("converged: IKE {:?}/{:?}, children {:x?}", a.spis().0, a.spis().1, a.child_spis()),
        );
        a
    }

    /// Alice's and bob's SA of `a`, for commands.
    fn handle(&self, ip: &str, a: &Agreed) -> SaHandle {
        if ip == ALICE_IP { a.alice.0 } else { a.bob.0 }
    }

    /// `ip`'s inbound SPI of the pair `name`.
    fn spi_of(ip: &str, a: &Agreed, name: &str) -> u32 {
        let (x, y) = &a.pairs[name];
        if ip == ALICE_IP { x.spi_in } else { y.spi_in }
    }

    /// Runs `act` on alice, then on bob up to `spread` later (0: at the same instant).
    fn on_both_sides(&mut self, spread: Duration, mut act: impl FnMut(&mut Life, &str)) {
        act(self, ALICE_IP);
        let d = Duration::from_micros(self.rng.below(spread.as_micros() as u64 + 1));
        if !d.is_zero() {
            self.advance(d);
        }
        act(self, BOB_IP);
    }

    /// The IKE SA of `ip` that holds its pair with inbound SPI `spi` now, as a daemon finds it when
    /// a command comes (`children()` of the established SAs, or `sa_of`): an IKE rekey that
    /// completed since `a` was taken moved the pair to the new IKE SA, and the engine accepts a
    /// command for the old one (still established until it is deleted) without an error, and then
    /// does nothing (a CHILD rekey: the pair is not there) or the wrong thing (a reauthentication:
    /// it replaces the old SA, and the new one's pairs stay beside the heir's). `a`'s handle if no
    /// SA holds it (the pair is gone).
    fn holder(&self, ip: &str, a: &Agreed, spi: u32) -> SaHandle {
        self.sim.ep_ref(ip).sa_of(spi).unwrap_or_else(|| self.handle(ip, a))
    }

    fn rekey_child(&mut self, ip: &str, a: &Agreed, name: &str) {
        let spi = Self::spi_of(ip, a, name);
        let (now, sa) = (self.sim.now, self.holder(ip, a, spi));
        self.note(side(ip), format!("command: rekey CHILD SA {name} {spi:08x} of #{}", sa.0));
        self.sim.ep(ip).rekey_child(now, sa, spi).unwrap_or_else(|e| self.fail(&format!("rekey_child: {e}")));
        self.tally.child_rekey_commands += 1;
    }

    fn rekey_ike(&mut self, ip: &str, a: &Agreed) {
        let spi = a.pairs.values().next().map(|(x, y)| if ip == ALICE_IP { x.spi_in } else { y.spi_in });
        let (now, sa) = (self.sim.now, spi.map_or(self.handle(ip, a), |spi| self.holder(ip, a, spi)));
        self.note(side(ip), format!("command: rekey IKE SA #{}", sa.0));
        self.sim.ep(ip).rekey_ike(now, sa).unwrap_or_else(|e| self.fail(&format!("rekey_ike: {e}")));
        self.tally.ike_rekey_commands += 1;
    }

    /// Alice reauthenticates the IKE SA that holds the pairs now (as the daemon does on
    /// ReauthDue).
    fn reauthenticate(&mut self, a: &Agreed) {
        let spi = a.pairs.values().next().map(|(x, _)| x.spi_in);
        let (now, sa) = (self.sim.now, spi.map_or(a.alice.0, |spi| self.holder(ALICE_IP, a, spi)));
        self.note("alice", format!("command: reauthenticate #{}", sa.0));
        let r = self.sim.ep(ALICE_IP).reauthenticate(now, sa, addr(ALICE_IP, 500), addr(BOB_IP, 500));
        r.unwrap_or_else(|e| self.fail(&format!("reauthenticate: {e}")));
        self.tally.reauths += 1;
    }

    fn delete_child(&mut self, ip: &str, a: &Agreed, name: &str) {
        let spi = Self::spi_of(ip, a, name);
        let (now, sa) = (self.sim.now, self.holder(ip, a, spi));
        self.note(side(ip), format!("command: delete CHILD SA {name} {spi:08x} of #{}", sa.0));
        self.sim.ep(ip).delete_child(now, sa, spi).unwrap_or_else(|e| self.fail(&format!("delete_child: {e}")));
    }

    /// Where each side's events are now.
    fn marks(&self) -> [usize; 2] {
        [self.sim.events(ALICE_IP).len(), self.sim.events(BOB_IP).len()]
    }

    /// Whether both exchanges of a simultaneous CHILD rekey of the pair `name` of `a` reached their
    /// responders: one side made two pairs replacing its half of the old one (events since `from`),
    /// the redundant one of which went again (§2.8.1).
    fn child_collided(&self, from: [usize; 2], a: &Agreed, name: &str) -> bool {
        [ALICE_IP, BOB_IP].iter().zip(from).any(|(ip, from)| {
            let old = Self::spi_of(ip, a, name);
            let n = self.sim.events(ip)[from..]
                .iter()
                .filter(|e| matches!(e, Event::ChildSaReady { child, .. } if child.replaces == Some(old)))
                .count();
            n > 1
        })
    }

    /// Whether both exchanges of a simultaneous IKE rekey of `a` reached their responders: a side
    /// held an IKE SA that ended (events since `from`) without ever being announced, neither the
    /// old one nor one that took the CHILD SAs over (IkeSaRekeyed): the redundant SA of §2.8.2,
    /// deleted by the initiator of the exchange that lost or ended at its grace period.
    fn ike_collided(&self, from: [usize; 2], a: &Agreed) -> bool {
        [ALICE_IP, BOB_IP].iter().zip(from).any(|(ip, from)| {
            let old = if *ip == ALICE_IP { a.alice.0 } else { a.bob.0 };
            let events = &self.sim.events(ip)[from..];
            let heirs: HashSet<SaHandle> = events
                .iter()
                .filter_map(|e| match e {
                    Event::IkeSaRekeyed { new, .. } => Some(*new),
                    _ => None,
                })
                .collect();
            events.iter().any(|e| matches!(e, Event::IkeSaDown { sa, .. } if *sa != old && !heirs.contains(sa)))
        })
    }

    /// Fails the seed with everything needed to replay and understand it.
    fn fail(&mut self, why: &str) -> ! {
        let mut m = String::new();
        let _ = writeln!(m, "seed {}: phase '{}': {why}", self.seed, self.phase);
        let _ = writeln!(
            m,
            "  at {:?} of virtual time, {} datagrams, {} lost",
            self.sim.elapsed(),
            self.sim.log.len(),
            self.sim.lost
        );
        let now = self.sim.now;
        for ip in [ALICE_IP, BOB_IP] {
            let ep = self.sim.ep_ref(ip);
            let _ = writeln!(
                m,
                "  {}: {:?}, half-open {}, next timer in {:?}, restart due {:?}",
                side(ip),
                ep.sa_counts(),
                ep.half_open_count(),
                ep.poll_timeout().map(|t| t.saturating_duration_since(now)),
                if ip == ALICE_IP { self.restart_at.map(|t| t.saturating_duration_since(now)) } else { None },
            );
            for sa in ep.established() {
                let info = ep.info(sa).unwrap();
                let _ =
                    writeln!(m, "    IKE SA #{} {:?}/{:?} initiator={}", sa.0, info.spi_i, info.spi_r, info.initiator);
                for c in ep.children(sa) {
                    let _ = writeln!(
                        m,
                        "      {} in={:08x} out={:08x} outbound={} rekey at {:?}",
                        c.name,
                        c.spi_in,
                        c.spi_out,
                        c.outbound,
                        ep.rekey_time(sa, c.spi_in).map(|t| t.saturating_duration_since(now))
                    );
                }
            }
        }
        let _ = writeln!(m, "  last events and steps:");
        // All of it with LIFECYCLE_TRACE=<seed>.
        let all = std::env::var("LIFECYCLE_TRACE").is_ok_and(|v| v == self.seed.to_string());
        let tail = if all { self.timeline.len() } else { 80 };
        for (t, who, what) in self.timeline.iter().rev().take(tail).rev() {
            let _ = writeln!(m, "    {:>10.3}s {who:>6} {what}", t.as_secs_f64());
        }
        let _ = writeln!(m, "  last datagrams (sent; the link may have lost them):");
        let from = if all { 0 } else { self.sim.log.len().saturating_sub(40) };
        for i in from..self.sim.log.len() {
            let (src, dst, data) = &self.sim.log[i];
            let (exchange, response, id) = describe(data);
            let h = oxswan_wire::Header::parse(data).unwrap();
            let _ = writeln!(
                m,
                "    {:>10.3}s {} -> {} {exchange:?} {} #{id} {:?}/{:?} {} octets",
                self.sim.log_at[i].as_secs_f64(),
                side(&src.ip().to_string()),
                side(&dst.ip().to_string()),
                if response { "response" } else { "request" },
                h.spi_i,
                h.spi_r,
                data.len()
            );
        }
        panic!("{m}");
    }

    fn check(&mut self, ok: bool, why: impl FnOnce() -> String) {
        if !ok {
            let why = why();
            self.fail(&why);
        }
    }
}

/// One seed's lifetime; the counts of what happened.
fn lifetime(seed: u64) -> Tally {
    let mut l = Life::new(seed);
    let both: &[&str] = &["net", "web"];

    // 1. start_action = start: alice initiates at once.
    l.begin("handshake");
    let now = l.sim.now;
    l.sim.ep(ALICE_IP).initiate(now, CONN, addr(ALICE_IP, 500), addr(BOB_IP, 500)).unwrap();
    let mut a = l.converge(both, |_| true);

    // 2. CHILD SA rekeys.
    l.pause(Duration::from_secs(3));
    l.begin("alice rekeys net");
    l.rekey_child(ALICE_IP, &a, "net");
    let (old_net, old_web) = (a.spi("net"), a.spi("web"));
    a = l.converge(both, |x| x.spi("net") != old_net && x.spi("web") == old_web);

    l.pause(Duration::from_secs(3));
    l.begin("bob rekeys web");
    l.rekey_child(BOB_IP, &a, "web");
    let (old_net, old_web) = (a.spi("net"), a.spi("web"));
    a = l.converge(both, |x| x.spi("net") == old_net && x.spi("web") != old_web);

    l.pause(Duration::from_secs(3));
    l.begin("both rekey net at once");
    let from = l.marks();
    let (old_net, old_web) = (a.spi("net"), a.spi("web"));
    let b = a.clone();
    l.on_both_sides(Duration::from_millis(40), |l, ip| l.rekey_child(ip, &b, "net"));
    a = l.converge(both, |x| x.spi("net") != old_net && x.spi("web") == old_web);
    l.tally.child_collision_phases += 1;
    l.tally.child_collisions += usize::from(l.child_collided(from, &b, "net"));

    l.pause(Duration::from_secs(3));
    l.begin("both rekey both pairs at once");
    let from = l.marks();
    let (old_net, old_web) = (a.spi("net"), a.spi("web"));
    let b = a.clone();
    l.on_both_sides(Duration::ZERO, |l, ip| {
        l.rekey_child(ip, &b, "web");
        l.rekey_child(ip, &b, "net");
    });
    a = l.converge(both, |x| x.spi("net") != old_net && x.spi("web") != old_web);
    l.tally.child_collision_phases += 2;
    l.tally.child_collisions +=
        usize::from(l.child_collided(from, &b, "net")) + usize::from(l.child_collided(from, &b, "web"));

    // 3. IKE SA rekeys: new SPIs, the CHILD SAs move along unchanged (§2.18).
    let ike_phases: [(&str, &[&str]); 3] = [
        ("alice rekeys the IKE SA", &[ALICE_IP]),
        ("bob rekeys the IKE SA", &[BOB_IP]),
        ("both rekey the IKE SA at once", &[ALICE_IP, BOB_IP]),
    ];
    for (phase, who) in ike_phases {
        l.pause(Duration::from_secs(3));
        l.begin(phase);
        let from = l.marks();
        let (old, children) = (a.spis(), a.child_spis());
        let b = a.clone();
        if who.len() == 2 {
            l.on_both_sides(Duration::from_millis(40), |l, ip| l.rekey_ike(ip, &b));
        } else {
            l.rekey_ike(who[0], &b);
        }
        a = l.converge(both, |x| x.spis() != old && x.child_spis() == children);
        if who.len() == 2 {
            l.tally.ike_collision_phases += 1;
            // The redundant SA may still be waiting for its grace period: let it end first (and
            // a rekey that came after the other had finished, a second one, complete).
            l.advance(Duration::from_secs(20));
            l.tally.ike_collisions += usize::from(l.ike_collided(from, &b));
            a = l.converge(both, |x| x.child_spis() == children);
        }
    }

    // An IKE rekey crossing a CHILD rekey (§2.25: the CHILD rekey may be refused with
    // TEMPORARY_FAILURE, or its pair handed to the new IKE SA, and is tried again there): both
    // happen, and the other pair moves along unchanged.
    for (ike_by, child_by, name, other) in [(ALICE_IP, BOB_IP, "net", "web"), (BOB_IP, ALICE_IP, "web", "net")] {
        l.pause(Duration::from_secs(3));
        l.begin(&format!("{} rekeys the IKE SA while {} rekeys {name}", side(ike_by), side(child_by)));
        let (old, old_child, kept) = (a.spis(), a.spi(name), a.spi(other));
        let b = a.clone();
        l.on_both_sides(Duration::from_millis(40), |l, ip| {
            if ip == ike_by {
                l.rekey_ike(ip, &b);
            } else {
                l.rekey_child(ip, &b, name);
            }
        });
        a = l.converge(both, |x| x.spis() != old && x.spi(name) != old_child && x.spi(other) == kept);
    }

    // 4. Reauthentication by alice (as the daemon does on ReauthDue): a new IKE SA, new CHILD SAs;
    // then again while bob rekeys the IKE SA being reauthenticated (the rekey's SA inherits the
    // pairs, and the reauthentication must replace that one).
    for bob_rekeys in [false, true] {
        l.pause(Duration::from_secs(3));
        l.begin(if bob_rekeys { "alice reauthenticates while bob rekeys the IKE SA" } else { "alice reauthenticates" });
        let (old, children) = (a.spis(), a.child_spis());
        let b = a.clone();
        l.on_both_sides(Duration::from_millis(40), |l, ip| {
            if ip == ALICE_IP {
                l.reauthenticate(&b);
            } else if bob_rekeys {
                l.rekey_ike(ip, &b);
            }
        });
        a = l
            .converge(both, |x| x.spis() != old && x.child_spis().values().all(|s| !children.values().any(|o| o == s)));
    }

    // 5. DELETE (§1.4.1). Bob deletes net while alice rekeys it (§2.25.1): the DELETE wins (the
    // rekey meets CHILD_SA_NOT_FOUND, or its new pair goes too) or the rekey does (its new pair
    // survives the deletion of the old one); both are correct, and either way the sides agree. Then
    // both delete web at once (crossing DELETEs), alice deletes what is left, which leaves the IKE
    // SA without CHILD SAs (§1.4.1: it may stay), and both are made again on it.
    l.pause(Duration::from_secs(3));
    l.begin("bob deletes net while alice rekeys it");
    let (ike, old_net, old_web) = (a.spis(), a.spi("net"), a.spi("web"));
    let b = a.clone();
    l.on_both_sides(Duration::from_millis(40), |l, ip| {
        if ip == ALICE_IP {
            l.rekey_child(ip, &b, "net");
        } else {
            l.delete_child(ip, &b, "net");
        }
    });
    let mut found = None;
    l.run_until(PHASE_LIMIT, |l| {
        let gone = l.agreed(&["web"]).filter(|x| x.spis() == ike && x.spi("web") == old_web);
        let rekeyed =
            || l.agreed(both).filter(|x| x.spis() == ike && x.spi("web") == old_web && x.spi("net") != old_net);
        found = gone.or_else(rekeyed);
        found.is_some()
    });
    a = found.unwrap();
    let left: Vec<&str> = if a.pairs.contains_key("net") {
        l.tally.deletes_crossing_rekey_rekey_won += 1;
        vec!["net"]
    } else {
        l.tally.deletes_crossing_rekey_delete_won += 1;
        vec![]
    };
    l.note("script", format!("converged: children {:x?}", a.child_spis()));

    l.pause(Duration::from_secs(3));
    l.begin("both delete web at once");
    let kept = a.child_spis();
    let b = a.clone();
    l.on_both_sides(Duration::from_millis(40), |l, ip| l.delete_child(ip, &b, "web"));
    a = l.converge(&left, |x| x.spis() == ike && x.child_spis().iter().all(|(n, s)| kept.get(n) == Some(s)));

    if !left.is_empty() {
        l.pause(Duration::from_secs(3));
        l.begin("alice deletes net");
        l.delete_child(ALICE_IP, &a, "net");
        a = l.converge(&[], |x| x.spis() == ike);
    }

    l.pause(Duration::from_secs(3));
    l.begin("both made again on the bare IKE SA");
    let now = l.sim.now;
    l.note("alice", "command: add_children".into());
    l.sim.ep(ALICE_IP).add_children(now, a.alice.0).unwrap();
    a = l.converge(both, |x| x.spis() == ike);

    // 6. The link fails until alice declares bob dead (§2.4), as the seed's [`Variant`] says; her
    // restart policy brings the connection back once it heals.
    l.pause(Duration::from_secs(3));
    let variant = Variant::of(seed);
    let one_way = variant == Variant::BobUnheard;
    l.begin(&format!("blackout: {variant:?}"));
    let (old, bob_old, alice_old) = (a.spis(), a.bob.0, a.alice.0);
    let restarts_before = l.tally.restarts;
    let bob_initiates = a.bob.1.initiator;
    let blacked_out = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let count = std::rc::Rc::clone(&blacked_out);
    l.sim.drop_filter = Some(Box::new(move |_, d| {
        // Bob's messages on the SA are those whose Initiator flag says they come from his role in
        // it (RFC 7296 §3.1); nothing else is expected meanwhile, and nothing else gets through.
        let from_bob = oxswan_wire::Header::parse(d)
            .is_ok_and(|h| (h.spi_i, h.spi_r) == old && h.flags.initiator() == bob_initiates);
        let drop = !one_way || from_bob;
        count.set(count.get() + usize::from(drop));
        drop
    }));
    l.run_until(PHASE_LIMIT, |l| {
        l.sim.events(ALICE_IP).iter().any(|e| matches!(e, Event::IkeSaDown { sa, .. } if *sa == alice_old))
    });
    let why = l.sim.events(ALICE_IP).iter().find_map(|e| match e {
        Event::IkeSaDown { sa, reason, .. } if *sa == alice_old => Some(reason.clone()),
        _ => None,
    });
    l.check(why == Some(DownReason::Timeout), || format!("alice's SA ended with {why:?}, not Timeout"));
    l.sim.drop_filter = None;
    l.tally.blackout_lost = blacked_out.get();
    l.begin("healed after the blackout: the restart");
    a = l.converge(both, |x| x.spis() != old && x.alice.1.initiator);
    let restarts = l.tally.restarts - restarts_before;
    l.check(restarts == 1, || format!("{restarts} restarts after the blackout, not 1"));
    // Bob's side of the dead SA: he declared alice dead himself (only if he heard nothing), or
    // alice's INITIAL_CONTACT told him she had restarted (§2.4).
    let bob_why = l.sim.events(BOB_IP).iter().find_map(|e| match e {
        Event::IkeSaDown { sa, reason, .. } if *sa == bob_old => Some(reason.clone()),
        _ => None,
    });
    match (bob_why, variant) {
        (Some(DownReason::Timeout), _) => l.tally.bob_declared_dead[variant as usize] += 1,
        (Some(DownReason::PeerRestarted), Variant::BobSlow) => l.tally.bob_told_by_initial_contact += 1,
        (other, _) => l.fail(&format!("bob's old SA ended with {other:?}")),
    }

    // 7. The link heals completely; what is in flight finishes, closed SAs stop lingering.
    l.begin("settle on a healed link");
    l.sim.link = healed();
    // Late copies and answers to retransmissions still on the wire land, lingering SAs go (10 s).
    l.advance(Duration::from_secs(20));
    let spis = a.spis();
    l.run_until(PHASE_LIMIT, |l| {
        l.agreed(both).is_some_and(|x| x.spis() == spis)
            && l.sim.ep_ref(ALICE_IP).sa_count() == 1
            && l.sim.ep_ref(BOB_IP).sa_count() == 1
            && l.restart_at.is_none()
            && l.sim.wire.is_empty()
    });
    let settled = l.agreed(both).unwrap();
    final_checks(&mut l, &settled);

    let log = &l.sim.log;
    let mut sent = HashSet::new();
    let retransmissions = log.iter().filter(|(src, _, d)| !sent.insert((*src, d.as_slice()))).count();
    l.tally.datagrams = log.len();
    l.tally.retransmissions = retransmissions;
    l.tally.lost = l.sim.lost;
    l.tally.answered_from_cache =
        l.sim.ep_ref(ALICE_IP).stats().retransmits_answered + l.sim.ep_ref(BOB_IP).stats().retransmits_answered;
    l.tally.child_rekey_pairs = l
        .sim
        .events(ALICE_IP)
        .iter()
        .filter(|e| matches!(e, Event::ChildSaReady { child, .. } if child.replaces.is_some()))
        .count();
    l.tally.ike_rekeys = l.sim.events(ALICE_IP).iter().filter(|e| matches!(e, Event::IkeSaRekeyed { .. })).count();
    l.tally.virtual_time = l.sim.elapsed();
    // LIFECYCLE_TRACE=<seed> prints what a seed did, for reading a run that passes.
    if std::env::var("LIFECYCLE_TRACE").is_ok_and(|v| v == seed.to_string()) {
        for (t, who, what) in &l.timeline {
            println!("{:>10.3}s {who:>6} {what}", t.as_secs_f64());
        }
        for (i, (src, dst, data)) in l.sim.log.iter().enumerate() {
            let h = oxswan_wire::Header::parse(data).unwrap();
            println!(
                "{:>10.3}s wire {} -> {} {:?} {} #{} {:?}/{:?}",
                l.sim.log_at[i].as_secs_f64(),
                side(&src.ip().to_string()),
                side(&dst.ip().to_string()),
                h.exchange_type,
                if h.flags.response() { "response" } else { "request" },
                h.message_id,
                h.spi_i,
                h.spi_r
            );
        }
    }
    l.tally
}

/// The end state: one IKE SA, the same on both sides; both pairs with matching keys; nothing
/// half-open, connecting, lingering or offloaded; no timer but dead peer detection's; a quiet link
/// carries nothing but liveness checks, each answered at the first try; every SA up once and down
/// once at most; exactly one restart; the downs alice's script makes.
fn final_checks(l: &mut Life, a: &Agreed) {
    let now = l.sim.now;
    let bob_dpd = Variant::of(l.seed).bob_dpd();
    for (ip, dpd) in [(ALICE_IP, ALICE_DPD), (BOB_IP, bob_dpd)] {
        let ep = l.sim.ep_ref(ip);
        let counts = ep.sa_counts();
        let ok = counts.established == 1
            && counts.connecting == 0
            && counts.half_open == 0
            && counts.closing == 0
            && ep.sa_count() == 1
            && ep.half_open_count() == 0
            && ep.work_pending() == 0;
        let next = ep.poll_timeout();
        l.check(ok, || format!("{}: leftover SAs: {counts:?}", side(ip)));
        // Nothing overdue, and dead peer detection is armed.
        l.check(next.is_some_and(|t| t > now && t <= now + dpd), || {
            format!(
                "{}: next timer in {:?}, expected within dead peer detection's {dpd:?}",
                side(ip),
                next.map(|t| t - now)
            )
        });
    }
    // A quiet window of three and a half liveness periods: the side with the shorter `dpd_delay`
    // checks (which keeps the other from needing to). Right after an exchange the only timer left
    // is the next check: the prober's `dpd_delay` after the answer reached it, the other's after
    // the request reached it. A retransmission, a request that is not a liveness check or any event
    // but LivenessConfirmed means something was left over.
    let (prober, prober_dpd, other, other_dpd) = if bob_dpd < ALICE_DPD {
        (BOB_IP, bob_dpd, ALICE_IP, ALICE_DPD)
    } else {
        (ALICE_IP, ALICE_DPD, BOB_IP, bob_dpd)
    };
    let (log_from, alice_from, bob_from) = (l.sim.log.len(), l.sim.events(ALICE_IP).len(), l.sim.events(BOB_IP).len());
    let end = l.sim.now + prober_dpd * 7 / 2;
    let mut probes = 0;
    // Until the end of the window and the last exchange finished (nothing in flight).
    while l.sim.now < end || !l.sim.wire.is_empty() {
        let (log_before, prober_before) = (l.sim.log.len(), l.sim.events(prober).len());
        l.step();
        let now = l.sim.now;
        if l.sim.events(prober)[prober_before..].iter().any(|e| matches!(e, Event::LivenessConfirmed { .. })) {
            probes += 1;
            let next = l.sim.ep_ref(prober).poll_timeout();
            l.check(next == Some(now + prober_dpd), || {
                format!("{}: after a liveness check, next timer in {:?}", side(prober), next.map(|t| t - now))
            });
        }
        let answered = l.sim.log[log_before..].iter().any(|(src, _, d)| {
            src.ip().to_string() == other && describe(d).1 && describe(d).0 == ExchangeType::INFORMATIONAL
        });
        if answered {
            let next = l.sim.ep_ref(other).poll_timeout();
            l.check(next == Some(now + other_dpd), || {
                format!("{}: after answering a liveness check, next timer in {:?}", side(other), next.map(|t| t - now))
            });
        }
    }
    let window: Vec<(bool, bool, Vec<u8>)> = l.sim.log[log_from..]
        .iter()
        .map(|(src, _, d)| (src.ip().to_string() == ALICE_IP, describe(d).1, d.clone()))
        .collect();
    let all_info = l.sim.log[log_from..].iter().all(|(_, _, d)| describe(d).0 == ExchangeType::INFORMATIONAL);
    let requests: Vec<&(bool, bool, Vec<u8>)> = window.iter().filter(|(_, r, _)| !r).collect();
    let distinct: HashSet<&Vec<u8>> = requests.iter().map(|(_, _, d)| d).collect();
    let responses = window.len() - requests.len();
    l.check(all_info && distinct.len() == requests.len() && responses == requests.len() && probes >= 3, || {
        format!(
            "quiet window: {} datagrams, all INFORMATIONAL {all_info}, {} requests ({} distinct), {responses} responses, {probes} liveness checks",
            window.len(),
            requests.len(),
            distinct.len()
        )
    });
    let only_checks = |events: &[Event]| events.iter().all(|e| matches!(e, Event::LivenessConfirmed { .. }));
    let quiet = only_checks(&l.sim.events(ALICE_IP)[alice_from..]) && only_checks(&l.sim.events(BOB_IP)[bob_from..]);
    l.check(quiet, || "events other than liveness checks in the quiet window".into());
    let still = l.agreed(&["net", "web"]);
    l.check(still.is_some_and(|x| x.spis() == a.spis() && x.child_spis() == a.child_spis()), || {
        "the SAs changed in the quiet window".into()
    });

    // Per SA: at most one up and one down, up before down.
    for ip in [ALICE_IP, BOB_IP] {
        let mut seen: BTreeMap<SaHandle, (usize, usize)> = BTreeMap::new();
        for e in l.sim.events(ip).to_vec() {
            match e {
                Event::IkeSaUp { sa, .. } => {
                    let s = seen.entry(sa).or_default();
                    l.check(s.1 == 0, || format!("{}: SA #{} up after down", side(ip), sa.0));
                    s.0 += 1;
                }
                Event::IkeSaDown { sa, .. } => seen.entry(sa).or_default().1 += 1,
                _ => {}
            }
        }
        for (sa, (ups, downs)) in seen {
            l.check(ups <= 1 && downs <= 1, || format!("{}: SA #{}: {ups} up, {downs} down", side(ip), sa.0));
        }
    }

    // Restarts: the blackout's, no other.
    let restarts = l.tally.restarts;
    l.check(restarts == 1, || format!("{restarts} restarts, expected 1"));
    // Alice's SAs ended as the script made them end: two reauthenticated, one dead in the blackout,
    // the rest replaced by rekeys; none by a failure.
    let downs = |reason: &str| l.tally.downs.get(&format!("alice {reason}")).copied().unwrap_or(0);
    let (reauth, timeout) = (downs("Reauthenticated"), downs("Timeout"));
    l.check(reauth == 2 && timeout == 1, || format!("alice: {reauth} reauthenticated, {timeout} timed out"));
    let unexpected: Vec<String> = l
        .tally
        .downs
        .iter()
        .filter(|(k, _)| {
            !["Rekeyed", "Reauthenticated", "Timeout", "PeerDeleted", "LocalDeleted", "PeerRestarted"]
                .iter()
                .any(|r| k.ends_with(&format!(" {r}")))
        })
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    l.check(unexpected.is_empty(), || format!("IKE SAs ended for unexpected reasons: {unexpected:?}"));
}

/// Runs the lifetimes of `seeds` and prints what they did.
fn run_seeds(label: &str, seeds: std::ops::Range<u64>) {
    let started = std::time::Instant::now();
    let mut total = Tally::default();
    for seed in seeds.clone() {
        let t = match std::panic::catch_unwind(|| lifetime(seed)) {
            Ok(t) => t,
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("seed {seed} ({label}, replay with this seed): {msg}");
            }
        };
        total.add(&t);
    }
    let t = &total;
    println!(
        "{label}: seeds {}..{} ({} seeds, all converged) in {:.1?} of real time, {:.1?} of virtual time\n  \
         CHILD rekeys: {} commands, {} pairs made; collisions (both requests answered) in {} of {} simultaneous rekeys\n  \
         IKE rekeys: {} commands, {} completed; collisions (both requests answered) in {} of {} simultaneous rekeys\n  \
         a DELETE crossing a rekey of the pair: the DELETE won {}, the rekey {}\n  \
         reauthentications {}; DPD restarts {} (due while already up: {}, while the attempt was still connecting: {}); bob declared alice dead {}, {} and {} times in the {:?}, {:?} and {:?} blackouts, learnt of her restart by INITIAL_CONTACT {} times\n  \
         IKE SAs ended: {:?}\n  \
         datagrams {}, sent again {} (retransmitted requests, and answers to them from the cache: {}), lost {} (and {} in the blackouts)",
        seeds.start,
        seeds.end,
        t.seeds,
        started.elapsed(),
        t.virtual_time,
        t.child_rekey_commands,
        t.child_rekey_pairs,
        t.child_collisions,
        t.child_collision_phases,
        t.ike_rekey_commands,
        t.ike_rekeys,
        t.ike_collisions,
        t.ike_collision_phases,
        t.deletes_crossing_rekey_delete_won,
        t.deletes_crossing_rekey_rekey_won,
        t.reauths,
        t.restarts,
        t.restarts_not_needed,
        t.restart_attempts_under_way,
        t.bob_declared_dead[0],
        t.bob_declared_dead[1],
        t.bob_declared_dead[2],
        Variant::Blackout,
        Variant::BobUnheard,
        Variant::BobSlow,
        t.bob_told_by_initial_contact,
        t.downs,
        t.datagrams,
        t.retransmissions,
        t.answered_from_cache,
        t.lost,
        t.blackout_lost,
    );
    assert_eq!(t.seeds as u64, seeds.end - seeds.start);
    assert_eq!(t.restarts, t.seeds, "one restart per seed");
    assert_eq!(t.reauths, 2 * t.seeds);
}

#[test]
fn lifecycle_seeds_0_to_250() {
    run_seeds("lifecycle", 0..250);
}

#[test]
fn lifecycle_seeds_250_to_500() {
    run_seeds("lifecycle", 250..500);
}

#[test]
fn lifecycle_seeds_500_to_750() {
    run_seeds("lifecycle", 500..750);
}

#[test]
fn lifecycle_seeds_750_to_1000() {
    run_seeds("lifecycle", 750..1000);
}
