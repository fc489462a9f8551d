//! Hostile datagrams on the wire (issue 18): classes of malformed or unwanted UDP datagrams sent from
//! a socket in the left host's network namespace to a running oxswan daemon on the right, on port
//! 500 and behind the non-ESP marker on 4500 (RFC 3948 §2.2), then the same to strongSwan's charon
//! in its place. oxswan's answer to each class is asserted (the notify RFC 7296 names, or silence,
//! and for a silence that the daemon saw the datagram); charon's is only recorded, and the two are
//! printed side by side. Needs root, strongSwan (charon, swanctl) and what the end-to-end tests need
//! (`bash .ci/run` installs them); elsewhere it is ignored (`build.rs`), and under CI it must run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use oxswan_ike::{Endpoint, EndpointConfig};
use oxswan_wire::notify::NotifyPayload;
use oxswan_wire::payloads::{KePayload, UnknownPayload};
use oxswan_wire::sk::SkPayload;
use oxswan_wire::udp_encap::{Udp4500, classify, with_non_esp_marker};
use oxswan_wire::{ExchangeType, Flags, Header, IkeSpi, KeId, Message, NotifyType, Payload, PayloadType};

const PSK: &str = "correct horse battery staple 42";
const PROPOSAL: &str = "aes256gcm16-prfsha256-x25519";
/// The responder, oxswan's and then charon's.
const RIGHT: &str = "192.0.2.2";
/// A sender on the link that no connection's `remote_addrs` names.
const REFUSED: &str = "192.0.2.250";
/// How long without a datagram counts as no answer.
const SILENCE: Duration = Duration::from_millis(300);
/// The unauthenticated answers' budget (`admission::AnswerBudget`): 20 a second.
const BUDGET: usize = 20;
/// A payload type no one assigned (private use, RFC 7296 §3.2).
const UNKNOWN_CRITICAL: PayloadType = PayloadType(200);

/// A real first IKE_SA_INIT request from `from` to `to`, made by oxswan's engine: a fresh SPI,
/// X25519 share and nonce each time, NAT detection hashes of these very addresses and ports.
fn request(from: SocketAddr, to: SocketAddr) -> Vec<u8> {
    let now = Instant::now();
    let unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut ep = Endpoint::new(
        EndpointConfig::default(),
        oxswan_crypto::default_provider(),
        vec![example_left_peer()],
        now,
        unix,
    )
    .unwrap();
    ep.initiate(now, "site", from, to).unwrap();
    let t = ep.poll_transmit().expect("the engine's IKE_SA_INIT request");
    let h = Message::parse(&t.payload).unwrap();
    assert_eq!(h.header().exchange_type, ExchangeType::IKE_SA_INIT);
    t.payload
}

/// The request with its payloads as `change` makes them, re-encoded under its own header.
fn changed(request: &[u8], change: impl FnOnce(&mut Vec<Payload>)) -> Vec<u8> {
    let msg = Message::parse(request).unwrap();
    let mut p = msg.parse_payloads().unwrap();
    change(&mut p);
    msg.header().encode(&p).unwrap()
}

/// The request with its KE payload as `change` makes it.
fn ke_changed(request: &[u8], change: impl Fn(&mut KePayload)) -> Vec<u8> {
    changed(request, |p| {
        for pl in p.iter_mut() {
            if let Payload::Ke(ke) = pl {
                change(ke);
            }
        }
    })
}

/// The request with the payload that `pick` finds once more, right behind it.
fn twice(request: &[u8], pick: fn(&Payload) -> bool) -> Vec<u8> {
    changed(request, |p| {
        let i = p.iter().position(pick).unwrap();
        let again = p[i].clone();
        p.insert(i + 1, again);
    })
}

/// The request with its notify of type `ty` carrying `len` octets.
fn notify_of_length(request: &[u8], ty: NotifyType, len: usize) -> Vec<u8> {
    changed(request, |p| {
        let mut found = false;
        for pl in p.iter_mut() {
            if let Payload::Notify(n) = pl
                && n.notify_type == ty
            {
                *n = NotifyPayload::new(ty, vec![7; len]);
                found = true;
            }
        }
        assert!(found, "the request has {ty:?}");
    })
}

/// The octets with the header's Length field (offset 24) set to `length`.
fn with_length(mut d: Vec<u8>, length: usize) -> Vec<u8> {
    d[24..28].copy_from_slice(&u32::try_from(length).unwrap().to_be_bytes());
    d
}

/// A request (or with `response`, a response) of `exchange`, message ID 1, for an IKE SA the
/// responder never made: the request's SPI as the initiator's, `n` in the responder's, and an SK
/// payload of garbage, as a peer that lost its SA (or a scanner) sends.
fn unknown_sa(request: &[u8], exchange: ExchangeType, response: bool, n: u8) -> Vec<u8> {
    let spi_i = Message::parse(request).unwrap().header().spi_i;
    let flags = if response { Flags::RESPONSE } else { Flags::INITIATOR };
    let h = Header::new(spi_i, IkeSpi([0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, n]), exchange, flags, 1);
    h.encode(&[Payload::Sk(SkPayload { next_inner: PayloadType::NONE, data: vec![0x17; 64] })]).unwrap()
}

/// The data RFC 7296 §3.10.1 gives a notify of type `t` in these answers: the group the responder
/// wants for INVALID_KE_PAYLOAD (x25519), the payload type it does not know for
/// UNSUPPORTED_CRITICAL_PAYLOAD, none for the others (§1.5: INVALID_IKE_SPI and
/// INVALID_MAJOR_VERSION carry none; the version we speak is in the answer's header).
fn notify_data(t: NotifyType) -> Vec<u8> {
    match t {
        NotifyType::INVALID_KE_PAYLOAD => KeId::CURVE25519.0.to_be_bytes().to_vec(),
        NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD => vec![UNKNOWN_CRITICAL.0],
        _ => Vec::new(),
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// What an answer must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// No datagram within [`SILENCE`].
    Silence,
    /// One unprotected response to the request whose only payload is this notify.
    Notify(NotifyType),
    /// One IKE_SA_INIT response to the request with SA, KE and Nonce: the exchange goes on.
    Accepted,
    /// This many responses, each with only this notify (a burst against the rate limit).
    Notifies(usize, NotifyType),
}

/// What oxswan's counters must show of a class, so that a silence is not a datagram that never
/// arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    /// The engine counted every datagram of the class as dropped.
    Dropped,
    /// The data plane counted one NAT keepalive (RFC 3948 §2.3), the engine dropped nothing.
    Keepalive,
    /// The data plane counted one ESP datagram for an SPI it has no SA for.
    EspUnknownSpi,
    /// Neither the engine nor the keepalive count moved: the data plane discarded it.
    Discarded,
    /// An answer shows it arrived.
    Answered,
}

/// Makes a class's datagrams from a fresh request.
type Make = Box<dyn Fn(&[u8]) -> Vec<Vec<u8>>>;

/// One class of datagrams.
struct Case {
    name: &'static str,
    /// The responder's port: 500, or 4500 with the marker in front of each datagram.
    port: u16,
    /// Sent as they are on 4500, without the marker.
    raw: bool,
    /// From [`REFUSED`] rather than an address the connection names.
    refused: bool,
    /// The datagrams (IKE messages, without marker), made from a fresh request.
    make: Make,
    oxswan: Expect,
    seen: Seen,
}

fn case(name: &'static str, port: u16, oxswan: Expect, seen: Seen, make: impl Fn(&[u8]) -> Vec<u8> + 'static) -> Case {
    Case { name, port, raw: false, refused: false, make: Box::new(move |r| vec![make(r)]), oxswan, seen }
}

/// Every class for port `port`.
fn cases(port: u16) -> Vec<Case> {
    use Expect::*;
    let syntax = Notify(NotifyType::INVALID_SYNTAX);
    let no_proposal = Notify(NotifyType::NO_PROPOSAL_CHOSEN);
    let a = Seen::Answered;
    let mut v = vec![
        case("well-formed IKE_SA_INIT request", port, Accepted, a, <[u8]>::to_vec),
        // RFC 7296 §2.5: a request of a major version we do not speak, whose header is whole.
        case("major version 3, Length field right", port, Notify(NotifyType::INVALID_MAJOR_VERSION), a, |r| {
            let mut d = r.to_vec();
            d[17] = 0x30;
            d
        }),
        case("major version 3, Length field 100 too large", port, Silence, Seen::Dropped, |r| {
            let mut d = with_length(r.to_vec(), r.len() + 100);
            d[17] = 0x30;
            d
        }),
        // §3.1: the Length field must be the datagram's.
        case("Length field > datagram (10 octets cut)", port, Silence, Seen::Dropped, |r| r[..r.len() - 10].to_vec()),
        case("Length field < datagram (8 octets appended)", port, Silence, Seen::Dropped, |r| {
            let mut d = r.to_vec();
            d.extend([0; 8]);
            d
        }),
        case("header truncated to 27 octets", port, Silence, Seen::Dropped, |r| r[..27].to_vec()),
        case("2-octet datagram 0xFFFF", port, Silence, Seen::Dropped, |_| vec![0xff, 0xff]),
        case("IKE_SA_INIT with the Response flag", port, Silence, Seen::Dropped, |r| {
            let mut d = r.to_vec();
            d[19] |= Flags::RESPONSE.0;
            d
        }),
        // §2.21.4: a request for an SA we do not have MAY get INVALID_IKE_SPI; a response nothing.
        case("IKE_AUTH request, unknown responder SPI", port, Notify(NotifyType::INVALID_IKE_SPI), a, |r| {
            unknown_sa(r, ExchangeType::IKE_AUTH, false, 1)
        }),
        case("INFORMATIONAL request, unknown responder SPI", port, Notify(NotifyType::INVALID_IKE_SPI), a, |r| {
            unknown_sa(r, ExchangeType::INFORMATIONAL, false, 2)
        }),
        case("INFORMATIONAL response, unknown responder SPI", port, Silence, Seen::Dropped, |r| {
            unknown_sa(r, ExchangeType::INFORMATIONAL, true, 3)
        }),
    ];
    // A public value that is not one of the group's: NO_PROPOSAL_CHOSEN, as charon answers
    // ("applying DH public value failed"), rather than silence (issue 18).
    for (name, len) in [
        ("KE data of 0 octets", 0usize),
        ("KE data of 1 octet", 1),
        ("KE data of 31 octets", 31),
        ("KE data of 33 octets", 33),
        ("KE data of 64 octets", 64),
        ("KE data of 1000 octets", 1000),
    ] {
        v.push(case(name, port, no_proposal, a, move |r| ke_changed(r, |ke| ke.data = vec![0x55; len])));
    }
    v.extend([
        case("all-zero X25519 share", port, no_proposal, a, |r| ke_changed(r, |ke| ke.data = vec![0; 32])),
        // Shorter than its fixed part (group and reserved octets, §3.4): not a KE payload.
        case("2-octet KE payload (group only)", port, syntax, a, |r| {
            changed(r, |p| {
                let i = p.iter().position(|p| matches!(p, Payload::Ke(_))).unwrap();
                p[i] = Payload::Unknown(UnknownPayload {
                    payload_type: PayloadType::KE,
                    critical: false,
                    data: 31u16.to_be_bytes().to_vec(),
                });
            })
        }),
        // §3.4: a KE of a group other than the selected proposal's gets INVALID_KE_PAYLOAD.
        case("KE of group 19, only x25519 proposed", port, Notify(NotifyType::INVALID_KE_PAYLOAD), a, |r| {
            ke_changed(r, |ke| {
                ke.group = KeId::ECP256;
                ke.data = vec![0x42; 64];
            })
        }),
        case("a second SA payload", port, syntax, a, |r| twice(r, |p| matches!(p, Payload::Sa(_)))),
        case("a second KE payload", port, syntax, a, |r| twice(r, |p| matches!(p, Payload::Ke(_)))),
        case("a second Nonce payload", port, syntax, a, |r| twice(r, |p| matches!(p, Payload::Nonce(_)))),
        // §2.23: NAT detection data is a SHA-1 digest, 20 octets.
        case("NAT_DETECTION_SOURCE_IP of 19 octets", port, syntax, a, |r| {
            notify_of_length(r, NotifyType::NAT_DETECTION_SOURCE_IP, 19)
        }),
        case("NAT_DETECTION_DESTINATION_IP of 21 octets", port, syntax, a, |r| {
            notify_of_length(r, NotifyType::NAT_DETECTION_DESTINATION_IP, 21)
        }),
        // §3.3.1: the proposals of an initial IKE_SA_INIT have an SPI Size of 0.
        case("8-octet SPI in the IKE_SA_INIT proposal", port, syntax, a, |r| {
            changed(r, |p| {
                for pl in p.iter_mut() {
                    if let Payload::Sa(sa) = pl {
                        sa.proposals[0].spi = vec![1; 8];
                    }
                }
            })
        }),
        case("no Nonce payload", port, syntax, a, |r| changed(r, |p| p.retain(|p| !matches!(p, Payload::Nonce(_))))),
        // §2.5: a critical payload of a type we do not know.
        case("unknown payload type 200, critical", port, Notify(NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD), a, |r| {
            changed(r, |p| {
                p.push(Payload::Unknown(UnknownPayload {
                    payload_type: UNKNOWN_CRITICAL,
                    critical: true,
                    data: vec![0; 8],
                }));
            })
        }),
    ]);
    // No connection names the source: refused before any key exchange, as charon does.
    let mut refused = case("well-formed, from a source no remote_addrs names", port, no_proposal, a, <[u8]>::to_vec);
    refused.refused = true;
    v.push(refused);
    if port == 500 {
        // A marker on 500 is not one: the datagram is not a header of its own length.
        v.push(case("IKE_SA_INIT behind a non-ESP marker", port, Silence, Seen::Dropped, with_non_esp_marker));
        // The budget: at most 20 unauthenticated answers in a second, the rest dropped.
        v.push(Case {
            name: "40 unknown-SPI requests at once",
            port,
            raw: false,
            refused: false,
            make: Box::new(|r| (0..40).map(|n| unknown_sa(r, ExchangeType::INFORMATIONAL, false, 100 + n)).collect()),
            oxswan: Notifies(BUDGET, NotifyType::INVALID_IKE_SPI),
            seen: Seen::Dropped,
        });
    } else {
        let raw = |name, seen, make: fn(&[u8]) -> Vec<u8>| Case {
            name,
            port: 4500,
            raw: true,
            refused: false,
            make: Box::new(move |r| vec![make(r)]),
            oxswan: Silence,
            seen,
        };
        // RFC 3948 §2.3: a keepalive is the one octet 0xFF; two octets are neither that nor ESP.
        v.push(raw("2 octets 0xFFFF, no marker", Seen::Discarded, |_| vec![0xff, 0xff]));
        v.push(raw("NAT keepalive 0xFF (control)", Seen::Keepalive, |_| vec![0xff]));
        // Without the marker the request's first octets are an SPI: ESP for an SA nobody has.
        v.push(raw("IKE_SA_INIT without the marker", Seen::EspUnknownSpi, <[u8]>::to_vec));
    }
    v
}

/// One datagram that came back: from where, and the IKE message in it (the marker taken off on 4500).
struct Reply {
    from: SocketAddr,
    len: usize,
    ike: Option<(Header, Vec<Payload>)>,
}

impl Reply {
    fn new(from: SocketAddr, d: &[u8]) -> Self {
        let ike = if from.port() == 4500 {
            match classify(d) {
                Ok(Udp4500::Ike(m)) => Some(m),
                _ => None,
            }
        } else {
            Some(d)
        };
        let ike = ike.and_then(|m| {
            let msg = Message::parse(m).ok()?;
            Some((*msg.header(), msg.parse_payloads().ok()?))
        });
        Reply { from, len: d.len(), ike }
    }

    /// Whether this is an unprotected answer to `request` (its SPIs, exchange type and message ID
    /// copied, the Response flag set: RFC 7296 §1.5, §2.6) whose only payload is a notify of type
    /// `t` with the data §3.10.1 gives it; `request` `None`: to any request.
    fn is_notify(&self, request: Option<&Header>, t: NotifyType) -> bool {
        self.ike.as_ref().is_some_and(|(h, p)| {
            h.flags.response()
                && request.is_none_or(|r| {
                    (r.spi_i, r.spi_r, r.exchange_type, r.message_id)
                        == (h.spi_i, h.spi_r, h.exchange_type, h.message_id)
                })
                && matches!(p.as_slice(), [Payload::Notify(n)]
                    if n.notify_type == t && n.data == notify_data(t))
        })
    }

    /// As the table shows it: the payloads but the status notifies (COOKIE shown), with the
    /// exchange when it is not IKE_SA_INIT.
    fn describe(&self) -> String {
        let Some((h, payloads)) = &self.ike else { return format!("{} octets, not IKE", self.len) };
        let mut names: Vec<String> = payloads
            .iter()
            .filter_map(|p| match p {
                Payload::Sa(_) => Some("SA".into()),
                Payload::Ke(_) => Some("KE".into()),
                Payload::Nonce(_) => Some("No".into()),
                Payload::CertReq(_) => Some("CERTREQ".into()),
                Payload::VendorId(_) => Some("V".into()),
                Payload::Notify(n) if n.notify_type.is_error() || n.notify_type == NotifyType::COOKIE => {
                    let data = if n.data.is_empty() { String::new() } else { format!(" {}", hex(&n.data)) };
                    Some(format!("N({:?}{data})", n.notify_type))
                }
                Payload::Notify(_) => None,
                other => Some(format!("{:?}", other.payload_type())),
            })
            .collect();
        if names.is_empty() {
            names.push("no payloads".into());
        }
        let exchange = if h.exchange_type == ExchangeType::IKE_SA_INIT {
            String::new()
        } else {
            format!("{:?} ", h.exchange_type)
        };
        format!("{exchange}{}", names.join(" "))
    }
}

/// What a responder did with one class.
struct Outcome {
    replies: Vec<Reply>,
    /// The header of the first datagram, when it has one.
    request: Option<Header>,
    sent: usize,
    /// Differences in oxswan's counters: engine drops, keepalives, ESP for an unknown SPI.
    counters: Option<(u64, u64, u64)>,
}

impl Outcome {
    fn summary(&self) -> String {
        let each: Vec<String> = self.replies.iter().map(Reply::describe).collect();
        match each.as_slice() {
            [] => "no answer".into(),
            [one] => one.clone(),
            [first, ..] if each.iter().all(|e| e == first) => format!("{} × {first}", each.len()),
            _ => each.join(" / "),
        }
    }

    /// Whether the answers are `expect`, from `to`.
    fn meets(&self, expect: Expect, to: SocketAddr) -> bool {
        let from_to = self.replies.iter().all(|r| r.from == to);
        from_to
            && match expect {
                Expect::Silence => self.replies.is_empty(),
                Expect::Notify(t) => matches!(self.replies.as_slice(), [r] if r.is_notify(self.request.as_ref(), t)),
                Expect::Notifies(n, t) => self.replies.len() == n && self.replies.iter().all(|r| r.is_notify(None, t)),
                Expect::Accepted => matches!(self.replies.as_slice(), [r] if r.ike.as_ref().is_some_and(|(h, p)| {
                    h.exchange_type == ExchangeType::IKE_SA_INIT
                        && h.flags.response()
                        && self.request.is_some_and(|r| r.spi_i == h.spi_i)
                        && !h.spi_r.is_zero()
                        && p.iter().any(|p| matches!(p, Payload::Sa(_)))
                        && p.iter().any(|p| matches!(p, Payload::Ke(_)))
                        && p.iter().any(|p| matches!(p, Payload::Nonce(_)))
                })),
            }
    }

    /// Whether oxswan's counters show `seen`.
    fn shows(&self, seen: Seen) -> bool {
        let sent = self.sent as u64;
        match (seen, self.counters) {
            (Seen::Answered, _) => true,
            (_, None) => false,
            (Seen::Dropped, Some(c)) => c == (sent, 0, 0),
            (Seen::Keepalive, Some(c)) => c == (0, 1, 0),
            (Seen::EspUnknownSpi, Some(c)) => c == (0, 0, 1),
            (Seen::Discarded, Some(c)) => c == (0, 0, 0),
        }
    }
}

/// Sends `datagrams` back to back from `from`, a socket bound in the namespace `ns`, to `to`, and
/// collects what comes back until [`SILENCE`] passes without a datagram.
fn exchange(ns: &str, from: SocketAddr, to: SocketAddr, datagrams: Vec<Vec<u8>>) -> Vec<Reply> {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        // This thread (only) moves into the namespace; the socket stays there.
        let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let s = UdpSocket::bind(from).unwrap();
        s.set_read_timeout(Some(SILENCE)).unwrap();
        for d in &datagrams {
            s.send_to(d, to).unwrap();
        }
        let mut buf = vec![0u8; 65536];
        let mut got = Vec::new();
        while let Ok((n, at)) = s.recv_from(&mut buf) {
            got.push(Reply::new(at, &buf[..n]));
        }
        got
    })
    .join()
    .unwrap()
}

/// oxswan's counters that tell where a datagram went: the engine's drops, NAT keepalives, ESP for
/// an unknown SPI.
fn counters(h: &Hosts) -> (u64, u64, u64) {
    let s = h.status("right");
    let n = |v: &serde_json::Value| v.as_u64().unwrap();
    (n(&s["engine"]["dropped"]), n(&s["keepalives_received"]), n(&s["esp_unknown_spi"]))
}

/// Each class from its own address (`sources[i]`), so that no class's half-open SA counts against
/// the next (the per-address cookie threshold, RFC 7296 §2.6); `count` reads oxswan's counters.
fn run(h: &Hosts, cases: &[Case], sources: &[String], count: bool) -> Vec<Outcome> {
    let ns = h.ns("left");
    let mut out = Vec::new();
    for (c, src) in cases.iter().zip(sources) {
        let ip = if c.refused { REFUSED } else { src.as_str() };
        // The port the engine's request says it comes from, for its NAT detection hashes.
        let from: SocketAddr = format!("{ip}:{}", c.port).parse().unwrap();
        let to: SocketAddr = format!("{RIGHT}:{}", c.port).parse().unwrap();
        let ike = (c.make)(&request(from, to));
        let request = ike.first().and_then(|d| Header::parse(d).ok());
        let datagrams: Vec<Vec<u8>> =
            if c.port == 4500 && !c.raw { ike.iter().map(|d| with_non_esp_marker(d)).collect() } else { ike };
        let burst = datagrams.len() > 1;
        if burst {
            // A fresh second of the answer budget for the burst alone.
            std::thread::sleep(Duration::from_millis(1100));
        }
        let before = count.then(|| counters(h));
        let replies = exchange(&ns, from, to, datagrams.clone());
        let counters = before.map(|b| {
            let a = counters(h);
            (a.0 - b.0, a.1 - b.1, a.2 - b.2)
        });
        if burst {
            std::thread::sleep(Duration::from_millis(1100));
        }
        out.push(Outcome { replies, request, sent: datagrams.len(), counters });
        // Paced under the 20 a second of the answer budget (each class waits SILENCE anyway).
        std::thread::sleep(Duration::from_millis(60));
    }
    out
}

/// The configuration both responders get: the example's right side, answering the class senders'
/// addresses (`remote_addrs`) and no other.
fn oxswan_config(remotes: &[String]) -> String {
    let list: Vec<String> = remotes.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[daemon]\ntun = \"oxswan0\"\n\n[connections.site]\nlocal_addrs = [\"{RIGHT}\"]\nremote_addrs = [{}]\n\
         proposals = [\"{PROPOSAL}\"]\n\n[connections.site.local]\nauth = \"psk\"\nid = \"right.example\"\n\n\
         [connections.site.remote]\nauth = \"psk\"\nid = \"left.example\"\n\n[connections.site.children.net]\n\
         local_ts = [\"10.2.0.1/32\"]\nremote_ts = [\"10.1.0.1/32\"]\nesp_proposals = [\"aes256gcm16\"]\n\n\
         [[secrets.ike]]\nids = [\"left.example\", \"right.example\"]\nsecret = \"{PSK}\"\n",
        list.join(", ")
    )
}

fn charon_config(remotes: &[String]) -> String {
    format!(
        "connections {{\n site {{\n  version = 2\n  local_addrs = {RIGHT}\n  remote_addrs = {}\n  \
         proposals = {PROPOSAL}\n  local {{\n   auth = psk\n   id = right.example\n  }}\n  remote {{\n   \
         auth = psk\n   id = left.example\n  }}\n  children {{\n   net {{\n    local_ts = 10.2.0.1/32\n    \
         remote_ts = 10.1.0.1/32\n    esp_proposals = aes256gcm16\n   }}\n  }}\n }}\n}}\n\
         secrets {{\n ike-1 {{\n  id-1 = left.example\n  id-2 = right.example\n  secret = \"{PSK}\"\n }}\n}}\n",
        remotes.join(",")
    )
}

#[test]
#[cfg_attr(not(all(have_netns, have_charon)), ignore = "needs root with ip, ping, iperf3, charon")]
fn hostile_datagrams_get_the_answers_rfc_7296_names() {
    require(&[&NETNS, &CHARON]);
    let mut h = Hosts::new("oxhw");
    let all: Vec<Case> = cases(500).into_iter().chain(cases(4500)).collect();
    // 192.0.2.10 on, one a class, on the left's link beside its own 192.0.2.1.
    let sources: Vec<String> = (0..all.len()).map(|i| format!("192.0.2.{}", 10 + i)).collect();
    assert!(10 + all.len() < 250, "the senders stay below {REFUSED}");
    let mut batch = String::new();
    for a in sources.iter().map(String::as_str).chain([REFUSED]) {
        let _ = writeln!(batch, "addr add {a}/24 dev {}l0", h.p);
    }
    std::fs::write(h.dir.join("addrs.batch"), batch).unwrap();
    ok(&format!("ip -n {} -batch {}", h.ns("left"), h.dir.join("addrs.batch").display()));

    h.start_text("right", &oxswan_config(&sources));
    let oxswan = run(&h, &all, &sources, true);
    let oxswan_log = h.log("right");
    stop_all(&mut h.daemons, &mut []);

    h.start_charon("right", &charon_config(&sources), &[]);
    let charon = run(&h, &all, &sources, false);

    let mut table = format!("{:<50} | {:<11} | {:<40} | charon\n", "class", "port", "oxswan");
    let mut wrong = Vec::new();
    for ((c, ox), ch) in all.iter().zip(&oxswan).zip(&charon) {
        // On 4500 behind the non-ESP marker, or bare.
        let port = match (c.port, c.raw) {
            (4500, true) => "4500 bare",
            (4500, false) => "4500 marker",
            _ => "500",
        };
        let _ = writeln!(table, "{:<50} | {:<11} | {:<40} | {}", c.name, port, ox.summary(), ch.summary());
        let to: SocketAddr = format!("{RIGHT}:{}", c.port).parse().unwrap();
        if !ox.meets(c.oxswan, to) {
            wrong.push(format!("{} (port {port}): expected {:?}, came {}", c.name, c.oxswan, ox.summary()));
        }
        if !ox.shows(c.seen) {
            wrong.push(format!(
                "{} (port {port}): expected {:?} of {} datagram(s); counters moved (dropped, keepalives, ESP unknown SPI) {:?}",
                c.name, c.seen, ox.sent, ox.counters
            ));
        }
    }
    println!("{table}");
    assert!(wrong.is_empty(), "oxswan answered wrongly:\n{}\n\n{table}\ndaemon log:\n{oxswan_log}", wrong.join("\n"));
}
