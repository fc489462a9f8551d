//! The file as written: what serde reads, with the location of every value for error messages.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub(crate) type S<T> = Spanned<T>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    #[serde(default)]
    pub daemon: RawDaemon,
    #[serde(default)]
    pub connections: BTreeMap<String, S<RawConnection>>,
    #[serde(default)]
    pub secrets: RawSecrets,
    #[serde(default)]
    pub pools: BTreeMap<String, S<RawPool>>,
    pub radius: Option<S<RawRadius>>,
    pub cluster: Option<S<RawCluster>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDaemon {
    #[serde(default)]
    pub listen: Vec<S<String>>,
    pub ike_port: Option<S<u16>>,
    pub natt_port: Option<S<u16>>,
    pub listen_tcp: Option<bool>,
    pub tcp_port: Option<S<u16>>,
    pub socket: Option<S<String>>,
    pub tun: Option<S<String>>,
    pub replay_window: Option<S<u32>>,
    pub keepalive: Option<S<String>>,
    pub offload: Option<bool>,
    pub log: Option<S<String>>,
    pub retransmit_timeout: Option<S<String>>,
    pub retransmit_base: Option<S<f64>>,
    pub retransmit_tries: Option<S<u32>>,
    pub dns: Option<S<String>>,
    /// `true`, `false` or an MSS: read as a value so that a wrong type is reported at its key.
    pub clamp_mss: Option<S<toml::Value>>,
    pub fragment_size: Option<S<i64>>,
    /// A boolean, read as a value so that another type is reported at its key.
    pub drop_capabilities: Option<S<toml::Value>>,
    pub metrics: Option<S<String>>,
    pub redirect: Option<S<String>>,
    pub ticket_lifetime: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConnection {
    #[serde(default)]
    pub local_addrs: Vec<S<String>>,
    #[serde(default)]
    pub remote_addrs: Vec<S<String>>,
    #[serde(default)]
    pub proposals: Vec<S<String>>,
    pub encap: Option<bool>,
    pub dpd_delay: Option<S<String>>,
    pub dpd_action: Option<S<String>>,
    pub close_action: Option<S<String>>,
    pub rekey_time: Option<S<String>>,
    pub reauth_time: Option<S<String>>,
    pub over_time: Option<S<String>>,
    pub rand_time: Option<S<String>>,
    #[serde(default)]
    pub pools: Vec<S<String>>,
    pub unique: Option<S<String>>,
    pub mobike: Option<bool>,
    pub fragmentation: Option<bool>,
    pub tcp: Option<S<String>>,
    pub childless: Option<S<String>>,
    pub ppk_id: Option<S<String>>,
    pub ppk_required: Option<bool>,
    pub redirect: Option<S<String>>,
    pub resumption: Option<bool>,
    pub tcp_port: Option<S<u16>>,
    #[serde(default)]
    pub vips: Vec<S<String>>,
    pub local: S<RawSide>,
    pub remote: S<RawSide>,
    #[serde(default)]
    pub children: BTreeMap<String, S<RawChild>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSide {
    pub auth: S<String>,
    pub id: Option<S<String>>,
    pub eap_id: Option<S<String>>,
    #[serde(default)]
    pub certs: Vec<S<String>>,
    pub key: Option<S<String>>,
    pub rsa_pss: Option<bool>,
    #[serde(default)]
    pub cacerts: Vec<S<String>>,
    #[serde(default)]
    pub crls: Vec<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChild {
    #[serde(default)]
    pub local_ts: Vec<S<String>>,
    #[serde(default)]
    pub remote_ts: Vec<S<String>>,
    #[serde(default)]
    pub esp_proposals: Vec<S<String>>,
    pub start_action: Option<S<String>>,
    pub mode: Option<S<String>>,
    pub rekey_time: Option<S<String>>,
    pub life_time: Option<S<String>>,
    pub rand_time: Option<S<String>>,
    pub rekey_bytes: Option<S<toml::Value>>,
    pub life_bytes: Option<S<toml::Value>>,
    pub rekey_packets: Option<S<toml::Value>>,
    pub life_packets: Option<S<toml::Value>>,
    pub per_cpu_sas: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecrets {
    #[serde(default)]
    pub ike: Vec<S<RawSecret>>,
    #[serde(default)]
    pub eap: Vec<S<RawEapSecret>>,
    #[serde(default)]
    pub ppk: Vec<S<RawPpkSecret>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPpkSecret {
    pub ids: Vec<S<String>>,
    pub secret: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecret {
    pub ids: Vec<S<String>>,
    pub secret: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEapSecret {
    pub id: S<String>,
    pub secret: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPool {
    pub addrs: S<String>,
    #[serde(default)]
    pub dns: Vec<S<String>>,
    #[serde(default)]
    pub split_include: Vec<S<String>>,
    #[serde(default)]
    pub dns_domains: Vec<S<String>>,
    pub grace: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRadius {
    #[serde(default)]
    pub servers: Vec<S<RawRadiusServer>>,
    pub accounting: Option<bool>,
    pub interim: Option<S<String>>,
    pub timeout: Option<S<String>>,
    pub tries: Option<S<u32>>,
    pub nas_identifier: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRadiusServer {
    pub address: S<String>,
    pub auth_port: Option<S<u16>>,
    pub acct_port: Option<S<u16>>,
    pub secret: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCluster {
    /// Required, but optional here so that its absence is reported at `cluster.etcd`.
    pub etcd: Option<S<Vec<S<String>>>>,
    /// Required, as `etcd`.
    pub node: Option<S<String>>,
    pub ttl: Option<S<String>>,
    pub prefix: Option<S<String>>,
    pub address: Option<S<String>>,
    /// Read as any integer so that one out of range is reported with its bounds.
    pub redirect_above: Option<S<i64>>,
    pub ca: Option<S<String>>,
    pub cert: Option<S<String>>,
    pub key: Option<S<String>>,
}
