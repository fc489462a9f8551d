//! Childless IKE SAs (RFC 6023) against strongSwan 5.9.8's charon in network namespaces: oxswan
//! with `childless = "force"` sets the IKE SA up without a CHILD SA and makes it with
//! CREATE_CHILD_SA; charon's `swanctl --initiate --ike` sets a childless IKE SA up with oxswan,
//! whose `status` shows it without CHILD SAs until `oxswan up` makes them on it; and oxswan with
//! `childless = "never"` does not announce the extension and refuses charon's childless IKE_AUTH
//! with INVALID_SYNTAX. Needs root and strongSwan (`bash
//! .ci/run`); elsewhere each test says why it skips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use common::*;

fn ready() {
    require(&[&NETNS, &CHARON]);
}

/// Charon on the right, as the example's other side.
fn charon(h: &mut Hosts) {
    let conf = charon_example_conf("192.0.2.2", "aes256gcm16-prfsha256-x25519", "aes256gcm16", "", "");
    h.start_charon("right", &conf, &[]);
}

fn oxswan(h: &mut Hosts, childless: &str) {
    h.start_edited("left", |t| {
        let edited =
            t.replace("[connections.site.local]", &format!("childless = \"{childless}\"\n\n[connections.site.local]"));
        assert!(edited.contains("childless ="), "the example's connection");
        edited
    });
}

#[test]
#[cfg_attr(not(all(have_netns, have_charon)), ignore = "needs root with ip, ping, iperf3, charon")]
fn oxswan_forces_a_childless_ike_sa_with_charon() {
    ready();
    let mut h = Hosts::new("ocl1");
    charon(&mut h);
    oxswan(&mut h, "force");
    let o = h.ox("left", "up site");
    assert!(o.status.success(), "{}\n--- charon\n{}", String::from_utf8_lossy(&o.stderr), h.charon_log("right"));
    let log = h.charon_log("right");
    let auth = log.lines().find(|l| l.contains("parsed IKE_AUTH request 1")).unwrap_or_default();
    assert!(!auth.contains(" SA ") && !auth.contains("TSi"), "a childless IKE_AUTH: {auth}");
    assert!(log.contains("parsed CREATE_CHILD_SA request 2 [ SA No TSi TSr ]"), "{log}");
    assert!(h.ping(3));
}

#[test]
#[cfg_attr(not(all(have_netns, have_charon)), ignore = "needs root with ip, ping, iperf3, charon")]
fn charon_sets_up_a_childless_ike_sa_and_oxswan_up_adds_the_children() {
    ready();
    let mut h = Hosts::new("ocl2");
    charon(&mut h);
    oxswan(&mut h, "allow");
    let o = h.swanctl("right", "--initiate --ike net --timeout 20");
    assert!(o.status.success(), "{}\n--- oxswan\n{}", String::from_utf8_lossy(&o.stdout), h.log("left"));
    settles(5, || holds(sa_counts(&h.status("left")) == (1, 0), || h.status("left").to_string()));
    assert_eq!(h.status("left")["ike_sas"][0]["state"], "ESTABLISHED");
    let o = h.ox("left", "up site");
    assert!(o.status.success(), "{}\n--- charon\n{}", String::from_utf8_lossy(&o.stderr), h.charon_log("right"));
    assert!(h.charon_log("right").contains("parsed CREATE_CHILD_SA request 0 [ SA No TSi TSr ]"));
    assert_eq!(sa_counts(&h.status("left")), (1, 1), "on the same IKE SA: {}", h.status("left"));
    assert!(h.ping(3));
}

#[test]
#[cfg_attr(not(all(have_netns, have_charon)), ignore = "needs root with ip, ping, iperf3, charon")]
fn oxswan_with_never_refuses_charons_childless_ike_sa() {
    ready();
    let mut h = Hosts::new("ocl3");
    charon(&mut h);
    oxswan(&mut h, "never");
    let o = h.swanctl("right", "--initiate --ike net --timeout 20");
    assert!(!o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let log = h.charon_log("right");
    // `never` alone on the gateway: the extension is not announced (charon initiates childless
    // anyway when told to), and the childless IKE_AUTH is refused.
    let init = log.lines().find(|l| l.contains("parsed IKE_SA_INIT response 0")).unwrap_or_default();
    assert!(!init.is_empty() && !init.contains("CHDLESS"), "{init}");
    assert!(log.contains("parsed IKE_AUTH response 1 [ N(INVAL_SYN) ]"), "{log}");
    assert_eq!(sa_counts(&h.status("left")).0, 0, "{}", h.status("left"));
}
