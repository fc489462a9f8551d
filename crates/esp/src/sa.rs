//! ESP SAs that seal and open packets in place (RFC 4303 §3), in caller-owned buffers with no
//! allocation per packet.
//!
//! Buffer layout for [`OutboundSa::seal`]: the inner packet sits in `buf[inner]` with at least
//! [`HEADROOM`] writable octets before it and [`TAILROOM`] after; the ESP packet is written around it:
//!
//! ```text
//! | SPI | Seq | IV | inner packet | padding | pad len | next hdr | ICV |
//!  <--- HEADROOM ->                <------------- TAILROOM ----------->
//! ```

use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use oxswan_crypto::CryptoProvider;
use oxswan_crypto::alg::{EncrAlg, IntegAlg};
use oxswan_crypto::keys::ChildSuite;
use oxswan_crypto::provider::{AeadKey, CbcKey, IntegKey, SecureRandom};
use oxswan_wire::esp::{EspHeader, EspPacket, HEADER_LEN, pad_len, parse_trailer, write_trailer};

use crate::replay::{ReplayError, ReplayWindow};

/// Octets needed before the inner packet: ESP header and the longest IV (AES-CBC, 16).
pub const HEADROOM: usize = HEADER_LEN + 16;
/// Octets needed after it: padding to a 16-octet block (15), Pad Length, Next Header and the longest
/// ICV (32, HMAC-SHA2-512-256), rounded up.
pub const TAILROOM: usize = 64;

/// Why a packet was not sealed or opened. Every cause is counted separately (`Counters`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EspError {
    /// The buffer has not the headroom or tailroom [`OutboundSa::seal`] needs.
    #[error("buffer too small")]
    Buffer,
    /// The 32-bit sequence number space is used up (RFC 4303 §3.3.3: never wrap); rekey.
    #[error("sequence numbers exhausted")]
    SequenceExhausted,
    /// Not an ESP packet for this SA, or too short for its algorithms.
    #[error("malformed packet")]
    Malformed,
    /// The anti-replay window refused it.
    #[error("replay: {0}")]
    Replay(ReplayError),
    /// The ICV does not verify.
    #[error("integrity check failed")]
    Integrity,
    /// Authentic, but the padding is not the default one (RFC 4303 §2.4) or exceeds the payload.
    #[error("bad padding")]
    Padding,
    /// The cryptographic library failed.
    #[error("crypto failure")]
    Crypto,
}

/// Counters of one SA direction, updated with relaxed atomics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Packets sealed or accepted.
    pub packets: AtomicU64,
    /// Inner octets sealed or accepted.
    pub bytes: AtomicU64,
    /// Packets dropped by the replay window.
    pub replayed: AtomicU64,
    /// Packets whose ICV did not verify.
    pub integrity_failed: AtomicU64,
    /// Malformed packets or padding.
    pub malformed: AtomicU64,
    /// Authentic packets outside the SA's traffic selectors (RFC 4301 §5.2).
    pub outside_selectors: AtomicU64,
}

fn bump(c: &AtomicU64, by: u64) {
    c.fetch_add(by, Ordering::Relaxed);
}

/// The keys of one ESP SA direction as the IKE engine derived them.
#[derive(Debug, Clone)]
pub struct SaParams {
    /// The SPI on the wire.
    pub spi: u32,
    /// Algorithms.
    pub suite: ChildSuite,
    /// Extended sequence numbers (RFC 4303 §2.2.1).
    pub esn: bool,
    /// Encryption key, followed by the 4-octet salt for AEADs (RFC 4106 §8.1, RFC 7634 §2).
    pub encr_key: oxswan_crypto::Secret,
    /// Integrity key (empty for AEADs).
    pub integ_key: oxswan_crypto::Secret,
}

enum Transform {
    Aead { key: Box<dyn AeadKey>, salt: [u8; 4] },
    Cbc { key: Box<dyn CbcKey>, integ: Box<dyn IntegKey> },
}

/// One direction's cryptography. The cipher contexts are made on the SA's first packet, not when
/// it is installed: aws-lc's AES-GCM context takes 1,312 octets, twice a pair's share of the rest,
/// and most of a gateway's road warriors are idle most of the time. Until then the SA holds its keys
/// (zeroized when it goes) and where to make the contexts from.
struct Crypto {
    transform: std::sync::OnceLock<Result<Transform, EspError>>,
    keys: Keymat,
    iv_len: usize,
    icv_len: usize,
    block: usize,
}

/// What [`Crypto`] makes its contexts from.
struct Keymat {
    encr: EncrAlg,
    integ: Option<IntegAlg>,
    encr_key: oxswan_crypto::Secret,
    integ_key: oxswan_crypto::Secret,
    cipher: std::sync::Arc<dyn oxswan_crypto::provider::CipherProvider>,
    mac: std::sync::Arc<dyn oxswan_crypto::provider::IntegProvider>,
}

impl core::fmt::Debug for Crypto {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Crypto").field("iv_len", &self.iv_len).field("icv_len", &self.icv_len).finish()
    }
}

impl Crypto {
    /// Checks the keys' lengths against the algorithms (what the library would refuse) and keeps
    /// them for [`Crypto::transform`].
    fn new(provider: &CryptoProvider, encr: EncrAlg, integ: Option<IntegAlg>, p: &SaParams) -> Result<Self, EspError> {
        let icv_len = if encr.is_aead() {
            if p.encr_key.len() != encr.keymat_len() {
                return Err(EspError::Crypto);
            }
            encr.icv_len()
        } else {
            let integ = integ.ok_or(EspError::Crypto)?;
            if p.encr_key.len() != encr.keymat_len() || p.integ_key.len() != integ.key_len() {
                return Err(EspError::Crypto);
            }
            integ.icv_len()
        };
        let keys = Keymat {
            encr,
            integ,
            encr_key: p.encr_key.clone(),
            integ_key: p.integ_key.clone(),
            cipher: provider.cipher.clone(),
            mac: provider.integ.clone(),
        };
        Ok(Self {
            transform: std::sync::OnceLock::new(),
            keys,
            iv_len: encr.iv_len(),
            icv_len,
            block: encr.block_len().max(4),
        })
    }

    /// The cipher contexts, made on first use.
    fn transform(&self) -> Result<&Transform, EspError> {
        self.transform.get_or_init(|| self.keys.make(self.icv_len)).as_ref().map_err(|e| *e)
    }
}

impl Keymat {
    fn make(&self, icv_len: usize) -> Result<Transform, EspError> {
        let key = self.encr_key.expose();
        let t = if self.encr.is_aead() {
            let (k, salt) = key.split_at_checked(self.encr.key_len()).ok_or(EspError::Crypto)?;
            let salt: [u8; 4] = salt.try_into().map_err(|_| EspError::Crypto)?;
            let aead = self.cipher.aead(self.encr, k).map_err(|_| EspError::Crypto)?;
            if aead.tag_len() != icv_len {
                return Err(EspError::Crypto);
            }
            Transform::Aead { key: aead, salt }
        } else {
            let integ = self.integ.ok_or(EspError::Crypto)?;
            let mac = self.mac.key(integ, self.integ_key.expose()).map_err(|_| EspError::Crypto)?;
            if mac.icv_len() != icv_len {
                return Err(EspError::Crypto);
            }
            Transform::Cbc { key: self.cipher.cbc(self.encr, key).map_err(|_| EspError::Crypto)?, integ: mac }
        };
        Ok(t)
    }
}

impl Crypto {
    fn nonce(salt: &[u8; 4], iv: &[u8]) -> [u8; 12] {
        let mut n = [0u8; 12];
        let (s, i) = n.split_at_mut(4);
        s.copy_from_slice(salt);
        if i.len() == iv.len() {
            i.copy_from_slice(iv);
        }
        n
    }

    /// Associated data of an AEAD (RFC 4106 §5, RFC 7634 §2.1): SPI ‖ [Seq high] ‖ Seq low.
    fn aad(spi: u32, seq: u64, esn: bool) -> ([u8; 12], usize) {
        let mut a = [0u8; 12];
        a[..4].copy_from_slice(&spi.to_be_bytes());
        if esn {
            a[4..12].copy_from_slice(&seq.to_be_bytes());
            (a, 12)
        } else {
            a[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
            (a, 8)
        }
    }
}

/// An outbound SA. `seal` takes `&self`: the sequence number is an atomic counter, so several threads
/// may seal with one SA.
#[derive(Debug)]
pub struct OutboundSa {
    spi: u32,
    esn: bool,
    crypto: Crypto,
    /// The last sequence number used.
    seq: AtomicU64,
    random: std::sync::Arc<dyn SecureRandom>,
    /// Traffic counters.
    pub counters: Counters,
}

impl OutboundSa {
    /// The SA for `params`.
    pub fn new(provider: &CryptoProvider, params: &SaParams) -> Result<Self, EspError> {
        Ok(Self {
            spi: params.spi,
            esn: params.esn,
            crypto: Crypto::new(provider, params.suite.encr, params.suite.integ, params)?,
            seq: AtomicU64::new(0),
            random: provider.random.clone(),
            counters: Counters::default(),
        })
    }

    /// The SPI.
    pub fn spi(&self) -> u32 {
        self.spi
    }

    /// The last sequence number used.
    pub fn sequence_number(&self) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }

    /// The last sequence number this SA may use: 2^32 - 1, or 2^64 - 1 with ESN (RFC 4303 §3.3.3).
    pub fn sequence_limit(&self) -> u64 {
        if self.esn { u64::MAX } else { u64::from(u32::MAX) }
    }

    /// Continues the sequence numbers after `seq` (tests of ESN and exhaustion; not for normal use:
    /// reusing a number under the same key breaks GCM and ChaCha20-Poly1305).
    #[doc(hidden)]
    pub fn skip_sequence_to(&self, seq: u64) {
        self.seq.fetch_max(seq, Ordering::Relaxed);
    }

    /// Octets the ESP packet adds to an inner packet of `len` octets.
    pub fn overhead(&self, len: usize) -> usize {
        HEADER_LEN + self.crypto.iv_len + pad_len(len, self.crypto.block) + 2 + self.crypto.icv_len
    }

    /// The sizes that decide what fits the path ([`crate::mtu::inner_mtu`]).
    pub fn sizes(&self) -> crate::mtu::EspSizes {
        crate::mtu::EspSizes { iv: self.crypto.iv_len, icv: self.crypto.icv_len, block: self.crypto.block }
    }

    /// The largest inner packet this SA can seal into an ESP-in-UDP datagram of at most `outer_mtu`
    /// octets over IPv6 (`outer_v6`) or IPv4.
    pub fn inner_mtu(&self, outer_mtu: u16, outer_v6: bool) -> u16 {
        crate::mtu::inner_mtu(outer_mtu, outer_v6, self.sizes())
    }

    /// Encrypts the inner packet in `buf[inner]` into an ESP packet around it and returns the range
    /// of the ESP packet in `buf`. `next_header` is 4 for IPv4, 41 for IPv6 (RFC 4303 §2.6).
    pub fn seal(&self, buf: &mut [u8], inner: Range<usize>, next_header: u8) -> Result<Range<usize>, EspError> {
        let c = &self.crypto;
        let start = inner.start.checked_sub(HEADER_LEN + c.iv_len).ok_or(EspError::Buffer)?;
        let payload_len = inner.len();
        let pad = pad_len(payload_len, c.block);
        let ct_end = inner.end.checked_add(pad + 2).ok_or(EspError::Buffer)?;
        let end = ct_end.checked_add(c.icv_len).ok_or(EspError::Buffer)?;
        if end > buf.len() || inner.end < inner.start {
            return Err(EspError::Buffer);
        }
        // RFC 4303 §3.3.3: the counter never wraps; 2^32 - 1 is the last number without ESN.
        let seq = self.seq.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let limit = if self.esn { u64::MAX } else { u64::from(u32::MAX) };
        if seq > limit || seq == 0 {
            self.seq.store(limit, Ordering::Relaxed);
            return Err(EspError::SequenceExhausted);
        }
        let packet = buf.get_mut(start..end).ok_or(EspError::Buffer)?;
        write_trailer(packet.get_mut(HEADER_LEN + c.iv_len..).ok_or(EspError::Buffer)?, payload_len, pad, next_header)
            .map_err(|_| EspError::Buffer)?;
        EspHeader { spi: self.spi, sequence_number: seq as u32 }.emit(packet).map_err(|_| EspError::Buffer)?;
        let (head, rest) = packet.split_at_mut(HEADER_LEN + c.iv_len);
        let (plain, icv) = rest.split_at_mut(ct_end - inner.start);
        let (header, iv) = head.split_at_mut(HEADER_LEN);
        match c.transform()? {
            Transform::Aead { key, salt } => {
                // RFC 4106 §3.1 / RFC 7634 §2: the IV must never repeat under a key; the sequence
                // number does not.
                iv.copy_from_slice(&seq.to_be_bytes());
                let (aad, n) = Crypto::aad(self.spi, seq, self.esn);
                key.seal_in_place(&Crypto::nonce(salt, iv), aad.get(..n).ok_or(EspError::Crypto)?, plain, icv)
                    .map_err(|_| EspError::Crypto)?;
            }
            Transform::Cbc { key, integ } => {
                // RFC 3602 §2.4: a CBC IV must be unpredictable.
                self.random.fill(iv).map_err(|_| EspError::Crypto)?;
                let iv16: &[u8; 16] = (&*iv).try_into().map_err(|_| EspError::Crypto)?;
                key.encrypt_in_place(iv16, plain).map_err(|_| EspError::Crypto)?;
                // RFC 4303 §2.2.1: with ESN the high bits are appended to the ICV input, not sent.
                let hi = ((seq >> 32) as u32).to_be_bytes();
                let esn: &[u8] = if self.esn { &hi } else { &[] };
                integ.sign_into(&[header, iv, plain, esn], icv).map_err(|_| EspError::Crypto)?;
            }
        }
        bump(&self.counters.packets, 1);
        bump(&self.counters.bytes, payload_len as u64);
        Ok(start..end)
    }
}

/// What [`InboundSa::open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Where the inner packet is, in the buffer given to `open`.
    pub inner: Range<usize>,
    /// Its Next Header (4 IPv4, 41 IPv6, 59 a dummy packet to drop).
    pub next_header: u8,
    /// The packet's full sequence number.
    pub sequence_number: u64,
}

/// An inbound SA. `open` takes `&self`; the replay window sits behind a mutex that is taken only for
/// the quick check before and the update after decryption.
#[derive(Debug)]
pub struct InboundSa {
    spi: u32,
    esn: bool,
    crypto: Crypto,
    window: Mutex<ReplayWindow>,
    /// Traffic and drop counters.
    pub counters: Counters,
}

impl InboundSa {
    /// The SA for `params` with a replay window of `replay_window` packets.
    pub fn new(provider: &CryptoProvider, params: &SaParams, replay_window: u32) -> Result<Self, EspError> {
        Ok(Self {
            spi: params.spi,
            esn: params.esn,
            crypto: Crypto::new(provider, params.suite.encr, params.suite.integ, params)?,
            window: Mutex::new(ReplayWindow::new(replay_window)),
            counters: Counters::default(),
        })
    }

    /// The SPI.
    pub fn spi(&self) -> u32 {
        self.spi
    }

    /// The highest sequence number received and authenticated so far (the replay window's top).
    pub fn highest(&self) -> u64 {
        self.window().top()
    }

    /// Moves the replay window as if `seq` had been received (tests of ESN across 2^32).
    #[doc(hidden)]
    pub fn skip_window_to(&self, seq: u64) {
        let _ = self.window().update(seq);
    }

    fn window(&self) -> std::sync::MutexGuard<'_, ReplayWindow> {
        // A poisoned lock still holds a consistent window: updates are single assignments.
        self.window.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks and decrypts the ESP packet `packet` (from the SPI on) in place. Drops are counted by
    /// cause; nothing about the SA changes for a packet that does not authenticate.
    pub fn open(&self, packet: &mut [u8]) -> Result<Opened, EspError> {
        let r = self.open_inner(packet);
        match &r {
            Ok(o) => {
                bump(&self.counters.packets, 1);
                bump(&self.counters.bytes, o.inner.len() as u64);
            }
            Err(EspError::Replay(_)) => bump(&self.counters.replayed, 1),
            Err(EspError::Integrity) => bump(&self.counters.integrity_failed, 1),
            Err(_) => bump(&self.counters.malformed, 1),
        }
        r
    }

    fn open_inner(&self, packet: &mut [u8]) -> Result<Opened, EspError> {
        let c = &self.crypto;
        let view = EspPacket::new_checked(&*packet).map_err(|_| EspError::Malformed)?;
        if view.spi() != self.spi {
            return Err(EspError::Malformed);
        }
        let seq = {
            let w = self.window();
            let seq = w.infer(view.sequence_number(), self.esn);
            w.check(seq).map_err(EspError::Replay)?;
            seq
        };
        let min = HEADER_LEN + c.iv_len + 2 + c.icv_len;
        if packet.len() < min {
            return Err(EspError::Malformed);
        }
        let ct_end = packet.len() - c.icv_len;
        let (body, icv) = packet.split_at_mut(ct_end);
        let (head, ct) = body.split_at_mut(HEADER_LEN + c.iv_len);
        let (header, iv) = head.split_at(HEADER_LEN);
        match c.transform()? {
            Transform::Aead { key, salt } => {
                let (aad, n) = Crypto::aad(self.spi, seq, self.esn);
                key.open_in_place(&Crypto::nonce(salt, iv), aad.get(..n).ok_or(EspError::Crypto)?, ct, icv)
                    .map_err(|_| EspError::Integrity)?;
            }
            Transform::Cbc { key, integ } => {
                let hi = ((seq >> 32) as u32).to_be_bytes();
                let esn: &[u8] = if self.esn { &hi } else { &[] };
                integ.verify(&[header, iv, ct, esn], icv).map_err(|_| EspError::Integrity)?;
                if ct.len() % c.block != 0 {
                    return Err(EspError::Malformed);
                }
                let iv16: &[u8; 16] = iv.try_into().map_err(|_| EspError::Malformed)?;
                key.decrypt_in_place(iv16, ct).map_err(|_| EspError::Crypto)?;
            }
        }
        // Authentic: now the window may move (RFC 4303 §3.4.3: only after the ICV verified).
        self.window().update(seq).map_err(EspError::Replay)?;
        let (payload_len, next_header) = parse_trailer(ct).map_err(|_| EspError::Padding)?;
        let start = HEADER_LEN + c.iv_len;
        Ok(Opened { inner: start..start + payload_len, next_header, sequence_number: seq })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use oxswan_crypto::Secret;
    use oxswan_wire::{EncrId, IntegId};

    use super::*;

    fn params(encr: EncrAlg, integ: Option<IntegAlg>, encr_len: usize, integ_len: usize) -> SaParams {
        SaParams {
            spi: 0x1000,
            suite: ChildSuite { encr, integ },
            esn: false,
            encr_key: Secret::new(vec![7; encr_len]),
            integ_key: Secret::new(vec![9; integ_len]),
        }
    }

    #[test]
    fn the_contexts_are_made_on_the_first_packet_and_bad_keys_refused_at_once() {
        let p = oxswan_crypto::default_provider();
        let gcm = EncrAlg::new(EncrId::AES_GCM_16, Some(256)).unwrap();
        let out = OutboundSa::new(&p, &params(gcm, None, gcm.keymat_len(), 0)).unwrap();
        let inb = InboundSa::new(&p, &params(gcm, None, gcm.keymat_len(), 0), 64).unwrap();
        assert!(out.crypto.transform.get().is_none() && inb.crypto.transform.get().is_none(), "idle: keys only");
        let mut buf = vec![0u8; HEADROOM + 40 + TAILROOM];
        buf[HEADROOM] = 0x45;
        let sealed = out.seal(&mut buf, HEADROOM..HEADROOM + 40, 4).unwrap();
        assert!(out.crypto.transform.get().is_some_and(Result::is_ok));
        let mut pkt = buf[sealed].to_vec();
        let opened = inb.open(&mut pkt).unwrap();
        assert_eq!(opened.inner.len(), 40);
        assert!(inb.crypto.transform.get().is_some_and(Result::is_ok));
        // What the library would refuse when the context is made is refused when the SA is.
        for bad in [gcm.keymat_len() - 1, gcm.keymat_len() + 1, 0] {
            assert_eq!(OutboundSa::new(&p, &params(gcm, None, bad, 0)).unwrap_err(), EspError::Crypto, "{bad}");
        }
        let cbc = EncrAlg::new(EncrId::AES_CBC, Some(128)).unwrap();
        let sha = IntegAlg::new(IntegId::HMAC_SHA2_256_128).unwrap();
        assert!(OutboundSa::new(&p, &params(cbc, Some(sha), 16, sha.key_len())).is_ok());
        assert!(OutboundSa::new(&p, &params(cbc, Some(sha), 16, sha.key_len() - 1)).is_err());
        assert!(OutboundSa::new(&p, &params(cbc, Some(sha), 15, sha.key_len())).is_err());
        assert!(OutboundSa::new(&p, &params(cbc, None, 16, 0)).is_err());
    }
}
