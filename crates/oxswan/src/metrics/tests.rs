#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::net::SocketAddr;

use oxswan_ike::auth::AuthError;
use oxswan_ike::volume::ChildUsage;
use oxswan_ike::{IkeSaInfo, NatState};
use oxswan_wire::{Identity, IkeSpi};

use super::*;

fn info() -> IkeSaInfo {
    let at: SocketAddr = "192.0.2.1:500".parse().unwrap();
    IkeSaInfo {
        name: "site".into(),
        initiator: true,
        original_initiator: true,
        spi_i: IkeSpi([1; 8]),
        spi_r: IkeSpi([2; 8]),
        local: at,
        remote: at,
        transport: oxswan_ike::Transport::Udp,
        local_id: Identity::Fqdn("left.example".into()),
        remote_id: Identity::Fqdn("right.example".into()),
        proposal: "AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519".into(),
        nat: NatState::default(),
        local_vips: Vec::new(),
        remote_vips: Vec::new(),
        remote_vip_holdings: Vec::new(),
        dns: Vec::new(),
        dns_domains: Vec::new(),
        eap_id: None,
        mobike: false,
        ppk: false,
        redirected: false,
        resumed: false,
        initial_contact: false,
    }
}

fn up(sa: u64) -> Event {
    Event::IkeSaUp { sa: SaHandle(sa), info: info() }
}

fn down(sa: u64, reason: DownReason) -> Event {
    Event::IkeSaDown { sa: SaHandle(sa), name: Some("site".into()), reason }
}

fn rejected(notify: NotifyType) -> Event {
    Event::InitRejected { peer: "198.51.100.7:500".parse().unwrap(), notify, reason: String::new() }
}

#[test]
fn handshakes_and_failures_by_reason() {
    let mut t = Tally::default();
    // Established, then deleted or timed out: one handshake each, no failure.
    t.event(&up(1));
    t.event(&down(1, DownReason::Timeout));
    t.event(&up(2));
    t.event(&down(2, DownReason::LocalDeleted));
    // Never established.
    t.event(&down(3, DownReason::AuthFailed(AuthError::BadPsk)));
    t.event(&down(4, DownReason::AuthFailed(AuthError::NoCertificate)));
    t.event(&down(5, DownReason::PeerNotify(NotifyType::NO_PROPOSAL_CHOSEN)));
    t.event(&down(6, DownReason::PeerNotify(NotifyType(12345))));
    t.event(&down(7, DownReason::Timeout));
    t.event(&down(8, DownReason::HalfOpenTimeout));
    // Not failures: our own `down` while connecting, a rekey's losing SA.
    t.event(&down(9, DownReason::LocalDeleted));
    t.event(&down(10, DownReason::Rekeyed));
    // Refused at IKE_SA_INIT; INVALID_KE_PAYLOAD only asks for another group.
    t.event(&rejected(NotifyType::NO_PROPOSAL_CHOSEN));
    t.event(&rejected(NotifyType::INVALID_KE_PAYLOAD));
    assert_eq!(t.handshakes, 2);
    let want: BTreeMap<String, u64> = [
        ("auth_failed", 2),
        ("half_open_timeout", 1),
        ("peer_no_proposal_chosen", 1),
        ("peer_other", 1),
        ("refused_no_proposal_chosen", 1),
        ("timeout", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(t.failures, want);
    assert!(t.up.is_empty(), "nothing kept for SAs that are gone");
}

#[test]
fn a_rekeyed_sa_is_established_and_its_predecessor_no_failure() {
    let mut t = Tally::default();
    t.event(&up(1));
    t.event(&Event::IkeSaRekeyed { old: SaHandle(1), new: SaHandle(2), info: info() });
    t.event(&down(1, DownReason::Rekeyed));
    t.event(&down(2, DownReason::PeerNotify(NotifyType::AUTHENTICATION_FAILED)));
    assert_eq!((t.handshakes, t.ike_rekeys), (1, 1));
    assert!(t.failures.is_empty(), "{:?}", t.failures);
}

fn pair(bytes: u64, packets: u64, replayed: u64) -> PairCounters {
    PairCounters {
        usage: ChildUsage {
            bytes_in: bytes,
            packets_in: packets,
            bytes_out: 2 * bytes,
            packets_out: 2 * packets,
            ..ChildUsage::default()
        },
        replayed,
        integrity_failed: 1,
        malformed: 2,
        outside_selectors: 3,
        path_mtu: 1500,
        inner_mtu: 1438,
    }
}

#[test]
fn traffic_of_gone_pairs_stays_in_the_totals() {
    let mut t = Tally::default();
    t.pair_gone(&pair(1000, 10, 1));
    t.pair_gone(&pair(500, 5, 0));
    let mut total = t.gone;
    total.add(&pair(1, 1, 0));
    assert_eq!(
        total,
        Traffic {
            bytes_in: 1501,
            bytes_out: 3002,
            packets_in: 16,
            packets_out: 32,
            replayed: 1,
            integrity_failed: 3,
            malformed: 6,
            outside_selectors: 9,
        }
    );
}

#[test]
fn histogram_buckets_are_upper_bounds() {
    let mut h = Histogram::default();
    for ms in [1, 2, 3, 30, 5000, 9000] {
        h.observe(Duration::from_millis(ms));
    }
    // 1 ms falls into le=0.001; 5 s into le=5; 9 s only into +Inf.
    assert_eq!(h.buckets, [1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
    assert_eq!(h.count, 6);
    assert!((h.sum - 14.036).abs() < 1e-9, "{}", h.sum);
}

fn full() -> Snapshot {
    let mut access = Histogram::default();
    // Sums of binary fractions are exact.
    access.observe(Duration::from_micros(15_625));
    access.observe(Duration::from_millis(125));
    Snapshot {
        ike_sas: SaCounts { connecting: 1, half_open: 2, established: 3, closing: 4 },
        half_open: 2,
        cookie_mode: true,
        engine: oxswan_ike::Stats {
            dropped: 5,
            drops: oxswan_ike::Drops { malformed: 1, unknown_spi: 2, unauthenticated: 1, other: 1 },
            cookies_sent: 6,
            half_open_refused: 7,
            invalid_spi_sent: 8,
            retransmits_answered: 9,
            redirects_sent: 31,
        },
        handshakes: 10,
        failures: [("auth_failed".to_owned(), 11), ("peer_no_proposal_chosen".to_owned(), 12)].into(),
        ike_rekeys: 13,
        child_sas: 14,
        child_rekeys: 15,
        traffic: Traffic {
            bytes_in: 16,
            bytes_out: 17,
            packets_in: 18,
            packets_out: 19,
            replayed: 20,
            integrity_failed: 21,
            malformed: 22,
            outside_selectors: 23,
        },
        datapath: DatapathStats { keepalives_received: 24, esp_unknown_spi: 25, too_big: 26, icmp_too_big_sent: 27 },
        tcp_esp_dropped: 28,
        pools: vec![
            PoolUsage { pool: "rw4".into(), size: 254, online: 1, offline: 2 },
            PoolUsage { pool: "rw6".into(), size: 1 << 80, online: 0, offline: 0 },
        ],
        radius: Some(RadiusMetrics { access, accounting: Histogram::default(), timeouts: 29, retransmissions: 30 }),
        cluster: Some(ClusterMetrics {
            healthy: true,
            members_reachable: 2,
            members: 3,
            nodes: 3,
            leases_held: 32,
            sas_listed: 33,
            writes: 34,
            lease_renewals: 35,
            leases_taken: 36,
            sas_replaced: 37,
        }),
    }
}

/// The samples of `text`, without comments.
fn samples(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

#[test]
fn every_number_is_encoded_under_its_name_and_labels() {
    let text = render(Arc::new(full()));
    let s = samples(&text);
    for want in [
        "oxswan_ike_sas{state=\"connecting\"} 1",
        "oxswan_ike_sas{state=\"half_open\"} 2",
        "oxswan_ike_sas{state=\"established\"} 3",
        "oxswan_ike_sas{state=\"closing\"} 4",
        "oxswan_ike_half_open_sas 2",
        "oxswan_ike_cookie_mode 1",
        "oxswan_ike_dropped_messages_total{cause=\"malformed\"} 1",
        "oxswan_ike_dropped_messages_total{cause=\"unknown_spi\"} 2",
        "oxswan_ike_dropped_messages_total{cause=\"integrity\"} 1",
        "oxswan_ike_dropped_messages_total{cause=\"other\"} 1",
        "oxswan_ike_cookies_sent_total 6",
        "oxswan_ike_half_open_refused_total 7",
        "oxswan_ike_invalid_spi_sent_total 8",
        "oxswan_ike_retransmits_answered_total 9",
        "oxswan_ike_redirects_sent_total 31",
        "oxswan_ike_handshakes_total 10",
        "oxswan_ike_handshake_failures_total{reason=\"auth_failed\"} 11",
        "oxswan_ike_handshake_failures_total{reason=\"peer_no_proposal_chosen\"} 12",
        "oxswan_ike_rekeys_total 13",
        "oxswan_child_sas 14",
        "oxswan_child_sa_rekeys_total 15",
        "oxswan_child_sa_bytes_total{direction=\"in\"} 16",
        "oxswan_child_sa_bytes_total{direction=\"out\"} 17",
        "oxswan_child_sa_packets_total{direction=\"in\"} 18",
        "oxswan_child_sa_packets_total{direction=\"out\"} 19",
        "oxswan_esp_dropped_packets_total{cause=\"replay\"} 20",
        "oxswan_esp_dropped_packets_total{cause=\"integrity\"} 21",
        "oxswan_esp_dropped_packets_total{cause=\"malformed\"} 22",
        "oxswan_esp_dropped_packets_total{cause=\"outside_selectors\"} 23",
        "oxswan_nat_keepalives_received_total 24",
        "oxswan_esp_unknown_spi_packets_total 25",
        "oxswan_esp_dropped_packets_total{cause=\"too_big\"} 26",
        "oxswan_icmp_too_big_sent_total 27",
        "oxswan_esp_dropped_packets_total{cause=\"tcp_queue\"} 28",
        "oxswan_pool_addresses{pool=\"rw4\"} 254",
        "oxswan_pool_addresses{pool=\"rw6\"} 1.2089258196146293e24",
        "oxswan_pool_leases{pool=\"rw4\",state=\"online\"} 1",
        "oxswan_pool_leases{pool=\"rw4\",state=\"offline\"} 2",
        "oxswan_pool_leases{pool=\"rw6\",state=\"online\"} 0",
        "oxswan_radius_round_trip_seconds_bucket{request=\"access\",le=\"0.01\"} 0",
        "oxswan_radius_round_trip_seconds_bucket{request=\"access\",le=\"0.025\"} 1",
        "oxswan_radius_round_trip_seconds_bucket{request=\"access\",le=\"0.1\"} 1",
        "oxswan_radius_round_trip_seconds_bucket{request=\"access\",le=\"0.25\"} 2",
        "oxswan_radius_round_trip_seconds_bucket{request=\"access\",le=\"+Inf\"} 2",
        "oxswan_radius_round_trip_seconds_sum{request=\"access\"} 0.140625",
        "oxswan_radius_round_trip_seconds_count{request=\"access\"} 2",
        "oxswan_radius_round_trip_seconds_count{request=\"accounting\"} 0",
        "oxswan_radius_timeouts_total 29",
        "oxswan_radius_retransmissions_total 30",
        "oxswan_cluster_healthy 1",
        "oxswan_cluster_etcd_members{state=\"reachable\"} 2",
        "oxswan_cluster_etcd_members{state=\"unreachable\"} 1",
        "oxswan_cluster_nodes 3",
        "oxswan_cluster_leases_held 32",
        "oxswan_cluster_sas_listed 33",
        "oxswan_cluster_etcd_writes_total 34",
        "oxswan_cluster_lease_renewals_total 35",
        "oxswan_cluster_leases_taken_total 36",
        "oxswan_cluster_sas_replaced_total 37",
    ] {
        assert!(s.contains(&want), "{want} missing from\n{text}");
    }
    // Every family once, with its help and type.
    assert!(text.contains("# TYPE oxswan_ike_handshake_failures_total counter\n"), "{text}");
    assert!(text.contains("# TYPE oxswan_child_sas gauge\n"), "{text}");
    assert!(text.contains("# TYPE oxswan_radius_round_trip_seconds histogram\n"), "{text}");
    assert_eq!(text.matches("# TYPE oxswan_esp_dropped_packets_total ").count(), 1, "{text}");
    assert!(text.ends_with('\n') && !text.contains("# EOF"), "0.0.4 text, not OpenMetrics: {text}");
}

#[test]
fn families_without_series_are_left_out() {
    let text = render(Arc::new(Snapshot::default()));
    for absent in ["oxswan_pool_", "oxswan_radius_", "oxswan_cluster_", "oxswan_ike_handshake_failures_total"] {
        assert!(!text.contains(absent), "{absent} in\n{text}");
    }
    // Zeros are samples all the same.
    let s = samples(&text);
    assert!(s.contains(&"oxswan_ike_handshakes_total 0"), "{text}");
    assert!(s.contains(&"oxswan_child_sa_bytes_total{direction=\"in\"} 0"), "{text}");
}

/// `promtool check metrics` (Debian's `prometheus`) on every family at once, with every label.
/// Ignored where the build found no promtool (build.rs); under `CI=true` it runs and must find it.
#[test]
#[cfg_attr(not(have_promtool), ignore = "needs promtool")]
fn promtool_finds_nothing_to_complain_about() {
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian prometheus; bash .ci/run installs it)");
    let text = render(Arc::new(full()));
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool: {said}\n{text}");
}
