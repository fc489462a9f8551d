//! Issue 15, `oxswan pki`: the certificates it makes authenticate real tunnels. Between two oxswan
//! daemons (the gateway's certificate on the right, a client's on the left), and with strongSwan's
//! charon as the client holding the client certificate and trusting the CA. Needs root, iperf3,
//! and strongSwan for the charon case (`bash .ci/run` installs them).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// `oxswan pki init`, `server` and `client` into `dir`.
fn make_pki(dir: &Path, client: &str) {
    for args in
        [vec!["init"], vec!["server", "--name", "vpn.example.com", "--address", "192.0.2.2"], vec!["client", client]]
    {
        let o = Command::new(OX).arg("pki").args(&args).arg("--dir").arg(dir).output().unwrap();
        assert!(o.status.success(), "oxswan pki {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
}

/// The gateway's configuration: its certificate from the PKI, a client with one from the same CA.
fn gateway_config(pki: &Path, client: &str) -> String {
    gateway_with(pki, &format!("id      = \"{client}\"\n"))
}

/// One side's end of the tunnel: who it is, with which certificate, to whom.
struct End<'a> {
    side: &'a str,
    local: &'a str,
    theirs: &'a str,
    id: &'a str,
    cert: String,
    key: String,
    /// More keys of the remote side (its `id`, `crls`).
    remote: String,
    ts: (&'a str, &'a str),
}

/// A daemon configuration for `e`, trusting the PKI's CA.
fn config(pki: &Path, e: &End<'_>) -> String {
    let p = pki.display();
    let End { side, local, theirs, id, cert, key, remote, ts } = e;
    format!(
        "[daemon]\nsocket = \"/run/oxswan/{side}.sock\"\ntun = \"oxswan0\"\n\n\
         [connections.site]\nlocal_addrs  = [\"{local}\"]\nremote_addrs = [\"{theirs}\"]\n\
         proposals    = [\"aes256gcm16-prfsha256-x25519\"]\n\n\
         [connections.site.local]\nauth  = \"pubkey\"\nid    = \"{id}\"\n\
         certs = [\"{p}/{cert}\"]\nkey   = \"{p}/{key}\"\n\n\
         [connections.site.remote]\nauth    = \"pubkey\"\n{remote}cacerts = [\"{p}/ca.crt\"]\n\n\
         [connections.site.children.net]\nlocal_ts      = [\"{}\"]\nremote_ts     = [\"{}\"]\n\
         esp_proposals = [\"aes256gcm16\"]\n",
        ts.0, ts.1
    )
}

/// The gateway's configuration with `remote` (more keys of its remote side).
fn gateway_with(pki: &Path, remote: &str) -> String {
    config(
        pki,
        &End {
            side: "right",
            local: "192.0.2.2",
            theirs: "192.0.2.1",
            id: "vpn.example.com",
            cert: "server.crt".into(),
            key: "private/server.key".into(),
            remote: remote.into(),
            ts: ("10.2.0.1/32", "10.1.0.1/32"),
        },
    )
}

/// An oxswan client with the client certificate.
fn client_config(pki: &Path, client: &str) -> String {
    config(
        pki,
        &End {
            side: "left",
            local: "192.0.2.1",
            theirs: "192.0.2.2",
            id: client,
            cert: format!("clients/{client}.crt"),
            key: format!("private/clients/{client}.key"),
            remote: "id      = \"vpn.example.com\"\n".into(),
            ts: ("10.1.0.1/32", "10.2.0.1/32"),
        },
    )
}

fn pki_dir(h: &Hosts) -> PathBuf {
    h.dir.join("gw")
}

/// Two oxswan daemons authenticate each other with what `oxswan pki` made: each checks the other's
/// chain to the CA and its identity in the subjectAltNames, and traffic goes through.
#[test]
#[cfg_attr(not(have_netns), ignore = "needs root with ip, ping, iperf3")]
fn oxswan_pki_certificates_authenticate_both_ends() {
    require(&[&NETNS]);
    let mut h = Hosts::new("oxpk1");
    let dir = pki_dir(&h);
    make_pki(&dir, "alice@example.com");
    let pki = dir.join("pki");
    h.start_text("right", &gateway_config(&pki, "alice@example.com"));
    h.start_text("left", &client_config(&pki, "alice@example.com"));
    let up = h.ox("left", "up site");
    assert!(up.status.success(), "{}\n{}\n{}", String::from_utf8_lossy(&up.stderr), h.log("left"), h.log("right"));
    let right = h.status("right");
    assert_eq!(right["ike_sas"][0]["remote_id"], "alice@example.com", "{right}");
    assert_eq!(h.status("left")["ike_sas"][0]["remote_id"], "vpn.example.com");
    assert!(h.ping(3), "ping through\n{}", h.log("left"));
}

/// charon as the client: the CA in x509ca/, the client certificate and key `oxswan pki client`
/// wrote in x509/ and private/; it checks the gateway's certificate for `vpn.example.com`, the
/// gateway checks charon's, and pings go through.
#[test]
#[cfg_attr(not(all(have_netns, have_charon)), ignore = "needs root with ip, ping, iperf3, charon")]
fn charon_takes_oxswan_pki_certificates() {
    require(&[&NETNS, &CHARON]);
    let mut h = Hosts::new("oxpk2");
    let dir = pki_dir(&h);
    let client = "bob@example.com";
    make_pki(&dir, client);
    let pki = dir.join("pki");
    h.start_text("right", &gateway_config(&pki, client));
    let read = |p: PathBuf| std::fs::read(p).unwrap();
    let files = [
        ("x509ca/ca.crt", read(pki.join("ca.crt"))),
        ("x509/client.crt", read(pki.join(format!("clients/{client}.crt")))),
        ("private/client.key", read(pki.join(format!("private/clients/{client}.key")))),
    ];
    let conf = format!(
        "connections {{\n site {{\n  version = 2\n  local_addrs = 192.0.2.1\n  remote_addrs = 192.0.2.2\n  \
         proposals = aes256gcm16-prfsha256-x25519\n  local {{\n   auth = pubkey\n   certs = client.crt\n   \
         id = {client}\n  }}\n  remote {{\n   auth = pubkey\n   id = vpn.example.com\n  }}\n  children {{\n   \
         net {{\n    local_ts = 10.1.0.1/32\n    remote_ts = 10.2.0.1/32\n    esp_proposals = aes256gcm16\n   }}\n  \
         }}\n }}\n}}\n"
    );
    h.start_charon("left", &conf, &files);
    let up = h.swanctl("left", "--initiate --child net --timeout 20");
    assert!(
        up.status.success(),
        "swanctl --initiate: {}\n--- oxswan\n{}\n--- charon\n{}",
        String::from_utf8_lossy(&up.stdout),
        h.log("right"),
        h.charon_log("left")
    );
    let right = h.status("right");
    assert_eq!(right["ike_sas"][0]["remote_id"], client, "{right}");
    assert!(h.ping(3), "ping through\n{}\n{}", h.log("right"), h.charon_log("left"));
}

/// `oxswan pki revoke`: the gateway lists the CA's revocation list in `crls` and refuses the revoked
/// client's certificate (AUTHENTICATION_FAILED, logged as revoked), while a client of the same CA
/// that was not revoked gets in.
#[test]
#[cfg_attr(not(have_netns), ignore = "needs root with ip, ping, iperf3")]
fn a_revoked_client_is_refused_and_the_others_are_not() {
    require(&[&NETNS]);
    let mut h = Hosts::new("oxpk3");
    let dir = pki_dir(&h);
    make_pki(&dir, "alice@example.com");
    for args in [["client", "carol@example.com"], ["revoke", "carol@example.com"]] {
        let o = Command::new(OX).arg("pki").args(args).arg("--dir").arg(&dir).output().unwrap();
        assert!(o.status.success(), "oxswan pki {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let pki = dir.join("pki");
    h.start_text("right", &gateway_with(&pki, &format!("crls    = [\"{}/crl.pem\"]\n", pki.display())));
    // One client host with both identities, a connection each.
    let both = client_config(&pki, "carol@example.com").replace("connections.site", "connections.carol")
        + &client_config(&pki, "alice@example.com")
            .split("[connections.site]")
            .nth(1)
            .map(|rest| format!("\n[connections.site]{rest}"))
            .unwrap();
    h.start_text("left", &both);
    let carol = h.ox("left", "up carol --timeout 10");
    assert!(!carol.status.success(), "carol is revoked\n{}", h.log("right"));
    assert!(h.log("right").contains("certificate revoked"), "{}", h.log("right"));
    let alice = h.ox("left", "up site");
    assert!(alice.status.success(), "{}\n{}", String::from_utf8_lossy(&alice.stderr), h.log("right"));
    assert_eq!(h.status("right")["ike_sas"][0]["remote_id"], "alice@example.com");
    assert!(h.ping(3));
}
