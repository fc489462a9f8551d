//! The command line without a daemon: `check-config` and `--help` (no root needed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::Path;
use std::process::Command;

#[path = "common/prereq.rs"]
mod prereq;
use prereq::{BASH, MAN, OPENSSL, require};

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
    assert!(
        !ok && err.contains("transport.toml:23:8: connections.site.children.net.mode: `transport` needs kernel ESP"),
        "{err}"
    );
    let no_secret = example("left").replace("ids    = [\"left.example\", \"right.example\"]", "ids = [\"x.example\"]");
    let (ok, _, err) = check("nosecret", &no_secret);
    assert!(!ok, "a PSK connection without a secret: {err}");
}

#[test]
fn check_config_takes_additional_key_exchanges() {
    // IKE_INTERMEDIATE and IKE_FOLLOWUP_KE make them, for IKE and CHILD SAs.
    let both = example("left")
        .replace("\"aes256gcm16-prfsha256-x25519\"", "\"aes256gcm16-prfsha256-x25519-ke1_mlkem768\"")
        .replace("[\"aes256gcm16\"]", "[\"aes256gcm16-x25519-ke1_mlkem768\"]");
    assert!(both.contains("ke1_mlkem768\"]") && both.matches("ke1_mlkem768").count() == 2);
    let (ok, out, err) = check("addke", &both);
    assert!(ok, "{out}{err}");
}

#[test]
fn help_lists_every_command() {
    let o = Command::new(OX).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    for cmd in ["daemon", "up", "down", "status", "reload", "check-config", "pki", "import-swanctl"] {
        assert!(help.contains(cmd), "{cmd} missing from --help:\n{help}");
    }
}

/// `oxswan pki`: a CA, the gateway's certificate and a client's, as files (keys 0600 in a 0700
/// directory); openssl, which shares no code with rcgen, verifies both against the CA for their
/// purposes and reads the gateway's names and key usages; nothing is ever overwritten.
#[test]
#[cfg_attr(not(have_openssl), ignore = "needs openssl")]
fn pki_makes_a_ca_and_certificates_that_openssl_verifies() {
    use std::os::unix::fs::PermissionsExt as _;
    require(&[&OPENSSL]);
    let dir = std::env::temp_dir().join(format!("oxswan-cli-pki-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    let ox = |args: &[&str]| Command::new(OX).arg("pki").args(args).args(["--dir", d]).output().unwrap();
    let ok = |args: &[&str]| {
        let o = ox(args);
        assert!(o.status.success(), "oxswan pki {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(ok(&["init"]).contains("next: oxswan pki server"));
    assert!(
        Command::new("openssl")
            .args(["crl", "-noout", "-text", "-in"])
            .arg(dir.join("pki/crl.pem"))
            .output()
            .unwrap()
            .stdout
            .windows(21)
            .any(|w| w == b"No Revoked Certificat"),
        "an empty list from the start"
    );
    ok(&["server", "--name", "vpn.example.com", "--address", "192.0.2.2"]);
    ok(&["client", "alice@example.com", "--rsa"]);
    let mode = |p: &str| std::fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("pki/private"), 0o700);
    for key in ["pki/private/ca.key", "pki/private/server.key", "pki/private/clients/alice@example.com.key"] {
        assert_eq!(mode(key), 0o600, "{key}");
    }
    let openssl = |args: &str| {
        let o = Command::new("sh").args(["-c", &format!("cd {d}/pki && openssl {args}")]).output().unwrap();
        assert!(o.status.success(), "openssl {args}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(openssl("verify -CAfile ca.crt -purpose sslserver server.crt").contains("server.crt: OK"));
    let client = "clients/alice@example.com.crt";
    assert!(openssl(&format!("verify -CAfile ca.crt -purpose sslclient {client}")).contains(": OK"));
    let ext = openssl("x509 -in server.crt -noout -ext subjectAltName,extendedKeyUsage,keyUsage");
    assert!(ext.contains("DNS:vpn.example.com, IP Address:192.0.2.2, DNS:192.0.2.2"), "{ext}");
    assert!(ext.contains("TLS Web Server Authentication, ipsec Internet Key Exchange"), "{ext}");
    assert!(ext.contains("Digital Signature"), "{ext}");
    assert!(openssl("x509 -in server.crt -noout -text").contains("id-ecPublicKey"));
    let text = openssl(&format!("x509 -in {client} -noout -text"));
    assert!(text.contains("rsaEncryption") && text.contains("(3072 bit)") && text.contains("email:alice@example.com"));
    assert!(openssl("x509 -in ca.crt -noout -text").contains("CA:TRUE"));
    // The private keys parse (PKCS#8).
    openssl("pkey -in private/server.key -noout");
    // Never overwritten; a bad name is refused before anything is written.
    let before = std::fs::read(dir.join("pki/ca.crt")).unwrap();
    let again = ox(&["init"]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("exists already"));
    assert_eq!(std::fs::read(dir.join("pki/ca.crt")).unwrap(), before);
    let again = ox(&["server", "--name", "vpn.example.com"]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("server.crt exists already"));
    for bad in ["../evil", "a b", ".hidden", "x\u{1}@y", "a\nb"] {
        let o = ox(&["client", bad]);
        assert!(!o.status.success(), "{bad}");
    }
    assert!(!dir.join("evil.crt").exists() && !dir.join("pki/evil.crt").exists());
    // Revocation: the list names alice's serial, and openssl refuses her certificate with it.
    let out = ok(&["revoke", "alice@example.com"]);
    assert!(out.contains("crl.pem lists 1 certificate(s)"), "{out}");
    let serial = openssl(&format!("x509 -in {client} -noout -serial"));
    let serial = serial.trim().trim_start_matches("serial=").to_owned();
    let crl = openssl("crl -in crl.pem -noout -text");
    assert!(crl.contains(&format!("Serial Number: {serial}")), "{serial} not in\n{crl}");
    assert!(crl.contains("Issuer: CN = oxswan CA"), "{crl}");
    let refused = Command::new("sh")
        .args(["-c", &format!("cd {d}/pki && openssl verify -crl_check -CAfile ca.crt -CRLfile crl.pem {client}")])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stdout).into_owned() + &String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && said.contains("certificate revoked"), "{said}");
    assert!(openssl("verify -crl_check -CAfile ca.crt -CRLfile crl.pem server.crt").contains("OK"));
    // Again: nothing more on the list, which is made anew with a larger number (and so mends a
    // list a failed revocation did not write).
    let number =
        |crl: &str| crl.lines().skip_while(|l| !l.contains("X509v3 CRL Number")).nth(1).map(|l| l.trim().to_owned());
    let first = number(&crl).unwrap();
    let again = ok(&["revoke", "alice@example.com"]);
    assert!(again.contains("was revoked already") && again.contains("lists 1 certificate(s)"), "{again}");
    let crl2 = openssl("crl -in crl.pem -noout -text");
    assert_ne!(number(&crl2).unwrap(), first, "{crl2}");
    // A revoked.txt with a time no list can say is refused, not a crash.
    std::fs::write(dir.join("pki/revoked.txt"), "00ff -62200000000 x\n").unwrap();
    let o = ox(&["revoke", "alice@example.com"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("revoked.txt:1: not `SERIAL-HEX UNIX-TIME NAME`"));
    assert!(!ox(&["revoke", "nobody"]).status.success());
    let no_ca = Command::new(OX).args(["pki", "server", "--name", "x.example", "--dir", &format!("{d}/none")]).output();
    let no_ca = no_ca.unwrap();
    assert!(String::from_utf8_lossy(&no_ca.stderr).contains("make the CA first: oxswan pki init"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The subcommands `--help` lists (clap's own `help` aside), and under each one with subcommands of
/// its own, theirs: `pki init` ... What the completions and the man page must cover, read from the
/// binary itself, so that a subcommand added later is checked without touching this test.
fn subcommands(path: &[&str]) -> Vec<Vec<String>> {
    let o = Command::new(OX).args(path).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut out = Vec::new();
    let listed =
        help.split("\nCommands:\n").nth(1).map(|rest| rest.split("\n\n").next().unwrap_or_default().to_owned());
    for line in listed.unwrap_or_default().lines() {
        let Some(name) = line.split_whitespace().next() else { continue };
        if name == "help" || !line.starts_with("  ") || line.starts_with("   ") {
            continue;
        }
        let mut sub: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
        sub.push(name.to_owned());
        out.push(sub.clone());
        let refs: Vec<&str> = sub.iter().map(String::as_str).collect();
        out.extend(subcommands(&refs));
    }
    out
}

/// bash's completions of `words` (the last one being completed) from `oxswan completions bash`,
/// as bash's programmable completion would call them.
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let line = words.join(" ");
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let prog = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT={}; \
         _oxswan oxswan '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words.len() - 1,
        line.len(),
        words.last().unwrap(),
        words.get(words.len().wrapping_sub(2)).unwrap_or(&"oxswan"),
    );
    let o = Command::new("bash").args(["--norc", "-c", &prog]).output().unwrap();
    assert!(o.status.success(), "{prog}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).lines().map(str::to_owned).collect()
}

/// `oxswan completions bash` is a script bash parses; completing `oxswan st` offers `status` alone,
/// every subcommand is offered after `oxswan ` (and `pki`'s after `oxswan pki `), options too
/// (`oxswan status --j` → `--json`); the other shells' scripts name every subcommand.
#[test]
#[cfg_attr(not(have_bash), ignore = "needs bash")]
fn shell_completions_offer_every_command() {
    require(&[&BASH]);
    let dir = std::env::temp_dir().join(format!("oxswan-cli-completions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("oxswan.bash");
    let o = Command::new(OX).args(["completions", "bash"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(&script, &o.stdout).unwrap();
    let syntax = Command::new("bash").arg("-n").arg(&script).output().unwrap();
    assert!(syntax.status.success(), "bash -n: {}", String::from_utf8_lossy(&syntax.stderr));

    assert_eq!(bash_complete(&script, &["oxswan", "st"]), ["status"]);
    assert_eq!(bash_complete(&script, &["oxswan", "status", "--j"]), ["--json"]);
    let subs = subcommands(&[]);
    assert!(subs.len() >= 15, "{subs:?}");
    for sub in &subs {
        // A subcommand is offered after its parents: `oxswan `, `oxswan pki `, `oxswan client `.
        let mut words = vec!["oxswan"];
        words.extend(sub.iter().take(sub.len() - 1).map(String::as_str));
        words.push("");
        let offered = bash_complete(&script, &words);
        assert!(offered.contains(sub.last().unwrap()), "{sub:?} not offered: {offered:?}");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let o = Command::new(OX).args(["completions", shell]).output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success() && subs.iter().all(|s| text.contains(s.last().unwrap().as_str())), "{shell}");
    }
    let bad = Command::new(OX).args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2), "an unknown shell is a usage error");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `oxswan man` is one page, oxswan(8), that groff formats without a warning and man renders; it
/// holds every subcommand (`oxswan pki init` ...) with its options, and the signals and files.
/// `--dir` writes the same page to DIR/oxswan.8.
#[test]
#[cfg_attr(not(have_man), ignore = "needs man-db, groff")]
fn the_man_page_renders_and_holds_every_command() {
    require(&[&MAN]);
    let dir = std::env::temp_dir().join(format!("oxswan-cli-man-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let o = Command::new(OX).arg("man").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let written = Command::new(OX).args(["man", "--dir"]).arg(&dir).output().unwrap();
    assert!(written.status.success(), "{}", String::from_utf8_lossy(&written.stderr));
    let page = dir.join("oxswan.8");
    assert_eq!(std::fs::read(&page).unwrap(), o.stdout, "--dir writes the page it prints");
    assert!(String::from_utf8_lossy(&o.stdout).starts_with(".ie \\n(.g .ds Aq"), "roff");

    let groff = Command::new("groff").args(["-man", "-k", "-Tutf8", "-ww", "-z"]).arg(&page).output().unwrap();
    assert!(groff.status.success() && groff.stderr.is_empty(), "groff: {}", String::from_utf8_lossy(&groff.stderr));
    let man = Command::new("man").arg("-l").arg(&page).env("MANWIDTH", "100").env("MANPAGER", "cat").output().unwrap();
    assert!(man.status.success(), "man -l: {}", String::from_utf8_lossy(&man.stderr));
    let text = String::from_utf8_lossy(&man.stdout).into_owned();
    assert!(text.starts_with("oxswan(8)"), "{text}");
    for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "FILES", "SIGNALS", "ENVIRONMENT"] {
        assert!(text.lines().any(|l| l == section), "no {section} section:\n{text}");
    }
    let subs = subcommands(&[]);
    for sub in &subs {
        let heading = format!("   oxswan {}", sub.join(" "));
        assert!(text.lines().any(|l| l == heading), "no {heading:?} in the page:\n{text}");
    }
    // Options under their command, e.g. up's --timeout with its default.
    assert!(text.contains("--timeout <TIMEOUT> [default: 30]"), "{text}");
    assert!(text.contains("--socket <SOCKET>"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `check-config` refuses what the daemon would refuse at start (issue 18): a log filter its
/// parser rejects, at its file:line:column and key, and a file that leaves no address to listen on.
#[test]
fn check_config_refuses_what_the_daemon_refuses() {
    let text = example("left").replace("[daemon]\n", "[daemon]\nlog = \"info,ike=shouting\"\n");
    let (ok, _, err) = check("badlog", &text);
    assert!(!ok);
    assert!(err.contains("badlog.toml:3:7: daemon.log: `info,ike=shouting` is not a log filter"), "{err}");
    let (ok, out, err) = check("empty", "");
    assert!(!ok, "{out}");
    assert!(err.contains("no address to listen on"), "{err}");
}
