//! Post-quantum key exchange between two oxswan hosts (network namespaces, real daemons): X25519 in
//! IKE_SA_INIT, then ML-KEM-768 and ML-KEM-1024 (FIPS 203) as additional key exchanges (RFC 9370)
//! in IKE_INTERMEDIATE (RFC 9242); the IKE SA rekeyed from each side with IKE_FOLLOWUP_KE, and a
//! CHILD SA rekeyed over each new IKE SA. That ML-KEM-1024's key share travels in IKE fragments
//! (RFC 7383) is asserted by the engine's tests (crates/ike/tests/intermediate.rs); the ML-KEM
//! implementation itself is checked against an independent one in
//! crates/crypto/tests/mlkem_interop.rs. Needs root (`bash .ci/run`); elsewhere it says why it skips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use common::*;

const PQ: &str = "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_mlkem1024";

fn spis(h: &Hosts, side: &str) -> String {
    h.status(side)["ike_sas"][0]["spis"].as_str().unwrap_or_default().to_owned()
}

/// The SPI `key` (`spi_in`, `spi_out`) of `side`'s CHILD SA, while it has one.
fn child_spi(h: &Hosts, side: &str, key: &str) -> String {
    let s = h.status(side);
    let children = s["ike_sas"][0]["children"].as_array().cloned().unwrap_or_default();
    match children.as_slice() {
        [one] => one[key].as_str().unwrap_or_default().to_owned(),
        _ => String::new(),
    }
}

#[test]
#[cfg_attr(not(have_netns), ignore = "needs root with ip, ping, iperf3")]
fn ml_kem_between_two_oxswan_hosts_with_rekeys_from_both_sides() {
    require(&[&NETNS]);
    let mut h = Hosts::new("opq");
    for side in ["right", "left"] {
        h.start_edited(side, |t| {
            let edited = t.replace("[\"aes256gcm16-prfsha256-x25519\"]", &format!("[\"{PQ}\"]"));
            assert!(edited.contains(PQ), "the example's proposals");
            edited
        });
    }
    let o = h.ox("left", "up site");
    assert!(o.status.success(), "{}\n--- right\n{}", String::from_utf8_lossy(&o.stderr), h.log("right"));
    for side in ["left", "right"] {
        assert_eq!(h.status(side)["ike_sas"][0]["proposal"], PQ, "{side}");
    }
    assert!(h.ping(3));
    for (rekeyer, other) in [("left", "right"), ("right", "left")] {
        let before = (spis(&h, rekeyer), spis(&h, other));
        let o = h.ox(rekeyer, "rekey --ike site");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        settles(10, || {
            holds(spis(&h, rekeyer) != before.0 && spis(&h, other) != before.1, || "IKE SA not replaced".into())?;
            holds(spis(&h, rekeyer) == spis(&h, other), || format!("{} against {}", spis(&h, rekeyer), spis(&h, other)))
        });
        // The new IKE SA's keys agree: a CHILD SA rekey over it completes on both sides.
        let old_child = child_spi(&h, other, "spi_in");
        let o = h.ox(rekeyer, "rekey site");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        settles(10, || {
            let (theirs, ours) = (child_spi(&h, other, "spi_in"), child_spi(&h, rekeyer, "spi_out"));
            holds(theirs != old_child && theirs == ours, || format!("{}\n{}", h.log(rekeyer), h.log(other)))
        });
        assert!(h.ping(3), "after {rekeyer}'s IKE rekey");
        for side in ["left", "right"] {
            assert_eq!(sa_counts(&h.status(side)), (1, 1), "{side}: {}", h.status(side));
        }
    }
}
