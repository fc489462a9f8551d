//! A RADIUS client with an Access-Request and an Accounting-Request in flight takes any datagram,
//! from the server's address or another, without panicking; timeouts run in between.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use oxswan_crypto::Secret;
use oxswan_crypto::test_provider::TestProvider;
use oxswan_radius::{AccountingRecord, AcctStatus, ClientConfig, EapSession, RadiusClient, ServerConfig};
use oxswan_wire::payloads::{EapCode, EapPayload};

fuzz_target!(|data: &[u8]| {
    let provider = TestProvider::new(2).build();
    let random = provider.random.as_ref();
    let server: SocketAddr = ([10, 0, 0, 5], 1812).into();
    let mut client = RadiusClient::new(ClientConfig {
        servers: vec![ServerConfig { auth: server, acct: ([10, 0, 0, 5], 1813).into(), secret: Secret::from_slice(b"s") }],
        timeout: Duration::from_secs(1),
        tries: 2,
        nas_identifier: "fuzz".into(),
        nas_ip: None,
    });
    let now = Instant::now();
    let eap = EapPayload { code: EapCode::RESPONSE, identifier: 1, data: b"\x01alice".to_vec() };
    let session = EapSession::new(b"alice".to_vec(), "192.0.2.1[4500]".into(), "192.0.2.2[4500]".into());
    if client.eap_request(now, &session, &eap, random).is_err() {
        return;
    }
    let _ = client.accounting(now, &AccountingRecord::new(AcctStatus::Start, "1".into(), b"alice".to_vec()), random);
    while client.poll_transmit().is_some() {}
    let mut t = now;
    for (i, chunk) in data.split(|b| *b == 0xfe).enumerate() {
        let from = if i % 3 == 2 { SocketAddr::from(([10, 0, 0, 6], 1812)) } else { server };
        let _ = client.handle_datagram(t, from, chunk);
        t += Duration::from_millis(300);
        let _ = client.handle_timeout(t);
        while client.poll_transmit().is_some() {}
    }
});
