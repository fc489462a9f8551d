//! EAP conversations fed arbitrary packets: the server (MD5, MSCHAPv2, with EAP-Identity first)
//! and the peer take any sequence of EAP payloads without panicking.
//!
//! Input: records of `[who: u8][len: u8][bytes]`; bit 0 of `who` picks the server or the peer, the
//! bytes are parsed as an EAP payload body (RFC 3748 §4) and, if they parse, handed over.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxswan_crypto::Secret;
use oxswan_crypto::test_provider::TestProvider;
use oxswan_eap::{EapPeer, EapSecrets, EapServer, MethodType, PeerConfig, ServerConfig};
use oxswan_wire::payloads::EapPayload;
use oxswan_wire::{PayloadType, Payloads};

#[derive(Debug)]
struct Users;

impl EapSecrets for Users {
    fn eap_secret(&self, identity: &[u8]) -> Option<Secret> {
        (identity == b"alice").then(|| Secret::from_slice(b"alice's password"))
    }
}

/// An EAP payload with this body, through the wire crate's generic payload parser.
fn payload(body: &[u8]) -> Option<EapPayload> {
    let mut chain = vec![0u8, 0];
    chain.extend_from_slice(&u16::try_from(body.len() + 4).ok()?.to_be_bytes());
    chain.extend_from_slice(body);
    let raw = Payloads::new(PayloadType::EAP, &chain, 0).next()?.ok()?;
    match oxswan_wire::Payload::parse(&raw).ok()? {
        oxswan_wire::Payload::Eap(e) => Some(e),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let provider = TestProvider::new(1).build();
    let random = provider.random.as_ref();
    let config = ServerConfig {
        methods: vec![MethodType::MsChapV2, MethodType::Md5],
        ask_identity: true,
        identity: None,
        tls: None,
    };
    let Ok((mut server, _first)) = EapServer::start(config, random) else { return };
    let mut peer = EapPeer::new(PeerConfig { identity: b"alice".to_vec(), methods: Vec::new(), tls: None });
    let mut rest = data;
    while let [who, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (body, next) = tail.split_at(n);
        rest = next;
        let Some(p) = payload(body) else { continue };
        if who & 1 == 0 {
            let _ = server.handle(&p, &Users, random);
        } else {
            let _ = peer.handle(&p, &Users, random);
        }
    }
});
