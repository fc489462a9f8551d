//! An oxswan client configuration for Linux: a connection `vpn` to the gateway that asks for a
//! virtual IP address (and an IPv6 one when the gateway lends them) and sends all traffic through
//! the tunnel.

use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, value};

use crate::suites::LINUX;
use crate::{Client, Credential, Gateway, ProfileError};

/// The files the configuration names, relative to its own directory (oxswan takes relative names
/// from beside the configuration file).
#[derive(Debug, Clone)]
pub struct LinuxFiles {
    /// The CA certificate (PEM).
    pub ca: String,
    /// A certificate client's certificate and key (PEM).
    pub cert_and_key: Option<(String, String)>,
}

fn strings<'a>(v: impl IntoIterator<Item = &'a str>) -> Item {
    value(v.into_iter().collect::<Array>())
}

/// The configuration for `client` of `gateway`. It holds a password client's password
/// (`[[secrets.eap]]`), so it is as secret as the password.
pub fn oxswan_toml(gateway: &Gateway, client: &Client, files: &LinuxFiles) -> Result<String, ProfileError> {
    if gateway.addresses.is_empty() {
        return Err(ProfileError::NoAddress(gateway.name.clone()));
    }
    let addrs: Vec<String> = gateway.addresses.iter().map(ToString::to_string).collect();
    let mut doc = DocumentMut::new();
    doc.decor_mut().set_prefix(format!(
        "# oxswan client of the VPN {} for {}, made by `oxswan client add`.\n\
         # Start it as root with `oxswan daemon --config THIS-FILE`; the tunnel comes up at once\n\
         # and takes all traffic; `oxswan status` shows it, `oxswan down vpn` ends it.\n\n",
        gateway.name, client.name
    ));
    let mut daemon = Table::new();
    daemon.insert("tun", value("oxswan0"));
    doc.insert("daemon", Item::Table(daemon));

    let mut conn = Table::new();
    conn.insert("remote_addrs", strings(addrs.iter().map(String::as_str)));
    conn.insert("proposals", strings([LINUX.ike]));
    let vips: &[&str] = if gateway.ipv6 { &["0.0.0.0", "::"] } else { &["0.0.0.0"] };
    conn.insert("vips", strings(vips.iter().copied()));

    let mut local = Table::new();
    let mut secrets = None;
    match &client.credential {
        Credential::Password { user, password } => {
            local.insert("auth", value("eap-mschapv2"));
            local.insert("id", value(user.as_str()));
            local.insert("eap_id", value(user.as_str()));
            let mut entry = Table::new();
            entry.insert("id", value(user.as_str()));
            entry.insert("secret", value(password.as_str()));
            let mut eap = ArrayOfTables::new();
            eap.push(entry);
            let mut s = Table::new();
            s.set_implicit(true);
            s.insert("eap", Item::ArrayOfTables(eap));
            secrets = Some(s);
        }
        Credential::Certificate { id, .. } => {
            let Some((cert, key)) = &files.cert_and_key else {
                return Err(ProfileError::BadValue {
                    what: "client",
                    value: client.name.clone(),
                    why: "a certificate client needs its certificate and key files",
                });
            };
            local.insert("auth", value("pubkey"));
            local.insert("id", value(id.as_str()));
            local.insert("certs", strings([cert.as_str()]));
            local.insert("key", value(key.as_str()));
        }
    }
    let mut remote = Table::new();
    remote.insert("auth", value("pubkey"));
    remote.insert("id", value(gateway.name.as_str()));
    remote.insert("cacerts", strings([files.ca.as_str()]));

    let mut child = Table::new();
    child.insert("local_ts", strings(["dynamic"]));
    let all: &[&str] = if gateway.ipv6 { &["0.0.0.0/0", "::/0"] } else { &["0.0.0.0/0"] };
    child.insert("remote_ts", strings(all.iter().copied()));
    child.insert("esp_proposals", strings([LINUX.esp]));
    child.insert("start_action", value("start"));
    let mut children = Table::new();
    children.set_implicit(true);
    children.insert("vpn", Item::Table(child));

    conn.insert("local", Item::Table(local));
    conn.insert("remote", Item::Table(remote));
    conn.insert("children", Item::Table(children));
    let mut connections = Table::new();
    connections.set_implicit(true);
    connections.insert("vpn", Item::Table(conn));
    doc.insert("connections", Item::Table(connections));
    if let Some(s) = secrets {
        doc.insert("secrets", Item::Table(s));
    }
    Ok(doc.to_string())
}
