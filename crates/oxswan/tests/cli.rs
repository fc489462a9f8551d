//! The command line without a daemon: `check-config` and `--help` (no root needed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::Path;
use std::process::Command;

const OX: &str = env!("CARGO_BIN_EXE_oxswan");

fn example(side: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../examples/{side}.toml"))).unwrap()
}

fn check(name: &str, text: &str) -> (bool, String, String) {
    let dir = std::env::temp_dir().join(format!("oxswan-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    let o = Command::new(OX).arg("check-config").arg(&path).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn the_examples_check_out() {
    for side in ["left", "right"] {
        let (ok, out, err) = check(side, &example(side));
        assert!(ok, "{err}");
        assert!(out.contains("1 connection(s), OK"), "{out}");
    }
}

#[test]
fn check_config_names_the_file_line_and_key() {
    let text = example("left").replace("proposals    = [\"aes256gcm16-prfsha256-x25519\"]", "proposals = [\"aes999\"]");
    let (ok, _, err) = check("badprop", &text);
    assert!(!ok);
    assert!(err.contains("badprop.toml:") && err.contains("proposals") && err.contains("aes999"), "{err}");
}

#[test]
fn check_config_refuses_what_the_daemon_would_refuse() {
    // Transport mode needs kernel ESP; a PSK connection needs a secret for its identities.
    let transport = example("left")
        .replace("esp_proposals = [\"aes256gcm16\"]", "esp_proposals = [\"aes256gcm16\"]\nmode = \"transport\"");
    let (ok, _, err) = check("transport", &transport);
    assert!(!ok && err.contains("transport"), "{err}");
    let no_secret = example("left").replace("ids    = [\"left.example\", \"right.example\"]", "ids = [\"x.example\"]");
    let (ok, _, err) = check("nosecret", &no_secret);
    assert!(!ok, "a PSK connection without a secret: {err}");
}

#[test]
fn check_config_refuses_additional_key_exchanges() {
    // IKE_INTERMEDIATE and IKE_FOLLOWUP_KE are not implemented: a `keN_` proposal would lose its ML-KEM.
    let path = |name: &str| std::env::temp_dir().join(format!("oxswan-cli-{}-{name}/{name}.toml", std::process::id()));
    let ike =
        example("left").replace("\"aes256gcm16-prfsha256-x25519\"", "\"aes256gcm16-prfsha256-x25519-ke1_mlkem768\"");
    let (ok, out, err) = check("addke-ike", &ike);
    assert!(!ok, "{out}");
    assert_eq!(
        err,
        format!(
            "oxswan: {}:9:17: connections.site.proposals: 'ke1_mlkem768' in proposal \
             'aes256gcm16-prfsha256-x25519-ke1_mlkem768': additional key exchanges (ke1_…ke7_) need \
             IKE_INTERMEDIATE (RFC 9242/9370), which oxswan does not implement yet\n",
            path("addke-ike").display()
        )
    );
    let esp = example("left").replace("[\"aes256gcm16\"]", "[\"aes256gcm16-x25519-ke1_mlkem768\"]");
    let (ok, out, err) = check("addke-esp", &esp);
    assert!(!ok, "{out}");
    assert_eq!(
        err,
        format!(
            "oxswan: {}:22:18: connections.site.children.net.esp_proposals: 'ke1_mlkem768' in proposal \
             'aes256gcm16-x25519-ke1_mlkem768': additional key exchanges (ke1_…ke7_) in an ESP proposal need \
             IKE_FOLLOWUP_KE (RFC 9370), which oxswan does not implement yet\n",
            path("addke-esp").display()
        )
    );
}

#[test]
fn help_lists_every_command() {
    let o = Command::new(OX).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    for cmd in ["daemon", "up", "down", "status", "reload", "check-config"] {
        assert!(help.contains(cmd), "{cmd} missing from --help:\n{help}");
    }
}
