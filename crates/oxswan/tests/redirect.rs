//! A gateway's REDIRECT of an established IKE SA (RFC 5685 §5) against strongSwan 5.9.8's charon:
//! `swanctl --redirect` sends the oxswan client to the gateway's second address; oxswan sets the IKE
//! SA and its CHILD SA up there (announcing REDIRECTED_FROM), deletes the old one once the new one is
//! up, shows it as redirected, and traffic flows. Needs root and strongSwan (`bash .ci/run`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::path::Path;

use common::*;

#[test]
fn oxswan_follows_charons_redirect_of_an_established_sa() {
    if !root_with_tools() {
        return;
    }
    if !Path::new("/usr/lib/ipsec/charon").exists() {
        missing("redirect tests need strongSwan's charon (bash .ci/run installs it)");
        return;
    }
    let mut h = Hosts::new("ord");
    // The gateway's second address, where it redirects to.
    ok(&format!("ip -n {} addr add 192.0.2.3/24 dev {}r0", h.ns("right"), h.p));
    let conf = charon_example_conf("192.0.2.2, 192.0.2.3", "aes256gcm16-prfsha256-x25519", "aes256gcm16", "", "");
    h.start_charon("right", &conf, &[]);
    h.start("left");
    let o = h.ox("left", "up site");
    assert!(o.status.success(), "{}\n--- charon\n{}", String::from_utf8_lossy(&o.stderr), h.charon_log("right"));
    let remote = |h: &Hosts| h.status("left")["ike_sas"][0]["remote"].as_str().unwrap_or_default().to_owned();
    assert!(remote(&h).starts_with("192.0.2.2:"), "{}", remote(&h));
    let o = h.swanctl("right", "--redirect --ike net --gateway 192.0.2.3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    settles(15, || {
        let s = h.status("left");
        holds(sa_counts(&s) == (1, 1) && remote(&h).starts_with("192.0.2.3:"), || format!("{s}\n{}", h.log("left")))
    });
    assert_eq!(h.status("left")["ike_sas"][0]["redirected"], true);
    let log = h.charon_log("right");
    assert!(log.contains("redirecting peer to 192.0.2.3"), "{log}");
    assert!(log.contains("N(REDIR_FROM)"), "REDIRECTED_FROM in the new IKE_SA_INIT: {log}");
    assert!(h.ping(3), "{}", h.log("left"));
}
