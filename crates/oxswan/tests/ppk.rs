//! Post-quantum Preshared Keys (RFC 8784) against strongSwan's charon in network namespaces: in both
//! roles, with and without `ppk_required`, the fallback to NO_PPK_AUTH when the responder lacks the
//! PPK, and a wrong PPK failing cleanly. 5.9.8 always; 6.0 too when its root file system is there
//! (`bash .ci/run` makes it; without it, under CI, the test fails). Each cell pings through the
//! tunnel, whose CHILD SA keys come from the PPK-mixed SK_d when the PPK was used.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::path::PathBuf;

use common::*;

const KEY: &str = "0x5d3c1f8e2a9b7c6d4e5f60718293a4b5c6d7e8f9011223344556677889900aab";

fn ready() {
    require(&[&NETNS, &CHARON]);
}

/// One side's PPK settings.
#[derive(Clone, Copy)]
struct Ppk {
    /// The PPK_ID the connection names (`None`: none).
    id: Option<&'static str>,
    required: bool,
    /// The PPKs it holds: (PPK_ID, key).
    keys: &'static [(&'static str, &'static str)],
}

/// Charon on the right, the example's other side, with `ppk`.
fn charon(h: &mut Hosts, ppk: Ppk) {
    let conn = format!(
        "{}{}",
        ppk.id.map(|i| format!("  ppk_id = {i}\n")).unwrap_or_default(),
        if ppk.required { "  ppk_required = yes\n" } else { "" }
    );
    let secrets: String = ppk
        .keys
        .iter()
        .enumerate()
        .map(|(n, (id, key))| format!(" ppk-{n} {{ id = {id}\n secret = {key} }}\n"))
        .collect();
    let conf = charon_example_conf("192.0.2.2", "aes256gcm16-prfsha256-x25519", "aes256gcm16", &conn, &secrets);
    h.start_charon("right", &conf, &[]);
}

fn oxswan(h: &mut Hosts, ppk: Ppk) {
    h.start_edited("left", |t| {
        let conn = format!(
            "{}{}",
            ppk.id.map(|i| format!("ppk_id = \"{i}\"\n")).unwrap_or_default(),
            if ppk.required { "ppk_required = true\n" } else { "" }
        );
        let secrets: String = ppk
            .keys
            .iter()
            .map(|(id, key)| format!("\n[[secrets.ppk]]\nids = [\"{id}\"]\nsecret = \"{key}\"\n"))
            .collect();
        let edited = t.replace("\n[connections.site.local]", &format!("{conn}\n[connections.site.local]")) + &secrets;
        assert!(edited.contains("[connections.site.local]"), "the example's connection");
        edited
    });
}

/// Who initiates, and what comes of it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum End {
    /// Up, the PPK used (or not).
    Up { ppk: bool },
    /// Refused with AUTHENTICATION_FAILED.
    Refused,
}

fn cell(p: &str, root: Option<&str>, oxswan_initiates: bool, ox: Ppk, ch: Ppk, want: End) {
    let mut h = Hosts::new(p);
    h.charon_root = root.map(PathBuf::from);
    charon(&mut h, ch);
    oxswan(&mut h, ox);
    let what = format!("{p}: oxswan initiates {oxswan_initiates}, want {want:?}");
    // The initiator's word on it: oxswan's `up` error, or charon's log of the exchange.
    let (ok, said) = if oxswan_initiates {
        let o = h.ox("left", "up site");
        (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
    } else {
        let o = h.swanctl("right", "--initiate --child net --timeout 20");
        (o.status.success(), h.charon_log("right"))
    };
    if !ok && want != End::Refused {
        panic!("{what}: {said}\n--- oxswan\n{}\n--- charon\n{}", h.log("left"), h.charon_log("right"));
    }
    match want {
        End::Up { ppk } => {
            assert!(ok, "{what}");
            assert_eq!(h.status("left")["ike_sas"][0]["ppk"], ppk, "{what}: {}", h.status("left"));
            assert!(h.ping(3), "{what}");
            let log = h.charon_log("right");
            assert!(!log.contains("authentication of 'left.example' with pre-shared key failed"), "{what}");
        }
        End::Refused => {
            assert!(!ok, "{what}: came up");
            assert_eq!(sa_counts(&h.status("left")).0, 0, "{what}: {}", h.status("left"));
            // The responder refused the AUTH (§2.21.2): the initiator was told so.
            let told =
                if oxswan_initiates { "AUTHENTICATION_FAILED" } else { "received AUTHENTICATION_FAILED notify error" };
            assert!(said.contains(told), "{what}: {said}");
        }
    }
}

const PQK: &[(&str, &str)] = &[("pqk", KEY)];
const WRONG: &[(&str, &str)] = &[("pqk", "0x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")];
const OTHER: &[(&str, &str)] = &[("other", KEY)];

fn cells(prefix: &str, root: Option<&str>) {
    let named = |id: &'static str, required: bool, keys| Ppk { id: Some(id), required, keys };
    let any = |required: bool, keys| Ppk { id: None, required, keys };
    // oxswan initiates: charon requires the PPK; then charon lacks it (NO_PPK_AUTH); then a wrong PPK.
    cell(&format!("{prefix}a"), root, true, named("pqk", false, PQK), named("pqk", true, PQK), End::Up { ppk: true });
    cell(&format!("{prefix}b"), root, true, named("pqk", false, PQK), any(false, OTHER), End::Up { ppk: false });
    cell(&format!("{prefix}c"), root, true, named("pqk", true, PQK), any(false, WRONG), End::Refused);
    // charon initiates: oxswan requires the PPK; then oxswan lacks it; then oxswan requires one charon
    // does not send.
    cell(&format!("{prefix}d"), root, false, any(true, PQK), named("pqk", true, PQK), End::Up { ppk: true });
    cell(&format!("{prefix}e"), root, false, any(false, OTHER), named("pqk", false, PQK), End::Up { ppk: false });
    cell(
        &format!("{prefix}f"),
        root,
        false,
        any(true, PQK),
        Ppk { id: None, required: false, keys: &[] },
        End::Refused,
    );
}

#[test]
#[cfg_attr(not(all(have_netns, have_charon)), ignore = "needs root with ip, ping, iperf3, charon")]
fn ppk_with_charon_5_9_8() {
    ready();
    cells("op5", None);
}

#[test]
#[cfg_attr(
    not(all(have_netns, have_charon, have_strongswan6)),
    ignore = "needs root with ip, ping, iperf3, charon, /opt/strongswan6"
)]
fn ppk_with_strongswan_6() {
    ready();
    require(&[&STRONGSWAN6_FS]);
    cells("op6", Some(STRONGSWAN6));
}
