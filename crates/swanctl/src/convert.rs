//! From a resolved swanctl.conf tree to oxswan's configuration (docs/configuration.md), key by key.
//! Every key is either carried over, known to mean what oxswan does anyway (a default written out,
//! an IKEv1-only setting), or named in a [`Note`]. A connection or child whose loss of a key would
//! change who may connect (a second authentication round, a remote identity oxswan cannot match,
//! IKEv1, AH, transport mode) is left out whole, with a note saying why.

use std::path::Path;

use oxswan_wire::Identity;
use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, value};

use crate::creds::{self, Cert, Store};
use crate::settings::{Kv, Loc, Section};
use crate::values::{boolean, duration, list, seconds, secret, volume};

/// Something of the swanctl.conf that is not carried over as it is, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Where it was written.
    pub loc: Loc,
    /// The key path in swanctl.conf (`connections.site.children.net.updown`).
    pub key: String,
    /// What happened to it.
    pub message: String,
}

impl core::fmt::Display for Note {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}: {}", self.loc, self.key, self.message)
    }
}

/// The conversion's result.
#[derive(Debug, Clone)]
pub struct Import {
    /// oxswan's TOML.
    pub toml: String,
    /// What was not carried over (also listed as comments at the top of `toml`).
    pub notes: Vec<Note>,
}

/// Why a connection or child is left out.
struct Skip {
    loc: Loc,
    key: String,
    message: String,
}

fn skip(loc: &Loc, key: &str, message: impl Into<String>) -> Skip {
    Skip { loc: loc.clone(), key: key.to_owned(), message: message.into() }
}

fn strings<S: AsRef<str>>(v: &[S]) -> Item {
    Item::Value(toml_edit::Value::Array(v.iter().map(|s| s.as_ref()).collect::<Array>()))
}

/// `key = [...]` when the list has something.
fn set_list<S: AsRef<str>>(t: &mut Table, key: &str, v: &[S]) {
    if !v.is_empty() {
        t.insert(key, strings(v));
    }
}

fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Keys oxswan has no word for but whose written value is what it does anyway: a default of
/// strongSwan's that is oxswan's behaviour, or a setting strongSwan itself ignores for IKEv2.
fn harmless(section: Kind, key: &str, v: &str) -> bool {
    let is = |want: &str| v.eq_ignore_ascii_case(want);
    let off = || boolean(v) == Some(false);
    let on = || boolean(v) == Some(true);
    let zero = || seconds(v) == Some(0);
    match (section, key) {
        (Kind::Conn, "local_port" | "remote_port") => is("500"),
        // IKEv1 only (swanctl.conf(5)); strongSwan ignores them for IKEv2.
        (Kind::Conn, "aggressive" | "dpd_timeout") => true,
        (Kind::Conn, "pull") => on(),
        (Kind::Conn, "dscp") => is("000000"),
        // oxswan always sends its certificate chain and requests for its CAs.
        (Kind::Conn, "send_certreq") => on(),
        (Kind::Conn, "send_cert") => is("ifasked") || is("always"),
        (Kind::Conn, "ocsp") => is("reply"),
        (Kind::Conn, "keyingtries") => is("1"),
        (Kind::Conn, "mediation") => off(),
        (Kind::Conn, "if_id_in" | "if_id_out") => is("0"),
        (Kind::Side, "round") => is("0") || is("1"),
        (Kind::Side, "revocation") => is("relaxed"),
        (Kind::Child, "sha256_96" | "hostaccess" | "policies_fwd_out" | "ipcomp" | "mark_in_sa") => off(),
        (Kind::Child, "hw_offload") => off() || is("no"),
        (Kind::Child, "policies" | "copy_df" | "copy_ecn") => on(),
        (Kind::Child, "copy_dscp") => is("out"),
        (Kind::Child, "inactivity") => zero(),
        (Kind::Child, "reqid" | "priority" | "tfc_padding" | "if_id_in" | "if_id_out") => is("0"),
        (Kind::Child, "rand_bytes" | "rand_packets") => volume(v) == Some(0),
        (Kind::Child, "mark_in" | "mark_out" | "set_mark_in" | "set_mark_out") => {
            is("0") || is("0/0x00000000") || is("0/0")
        }
        (Kind::Child, "label_mode") => is("system"),
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Conn,
    Side,
    Child,
}

/// How a side authenticates, as oxswan names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    Psk,
    Pubkey,
    /// `eap-...` with oxswan's method name.
    Eap(&'static str),
}

impl Auth {
    fn name(self) -> &'static str {
        match self {
            Auth::Psk => "psk",
            Auth::Pubkey => "pubkey",
            Auth::Eap(m) => m,
        }
    }

    /// Whether this side signs or verifies with certificates.
    fn certificates(self) -> bool {
        matches!(self, Auth::Pubkey | Auth::Eap("eap-tls" | "eap-dynamic"))
    }
}

struct Conv {
    store: Store,
    notes: Vec<Note>,
    /// The CAs trusted when a remote side names none: x509ca/ and the authorities' certificates.
    default_cas: Vec<Cert>,
    /// Revocation lists from the authorities' `crl_uris` (files only).
    authority_crls: Vec<creds::Crl>,
    /// The pools carried over.
    pools: Vec<String>,
    /// Our identities of the PSK connections carried over, for secrets that name no identity.
    psk_ids: Vec<String>,
}

/// Converts a resolved swanctl.conf tree (`root`) read from `source`; `dir` is the swanctl
/// directory (the configuration file's), where credentials are looked up; `notes` are those of
/// the reading (includes, references), listed first.
pub fn convert(root: &Section, dir: &Path, source: &Path, notes: Vec<Note>) -> Import {
    let store = Store::load(dir);
    let default_cas = store.x509ca.clone();
    let mut c = Conv { store, notes, default_cas, authority_crls: Vec::new(), pools: Vec::new(), psk_ids: Vec::new() };
    for kv in &root.kvs {
        c.not_carried(kv, &kv.key, "a top-level setting of swanctl.conf");
    }
    for s in &root.sections {
        if !matches!(s.name.as_str(), "connections" | "secrets" | "pools" | "authorities") {
            c.note(&s.loc, &s.name, "not a section of swanctl.conf; not carried over");
        }
    }
    if let Some(a) = root.section("authorities") {
        c.authorities(a);
    }
    let mut doc = DocumentMut::new();
    if let Some(p) = root.section("pools") {
        let t = c.pools(p);
        if !t.is_empty() {
            doc.insert("pools", Item::Table(t));
        }
    }
    if let Some(conns) = root.section("connections") {
        let mut t = Table::new();
        t.set_implicit(true);
        for s in &conns.sections {
            match c.connection(s) {
                Ok(ct) => {
                    t.insert(&s.name, Item::Table(ct));
                }
                Err(why) => {
                    c.note(&why.loc, &why.key, format!("connection `{}` not carried over: {}", s.name, why.message))
                }
            }
        }
        for kv in &conns.kvs {
            c.not_carried(kv, &format!("connections.{}", kv.key), "a setting outside any connection");
        }
        if !t.is_empty() {
            doc.insert("connections", Item::Table(t));
        }
    }
    if let Some(s) = root.section("secrets") {
        let t = c.secrets(s);
        if !t.is_empty() {
            doc.insert("secrets", Item::Table(t));
        }
    }
    let mut header = format!("# Converted by `oxswan import-swanctl` from {}.\n", comment_text(&path_text(source)));
    if c.notes.is_empty() {
        header.push_str("# Every setting was carried over.\n");
    } else {
        header.push_str("# Not carried over as written:\n");
        for n in &c.notes {
            header.push_str(&format!("#   {}\n", comment_text(&n.to_string())));
        }
    }
    header.push('\n');
    Import { toml: format!("{header}{doc}"), notes: c.notes }
}

/// Text for a TOML comment: one line, control characters escaped, so that nothing of the input
/// can end the comment and become TOML.
fn comment_text(s: &str) -> String {
    s.chars().flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] }).collect()
}

impl Conv {
    fn note(&mut self, loc: &Loc, key: &str, message: impl Into<String>) {
        self.notes.push(Note { loc: loc.clone(), key: key.to_owned(), message: message.into() });
    }

    fn not_carried(&mut self, kv: &Kv, key: &str, why: &str) {
        let v = kv.value.as_deref().unwrap_or("");
        self.note(&kv.loc, key, format!("`{}` not carried over: {why}", comment_text(v)));
    }

    fn authorities(&mut self, a: &Section) {
        for s in &a.sections {
            let key = format!("authorities.{}", s.name);
            for kv in &s.kvs {
                let Some(v) = kv.value.as_deref() else { continue };
                let k = format!("{key}.{}", kv.key);
                match kv.key.as_str() {
                    "cacert" | "file" => {
                        let p =
                            if kv.key == "cacert" { creds::resolve(&self.store.dir, "x509ca", v) } else { v.into() };
                        match creds::read_cert(&p) {
                            Ok(c) => {
                                if !self.default_cas.iter().any(|d| d.der == c.der) {
                                    self.default_cas.push(c);
                                }
                            }
                            Err(e) => self.note(&kv.loc, &k, format!("{}: {e}; not carried over", p.display())),
                        }
                    }
                    "crl_uris" => {
                        for uri in list(v) {
                            match creds::crl_file(&uri).map(|p| creds::read_crl_file(&p)) {
                                Some(Ok(crl)) => self.authority_crls.push(crl),
                                Some(Err(e)) => self.note(&kv.loc, &k, format!("{uri}: {e}; not carried over")),
                                None => self.note(
                                    &kv.loc,
                                    &k,
                                    format!(
                                        "{uri}: oxswan fetches no revocation list; only file:// lists are carried over"
                                    ),
                                ),
                            }
                        }
                    }
                    _ => self.not_carried(kv, &k, "oxswan has no such authority setting"),
                }
            }
        }
    }

    fn pools(&mut self, p: &Section) -> Table {
        let mut out = Table::new();
        out.set_implicit(true);
        for s in &p.sections {
            let key = format!("pools.{}", s.name);
            let mut t = Table::new();
            let (mut dns, mut subnets, mut domains) = (Vec::new(), Vec::new(), Vec::new());
            for kv in &s.kvs {
                let Some(v) = kv.value.as_deref() else { continue };
                let k = format!("{key}.{}", kv.key);
                match kv.key.as_str() {
                    "addrs" => {
                        t.insert("addrs", value(v));
                    }
                    "dns" => dns.extend(list(v)),
                    // INTERNAL_IP4/6_SUBNET (vici_attribute.c); strongSwan's own split_include is
                    // Cisco Unity's, for IKEv1.
                    "subnet" => subnets.extend(list(v)),
                    // INTERNAL_DNS_DOMAIN (RFC 8598) by its number.
                    "25" => domains.extend(list(v)),
                    _ => self.not_carried(kv, &k, "oxswan's pools send DNS servers, subnets and DNS domains (25) only"),
                }
            }
            if !t.contains_key("addrs") {
                self.note(&s.loc, &key, "a pool without addrs (attributes only) is not carried over");
                continue;
            }
            for (name, v) in [("dns", &dns), ("split_include", &subnets), ("dns_domains", &domains)] {
                if !v.is_empty() {
                    t.insert(name, strings(v));
                }
            }
            out.insert(&s.name, Item::Table(t));
            self.pools.push(s.name.clone());
        }
        out
    }

    fn connection(&mut self, s: &Section) -> Result<Table, Skip> {
        let key = format!("connections.{}", s.name);
        let mut t = Table::new();
        let mut local_addrs = Vec::new();
        let (mut has_rekey, mut has_reauth) = (false, false);
        for kv in &s.kvs {
            let Some(v) = kv.value.as_deref() else { continue };
            let k = format!("{key}.{}", kv.key);
            match kv.key.as_str() {
                "version" => match v {
                    "0" | "2" => {}
                    "1" => return Err(skip(&kv.loc, &k, "IKEv1; oxswan speaks IKEv2 only")),
                    _ => self.not_carried(kv, &k, "not an IKE version"),
                },
                "local_addrs" | "remote_addrs" => {
                    let ips = self.addrs(kv, &k, v);
                    if kv.key == "local_addrs" {
                        local_addrs.clone_from(&ips);
                    }
                    set_list(&mut t, &kv.key, &ips);
                }
                "proposals" => {
                    let props = self.proposals(kv, &k, v, true);
                    set_list(&mut t, "proposals", &props);
                }
                "vips" => {
                    let (ips, other): (Vec<String>, Vec<String>) =
                        list(v).into_iter().partition(|a| a.parse::<core::net::IpAddr>().is_ok());
                    for o in other {
                        self.note(&kv.loc, &k, format!("`{}` not carried over: not an IP address", comment_text(&o)));
                    }
                    set_list(&mut t, "vips", &ips);
                }
                "encap" | "mobike" | "ppk_required" => match boolean(v) {
                    Some(b) => {
                        t.insert(&kv.key, value(b));
                    }
                    None => self.not_carried(kv, &k, "not yes or no"),
                },
                "fragmentation" => match v.to_ascii_lowercase().as_str() {
                    "yes" => {
                        t.insert("fragmentation", value(true));
                    }
                    "no" => {
                        t.insert("fragmentation", value(false));
                    }
                    "accept" => {
                        t.insert("fragmentation", value(false));
                        self.note(
                            &kv.loc,
                            &k,
                            "`accept` carried over as false: oxswan then sends no fragments and, as initiator, does not announce it",
                        );
                    }
                    "force" => {
                        t.insert("fragmentation", value(true));
                        self.note(&kv.loc, &k, "`force` (IKEv1 only) carried over as true");
                    }
                    _ => self.not_carried(kv, &k, "not yes, accept, force or no"),
                },
                "unique" => match v {
                    "no" | "never" | "keep" | "replace" => {
                        t.insert("unique", value(v));
                    }
                    _ => self.not_carried(kv, &k, "not never, no, keep or replace"),
                },
                // RFC 8784: the PPK's ID in [[secrets.ppk]].
                "ppk_id" => {
                    t.insert("ppk_id", value(v));
                }
                // RFC 6023; `allow` is the default.
                "childless" => match v {
                    "allow" => {}
                    "prefer" | "force" | "never" => {
                        t.insert("childless", value(v));
                    }
                    _ => self.not_carried(kv, &k, "not allow, prefer, force or never"),
                },
                "dpd_delay" => match seconds(v) {
                    Some(0) => {}
                    Some(n) => {
                        t.insert("dpd_delay", value(duration(n)));
                    }
                    None => self.not_carried(kv, &k, "not a time"),
                },
                "rekey_time" | "reauth_time" | "over_time" | "rand_time" => match seconds(v) {
                    Some(n) => {
                        has_rekey |= kv.key == "rekey_time";
                        has_reauth |= kv.key == "reauth_time" && n > 0;
                        if !(kv.key == "reauth_time" && n == 0) {
                            t.insert(&kv.key, value(duration(n)));
                        }
                    }
                    None => self.not_carried(kv, &k, "not a time"),
                },
                "pools" => {
                    let mut names = Vec::new();
                    for p in list(v) {
                        if self.pools.contains(&p) {
                            names.push(p);
                        } else {
                            self.note(
                                &kv.loc,
                                &k,
                                format!("pool `{}` not carried over: no such pool in the file (radius and dhcp pools are not)", comment_text(&p)),
                            );
                        }
                    }
                    set_list(&mut t, "pools", &names);
                }
                k2 if harmless(Kind::Conn, k2, v) => {}
                _ => self.not_carried(kv, &k, "oxswan has no such connection setting"),
            }
        }
        // swanctl.conf(5): with a reauth_time, rekey_time defaults to 0 (no rekeying); oxswan's
        // default is 4h whatever reauth_time says.
        if has_reauth && !has_rekey {
            t.insert("rekey_time", value("0"));
        }
        let mut locals = Vec::new();
        let mut remotes = Vec::new();
        let mut children = None;
        for sub in &s.sections {
            if sub.name.starts_with("local") {
                locals.push(sub);
            } else if sub.name.starts_with("remote") {
                remotes.push(sub);
            } else if sub.name == "children" {
                children = Some(sub);
            } else {
                self.note(&sub.loc, &format!("{key}.{}", sub.name), "not a section of a connection; not carried over");
            }
        }
        for (sides, what) in [(&locals, "local"), (&remotes, "remote")] {
            if let Some(second) = sides.get(1) {
                return Err(skip(
                    &second.loc,
                    &format!("{key}.{}", second.name),
                    format!("a second {what} authentication round; oxswan authenticates once"),
                ));
            }
        }
        let empty_local = Section::empty("local", &s.loc);
        let empty_remote = Section::empty("remote", &s.loc);
        let local = locals.first().copied().unwrap_or(&empty_local);
        let remote = remotes.first().copied().unwrap_or(&empty_remote);
        let (lt, lauth) = self.local_side(local, &format!("{key}.{}", local.name), &local_addrs)?;
        let (rt, rauth) = self.remote_side(remote, &format!("{key}.{}", remote.name))?;
        if let (Auth::Eap(_), Auth::Eap(_)) = (lauth, rauth) {
            return Err(skip(&remote.loc, &key, "EAP on both sides"));
        }
        let psk_id = lt.get("id").and_then(Item::as_str).filter(|_| lauth == Auth::Psk);
        if let Some(id) = psk_id.filter(|id| !self.psk_ids.iter().any(|p| p == id)) {
            self.psk_ids.push(id.to_owned());
        }
        let mut actions: [Option<(String, Loc)>; 2] = [None, None];
        if let Some(ch) = children {
            let mut ct = Table::new();
            ct.set_implicit(true);
            for child in &ch.sections {
                let ckey = format!("{key}.children.{}", child.name);
                match self.child(child, &ckey, &mut actions) {
                    Ok(c) => {
                        ct.insert(&child.name, Item::Table(c));
                    }
                    Err(why) => self.note(
                        &why.loc,
                        &why.key,
                        format!("child `{}` not carried over: {}", child.name, why.message),
                    ),
                }
            }
            for kv in &ch.kvs {
                self.not_carried(kv, &format!("{key}.children.{}", kv.key), "a setting outside any child");
            }
            for (i, name) in ["dpd_action", "close_action"].into_iter().enumerate() {
                if let Some(Some((v, _))) = actions.get(i) {
                    t.insert(name, value(v.as_str()));
                }
            }
            t.insert("local", Item::Table(lt));
            t.insert("remote", Item::Table(rt));
            if !ct.is_empty() {
                t.insert("children", Item::Table(ct));
            }
        } else {
            t.insert("local", Item::Table(lt));
            t.insert("remote", Item::Table(rt));
        }
        Ok(t)
    }

    /// IP addresses of `local_addrs`/`remote_addrs`; `%any` stands for none (any).
    fn addrs(&mut self, kv: &Kv, k: &str, v: &str) -> Vec<String> {
        let mut ips = Vec::new();
        for a in list(v) {
            if a.eq_ignore_ascii_case("%any") || a.eq_ignore_ascii_case("%any4") || a.eq_ignore_ascii_case("%any6") {
                continue;
            }
            if a.parse::<core::net::IpAddr>().is_ok() {
                ips.push(a);
            } else {
                self.note(
                    &kv.loc,
                    k,
                    format!(
                        "`{}` not carried over: oxswan takes IP addresses, not DNS names, subnets or ranges",
                        comment_text(&a)
                    ),
                );
            }
        }
        ips
    }

    /// Proposals carried as written, those oxswan cannot negotiate named and left out.
    fn proposals(&mut self, kv: &Kv, k: &str, v: &str, ike: bool) -> Vec<String> {
        let mut out = Vec::new();
        let written = list(v);
        for p in &written {
            if p.eq_ignore_ascii_case("default") {
                // strongSwan expands `default` in place; oxswan knows it only as a whole list (the
                // key left out), so it is written out where it stands among others.
                let ours =
                    if ike { oxswan_crypto::proposal::DEFAULT_IKE } else { oxswan_crypto::proposal::DEFAULT_ESP };
                if written.len() > 1 {
                    out.extend(ours.iter().map(|s| (*s).to_owned()));
                }
                self.note(
                    &kv.loc,
                    k,
                    "`default` is oxswan's default, without some of strongSwan's (3DES, SHA-1, AES-CTR, Camellia ...)",
                );
                continue;
            }
            let parsed = if ike {
                oxswan_crypto::proposal::parse_ike_proposal(p)
            } else {
                oxswan_crypto::proposal::parse_esp_proposal(p)
            };
            let p = p.clone();
            match parsed {
                Ok(_) => out.push(p),
                Err(e) => self.note(&kv.loc, k, format!("proposal `{}` not carried over: {e}", comment_text(&p))),
            }
        }
        if out.is_empty() && !written.iter().any(|p| p.eq_ignore_ascii_case("default")) {
            self.note(&kv.loc, k, "no proposal left: oxswan's default proposals apply");
        }
        out
    }

    /// `auth` as oxswan names it; `rsa_pss` when a local side's constraints ask for RSASSA-PSS.
    fn auth(&mut self, kv: Option<&Kv>, k: &str, local: bool) -> Result<(Auth, bool), Skip> {
        let Some((v, loc)) = kv.and_then(|kv| kv.value.as_deref().map(|v| (v, &kv.loc))) else {
            // swanctl.conf(5): auth defaults to pubkey.
            return Ok((Auth::Pubkey, false));
        };
        let lower = v.to_ascii_lowercase();
        if lower == "psk" {
            return Ok((Auth::Psk, false));
        }
        if ["pubkey", "rsa", "ecdsa", "ike:"].iter().any(|p| lower.starts_with(p)) {
            let pss = lower.contains("rsa/pss");
            let plain = matches!(lower.as_str(), "pubkey" | "rsa" | "ecdsa") || (local && lower == "rsa/pss");
            if !plain {
                self.note(
                    loc,
                    k,
                    format!(
                        "`{}` carried over as pubkey{}: signature scheme constraints are not carried over",
                        comment_text(v),
                        if pss && local { " with rsa_pss" } else { "" }
                    ),
                );
            }
            return Ok((Auth::Pubkey, pss && local));
        }
        let method = lower.split(':').next().unwrap_or("");
        let eap = match method {
            "eap-mschapv2" => "eap-mschapv2",
            "eap-md5" => "eap-md5",
            "eap-tls" => "eap-tls",
            "eap-dynamic" => "eap-dynamic",
            "eap-radius" if !local => "eap-radius",
            "eap" => {
                self.note(loc, k, "`eap` (any method) carried over as eap-dynamic");
                "eap-dynamic"
            }
            _ => {
                return Err(skip(
                    loc,
                    k,
                    format!(
                        "auth `{}`: oxswan has psk, pubkey, eap-mschapv2, eap-md5, eap-tls, eap-dynamic and eap-radius",
                        comment_text(v)
                    ),
                ));
            }
        };
        if method != lower {
            self.note(loc, k, format!("`{}` carried over as {eap}: constraints after `:` are not", comment_text(v)));
        }
        if eap == "eap-radius" {
            self.note(
                loc,
                k,
                "eap-radius needs a [radius] table with the servers, which strongSwan keeps in strongswan.conf (charon.plugins.eap-radius): add it by hand",
            );
        }
        Ok((Auth::Eap(eap), false))
    }

    /// An identity oxswan matches the same way, or why not.
    fn identity(v: &str) -> Result<Option<Identity>, String> {
        // Typed identities (`fqdn:`, `email:`, `asn1dn:`, `keyid:`...) and wildcards match
        // differently in strongSwan; `@#hex` is a key ID.
        let typed = v.split_once(':').is_some_and(|(t, _)| {
            ["ipv4", "ipv6", "rfc822", "email", "userfqdn", "fqdn", "dns", "asn1dn", "asn1gn", "keyid", "%"]
                .iter()
                .any(|p| t.eq_ignore_ascii_case(p))
        });
        if typed || v.contains('*') || v.starts_with("@#") {
            return Err(format!("`{}`: typed identities, key IDs and wildcards are not carried over", comment_text(v)));
        }
        oxswan_config::parse_identity(v)
    }

    fn local_side(&mut self, s: &Section, key: &str, local_addrs: &[String]) -> Result<(Table, Auth), Skip> {
        let mut t = Table::new();
        let (auth, pss) = self.auth(s.kv("auth"), &format!("{key}.auth"), true)?;
        t.insert("auth", value(auth.name()));
        let mut id: Option<Identity> = None;
        let mut cert_names: Vec<(String, Loc)> = Vec::new();
        for kv in &s.kvs {
            let Some(v) = kv.value.as_deref() else { continue };
            let k = format!("{key}.{}", kv.key);
            match kv.key.as_str() {
                "auth" => {}
                "id" => match Self::identity(v) {
                    Ok(i) => {
                        id = i;
                        if id.is_some() {
                            t.insert("id", value(v));
                        }
                    }
                    Err(why) => return Err(skip(&kv.loc, &k, why)),
                },
                "eap_id" if matches!(auth, Auth::Eap(_)) => {
                    t.insert("eap_id", value(v));
                }
                "certs" => cert_names.extend(list(v).into_iter().map(|c| (c, kv.loc.clone()))),
                k2 if harmless(Kind::Side, k2, v) => {}
                _ => self.not_carried(kv, &k, "oxswan has no such setting of our side"),
            }
        }
        for sub in &s.sections {
            // cert<suffix> { file = ... }: a certificate by absolute path.
            match sub.get("file") {
                Some(f) if sub.name.starts_with("cert") => cert_names.push((f.to_owned(), sub.loc.clone())),
                _ => self.note(&sub.loc, &format!("{key}.{}", sub.name), "not carried over (tokens and the like)"),
            }
        }
        if pss {
            t.insert("rsa_pss", value(true));
        }
        if auth == Auth::Psk && id.is_none() {
            // strongSwan's default identity is our IP address.
            match local_addrs {
                [one] => {
                    t.insert("id", value(one.as_str()));
                }
                _ => {
                    return Err(skip(
                        &s.loc,
                        &format!("{key}.id"),
                        "a PSK side without id and without one local address",
                    ));
                }
            }
        }
        let wants_cert = auth == Auth::Pubkey || auth == Auth::Eap("eap-tls") || !cert_names.is_empty();
        if wants_cert {
            let ee = self.own_certificate(&cert_names, id.as_ref(), key)?;
            match ee {
                Some(ee) => {
                    let key_file = self.store.key_for(&ee).map(|k| k.path.clone());
                    let Some(key_file) = key_file else {
                        let mut why = format!(
                            "no private key in {} matches the certificate {}",
                            creds::KEY_DIRS.map(|d| format!("{d}/")).join(", "),
                            ee.path.display()
                        );
                        for (p, e) in &self.store.unreadable_keys {
                            why.push_str(&format!("; {}: {e}", p.display()));
                        }
                        return Err(skip(&s.loc, &format!("{key}.certs"), why));
                    };
                    let chain: Vec<String> = self.store.chain(&ee).iter().map(|c| path_text(&c.path)).collect();
                    t.insert("certs", strings(&chain));
                    t.insert("key", value(path_text(&key_file)));
                }
                None if auth == Auth::Eap("eap-dynamic") => {}
                None => {
                    return Err(skip(
                        &s.loc,
                        &format!("{key}.certs"),
                        "no certificate: none named and none in x509/ for our identity with its key",
                    ));
                }
            }
        }
        Ok((t, auth))
    }

    /// Our end-entity certificate: the first named, or as charon finds one when none is named, the
    /// certificate of x509/ for our identity whose key is there.
    fn own_certificate(
        &mut self,
        names: &[(String, Loc)],
        id: Option<&Identity>,
        key: &str,
    ) -> Result<Option<Cert>, Skip> {
        let mut first = None;
        for (i, (name, loc)) in names.iter().enumerate() {
            if name.starts_with("0x") || name.starts_with("0s") {
                return Err(skip(
                    loc,
                    &format!("{key}.certs"),
                    "certificates written inline (0x/0s) are not carried over",
                ));
            }
            let p = creds::resolve(&self.store.dir, "x509", name);
            match creds::read_cert(&p) {
                Ok(c) if i == 0 => first = Some(c),
                Ok(_) => self.note(
                    loc,
                    &format!("{key}.certs"),
                    format!(
                        "{}: only the first certificate is ours; the chain is built from x509/ and x509ca/",
                        p.display()
                    ),
                ),
                Err(e) => return Err(skip(loc, &format!("{key}.certs"), format!("{}: {e}", p.display()))),
            }
        }
        if first.is_some() || !names.is_empty() {
            return Ok(first);
        }
        let found = self.store.x509.iter().find(|c| {
            !c.self_signed()
                && self.store.key_for(c).is_some()
                && id.is_none_or(|id| oxswan_ike::cert::certificate_matches(&c.der, id))
        });
        Ok(found.cloned())
    }

    fn remote_side(&mut self, s: &Section, key: &str) -> Result<(Table, Auth), Skip> {
        let mut t = Table::new();
        let (auth, _) = self.auth(s.kv("auth"), &format!("{key}.auth"), false)?;
        t.insert("auth", value(auth.name()));
        let mut ca_names: Vec<(String, Loc)> = Vec::new();
        for kv in &s.kvs {
            let Some(v) = kv.value.as_deref() else { continue };
            let k = format!("{key}.{}", kv.key);
            match kv.key.as_str() {
                "auth" => {}
                "id" => match Self::identity(v) {
                    Ok(Some(_)) => {
                        t.insert("id", value(v));
                    }
                    Ok(None) => {}
                    // Without it, oxswan would accept any identity.
                    Err(why) => return Err(skip(&kv.loc, &k, why)),
                },
                "eap_id" if matches!(auth, Auth::Eap(_)) => {
                    t.insert("eap_id", value(v));
                }
                "cacerts" => ca_names.extend(list(v).into_iter().map(|c| (c, kv.loc.clone()))),
                // Each narrows who may connect; dropped, oxswan would accept more peers.
                "groups" | "cert_policy" | "ca_id" | "certs" | "pubkeys" => {
                    return Err(skip(
                        &kv.loc,
                        &k,
                        format!("`{}`: oxswan has no such check, and would accept peers this refuses", kv.key),
                    ));
                }
                "revocation" if v.eq_ignore_ascii_case("strict") || v.eq_ignore_ascii_case("ifuri") => self.note(
                    &kv.loc,
                    &k,
                    format!("`{v}` not carried over: oxswan checks the revocation lists it has (crls) and accepts a certificate whose CA has none"),
                ),
                k2 if harmless(Kind::Side, k2, v) => {}
                _ => self.not_carried(kv, &k, "oxswan has no such setting of the peer's side"),
            }
        }
        for sub in &s.sections {
            match sub.get("file") {
                Some(f) if sub.name.starts_with("cacert") => ca_names.push((f.to_owned(), sub.loc.clone())),
                _ => {
                    return Err(skip(
                        &sub.loc,
                        &format!("{key}.{}", sub.name),
                        "a certificate on a token or pinned: not carried over, and oxswan would accept peers this refuses",
                    ));
                }
            }
        }
        if auth.certificates() {
            let mut cas = Vec::new();
            for (name, loc) in &ca_names {
                let p = creds::resolve(&self.store.dir, "x509ca", name);
                match creds::read_cert(&p) {
                    Ok(c) => cas.push(c),
                    Err(e) => return Err(skip(loc, &format!("{key}.cacerts"), format!("{}: {e}", p.display()))),
                }
            }
            if ca_names.is_empty() {
                // As charon: every CA of x509ca/ and of the authorities is trusted.
                cas.clone_from(&self.default_cas);
            }
            if cas.is_empty() && auth != Auth::Eap("eap-dynamic") {
                return Err(skip(
                    &s.loc,
                    &format!("{key}.cacerts"),
                    "no CA certificate: none named, none in x509ca/ or authorities",
                ));
            }
            if !cas.is_empty() {
                let paths: Vec<String> = cas.iter().map(|c| path_text(&c.path)).collect();
                t.insert("cacerts", strings(&paths));
                let mut crls: Vec<String> = self.store.crls_for(&cas).map(|c| path_text(&c.path)).collect();
                for c in &self.authority_crls {
                    if cas.iter().any(|ca| oxswan_ike::cert::dn_equal(&ca.subject, &c.issuer)) {
                        crls.push(path_text(&c.path));
                    }
                }
                set_list(&mut t, "crls", &crls);
            }
        }
        Ok((t, auth))
    }

    /// One child; `actions` collects the connection-wide `dpd_action` and `close_action` oxswan
    /// has where swanctl has them per child.
    fn child(&mut self, s: &Section, key: &str, actions: &mut [Option<(String, Loc)>; 2]) -> Result<Table, Skip> {
        let mut t = Table::new();
        let (mut rekey, mut life, mut rand) = (None, None, None);
        let mut volumes: [(Option<u64>, Option<u64>); 2] = [(None, None), (None, None)];
        for kv in &s.kvs {
            let Some(v) = kv.value.as_deref() else { continue };
            let k = format!("{key}.{}", kv.key);
            match kv.key.as_str() {
                "local_ts" | "remote_ts" => {
                    let written = list(v);
                    let mut kept = Vec::new();
                    for ts in &written {
                        match oxswan_config::parse_ts(ts) {
                            Ok(_) => kept.push(ts.clone()),
                            Err(_) => self.note(
                                &kv.loc,
                                &k,
                                format!("`{}` not carried over: oxswan's selectors are dynamic, addresses and subnets (no ranges, protocols or ports)", comment_text(ts)),
                            ),
                        }
                    }
                    if kept.is_empty() && !written.is_empty() {
                        return Err(skip(&kv.loc, &k, "none of its selectors can be carried over"));
                    }
                    set_list(&mut t, &kv.key, &kept);
                }
                "esp_proposals" => {
                    let props = self.proposals(kv, &k, v, false);
                    set_list(&mut t, "esp_proposals", &props);
                }
                "ah_proposals" => return Err(skip(&kv.loc, &k, "AH; oxswan has ESP only")),
                // RFC 9611 per-resource CHILD SAs, as strongSwan 6.0.2 names them.
                "per_cpu_sas" => match boolean(v) {
                    Some(true) => {
                        t.insert("per_cpu_sas", value(true));
                    }
                    Some(false) => {}
                    None => self.not_carried(kv, &k, "not yes or no"),
                },
                "mode" => {
                    if !v.eq_ignore_ascii_case("tunnel") {
                        return Err(skip(
                            &kv.loc,
                            &k,
                            format!("mode `{}`; oxswan has tunnel mode only", comment_text(v)),
                        ));
                    }
                }
                "start_action" => {
                    let words: Vec<String> = v.split('|').map(|w| w.trim().to_ascii_lowercase()).collect();
                    let start = words.iter().any(|w| w == "start" || w == "restart");
                    let trap = words.iter().any(|w| w == "trap" || w == "route");
                    match (start, trap) {
                        (true, true) => {
                            t.insert("start_action", value("start"));
                            self.note(
                                &kv.loc,
                                &k,
                                "`trap|start` carried over as start (no trap policy before it is up)",
                            );
                        }
                        (true, false) => {
                            t.insert("start_action", value("start"));
                        }
                        (false, true) => {
                            t.insert("start_action", value("trap"));
                        }
                        _ if words.iter().all(|w| w == "none" || w == "clear") => {}
                        _ => self.not_carried(kv, &k, "not none, trap or start"),
                    }
                }
                "dpd_action" | "close_action" => {
                    let i = usize::from(kv.key == "close_action");
                    let (off, on) = if i == 0 { ("clear", "restart") } else { ("none", "start") };
                    let w = v.to_ascii_lowercase();
                    let mapped = match w.as_str() {
                        "clear" | "none" => off,
                        "restart" | "start" => on,
                        "trap" | "route" => "trap",
                        _ => {
                            self.not_carried(kv, &k, "not clear, trap or restart");
                            continue;
                        }
                    };
                    match actions.get_mut(i) {
                        Some(slot @ None) => *slot = Some((mapped.to_owned(), kv.loc.clone())),
                        Some(Some((first, at))) if first != mapped => {
                            let msg = format!(
                                "oxswan's {} is the connection's: the first child's `{first}` ({at}) applies to this one too",
                                kv.key
                            );
                            self.note(&kv.loc, &k, msg);
                        }
                        _ => {}
                    }
                }
                "rekey_time" | "life_time" | "rand_time" => match seconds(v) {
                    Some(n) => match kv.key.as_str() {
                        "rekey_time" => rekey = Some(n),
                        "life_time" => life = Some(n),
                        _ => rand = Some(n),
                    },
                    None => self.not_carried(kv, &k, "not a time"),
                },
                "rekey_bytes" | "life_bytes" | "rekey_packets" | "life_packets" => match volume(v) {
                    Some(n) => {
                        let slot = volumes.get_mut(usize::from(kv.key.ends_with("packets")));
                        if let Some((r, l)) = slot {
                            if kv.key.starts_with("rekey") { *r = Some(n) } else { *l = Some(n) }
                        }
                    }
                    None => self.not_carried(kv, &k, "not an amount"),
                },
                "updown" => {
                    self.not_carried(kv, &k, "oxswan runs no updown script; it routes the remote selectors itself")
                }
                k2 if harmless(Kind::Child, k2, v) => {}
                _ => self.not_carried(kv, &k, "oxswan has no such child setting"),
            }
        }
        for sub in &s.sections {
            self.note(&sub.loc, &format!("{key}.{}", sub.name), "not a section of a child; not carried over");
        }
        // vici_config.c's check_lifetimes: without rekey_time, a life_time makes it life / 1.1, and
        // the random part defaults to life - rekey; oxswan's defaults are 1.1 × rekey and rekey / 10,
        // the same when only rekey_time is written.
        let rekey = rekey.or(life.map(|l| l * 10 / 11));
        if let Some(r) = rekey {
            t.insert("rekey_time", value(duration(r)));
        }
        if let Some(l) = life {
            t.insert("life_time", value(duration(l)));
        }
        let rand = rand.or(match (rekey, life) {
            (Some(r), Some(l)) => Some(l.saturating_sub(r)),
            _ => None,
        });
        if let Some(r) = rand {
            t.insert("rand_time", value(duration(r)));
        }
        for (i, (r, l)) in volumes.into_iter().enumerate() {
            let unit = if i == 0 { "bytes" } else { "packets" };
            let r = r.or(l.map(|l| l / 11 * 10));
            for (name, n) in [(format!("rekey_{unit}"), r), (format!("life_{unit}"), l)] {
                if let Some(n) = n {
                    t.insert(&name, value(i64::try_from(n).unwrap_or(i64::MAX)));
                }
            }
        }
        Ok(t)
    }

    fn secrets(&mut self, s: &Section) -> Table {
        let mut out = Table::new();
        out.set_implicit(true);
        let mut ike = ArrayOfTables::new();
        let mut eap = ArrayOfTables::new();
        let mut ppk = ArrayOfTables::new();
        let mut eap_ids: Vec<String> = Vec::new();
        for kv in &s.kvs {
            self.not_carried(kv, &format!("secrets.{}", kv.key), "a setting outside any secret");
        }
        for sec in &s.sections {
            let key = format!("secrets.{}", sec.name);
            let kind = ["eap", "xauth", "ntlm", "ike", "ppk", "private", "rsa", "ecdsa", "pkcs8", "pkcs12", "token"]
                .into_iter()
                .find(|p| sec.name.starts_with(p));
            match kind {
                Some("ike" | "eap") => {}
                Some("ppk") => {
                    if let Some(t) = self.ppk_secret(sec, &key) {
                        ppk.push(t);
                    }
                    continue;
                }
                Some("xauth" | "ntlm") => {
                    self.note(&sec.loc, &key, "not carried over: oxswan has no XAuth or NTLM");
                    continue;
                }
                Some("private" | "rsa" | "ecdsa" | "pkcs8" | "pkcs12") => {
                    self.note(
                        &sec.loc,
                        &key,
                        "a passphrase for a key file, not carried over: oxswan reads unencrypted keys (openssl pkey -in KEY -out PLAIN)",
                    );
                    continue;
                }
                Some(_) => {
                    self.note(&sec.loc, &key, "keys on tokens are not carried over");
                    continue;
                }
                None => {
                    self.note(&sec.loc, &key, "not a kind of secret swanctl knows; not carried over");
                    continue;
                }
            }
            let mut ids = Vec::new();
            let mut value_of = None;
            for kv in &sec.kvs {
                let Some(v) = kv.value.as_deref() else { continue };
                if kv.key == "secret" {
                    value_of = Some((v, kv));
                } else if kv.key.starts_with("id") {
                    ids.push((v.to_owned(), kv));
                } else {
                    self.not_carried(kv, &format!("{key}.{}", kv.key), "not a setting of a secret");
                }
            }
            let Some((v, skv)) = value_of else {
                self.note(&sec.loc, &key, "no secret; not carried over");
                continue;
            };
            let text = match secret(v) {
                Ok(t) if !t.is_empty() => t,
                Ok(_) => {
                    self.note(&skv.loc, &format!("{key}.secret"), "empty; not carried over");
                    continue;
                }
                Err(why) => {
                    self.note(&skv.loc, &format!("{key}.secret"), format!("not carried over: {why}"));
                    continue;
                }
            };
            if sec.name.starts_with("ike") {
                let mut owners = Vec::new();
                for (id, kv) in ids {
                    match Self::identity(&id) {
                        Ok(Some(_)) => owners.push(id),
                        Ok(None) => {}
                        Err(why) => {
                            self.note(&kv.loc, &format!("{key}.{}", kv.key), format!("not carried over: {why}"))
                        }
                    }
                }
                if owners.is_empty() {
                    // A secret for any identity: oxswan's entries name one at least, and one
                    // naming ours alone serves any peer.
                    if self.psk_ids.is_empty() {
                        self.note(
                            &sec.loc,
                            &key,
                            "a secret for any identity, and no PSK connection to give it to; not carried over",
                        );
                        continue;
                    }
                    owners.clone_from(&self.psk_ids);
                    self.note(
                        &sec.loc,
                        &key,
                        format!("a secret for any identity, carried over for our identities {}", owners.join(", ")),
                    );
                }
                let mut t = Table::new();
                t.insert("ids", strings(&owners));
                t.insert("secret", value(text));
                ike.push(t);
            } else {
                if ids.is_empty() {
                    self.note(
                        &sec.loc,
                        &key,
                        "an EAP secret for any identity; oxswan names each user; not carried over",
                    );
                    continue;
                }
                for (id, kv) in ids {
                    if eap_ids.contains(&id) {
                        self.note(
                            &kv.loc,
                            &format!("{key}.{}", kv.key),
                            format!("`{}` has a secret already; not carried over", comment_text(&id)),
                        );
                        continue;
                    }
                    let mut t = Table::new();
                    t.insert("id", value(id.as_str()));
                    t.insert("secret", value(text.as_str()));
                    eap.push(t);
                    eap_ids.push(id);
                }
            }
        }
        if !ike.is_empty() {
            out.insert("ike", Item::ArrayOfTables(ike));
        }
        if !eap.is_empty() {
            out.insert("eap", Item::ArrayOfTables(eap));
        }
        if !ppk.is_empty() {
            out.insert("ppk", Item::ArrayOfTables(ppk));
        }
        out
    }

    /// A `secrets.ppk*` section as a `[[secrets.ppk]]` entry (RFC 8784): its `id*` keys and its
    /// secret, written as `0x` hex when it is not text.
    fn ppk_secret(&mut self, sec: &Section, key: &str) -> Option<Table> {
        let mut ids = Vec::new();
        let mut secret_text = None;
        for kv in &sec.kvs {
            let Some(v) = kv.value.as_deref() else { continue };
            if kv.key == "secret" {
                secret_text = Some((v, kv));
            } else if kv.key.starts_with("id") {
                ids.push(v.to_owned());
            } else {
                self.not_carried(kv, &format!("{key}.{}", kv.key), "not a setting of a secret");
            }
        }
        let Some((v, kv)) = secret_text else {
            self.note(&sec.loc, key, "no secret; not carried over");
            return None;
        };
        if ids.is_empty() {
            self.note(&sec.loc, key, "a PPK without an ID; oxswan names each; not carried over");
            return None;
        }
        let text = match crate::values::secret_octets(v) {
            Ok(b) if b.is_empty() => {
                self.note(&kv.loc, &format!("{key}.secret"), "empty; not carried over");
                return None;
            }
            Ok(b) => match String::from_utf8(b) {
                Ok(s) if !s.starts_with("0x") && !s.starts_with("0X") => s,
                Ok(s) => format!("0x{}", hex::encode(s.as_bytes())),
                Err(e) => format!("0x{}", hex::encode(e.as_bytes())),
            },
            Err(why) => {
                self.note(&kv.loc, &format!("{key}.secret"), format!("not carried over: {why}"));
                return None;
            }
        };
        let mut t = Table::new();
        t.insert("ids", strings(&ids));
        t.insert("secret", value(text));
        Some(t)
    }
}
