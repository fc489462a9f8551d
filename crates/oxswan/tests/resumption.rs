//! Session resumption (RFC 5723) between two oxswan daemons in network namespaces: with
//! `resumption = true` on both sides the client keeps the gateway's ticket; after `down`, `up`
//! resumes with IKE_SESSION_RESUME and both `status` outputs say so; a gateway that restarted
//! (new ticket keys) refuses the ticket and the client sets the SA up in full at once. strongSwan
//! has no session resumption, so there is no interop test. Needs root (`bash .ci/run`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::path::Path;

use common::*;

fn resuming(t: String) -> String {
    let edited = t.replace("[connections.site.local]", "resumption = true\n\n[connections.site.local]");
    assert!(edited.contains("resumption = true"), "the example's connection");
    edited
}

fn resumed(h: &Hosts, side: &str) -> bool {
    h.status(side)["ike_sas"][0]["resumed"] == true
}

fn down_both(h: &Hosts) {
    let o = h.ox("left", "down site");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    settles(10, || {
        let (l, r) = (h.status("left"), h.status("right"));
        holds(sa_counts(&l) == (0, 0) && sa_counts(&r) == (0, 0), || format!("left: {l}\nright: {r}"))
    });
}

#[test]
#[cfg_attr(not(have_netns), ignore = "needs root with ip, ping, iperf3")]
fn a_client_resumes_its_ike_sa_with_a_ticket() {
    require(&[&NETNS]);
    let mut h = Hosts::new("ores");
    h.start_edited("right", resuming);
    h.start_edited("left", resuming);
    let up = |h: &Hosts| {
        let o = h.ox("left", "up site");
        assert!(o.status.success(), "{}\n--- right\n{}", String::from_utf8_lossy(&o.stderr), h.log("right"));
    };
    up(&h);
    assert!(!resumed(&h, "left") && !resumed(&h, "right"), "the first SA is a full one");
    down_both(&h);

    up(&h);
    assert!(resumed(&h, "left") && resumed(&h, "right"), "{}\n{}", h.status("left"), h.status("right"));
    assert!(h.log("right").contains("resumed with a ticket (RFC 5723)"), "{}", h.log("right"));
    let text = String::from_utf8_lossy(&h.ox("left", "status").stdout).into_owned();
    assert!(text.contains("resumed (RFC 5723)"), "{text}");
    assert!(h.ping(3), "{}", h.log("left"));
    down_both(&h);

    // The gateway restarts: its new ticket keys cannot read the ticket, which it refuses with
    // TICKET_NACK; the client goes on with IKE_SA_INIT in the same `up`.
    let right = h.daemons.remove(0);
    let pid = right.id();
    ok(&format!("kill {pid}"));
    let mut right = right;
    let _ = right.wait();
    let _ = std::fs::remove_file(h.sock("right"));
    h.start_edited("right", resuming);
    up(&h);
    assert!(!resumed(&h, "left") && !resumed(&h, "right"));
    let refused = h.log("right");
    assert!(refused.contains("TICKET_NACK") && refused.contains("not a ticket of ours"), "{refused}");
    assert!(h.ping(3), "{}", h.log("left"));
    assert!(Path::new(&h.sock("right")).exists());
}
