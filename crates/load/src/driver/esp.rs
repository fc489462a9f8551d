//! `--ping`: the load tool's own ESP (RFC 4303, in UDP per RFC 3948) for each client's CHILD SA,
//! with the keys the engine derived: echo requests sealed and sent, replies opened and matched.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Instant;

use oxswan_esp::{EspError, HEADROOM, InboundSa, Opened, OutboundSa, SaParams};
use oxswan_ike::{ChildSa, NAT_T_PORT, Transport};
use oxswan_wire::esp::{NEXT_HEADER_IPV4, NEXT_HEADER_NONE};

use super::{Client, Driver, State};
use crate::ping::Echo;

/// The inbound SAs' anti-replay window (RFC 4303 §3.4.3); the replies come in order, this is slack.
const REPLAY_WINDOW: u32 = 64;

/// One CHILD SA pair as the load tool's own ESP sees it.
#[derive(Debug)]
pub(super) struct Pair {
    spi_in: u32,
    inb: InboundSa,
    out: OutboundSa,
    /// Whether requests go out on it (a rekey's responder waits for the old pair's end,
    /// [`Event::ChildSaOutbound`]).
    sending: bool,
}

/// A client's echo requests through its CHILD SA and the replies it waits for.
#[derive(Debug)]
pub(super) struct Pinger {
    echo: Echo,
    /// The pair and, after a rekey, the one it replaces until deleted (RFC 7296 §2.8).
    pairs: Vec<Pair>,
    /// The socket's address, and where ESP goes: the gateway's NAT-T port (RFC 3948 §2).
    local: SocketAddr,
    remote: SocketAddr,
    /// When request `seq` went out, at `seq - 1`.
    sent_at: Vec<Instant>,
    /// Whether request `seq` was answered, at `seq - 1`.
    answered: Vec<bool>,
    replies: u64,
    /// Requests to send: `--pings`, or fewer if sending failed.
    limit: usize,
    /// Why no more requests went out, if sending failed.
    stopped: Option<String>,
    /// When the next request is due (or, all sent, when waiting for replies ends).
    next_at: Instant,
    done: bool,
}

impl Pinger {
    fn sent(&self) -> usize {
        self.sent_at.len()
    }

    /// When the client's pings next need a turn; `None` once they are over.
    pub(super) fn due(&self) -> Option<Instant> {
        (!self.done).then_some(self.next_at)
    }
}

/// `--ping`: the load tool's own ESP for each client's CHILD SA.
impl Driver {
    /// The ESP pair of `child`, as the engine derived its keys (RFC 7296 §2.17).
    fn pair(&self, child: &ChildSa) -> Result<Pair, String> {
        let params = |spi, encr: &oxswan_crypto::Secret, integ: &oxswan_crypto::Secret| SaParams {
            spi,
            suite: child.suite,
            esn: child.esn,
            encr_key: encr.clone(),
            integ_key: integ.clone(),
        };
        let out = OutboundSa::new(&self.provider, &params(child.spi_out, &child.encr_out, &child.integ_out))
            .map_err(|e| format!("outbound ESP SA: {e}"))?;
        let inb = InboundSa::new(&self.provider, &params(child.spi_in, &child.encr_in, &child.integ_in), REPLAY_WINDOW)
            .map_err(|e| format!("inbound ESP SA: {e}"))?;
        Ok(Pair { spi_in: child.spi_in, inb, out, sending: child.outbound })
    }

    /// Client `i`'s CHILD SA is up: its pings start, or the reason they cannot is counted.
    pub(super) fn start_ping(&mut self, i: usize, c: &mut Client, child: &ChildSa, now: Instant) {
        let Some(dst) = self.plan.ping else { return };
        let n = self.thread + i * self.threads;
        let src = if self.plan.virtual_ip {
            c.vip
        } else {
            match child.local.ip() {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => None,
            }
        };
        // Where ESP in UDP goes: the port the engine floated IKE to (RFC 3948 §2, RFC 7296 §2.23).
        let remote =
            if child.remote.port() == 500 { SocketAddr::new(child.remote.ip(), NAT_T_PORT) } else { child.remote };
        let why = if child.transport != Transport::Udp || !child.encap {
            Some("the CHILD SA's ESP is not in UDP (RFC 3948)".to_owned())
        } else if !self.targets.contains(&remote.ip()) {
            *self.out.refused.entry(remote.ip()).or_insert(0) += 1;
            Some(format!("the CHILD SA's ESP would go to {}, not a target", remote.ip()))
        } else if !child.remote_ts.iter().any(|t| t.contains_addr(IpAddr::V4(dst))) {
            Some(format!("{dst} is outside the CHILD SA's selectors"))
        } else if !self.sock_of.contains_key(&child.local) {
            Some(format!("the CHILD SA is on {}, which has no socket", child.local))
        } else {
            None
        };
        let ready = match (why, src) {
            (Some(w), _) => Err(w),
            (None, None) => Err("no IPv4 virtual IP from the gateway".to_owned()),
            (None, Some(src)) => self.pair(child).map(|pair| (src, pair)),
        };
        match ready {
            Ok((src, pair)) => {
                self.by_esp.entry(pair.spi_in).or_default().push(i);
                let pings = usize::from(self.plan.pings);
                c.ping = Some(Box::new(Pinger {
                    echo: Echo { src, dst, id: n as u16, client: n as u64 },
                    pairs: vec![pair],
                    local: child.local,
                    remote,
                    sent_at: Vec::with_capacity(pings),
                    answered: vec![false; pings],
                    replies: 0,
                    limit: pings,
                    stopped: None,
                    next_at: now,
                    done: false,
                }));
                self.pinging += 1;
            }
            Err(w) => *self.out.ping_failures.entry(w).or_insert(0) += 1,
        }
    }

    /// A CHILD SA of client `i` that replaces one it pings through (RFC 7296 §2.8): the replies may
    /// come on either until the old one is deleted.
    pub(super) fn rekeyed(&mut self, i: usize, c: &mut Client, child: &ChildSa) {
        let Some(p) = c.ping.as_ref() else { return };
        if !child.replaces.is_some_and(|old| p.pairs.iter().any(|x| x.spi_in == old)) {
            return;
        }
        match self.pair(child) {
            Ok(pair) => {
                self.by_esp.entry(pair.spi_in).or_default().push(i);
                if let Some(p) = c.ping.as_mut() {
                    if pair.sending {
                        p.pairs.iter_mut().for_each(|x| x.sending = false);
                    }
                    p.pairs.push(pair);
                }
            }
            Err(e) => *self.out.ping_rejected.entry(format!("rekeyed pair: {e}")).or_insert(0) += 1,
        }
    }

    /// Sends client `c`'s requests that are due, and ends its pings when every request is answered
    /// or the wait after the last is over.
    pub(super) fn ping_turn(&mut self, c: &mut Client, now: Instant) {
        if c.state != State::Up {
            self.ping_over(c, "the client was deleted before a reply came");
            return;
        }
        let Some(p) = c.ping.as_mut().filter(|p| !p.done) else { return };
        let mut failed = None;
        while p.sent() < p.limit && p.next_at <= now {
            let seq = (p.sent() + 1) as u16;
            let Some(pair) = p.pairs.iter().rev().find(|x| x.sending) else {
                failed = Some("no CHILD SA to send on".to_owned());
                break;
            };
            let sealed = self
                .esp_buf
                .get_mut(HEADROOM..)
                .and_then(|b| p.echo.request(seq, b))
                .ok_or_else(|| "no room for an echo request".to_owned())
                .and_then(|n| {
                    pair.out
                        .seal(&mut self.esp_buf, HEADROOM..HEADROOM + n, NEXT_HEADER_IPV4)
                        .map_err(|e| format!("ESP: {e}"))
                });
            let esp = match sealed {
                Ok(r) => self.esp_buf.get(r),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            };
            // Only to a target: checked when the pings started, and the path does not move (no
            // MOBIKE).
            let sock = self.sock_of.get(&p.local).and_then(|&k| self.socks.get(k));
            if let (Some(s), Some(esp)) = (sock, esp)
                && s.sock.send_to(esp, p.remote).is_err()
            {
                self.out.send_errors += 1;
            }
            self.out.ping_requests += 1;
            p.sent_at.push(now);
            p.next_at = now + self.plan.ping_interval;
        }
        if failed.is_some() {
            // No more requests: those sent may still be answered.
            p.limit = p.sent();
            p.stopped = failed;
        }
        if p.sent() >= p.limit {
            let last = p.sent_at.last().copied().unwrap_or(now);
            p.next_at = last + self.plan.ping_wait;
            if p.replies >= p.sent() as u64 || now >= p.next_at {
                let why = format!("no echo reply within {:?}", self.plan.ping_wait);
                self.ping_over(c, &why);
            }
        }
    }

    /// Client `c`'s pings are over: it counts as pinging if any reply came, otherwise for `why`
    /// (or for what stopped its requests).
    pub(super) fn ping_over(&mut self, c: &mut Client, why: &str) {
        let Some(p) = c.ping.as_mut().filter(|p| !p.done) else { return };
        p.done = true;
        self.pinging = self.pinging.saturating_sub(1);
        if p.replies > 0 {
            self.out.pinged += 1;
            self.progress.pinged.fetch_add(1, Ordering::Relaxed);
        } else {
            let why = p.stopped.take().map_or_else(|| why.to_owned(), |s| format!("requests stopped: {s}"));
            *self.out.ping_failures.entry(why).or_insert(0) += 1;
        }
    }

    /// Client `c`'s outbound traffic moved to the pair of inbound SPI `spi_in` (a rekey's old pair
    /// is going, RFC 7296 §2.8).
    pub(super) fn outbound_moved(c: &mut Client, spi_in: u32) {
        if let Some(p) = c.ping.as_mut() {
            p.pairs.iter_mut().for_each(|x| x.sending = x.spi_in == spi_in);
        }
    }

    /// Client `i`'s pair of inbound SPI `spi_in` was deleted.
    pub(super) fn pair_deleted(&mut self, i: usize, c: &mut Client, spi_in: u32) {
        if let Some(p) = c.ping.as_mut()
            && p.pairs.iter().any(|x| x.spi_in == spi_in)
        {
            p.pairs.retain(|x| x.spi_in != spi_in);
            self.by_esp_remove(spi_in, i);
        }
    }

    /// Client `i` is over: its inbound SPIs lead to it no more.
    pub(super) fn forget_pairs(&mut self, i: usize, c: &Client) {
        if let Some(p) = &c.ping {
            for x in &p.pairs {
                self.by_esp_remove(x.spi_in, i);
            }
        }
    }

    fn by_esp_remove(&mut self, spi: u32, i: usize) {
        if let Some(v) = self.by_esp.get_mut(&spi) {
            v.retain(|&k| k != i);
            if v.is_empty() {
                self.by_esp.remove(&spi);
            }
        }
    }

    /// Opens `packet` with client `i`'s SA of inbound SPI `spi`, if it has one.
    fn open_for(&self, i: usize, spi: u32, packet: &mut [u8]) -> Option<Result<Opened, EspError>> {
        let p = self.clients.get(i).and_then(Option::as_ref).and_then(|c| c.ping.as_ref())?;
        let pair = p.pairs.iter().find(|x| x.spi_in == spi)?;
        Some(pair.inb.open(packet))
    }

    /// An ESP packet for inbound SPI `spi` (RFC 4303 §3.4): opened with its client's SA, and its
    /// inner packet checked against the requests sent.
    pub(super) fn esp_in(&mut self, spi: u32, packet: &mut [u8]) {
        let owners = self.by_esp.get(&spi).cloned().unwrap_or_default();
        let mut found = None;
        if let [i] = owners[..] {
            found = self.open_for(i, spi, packet).map(|r| (i, r));
        } else {
            // Shared SPI: decryption in place spoils the packet for the next try, so each tries a
            // copy, and the one that opens it keeps it.
            for &i in &owners {
                let mut copy = packet.to_vec();
                match self.open_for(i, spi, &mut copy) {
                    Some(Ok(o)) => {
                        packet.copy_from_slice(&copy);
                        found = Some((i, Ok(o)));
                        break;
                    }
                    Some(Err(e)) => found = Some((i, Err(e))),
                    None => {}
                }
            }
        }
        let Some((i, opened)) = found else {
            self.out.stray += 1;
            return;
        };
        let now = Instant::now();
        let Some(p) = self.clients.get_mut(i).and_then(Option::as_mut).and_then(|c| c.ping.as_mut()) else {
            self.out.stray += 1;
            return;
        };
        let verdict = match opened {
            // A dummy packet (RFC 4303 §2.6) is dropped without a word.
            Ok(o) if o.next_header == NEXT_HEADER_NONE => return,
            Ok(o) if o.next_header != NEXT_HEADER_IPV4 => Err(format!("inner next header {}", o.next_header)),
            Ok(o) => match packet.get(o.inner).map(|inner| p.echo.check_reply(inner)) {
                Some(Ok(seq)) => {
                    let at = usize::from(seq).wrapping_sub(1);
                    match (p.answered.get_mut(at), p.sent_at.get(at)) {
                        (Some(seen @ false), Some(&sent)) => {
                            *seen = true;
                            p.replies += 1;
                            self.out.ping_replies += 1;
                            self.out.ping_rtt.push(now.saturating_duration_since(sent));
                            Ok(())
                        }
                        (Some(true), _) => Err("a second reply to one request".to_owned()),
                        _ => Err("a reply to a request not sent".to_owned()),
                    }
                }
                Some(Err(m)) => Err(format!("not the echo reply: {m:?}")),
                None => Err("ESP: malformed".to_owned()),
            },
            Err(e) => Err(format!("ESP: {e}")),
        };
        if let Err(why) = verdict {
            *self.out.ping_rejected.entry(why).or_insert(0) += 1;
            return;
        }
        // Every request answered: the client's pings may be over.
        self.service(i, now);
    }
}
