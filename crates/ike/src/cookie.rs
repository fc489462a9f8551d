//! Stateless cookies (RFC 7296 §2.6): under load the responder answers IKE_SA_INIT with a COOKIE
//! computed from the request and a secret, keeps no state, and accepts the request only when the
//! initiator echoes the cookie, which proves it receives at its address.
//!
//! `Cookie = <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>)`, here with HMAC-SHA-256 keyed by
//! the secret and a 4-octet version, 36 octets in all (the notify allows 1 to 64).

use core::net::IpAddr;
use std::time::Instant;

use oxswan_crypto::alg::PrfAlg;
use oxswan_crypto::{CryptoProvider, Secret};
use oxswan_wire::{IkeSpi, PrfId};

use crate::error::Result;

/// Length of our cookies.
pub const COOKIE_LEN: usize = 36;

#[derive(Debug)]
struct Generation {
    version: u32,
    secret: Secret,
}

/// The responder's cookie secrets: the current one and its predecessor, so a cookie handed out just
/// before a change still works (RFC 7296 §2.6 "the responder ... SHOULD accept cookies made with the
/// previous secret for a short time").
#[derive(Debug)]
pub struct CookieJar {
    current: Generation,
    previous: Option<Generation>,
    changed_at: Instant,
    /// Whether the secrets come from outside ([`Self::set_shared`]) rather than drawn here.
    shared: bool,
}

impl CookieJar {
    /// A jar with a fresh secret.
    pub fn new(provider: &CryptoProvider, now: Instant) -> Result<Self> {
        Ok(Self {
            current: Generation { version: 1, secret: fresh(provider)? },
            previous: None,
            changed_at: now,
            shared: false,
        })
    }

    /// Changes the secret if it is older than `lifetime`.
    pub fn rotate_if_due(
        &mut self,
        provider: &CryptoProvider,
        now: Instant,
        lifetime: core::time::Duration,
    ) -> Result<()> {
        if !self.shared && now.saturating_duration_since(self.changed_at) >= lifetime {
            let next = Generation { version: self.current.version.wrapping_add(1), secret: fresh(provider)? };
            self.previous = Some(core::mem::replace(&mut self.current, next));
            self.changed_at = now;
        }
        Ok(())
    }

    /// Uses secrets from outside from now on (a cluster's: a cookie one gateway handed out is
    /// accepted by another): `current` makes cookies, it and `previous` check them. No secret is
    /// drawn or rotated here any more.
    pub fn set_shared(&mut self, current: (u32, Secret), previous: Option<(u32, Secret)>) {
        self.current = Generation { version: current.0, secret: current.1 };
        self.previous = previous.map(|(version, secret)| Generation { version, secret });
        self.shared = true;
    }

    /// The cookie for a request.
    pub fn make(&self, provider: &CryptoProvider, ni: &[u8], ip: IpAddr, spi_i: IkeSpi) -> Result<Vec<u8>> {
        compute(provider, &self.current, ni, ip, spi_i)
    }

    /// Whether `cookie` is one we made for this request with the current or the previous secret.
    pub fn check(&self, provider: &CryptoProvider, cookie: &[u8], ni: &[u8], ip: IpAddr, spi_i: IkeSpi) -> bool {
        let Some((version, _)) = cookie.split_first_chunk::<4>() else { return false };
        let version = u32::from_be_bytes(*version);
        let generation =
            [Some(&self.current), self.previous.as_ref()].into_iter().flatten().find(|g| g.version == version);
        let Some(g) = generation else { return false };
        match compute(provider, g, ni, ip, spi_i) {
            Ok(expected) => Secret::new(expected) == Secret::from_slice(cookie),
            Err(_) => false,
        }
    }
}

fn fresh(provider: &CryptoProvider) -> Result<Secret> {
    let mut s = vec![0u8; 32];
    provider.random.fill(&mut s)?;
    Ok(Secret::new(s))
}

fn compute(provider: &CryptoProvider, g: &Generation, ni: &[u8], ip: IpAddr, spi_i: IkeSpi) -> Result<Vec<u8>> {
    let ip = match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    };
    let mac = provider.prf.prf(PrfAlg::new(PrfId::HMAC_SHA2_256)?, g.secret.expose(), &[ni, &ip, &spi_i.0])?;
    let mut out = Vec::with_capacity(COOKIE_LEN);
    out.extend_from_slice(&g.version.to_be_bytes());
    out.extend_from_slice(mac.expose());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    #[test]
    fn gateways_sharing_the_secret_accept_each_others_cookies_and_do_not_rotate_it() {
        let p = oxswan_crypto::default_provider();
        let t0 = Instant::now();
        let (ip, spi): (IpAddr, _) = ("192.0.2.1".parse().unwrap(), IkeSpi([7; 8]));
        let mut a = CookieJar::new(&p, t0).unwrap();
        let mut b = CookieJar::new(&p, t0).unwrap();
        let c = a.make(&p, b"ni", ip, spi).unwrap();
        assert!(!b.check(&p, &c, b"ni", ip, spi), "secrets of their own");
        a.set_shared((9, Secret::from_slice(&[1; 32])), None);
        b.set_shared((10, Secret::from_slice(&[2; 32])), Some((9, Secret::from_slice(&[1; 32]))));
        let c = a.make(&p, b"ni", ip, spi).unwrap();
        assert!(b.check(&p, &c, b"ni", ip, spi), "b accepts a's cookie of the previous epoch");
        assert!(!a.check(&p, &b.make(&p, b"ni", ip, spi).unwrap(), b"ni", ip, spi), "a is an epoch behind");
        b.rotate_if_due(&p, t0 + core::time::Duration::from_secs(3600), core::time::Duration::from_secs(1)).unwrap();
        assert!(b.check(&p, &c, b"ni", ip, spi), "shared secrets are not rotated locally");
    }

    #[test]
    fn cookies_bind_request_and_survive_one_rotation() {
        let p = oxswan_crypto::default_provider();
        let t0 = Instant::now();
        let mut jar = CookieJar::new(&p, t0).unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let spi = IkeSpi([7; 8]);
        let c = jar.make(&p, b"nonce-nonce-nonce", ip, spi).unwrap();
        assert_eq!(c.len(), COOKIE_LEN);
        assert!(jar.check(&p, &c, b"nonce-nonce-nonce", ip, spi));
        assert!(!jar.check(&p, &c, b"nonce-nonce-nonceX", ip, spi));
        assert!(!jar.check(&p, &c, b"nonce-nonce-nonce", "192.0.2.2".parse().unwrap(), spi));
        assert!(!jar.check(&p, &c, b"nonce-nonce-nonce", ip, IkeSpi([8; 8])));
        assert!(!jar.check(&p, &c[..10], b"nonce-nonce-nonce", ip, spi));
        assert!(!jar.check(&p, &[], b"nonce-nonce-nonce", ip, spi));
        let life = Duration::from_secs(120);
        jar.rotate_if_due(&p, t0 + Duration::from_secs(60), life).unwrap();
        assert!(jar.check(&p, &c, b"nonce-nonce-nonce", ip, spi), "not due yet");
        jar.rotate_if_due(&p, t0 + Duration::from_secs(121), life).unwrap();
        assert!(jar.check(&p, &c, b"nonce-nonce-nonce", ip, spi), "previous secret still accepted");
        assert_ne!(jar.make(&p, b"nonce-nonce-nonce", ip, spi).unwrap(), c);
        jar.rotate_if_due(&p, t0 + Duration::from_secs(242), life).unwrap();
        assert!(!jar.check(&p, &c, b"nonce-nonce-nonce", ip, spi), "two rotations later it is stale");
    }
}
