//! oxswan against strongSwan 6.0 (Debian 13's charon, chrooted in [`STRONGSWAN6`], with its
//! user-space data plane) in network namespaces: several key exchanges (RFC 9370) through
//! IKE_INTERMEDIATE (RFC 9242) when the IKE SA is set up and IKE_FOLLOWUP_KE when it is rekeyed, in
//! both roles. Debian's strongSwan 6 has no ML-KEM, so the additional key exchanges are classical
//! groups; ML-KEM itself runs between two oxswan hosts in tests/e2e.rs. Needs root and strongSwan 6
//! (`bash .ci/run` makes it with the interop kit's strongswan6.sh); elsewhere each test says why it
//! skips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::path::PathBuf;

use common::*;

/// X25519 in IKE_SA_INIT, then ECP-384 and MODP-3072 in two IKE_INTERMEDIATE exchanges.
const MULTI_KE: &str = "aes256gcm16-prfsha256-x25519-ke1_ecp384-ke2_modp3072";

fn ready() {
    require(&[&NETNS, &STRONGSWAN6_FS]);
}

/// Charon 6 on the right, as the example's other side, with `proposals`.
fn charon6(h: &mut Hosts, proposals: &str) {
    charon6_esp(h, proposals, "aes256gcm16");
}

/// [`charon6`] with the child's `esp_proposals`.
fn charon6_esp(h: &mut Hosts, proposals: &str, esp: &str) {
    h.charon_root = Some(PathBuf::from(STRONGSWAN6));
    let conf = charon_example_conf("192.0.2.2", proposals, esp, "", "");
    h.start_charon("right", &conf, &[]);
}

fn oxswan(h: &mut Hosts, proposals: &str) {
    h.start_edited("left", |t| {
        let edited = t.replace("[\"aes256gcm16-prfsha256-x25519\"]", &format!("[\"{proposals}\"]"));
        assert!(edited.contains(&format!("[\"{proposals}\"]")), "the example's proposals");
        edited
    });
}

fn ike_spis(h: &Hosts) -> String {
    h.status("left")["ike_sas"][0]["spis"].as_str().unwrap_or_default().to_owned()
}

/// How often charon logged `what`.
fn logged(h: &Hosts, what: &str) -> usize {
    h.charon_log("right").matches(what).count()
}

/// Both set up with three key exchanges; each side rekeys the IKE SA (with two IKE_FOLLOWUP_KE
/// exchanges each time) and a CHILD SA rekey over each new IKE SA shows both sides hold its keys;
/// then charon sets it up, oxswan answering.
#[test]
#[cfg_attr(not(all(have_netns, have_strongswan6)), ignore = "needs root with ip, ping, iperf3, /opt/strongswan6")]
fn several_key_exchanges_with_strongswan6_in_both_roles_and_rekeys() {
    ready();
    let mut h = Hosts::new("os6");
    charon6(&mut h, MULTI_KE);
    oxswan(&mut h, MULTI_KE);
    let o = h.ox("left", "up site");
    assert!(o.status.success(), "{}\n--- charon\n{}", String::from_utf8_lossy(&o.stderr), h.charon_log("right"));
    let log = h.charon_log("right");
    for n in [1, 2] {
        assert!(log.contains(&format!("parsed IKE_INTERMEDIATE request {n} [ KE ]")), "{log}");
    }
    assert!(log.contains("KE1_ECP_384/KE2_MODP_3072"), "{log}");
    assert_eq!(h.status("left")["ike_sas"][0]["proposal"], MULTI_KE);
    assert!(h.ping(3));

    // oxswan rekeys the IKE SA: CREATE_CHILD_SA, then IKE_FOLLOWUP_KE twice; charon deletes nothing
    // it should not, and the CHILD SA rekeyed over the new IKE SA works.
    let before = ike_spis(&h);
    let o = h.ox("left", "rekey --ike site");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    settles(10, || {
        holds(logged(&h, "parsed IKE_FOLLOWUP_KE request") == 2, || h.charon_log("right"))?;
        holds(ike_spis(&h) != before, || "oxswan's IKE SA not replaced".into())
    });
    let rekeyed_children = logged(&h, "rekeyed CHILD_SA");
    let o = h.ox("left", "rekey site");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    settles(10, || holds(logged(&h, "rekeyed CHILD_SA") > rekeyed_children, || h.charon_log("right")));
    assert!(h.ping(3), "after oxswan's IKE rekey\n{}", h.log("left"));

    // charon rekeys it: oxswan answers the IKE_FOLLOWUP_KE requests.
    let before = ike_spis(&h);
    let o = h.swanctl("right", "--rekey --ike net");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    settles(10, || {
        holds(logged(&h, "parsed IKE_FOLLOWUP_KE response") == 2, || h.charon_log("right"))?;
        holds(ike_spis(&h) != before, || "oxswan's IKE SA not replaced".into())
    });
    let rekeyed_children = logged(&h, "rekeyed CHILD_SA");
    let o = h.ox("left", "rekey site");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    settles(10, || holds(logged(&h, "rekeyed CHILD_SA") > rekeyed_children, || h.charon_log("right")));
    assert!(h.ping(3), "after charon's IKE rekey\n{}", h.log("left"));
    assert!(!h.charon_log("right").contains("integrity check failed"), "{}", h.charon_log("right"));

    // Charon as the initiator.
    let o = h.ox("left", "down site");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    settles(10, || holds(!h.charon_has_sa("right"), || "charon still has the IKE SA".into()));
    let o = h.swanctl("right", "--initiate --child net --timeout 20");
    assert!(o.status.success(), "{}\n--- oxswan\n{}", String::from_utf8_lossy(&o.stdout), h.log("left"));
    assert!(h.charon_log("right").contains("generating IKE_INTERMEDIATE request 2 [ KE ]"));
    assert_eq!(h.status("left")["ike_sas"][0]["proposal"], MULTI_KE);
    assert!(h.ping(3));
}

/// A proposal is honoured whole or not at all: charon 6 requires an additional key exchange that
/// oxswan does not offer, so the IKE SA is refused (NO_PROPOSAL_CHOSEN) instead of being made
/// without it.
#[test]
#[cfg_attr(not(all(have_netns, have_strongswan6)), ignore = "needs root with ip, ping, iperf3, /opt/strongswan6")]
fn a_required_additional_key_exchange_is_not_dropped() {
    ready();
    let mut h = Hosts::new("os6n");
    charon6(&mut h, "aes256gcm16-prfsha256-x25519-ke1_ecp384");
    oxswan(&mut h, "aes256gcm16-prfsha256-x25519");
    let o = h.ox("left", "up site");
    assert!(!o.status.success(), "came up without the required ECP-384");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("NO_PROPOSAL_CHOSEN"), "{err}");
}

/// CHILD SAs with additional key exchanges (RFC 9370 §2.2.4): oxswan sets the IKE SA up childless,
/// so that its CHILD SA comes by CREATE_CHILD_SA with X25519 and one IKE_FOLLOWUP_KE for ECP-384;
/// then the CHILD SA is rekeyed by oxswan and by charon, each time with the exchange again, and
/// traffic flows over every new pair.
#[test]
#[cfg_attr(not(all(have_netns, have_strongswan6)), ignore = "needs root with ip, ping, iperf3, /opt/strongswan6")]
fn child_sas_with_additional_key_exchanges_with_strongswan6() {
    ready();
    const ESP: &str = "aes256gcm16-x25519-ke1_ecp384";
    let mut h = Hosts::new("os6c");
    charon6_esp(&mut h, "aes256gcm16-prfsha256-x25519", ESP);
    h.start_edited("left", |t| {
        let edited = t
            .replace("[\"aes256gcm16\"]", &format!("[\"{ESP}\"]"))
            .replace("\n[connections.site.local]", "childless = \"force\"\n\n[connections.site.local]");
        assert!(edited.contains(ESP) && edited.contains("childless"), "the example's child");
        edited
    });
    let o = h.ox("left", "up site");
    assert!(o.status.success(), "{}\n--- charon\n{}", String::from_utf8_lossy(&o.stderr), h.charon_log("right"));
    settles(10, || holds(logged(&h, "parsed IKE_FOLLOWUP_KE request") == 1, || h.charon_log("right")));
    let child = |h: &Hosts| h.status("left")["ike_sas"][0]["children"][0]["proposal"].as_str().map(str::to_owned);
    assert_eq!(child(&h).as_deref(), Some("aes256gcm16-x25519-ke1_ecp384-noesn"), "{}", h.status("left"));
    assert!(h.ping(3));
    // oxswan rekeys the CHILD SA, then charon does.
    let rekeyed = logged(&h, "rekeyed CHILD_SA");
    let o = h.ox("left", "rekey site");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    settles(10, || {
        holds(logged(&h, "rekeyed CHILD_SA") > rekeyed && logged(&h, "parsed IKE_FOLLOWUP_KE request") == 2, || {
            h.charon_log("right")
        })
    });
    assert!(h.ping(3), "after oxswan's CHILD rekey\n{}", h.log("left"));
    let rekeyed = logged(&h, "rekeyed CHILD_SA");
    let o = h.swanctl("right", "--rekey --child net");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    settles(10, || {
        holds(logged(&h, "rekeyed CHILD_SA") > rekeyed && logged(&h, "parsed IKE_FOLLOWUP_KE response") == 1, || {
            h.charon_log("right")
        })
    });
    assert!(h.ping(3), "after charon's CHILD rekey\n{}", h.log("left"));
    settles(10, || holds(sa_counts(&h.status("left")) == (1, 1), || h.status("left").to_string()));
    assert!(!h.charon_log("right").contains("integrity check failed"));
}
