#![allow(dead_code, clippy::unwrap_used)]
//! What the load tester's tests share: the gateway side's peer configuration.

use oxswan_crypto::Secret;
use oxswan_crypto::proposal::{parse_esp_proposals, parse_ike_proposals};
use oxswan_ike::child::{ChildConfig, Mode, TsConfig};
use oxswan_ike::{LocalAuth, PeerConfig, RemoteAuth, Retransmit};
use oxswan_wire::Identity;
use oxswan_wire::ts::TrafficSelector;

/// The gateway's side of every client: PSK `psk` both ways, any identity, one CHILD SA from
/// everything to the client's own address, MOBIKE as asked.
pub fn gateway_peer(psk: &[u8], mobike: bool) -> PeerConfig {
    let all = TrafficSelector::from_prefix("0.0.0.0".parse().unwrap(), 0, 0, 0, u16::MAX).unwrap();
    PeerConfig {
        name: "gw".into(),
        ike_proposals: parse_ike_proposals("aes256gcm16-prfsha256-x25519").unwrap(),
        prefer_initiator: false,
        local_id: Identity::Fqdn("gw.load.test".into()),
        remote_id: None,
        local_auth: LocalAuth::Psk(Secret::from_slice(psk)),
        remote_auth: RemoteAuth::Psk(Secret::from_slice(psk)),
        rsa_pss: false,
        children: vec![ChildConfig {
            per_cpu_sas: false,
            name: "gw".into(),
            esp_proposals: parse_esp_proposals("aes256gcm16").unwrap(),
            local_ts: vec![TsConfig::Selector(all)],
            remote_ts: vec![TsConfig::Dynamic],
            mode: Mode::Tunnel,
            lifetime: Default::default(),
            volume: Default::default(),
        }],
        retransmit: Retransmit::default(),
        ike_lifetime: Default::default(),
        initial_contact: false,
        force_encap: false,
        dpd_delay: None,
        pools: Vec::new(),
        vips: Vec::new(),
        unique: Default::default(),
        fragmentation: true,
        tcp: oxswan_ike::TcpConfig::NO,
        mobike,
        childless: Default::default(),
        ppk_id: None,
        ppk_required: false,
        redirect: None,
        resumption: false,
        remote_addrs: Vec::new(),
    }
}
