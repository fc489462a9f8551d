//! From the configuration to the engine's connection settings: reads certificate and key files, and
//! hands the secrets to the engine, which looks a PSK up by both identities when it authenticates.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use oxswan_config::{AuthKind, Config, Connection, EapId, EapKind};
use oxswan_crypto::CryptoProvider;
use oxswan_eap::MethodType;
use oxswan_ike::cert::{LocalCert, TrustStore, parse_certificates};
use oxswan_ike::child::ChildConfig;
use oxswan_ike::config::{EapClient, EapRelay, EapServer};
use oxswan_ike::leases::{MemoryLeases, PoolAttributes};
use oxswan_ike::{LocalAuth, PeerConfig, RemoteAuth, Retransmit, Unique};
use oxswan_wire::Identity;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

fn read(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

pub(crate) fn private_key(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    if bytes.starts_with(b"-----") {
        let key = PrivateKeyDer::from_pem_slice(bytes).context("no private key in the PEM file")?;
        return Ok(key.secret_der().to_vec());
    }
    Ok(bytes.to_vec())
}

/// Our certificate chain (end entity first) and private key (DER) of connection `c`.
fn own_certificate(c: &Connection) -> anyhow::Result<(Vec<Vec<u8>>, Vec<u8>)> {
    let mut chain = Vec::new();
    for p in &c.local.certs {
        chain.extend(parse_certificates(&read(p)?).with_context(|| format!("{}", p.display()))?);
    }
    let key_path = c.local.key.as_ref().with_context(|| format!("connection {}: no local key", c.name))?;
    let key = private_key(&read(key_path)?).with_context(|| format!("{}", key_path.display()))?;
    Ok((chain, key))
}

/// The CA certificates in these files.
fn ca_certificates(paths: &[std::path::PathBuf]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut cas = Vec::new();
    for p in paths {
        cas.extend(parse_certificates(&read(p)?).with_context(|| format!("{}", p.display()))?);
    }
    Ok(cas)
}

fn revocation_lists(paths: &[std::path::PathBuf]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut crls = Vec::new();
    for p in paths {
        crls.extend(oxswan_ike::cert::parse_crls(&read(p)?).with_context(|| format!("{}", p.display()))?);
    }
    Ok(crls)
}

/// Builds every connection as the daemon would, reading the certificates, keys and secrets they
/// name: what `check-config` and the `client` commands check a configuration with.
pub fn check(config: &Config) -> anyhow::Result<()> {
    let provider = oxswan_crypto::default_provider_with(config.needs_modp1024());
    for conn in &config.connections {
        peer_config(&provider, config, conn)?;
    }
    Ok(())
}

/// The engine's settings for one connection.
pub fn peer_config(provider: &CryptoProvider, config: &Config, c: &Connection) -> anyhow::Result<PeerConfig> {
    let ctx = || format!("connection {}", c.name);
    let local_auth = match c.local.auth {
        AuthKind::Psk => {
            // A connection without any key that could serve it is an error at load, not at the
            // first handshake.
            let id = c.local.id.as_ref().with_context(ctx)?;
            config.psk_for(id, c.remote.id.as_ref()).with_context(ctx)?;
            LocalAuth::SharedKey
        }
        AuthKind::Pubkey => {
            let (chain, key) = own_certificate(c)?;
            LocalAuth::Cert(Arc::new(
                LocalCert::new(provider, chain, &key).with_context(|| format!("{}: certificate and key", c.name))?,
            ))
        }
        AuthKind::Eap(kind) => {
            // EAP-TLS needs our certificate and the gateway's CAs (its TLS server certificate must
            // chain to them, RFC 5216 §5.3), and checks the gateway's name.
            let tls = if matches!(kind, EapKind::Tls | EapKind::Dynamic) && c.local.key.is_some() {
                let (cert_chain, key) = own_certificate(c)?;
                let server_name = c.remote.id.as_ref().and_then(|id| match id {
                    Identity::Fqdn(n) => Some(n.clone()),
                    Identity::Ipv4(a) => Some(a.to_string()),
                    Identity::Ipv6(a) => Some(a.to_string()),
                    _ => None,
                });
                Some(oxswan_eap::TlsPeerConfig {
                    cert_chain,
                    key: key.into(),
                    server_cas: ca_certificates(&c.remote.cacerts)?,
                    server_name,
                    ..Default::default()
                })
            } else {
                None
            };
            LocalAuth::Eap(EapClient {
                identity: c.local.eap_identity(),
                methods: match kind {
                    EapKind::Mschapv2 => vec![MethodType::MsChapV2],
                    EapKind::Md5 => vec![MethodType::Md5],
                    EapKind::Tls => vec![MethodType::Tls],
                    // Whatever the gateway asks for among the methods we have secrets for.
                    EapKind::Dynamic => {
                        let mut m = vec![MethodType::MsChapV2, MethodType::Md5];
                        m.extend(tls.is_some().then_some(MethodType::Tls));
                        m
                    }
                    EapKind::Radius => bail!("{}: local auth = \"{kind}\": only a gateway relays EAP", c.name),
                },
                tls,
            })
        }
    };
    let local_id = match (&c.local.id, &local_auth) {
        (Some(id), _) => id.clone(),
        (None, LocalAuth::Cert(cert)) => cert.subject_identity()?,
        (None, LocalAuth::Psk(_) | LocalAuth::SharedKey) => bail!("{}: a PSK needs our identity", c.name),
        // EAP-TLS without an id: our certificate's subject, as strongSwan.
        (None, LocalAuth::Eap(EapClient { tls: Some(tls), .. })) => {
            LocalCert::new(provider, tls.cert_chain.clone(), &tls.key)
                .with_context(|| format!("{}: certificate and key", c.name))?
                .subject_identity()?
        }
        (None, LocalAuth::Eap(_)) => bail!("{}: an EAP client needs our identity (local id)", c.name),
    };
    let remote_auth = match c.remote.auth {
        AuthKind::Psk => {
            config.psk_for(&local_id, c.remote.id.as_ref()).with_context(ctx)?;
            RemoteAuth::SharedKey
        }
        AuthKind::Pubkey => {
            let crls = revocation_lists(&c.remote.crls)?;
            RemoteAuth::Cert(
                TrustStore::new(&ca_certificates(&c.remote.cacerts)?)
                    .and_then(|t| t.with_crls(&crls))
                    .with_context(ctx)?,
            )
        }
        AuthKind::Eap(EapKind::Radius) => RemoteAuth::EapRelay(EapRelay {
            ask_identity: c.remote.eap_id.is_some(),
            identity: match &c.remote.eap_id {
                Some(EapId::Name(n)) => Some(n.clone()),
                _ => None,
            },
            // Every server tried `tries` times, `timeout` apart, and a margin.
            wait: config.radius.as_ref().map_or(core::time::Duration::ZERO, |r| {
                let sends = r.tries.max(1).saturating_mul(u32::try_from(r.servers.len()).unwrap_or(u32::MAX));
                r.timeout.saturating_mul(sends).saturating_add(core::time::Duration::from_secs(5))
            }),
        }),
        AuthKind::Eap(kind) => {
            // EAP-TLS: the TLS server's certificate is our IKE one; clients' chain to cacerts.
            let tls = if matches!(kind, EapKind::Tls | EapKind::Dynamic) && !c.remote.cacerts.is_empty() {
                let (cert_chain, key) = own_certificate(c)?;
                Some(oxswan_eap::TlsServerConfig {
                    cert_chain,
                    key: key.into(),
                    client_cas: ca_certificates(&c.remote.cacerts)?,
                    ..Default::default()
                })
            } else {
                None
            };
            RemoteAuth::Eap(EapServer {
                methods: match kind {
                    EapKind::Mschapv2 => vec![MethodType::MsChapV2],
                    EapKind::Md5 => vec![MethodType::Md5],
                    EapKind::Tls => vec![MethodType::Tls],
                    // strongSwan's eap-dynamic: our preference first, the client may Nak to another.
                    EapKind::Dynamic => {
                        let mut m = vec![MethodType::MsChapV2, MethodType::Md5];
                        m.extend(tls.is_some().then_some(MethodType::Tls));
                        m
                    }
                    EapKind::Radius => vec![],
                },
                ask_identity: c.remote.eap_id.is_some(),
                identity: match &c.remote.eap_id {
                    Some(EapId::Name(n)) => Some(n.clone()),
                    _ => None,
                },
                tls,
                eap_only: false,
            })
        }
    };
    Ok(PeerConfig {
        name: c.name.clone(),
        ike_proposals: c.proposals.clone(),
        prefer_initiator: false,
        local_id,
        remote_id: c.remote.id.clone(),
        local_auth,
        remote_auth,
        rsa_pss: c.local.rsa_pss,
        children: c
            .children
            .iter()
            .map(|ch| ChildConfig {
                per_cpu_sas: ch.per_cpu_sas,
                name: ch.name.clone(),
                esp_proposals: ch.esp_proposals.clone(),
                local_ts: ch.local_ts.clone(),
                remote_ts: ch.remote_ts.clone(),
                mode: ch.mode,
                lifetime: oxswan_ike::child::ChildLifetime {
                    rekey_time: ch.rekey_time,
                    rand_time: ch
                        .rand_time
                        .unwrap_or_else(|| ch.rekey_time.map_or(core::time::Duration::ZERO, |r| r / 10)),
                    life_time: ch.life_time,
                },
                volume: oxswan_ike::volume::VolumeLimits {
                    rekey_bytes: ch.rekey_bytes,
                    rekey_packets: ch.rekey_packets,
                    life_bytes: ch.life_bytes,
                    life_packets: ch.life_packets,
                },
            })
            .collect(),
        retransmit: Retransmit {
            timeout: config.daemon.retransmit_timeout,
            base: config.daemon.retransmit_base,
            tries: config.daemon.retransmit_tries,
        },
        ike_lifetime: ike_lifetime(c),
        initial_contact: true,
        // The kernel here has no ESP: ESP travels in UDP to port 4500 on our user-space data plane, so
        // encapsulation is always on, as with strongSwan's kernel-libipsec (RFC 7296 §2.23 allows
        // faking NAT detection for this).
        force_encap: true,
        dpd_delay: c.dpd_delay,
        pools: c.pools.clone(),
        vips: c.vips.clone(),
        unique: match c.unique {
            oxswan_config::Unique::No => Unique::No,
            oxswan_config::Unique::Never => Unique::Never,
            oxswan_config::Unique::Replace => Unique::Replace,
            oxswan_config::Unique::Keep => Unique::Keep,
        },
        fragmentation: c.fragmentation,
        tcp: oxswan_ike::TcpConfig { mode: c.tcp, port: c.tcp_port },
        mobike: c.mobike,
        childless: c.childless,
        ppk_id: c.ppk_id.as_ref().map(|i| i.as_bytes().to_vec()),
        ppk_required: c.ppk_required,
        redirect: c.redirect.clone(),
        resumption: c.resumption,
        remote_addrs: c.remote_addrs.clone(),
    })
}

/// The IKE SA's lifetimes with strongSwan's defaults: `rand_time` and `over_time` a tenth of the
/// rekey or reauthentication time, whichever comes first.
fn ike_lifetime(c: &oxswan_config::Connection) -> oxswan_ike::IkeLifetime {
    let base = match (c.rekey_time, c.reauth_time) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let tenth = base.map_or(core::time::Duration::ZERO, |d| d / 10);
    oxswan_ike::IkeLifetime {
        rekey_time: c.rekey_time,
        reauth_time: c.reauth_time,
        rand_time: c.rand_time.unwrap_or(tenth),
        over_time: base.map(|_| c.over_time.unwrap_or(tenth)),
    }
}

/// The configuration's `[[secrets.ike]]`, for the engine to look PSKs up in by (our identity, the
/// peer's) when it authenticates.
pub fn credentials(config: &Config) -> std::sync::Arc<oxswan_ike::auth::SharedKeys> {
    let mut keys = oxswan_ike::auth::SharedKeys::new();
    for s in &config.secrets {
        keys.add(s.ids.clone(), s.secret.clone());
    }
    for s in &config.eap_secrets {
        keys.add_eap(s.id.as_bytes(), s.secret.clone());
    }
    for s in &config.ppk_secrets {
        for id in &s.ids {
            keys.add_ppk(id.as_bytes(), s.secret.clone());
        }
    }
    std::sync::Arc::new(keys)
}

/// The configuration's `[pools.*]`, for the engine to lend virtual IPs from.
pub fn leases(config: &Config) -> MemoryLeases {
    let mut leases = MemoryLeases::new();
    for p in &config.pools {
        let attributes = PoolAttributes {
            dns: p.dns.clone(),
            split_include: p.split_include.iter().map(|s| (s.addr, s.prefix)).collect(),
            dns_domains: p.dns_domains.clone(),
        };
        leases.insert(oxswan_pool::Pool::new(p.name.clone(), p.range, p.grace), attributes);
    }
    leases
}
