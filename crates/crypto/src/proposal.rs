//! strongSwan proposal strings (`aes256gcm16-prfsha256-x25519`) to wire proposals and back, and proposal
//! selection (RFC 7296 §2.7, §3.3.6).
//!
//! The keyword names, aliases and validation rules follow strongSwan 5.9 (libstrongswan
//! `crypto/proposal/proposal_keywords_static.txt` and `check_proposal()` in `proposal.c`), with the
//! RFC 9370 `ke1_`..`ke7_` prefixes and the ML-KEM keywords of strongSwan 6.0. Only algorithms this
//! crate can negotiate have keywords; every other strongSwan keyword (`3des`, `md5`, `aes128ctr`, ...)
//! is reported as [`CryptoError::UnknownKeyword`]. Where oxswan deliberately differs from strongSwan it
//! says so at the rule.

use crate::error::{CryptoError, Result};
use oxswan_wire::sa::{Proposal, Transform};
use oxswan_wire::{EncrId, EsnId, IntegId, KeId, PrfId, ProtocolId, TransformType};

/// One proposal keyword: the transform it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyword {
    /// The keyword, exactly as written in a proposal string (keywords are case-sensitive).
    pub name: &'static str,
    /// ENCR, PRF, INTEG, KE or ESN (`keN_` turns a KE keyword into ADDKE N).
    pub transform_type: TransformType,
    /// Transform ID in the namespace of the type.
    pub id: u16,
    /// Key Length attribute in bits, for variable-length ciphers.
    pub key_bits: Option<u16>,
}

impl Keyword {
    /// The transform this keyword stands for, as transform type `ty` (which differs from
    /// [`Keyword::transform_type`] only for `keN_` keywords).
    fn transform_as(&self, ty: TransformType) -> Transform {
        if ty == TransformType::ENCR {
            Transform::encr(EncrId(self.id), self.key_bits)
        } else {
            Transform::new(ty, self.id)
        }
    }

    /// The transform this keyword stands for.
    pub fn transform(&self) -> Transform {
        self.transform_as(self.transform_type)
    }
}

const fn encr(name: &'static str, id: EncrId, key_bits: Option<u16>) -> Keyword {
    Keyword { name, transform_type: TransformType::ENCR, id: id.0, key_bits }
}
const fn aes(name: &'static str, id: EncrId, bits: u16) -> Keyword {
    encr(name, id, Some(bits))
}
const fn integ(name: &'static str, id: IntegId) -> Keyword {
    Keyword { name, transform_type: TransformType::INTEG, id: id.0, key_bits: None }
}
const fn prf(name: &'static str, id: PrfId) -> Keyword {
    Keyword { name, transform_type: TransformType::PRF, id: id.0, key_bits: None }
}
const fn ke(name: &'static str, id: KeId) -> Keyword {
    Keyword { name, transform_type: TransformType::KE, id: id.0, key_bits: None }
}
const fn esn(name: &'static str, id: EsnId) -> Keyword {
    Keyword { name, transform_type: TransformType::ESN, id: id.0, key_bits: None }
}

/// Every keyword oxswan accepts, with strongSwan's names and aliases. Where several keywords name the same
/// transform, the first is the canonical one that [`proposal_to_string`] prints.
pub const KEYWORDS: &[Keyword] = &[
    // AES-CBC; strongSwan's bare `aes` means 128-bit keys.
    aes("aes128", EncrId::AES_CBC, 128),
    aes("aes192", EncrId::AES_CBC, 192),
    aes("aes256", EncrId::AES_CBC, 256),
    aes("aes", EncrId::AES_CBC, 128),
    // AES-GCM (RFC 4106, RFC 5282): the suffix is the ICV length in octets, or strongSwan's alias in
    // bits; no suffix means a 16-octet ICV.
    aes("aes128gcm16", EncrId::AES_GCM_16, 128),
    aes("aes128gcm128", EncrId::AES_GCM_16, 128),
    aes("aes128gcm", EncrId::AES_GCM_16, 128),
    aes("aes128gcm12", EncrId::AES_GCM_12, 128),
    aes("aes128gcm96", EncrId::AES_GCM_12, 128),
    aes("aes128gcm8", EncrId::AES_GCM_8, 128),
    aes("aes128gcm64", EncrId::AES_GCM_8, 128),
    aes("aes192gcm16", EncrId::AES_GCM_16, 192),
    aes("aes192gcm128", EncrId::AES_GCM_16, 192),
    aes("aes192gcm", EncrId::AES_GCM_16, 192),
    aes("aes192gcm12", EncrId::AES_GCM_12, 192),
    aes("aes192gcm96", EncrId::AES_GCM_12, 192),
    aes("aes192gcm8", EncrId::AES_GCM_8, 192),
    aes("aes192gcm64", EncrId::AES_GCM_8, 192),
    aes("aes256gcm16", EncrId::AES_GCM_16, 256),
    aes("aes256gcm128", EncrId::AES_GCM_16, 256),
    aes("aes256gcm", EncrId::AES_GCM_16, 256),
    aes("aes256gcm12", EncrId::AES_GCM_12, 256),
    aes("aes256gcm96", EncrId::AES_GCM_12, 256),
    aes("aes256gcm8", EncrId::AES_GCM_8, 256),
    aes("aes256gcm64", EncrId::AES_GCM_8, 256),
    // RFC 7634 §2: fixed 256-bit key, sent without a Key Length attribute.
    encr("chacha20poly1305", EncrId::CHACHA20_POLY1305, None),
    // Integrity; strongSwan's `sha` is SHA-1.
    integ("sha1", IntegId::HMAC_SHA1_96),
    integ("sha", IntegId::HMAC_SHA1_96),
    integ("sha256", IntegId::HMAC_SHA2_256_128),
    integ("sha2_256", IntegId::HMAC_SHA2_256_128),
    integ("sha384", IntegId::HMAC_SHA2_384_192),
    integ("sha2_384", IntegId::HMAC_SHA2_384_192),
    integ("sha512", IntegId::HMAC_SHA2_512_256),
    integ("sha2_512", IntegId::HMAC_SHA2_512_256),
    // PRFs.
    prf("prfsha1", PrfId::HMAC_SHA1),
    prf("prfsha256", PrfId::HMAC_SHA2_256),
    prf("prfsha384", PrfId::HMAC_SHA2_384),
    prf("prfsha512", PrfId::HMAC_SHA2_512),
    // Key exchange. `none` makes PFS optional in ESP proposals (and an ADDKE optional as `keN_none`).
    ke("none", KeId::NONE),
    ke("modpnone", KeId::NONE),
    ke("modp1024", KeId::MODP1024),
    ke("modp2048", KeId::MODP2048),
    ke("modp3072", KeId::MODP3072),
    ke("modp4096", KeId::MODP4096),
    ke("ecp256", KeId::ECP256),
    ke("ecp384", KeId::ECP384),
    ke("ecp521", KeId::ECP521),
    ke("x25519", KeId::CURVE25519),
    ke("curve25519", KeId::CURVE25519),
    ke("mlkem512", KeId::ML_KEM_512),
    ke("mlkem768", KeId::ML_KEM_768),
    ke("mlkem1024", KeId::ML_KEM_1024),
    // Extended Sequence Numbers.
    esn("esn", EsnId::ESN),
    esn("noesn", EsnId::NO_ESN),
];

/// Transform types in the order oxswan puts them in a proposal.
const CANONICAL_TYPES: [TransformType; 12] = [
    TransformType::ENCR,
    TransformType::PRF,
    TransformType::INTEG,
    TransformType::KE,
    TransformType::ADDKE1,
    TransformType::ADDKE2,
    TransformType::ADDKE3,
    TransformType::ADDKE4,
    TransformType::ADDKE5,
    TransformType::ADDKE6,
    TransformType::ADDKE7,
    TransformType::ESN,
];

/// Position of a transform type in [`CANONICAL_TYPES`]; `None` for types this crate does not know.
fn type_rank(ty: TransformType) -> Option<usize> {
    CANONICAL_TYPES.iter().position(|t| *t == ty)
}

/// KE and ADDKE1..7 (RFC 9370 §2.2.1).
fn is_ke_type(ty: TransformType) -> bool {
    ty == TransformType::KE || ty.additional_ke_index().is_some()
}

/// Combined-mode (AEAD) ciphers, which take no integrity transform (RFC 7296 §3.3): AES-CCM and AES-GCM
/// (RFC 5282), NULL_AUTH_AES_GMAC (RFC 4543), Camellia-CCM (RFC 7296 registry, IDs 25–27) and
/// ChaCha20-Poly1305 (RFC 7634); the same set strongSwan's `encryption_algorithm_is_aead()` names.
pub fn encr_is_aead(id: EncrId) -> bool {
    matches!(
        id,
        EncrId::AES_CCM_8
            | EncrId::AES_CCM_12
            | EncrId::AES_CCM_16
            | EncrId::AES_GCM_8
            | EncrId::AES_GCM_12
            | EncrId::AES_GCM_16
            | EncrId::NULL_AUTH_AES_GMAC
            | EncrId::CHACHA20_POLY1305
    ) || (25..=27).contains(&id.0)
}

/// Looks a keyword up, including the RFC 9370 `keN_<ke keyword>` form (N = 1..7), and returns the transform.
///
/// Like strongSwan, the keywords themselves are case-sensitive (its gperf table is generated without
/// `--ignore-case`), while the `ke` of the prefix is compared case-insensitively (`strcaseeq` in
/// `additional_key_exchange_parser()`, strongSwan 6.0 `key_exchange.c`).
pub fn lookup_keyword(word: &str) -> Option<Transform> {
    if let Some(kw) = KEYWORDS.iter().find(|k| k.name == word) {
        return Some(kw.transform());
    }
    let prefix = word.get(..2)?;
    let digit = word.get(2..3)?;
    let rest = word.get(3..)?.strip_prefix('_')?;
    if !prefix.eq_ignore_ascii_case("ke") {
        return None;
    }
    let n: u8 = digit.parse().ok()?;
    let ty = TransformType::additional_ke(n)?;
    let base = KEYWORDS.iter().find(|k| k.name == rest && k.transform_type == TransformType::KE)?;
    Some(base.transform_as(ty))
}

/// The canonical keyword of a transform, if it has one.
fn keyword_of(t: &Transform) -> Option<String> {
    let (base_ty, prefix) = match t.transform_type.additional_ke_index() {
        Some(n) => (TransformType::KE, format!("ke{n}_")),
        None => (t.transform_type, String::new()),
    };
    KEYWORDS
        .iter()
        .filter(|k| k.transform_type == base_ty)
        .find(|k| k.transform_as(t.transform_type) == *t)
        .map(|k| format!("{prefix}{}", k.name))
}

/// Text for a transform without a keyword: the IANA type and ID names (numbers where unnamed) and the key
/// length, in capitals so it cannot be mistaken for a keyword (it does not parse back).
fn fallback_name(t: &Transform) -> String {
    let ty = t.transform_type;
    let id = match ty {
        TransformType::ENCR => EncrId(t.transform_id).to_string(),
        TransformType::PRF => PrfId(t.transform_id).to_string(),
        TransformType::INTEG => IntegId(t.transform_id).to_string(),
        TransformType::ESN => EsnId(t.transform_id).to_string(),
        _ if is_ke_type(ty) => KeId(t.transform_id).to_string(),
        _ => t.transform_id.to_string(),
    };
    let mut s = match ty.additional_ke_index() {
        Some(n) => format!("KE{n}_{id}"),
        None => format!("{ty}_{id}"),
    };
    if let Some(bits) = t.key_length() {
        s.push_str(&format!("_{bits}"));
    }
    s
}

/// strongSwan-style keyword text of a proposal, e.g. `aes256gcm16-prfsha256-x25519` (for `oxswan status`).
///
/// Transforms are printed in canonical type order (ENCR, PRF, INTEG, KE, ADDKE1..7, ESN), each by its
/// canonical keyword, so the text of a parsed proposal parses back to the same proposal. Transforms without
/// a keyword (from a peer) print as `ENCR_DES3`, `KE2_MODP1536` or `INTEG_AES_XCBC_96`. The proposal number
/// and SPI are not part of the text.
pub fn proposal_to_string(p: &Proposal) -> String {
    let mut sorted: Vec<&Transform> = p.transforms.iter().collect();
    sorted.sort_by_key(|t| type_rank(t.transform_type).unwrap_or(CANONICAL_TYPES.len()));
    sorted.iter().map(|t| keyword_of(t).unwrap_or_else(|| fallback_name(t))).collect::<Vec<_>>().join("-")
}

fn invalid(proposal: &str, reason: &str) -> CryptoError {
    CryptoError::InvalidProposal { proposal: proposal.to_owned(), reason: reason.to_owned() }
}

/// Parses one IKE proposal string such as `aes256gcm16-prfsha384-x25519-ke1_mlkem768`.
///
/// Rules (strongSwan 5.9 `check_proposal()`, unless noted):
/// - keywords are separated by `-`; spaces around a keyword are ignored; several keywords of one type are
///   alternatives in order of preference, and an exact repeat is dropped;
/// - an encryption algorithm and a key exchange method are mandatory (`none` is removed from the KE list
///   of an IKE proposal first, since IKE_SA_INIT always needs one); `keN_none` stays, making ADDKE N
///   optional;
/// - AEAD and non-AEAD ciphers cannot share a proposal (strongSwan rejects such a string too; give two
///   proposals, as [`parse_ike_proposals`] allows);
/// - without a `prf...` keyword, the PRF list is derived from the integrity algorithms (sha256 →
///   PRF_HMAC_SHA2_256, ...), also when the ciphers are AEAD; afterwards integrity algorithms are dropped
///   from an all-AEAD proposal. So `aes128gcm16-sha256-ecp256` is accepted and means
///   `aes128gcm16-prfsha256-ecp256`, exactly as in strongSwan (its `test_proposal.c` has this case);
/// - an AEAD proposal thus needs `prf...` or an integrity keyword; a non-AEAD one needs integrity;
/// - oxswan only: `esn`/`noesn` in an IKE proposal is an error (ESN exists only for AH/ESP, RFC 7296
///   §3.3.3); strongSwan would keep the transform. A doubled or trailing `-` (an empty keyword) is an
///   error, where strongSwan's tokenizer silently skips it.
///
/// `default` is a list item, not a keyword: it expands to two proposals, see [`parse_ike_proposals`].
pub fn parse_ike_proposal(s: &str) -> Result<Proposal> {
    parse(ProtocolId::IKE, s)
}

/// Parses one ESP proposal string such as `aes256gcm16-esn` or `aes128-sha256-modp2048`.
///
/// Rules (strongSwan 5.9 `check_proposal()`, unless noted): an encryption algorithm is mandatory; AEAD and
/// non-AEAD ciphers cannot be mixed; integrity algorithms are dropped from an all-AEAD proposal; `prf...`
/// keywords are dropped (ESP has no PRF); a KE method is optional and asks for PFS on CREATE_CHILD_SA
/// (`none` next to it makes PFS optional); without `esn`/`noesn` the proposal gets NO_ESN; giving both
/// offers both. oxswan only: a non-AEAD cipher needs an integrity algorithm; strongSwan accepts
/// confidentiality-only ESP, which RFC 4303 warns is open to active attacks.
pub fn parse_esp_proposal(s: &str) -> Result<Proposal> {
    parse(ProtocolId::ESP, s)
}

fn parse(protocol: ProtocolId, s: &str) -> Result<Proposal> {
    if s.trim().is_empty() {
        return Err(invalid(s, "empty proposal"));
    }
    let mut transforms: Vec<Transform> = Vec::new();
    for word in s.split('-') {
        let word = word.trim();
        if word.is_empty() {
            return Err(invalid(s, "empty keyword (doubled, leading or trailing '-')"));
        }
        let t = lookup_keyword(word)
            .ok_or_else(|| CryptoError::UnknownKeyword { keyword: word.to_owned(), proposal: s.to_owned() })?;
        if !transforms.contains(&t) {
            transforms.push(t);
        }
    }
    check(protocol, s, &mut transforms)?;
    transforms.sort_by_key(|t| type_rank(t.transform_type).unwrap_or(CANONICAL_TYPES.len()));
    Ok(Proposal { number: 1, protocol, spi: Vec::new(), transforms })
}

/// The PRF strongSwan derives from an integrity algorithm (its `integ_prf_map`).
fn prf_for_integ(id: IntegId) -> Option<PrfId> {
    match id {
        IntegId::HMAC_SHA1_96 => Some(PrfId::HMAC_SHA1),
        IntegId::HMAC_SHA2_256_128 => Some(PrfId::HMAC_SHA2_256),
        IntegId::HMAC_SHA2_384_192 => Some(PrfId::HMAC_SHA2_384),
        IntegId::HMAC_SHA2_512_256 => Some(PrfId::HMAC_SHA2_512),
        _ => None,
    }
}

fn has_type(ts: &[Transform], ty: TransformType) -> bool {
    ts.iter().any(|t| t.transform_type == ty)
}

/// Applies the completeness rules of [`parse_ike_proposal`] / [`parse_esp_proposal`].
fn check(protocol: ProtocolId, s: &str, ts: &mut Vec<Transform>) -> Result<()> {
    if protocol == ProtocolId::IKE {
        if !has_type(ts, TransformType::PRF) {
            let derived: Vec<Transform> = ts
                .iter()
                .filter(|t| t.transform_type == TransformType::INTEG)
                .filter_map(|t| prf_for_integ(IntegId(t.transform_id)))
                .map(Transform::prf)
                .collect();
            for p in derived {
                if !ts.contains(&p) {
                    ts.push(p);
                }
            }
        }
        if !has_type(ts, TransformType::PRF) {
            return Err(invalid(s, "a PRF is mandatory in IKE proposals (add prfsha256 or similar)"));
        }
        ts.retain(|t| !(t.transform_type == TransformType::KE && t.transform_id == KeId::NONE.0));
        if !has_type(ts, TransformType::KE) {
            return Err(invalid(s, "a key exchange method is mandatory in IKE proposals"));
        }
        if has_type(ts, TransformType::ESN) {
            return Err(invalid(s, "esn/noesn apply only to ESP proposals"));
        }
    } else {
        // ESP has no PRF transform (RFC 7296 §3.3.3); strongSwan drops such keywords silently.
        ts.retain(|t| t.transform_type != TransformType::PRF);
    }

    let encrs: Vec<EncrId> =
        ts.iter().filter(|t| t.transform_type == TransformType::ENCR).map(|t| EncrId(t.transform_id)).collect();
    if encrs.is_empty() {
        return Err(invalid(s, "an encryption algorithm is mandatory"));
    }
    let aead = encrs.iter().filter(|id| encr_is_aead(**id)).count();
    if aead == encrs.len() {
        // RFC 7296 §3.3: a proposal of combined-mode ciphers offers no integrity algorithm.
        ts.retain(|t| t.transform_type != TransformType::INTEG);
    } else if aead > 0 {
        return Err(invalid(
            s,
            "classic and combined-mode (AEAD) ciphers cannot be in the same proposal; use two proposals",
        ));
    } else if !has_type(ts, TransformType::INTEG) {
        return Err(invalid(s, "an integrity algorithm is mandatory with a non-AEAD cipher"));
    }

    if protocol == ProtocolId::ESP && !has_type(ts, TransformType::ESN) {
        // strongSwan: "ESN not specified, assume not supported".
        ts.push(Transform::esn(EsnId::NO_ESN));
    }
    Ok(())
}

/// oxswan's `default` IKE proposals: the modern subset of strongSwan 5.9's `proposal_create_default()`
/// and `proposal_create_default_aead()` that this crate implements, in strongSwan's order (classic first,
/// then AEAD; elliptic curves, then MODP ≥ 3072, then MODP 2048). Left out from strongSwan's lists:
/// 3DES, AES-CTR, Camellia, AES-XCBC/CMAC, SHA-1, MD5, Brainpool, Curve448, MODP 6144/8192 and AES-GCM with
/// 8- or 12-octet ICVs.
pub const DEFAULT_IKE: [&str; 2] = [
    "aes128-aes192-aes256-sha256-sha384-sha512-prfsha256-prfsha384-prfsha512-ecp256-ecp384-ecp521-x25519-modp3072-modp4096-modp2048",
    "aes128gcm16-aes192gcm16-aes256gcm16-chacha20poly1305-prfsha256-prfsha384-prfsha512-ecp256-ecp384-ecp521-x25519-modp3072-modp4096-modp2048",
];

/// oxswan's `default` ESP proposals: strongSwan 5.9's defaults without SHA-1 and AES-XCBC, classic first.
pub const DEFAULT_ESP: [&str; 2] =
    ["aes128-aes192-aes256-sha256-sha384-sha512-noesn", "aes128gcm16-aes192gcm16-aes256gcm16-noesn"];

/// Parses a comma-separated list of IKE proposals as in swanctl.conf `proposals = ...`; the item `default`
/// (case-insensitive, as in strongSwan's vici `parse_proposal()`) expands to [`DEFAULT_IKE`]. Proposals are
/// numbered from 1 in order.
pub fn parse_ike_proposals(list: &str) -> Result<Vec<Proposal>> {
    parse_list(ProtocolId::IKE, list, &DEFAULT_IKE)
}

/// Parses a comma-separated list of ESP proposals as in swanctl.conf `esp_proposals = ...`; `default`
/// expands to [`DEFAULT_ESP`]. Proposals are numbered from 1 in order.
pub fn parse_esp_proposals(list: &str) -> Result<Vec<Proposal>> {
    parse_list(ProtocolId::ESP, list, &DEFAULT_ESP)
}

fn parse_list(protocol: ProtocolId, list: &str, defaults: &[&str]) -> Result<Vec<Proposal>> {
    let mut out = Vec::new();
    for item in list.split(',') {
        let item = item.trim();
        if item.eq_ignore_ascii_case("default") {
            for d in defaults {
                out.push(parse(protocol, d)?);
            }
        } else {
            out.push(parse(protocol, item)?);
        }
    }
    for (i, p) in out.iter_mut().enumerate() {
        // RFC 7296 §3.3.1: the first proposal is number 1, each next one greater by one.
        p.number = i
            .checked_add(1)
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(|| invalid(list, "more than 255 proposals"))?;
    }
    Ok(out)
}

/// Chooses a proposal (RFC 7296 §2.7): walks our proposals in order (the peer's with `prefer_theirs`) and,
/// for each, the other side's, and returns the first pair that matches, reduced to one transform per type.
///
/// A pair matches when the protocols are equal and, for every transform type present in either proposal,
/// both offer a common transform: same ID and same attributes (so the key length must match, and a
/// transform with an attribute we do not know never matches, RFC 7296 §3.3.6). Within a type, the
/// preferred side's order decides. A type present on only one side does not match, except:
/// - KE (in ESP/AH) and ADDKE1..7 (everywhere): a missing type counts as {NONE} (RFC 9370 §2.2.2); KE in
///   IKE is mandatory and NONE is never chosen for it (RFC 7296 §3.3.3);
/// - INTEG is skipped once an AEAD cipher is chosen (RFC 7296 §3.3: combined-mode proposals carry no
///   integrity, or a single NONE).
///
/// A chosen NONE leaves its KE/ADDKE type out of the result, as strongSwan does (RFC 9370 §2.2.2 allows
/// omitting it). Like strongSwan 6, KE types are decided in order in one pass and a method already chosen
/// for an earlier type is not chosen again (strongSwan `select_algos()`; see strongSwan issue #2048).
/// A peer proposal with a transform type we do not know is unacceptable (RFC 7296 §3.3.6).
///
/// The result carries the peer's proposal number and SPI (the responder echoes the number, RFC 7296
/// §3.3.1, and the SPI is the peer's).
pub fn select_proposal(ours: &[Proposal], theirs: &[Proposal], prefer_theirs: bool) -> Option<Proposal> {
    if prefer_theirs {
        theirs.iter().find_map(|t| ours.iter().find_map(|o| select_pair(t, o, t)))
    } else {
        ours.iter().find_map(|o| theirs.iter().find_map(|t| select_pair(o, t, t)))
    }
}

/// Matches `pref` (whose order wins) against `other`; `peer` supplies the number and SPI.
fn select_pair(pref: &Proposal, other: &Proposal, peer: &Proposal) -> Option<Proposal> {
    if pref.protocol != other.protocol {
        return None;
    }
    if peer.transforms.iter().any(|t| type_rank(t.transform_type).is_none()) {
        return None;
    }
    let mut selected: Vec<Transform> = Vec::new();
    let mut aead = false;
    let mut used_ke: Vec<u16> = Vec::new();
    for ty in CANONICAL_TYPES {
        if ty == TransformType::INTEG && aead {
            continue;
        }
        let mut a: Vec<Transform> = pref.transforms_of(ty).cloned().collect();
        let mut b: Vec<Transform> = other.transforms_of(ty).cloned().collect();
        if is_ke_type(ty) {
            let optional = ty != TransformType::KE || pref.protocol != ProtocolId::IKE;
            let none = Transform::new(ty, KeId::NONE.0);
            if optional {
                for list in [&mut a, &mut b] {
                    if list.is_empty() {
                        list.push(none.clone());
                    }
                }
            }
            if a.is_empty() && b.is_empty() {
                continue;
            }
            let chosen = a.iter().find(|t| {
                let is_none = t.transform_id == KeId::NONE.0;
                (optional || !is_none) && (is_none || !used_ke.contains(&t.transform_id)) && b.contains(t)
            })?;
            if chosen.transform_id != KeId::NONE.0 {
                used_ke.push(chosen.transform_id);
                selected.push(chosen.clone());
            }
            continue;
        }
        if a.is_empty() && b.is_empty() {
            continue;
        }
        let chosen = a.iter().find(|t| b.contains(t))?;
        if ty == TransformType::ENCR && encr_is_aead(EncrId(chosen.transform_id)) {
            aead = true;
        }
        selected.push(chosen.clone());
    }
    Some(Proposal { number: peer.number, protocol: peer.protocol, spi: peer.spi.clone(), transforms: selected })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ike(s: &str) -> Proposal {
        parse_ike_proposal(s).unwrap()
    }
    fn esp(s: &str) -> Proposal {
        parse_esp_proposal(s).unwrap()
    }
    fn gcm16(bits: u16) -> Transform {
        Transform::encr(EncrId::AES_GCM_16, Some(bits))
    }
    fn cbc(bits: u16) -> Transform {
        Transform::encr(EncrId::AES_CBC, Some(bits))
    }
    fn kex(id: KeId) -> Transform {
        Transform::ke(TransformType::KE, id)
    }
    fn reason(e: CryptoError) -> String {
        match e {
            CryptoError::InvalidProposal { reason, .. } => reason,
            other => panic!("expected InvalidProposal, got {other:?}"),
        }
    }

    #[test]
    fn issue_examples() {
        let p = ike("aes256gcm16-prfsha256-x25519");
        assert_eq!((p.number, p.protocol, p.spi.len()), (1, ProtocolId::IKE, 0));
        assert_eq!(p.transforms, vec![gcm16(256), Transform::prf(PrfId::HMAC_SHA2_256), kex(KeId::CURVE25519)]);

        assert_eq!(
            ike("aes128-sha256-modp2048").transforms,
            vec![
                cbc(128),
                Transform::prf(PrfId::HMAC_SHA2_256),
                Transform::integ(IntegId::HMAC_SHA2_256_128),
                kex(KeId::MODP2048)
            ]
        );

        let p = ike("chacha20poly1305-prfsha256-ecp384");
        assert_eq!(
            p.transforms,
            vec![
                Transform::encr(EncrId::CHACHA20_POLY1305, None),
                Transform::prf(PrfId::HMAC_SHA2_256),
                kex(KeId::ECP384)
            ]
        );
        assert!(p.transforms[0].attributes.is_empty());

        assert_eq!(
            ike("aes256gcm16-prfsha384-x25519-ke1_mlkem768").transforms,
            vec![
                gcm16(256),
                Transform::prf(PrfId::HMAC_SHA2_384),
                kex(KeId::CURVE25519),
                Transform::ke(TransformType::ADDKE1, KeId::ML_KEM_768)
            ]
        );

        let p = esp("aes256gcm16-esn");
        assert_eq!((p.number, p.protocol, p.spi.len()), (1, ProtocolId::ESP, 0));
        assert_eq!(p.transforms, vec![gcm16(256), Transform::esn(EsnId::ESN)]);

        assert_eq!(
            esp("aes128-sha256-modp2048").transforms,
            vec![
                cbc(128),
                Transform::integ(IntegId::HMAC_SHA2_256_128),
                kex(KeId::MODP2048),
                Transform::esn(EsnId::NO_ESN)
            ]
        );
    }

    #[test]
    fn aliases() {
        for (s, icv) in [
            ("aes256gcm64", EncrId::AES_GCM_8),
            ("aes256gcm8", EncrId::AES_GCM_8),
            ("aes256gcm96", EncrId::AES_GCM_12),
            ("aes256gcm12", EncrId::AES_GCM_12),
            ("aes256gcm128", EncrId::AES_GCM_16),
            ("aes256gcm", EncrId::AES_GCM_16),
        ] {
            assert_eq!(esp(s).transforms[0], Transform::encr(icv, Some(256)), "{s}");
        }
        assert_eq!(esp("aes192gcm12").transforms[0], Transform::encr(EncrId::AES_GCM_12, Some(192)));
        assert_eq!(esp("aes-sha").transforms[..2], [cbc(128), Transform::integ(IntegId::HMAC_SHA1_96)]);
        assert_eq!(ike("aes256-sha2_512-curve25519"), ike("aes256-sha512-x25519"));
        assert_eq!(ike("aes256-sha2_384-modp3072"), ike("aes256-sha384-modp3072"));
        assert_eq!(ike("aes256-sha2_256-modp3072"), ike("aes256-sha256-modp3072"));
        assert_eq!(ike("aes128gcm16-prfsha1-modp4096-ecp521").transforms[1], Transform::prf(PrfId::HMAC_SHA1));
        assert_eq!(ike("aes128gcm16-prfsha512-mlkem1024").transforms[2], kex(KeId::ML_KEM_1024));
        assert_eq!(lookup_keyword("mlkem512"), Some(kex(KeId::ML_KEM_512)));
        assert_eq!(lookup_keyword("modp1024"), Some(kex(KeId::MODP1024)));
        assert_eq!(lookup_keyword("modpnone"), Some(kex(KeId::NONE)));
    }

    #[test]
    fn additional_ke_prefix() {
        let p = ike("aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none-ke2_mlkem1024");
        assert_eq!(
            p.transforms[3..],
            [
                Transform::ke(TransformType::ADDKE1, KeId::ML_KEM_768),
                Transform::ke(TransformType::ADDKE1, KeId::NONE),
                Transform::ke(TransformType::ADDKE2, KeId::ML_KEM_1024),
            ]
        );
        // The "ke" of the prefix is case-insensitive in strongSwan; the keyword after it is not.
        assert_eq!(lookup_keyword("KE7_x25519"), Some(Transform::ke(TransformType::ADDKE7, KeId::CURVE25519)));
        for bad in ["ke0_x25519", "ke8_x25519", "ke1_sha256", "ke1_", "ke1x25519", "ke1_ke2_x25519", "ke12_x25519"] {
            assert_eq!(lookup_keyword(bad), None, "{bad}");
        }
        // ADDKE in ESP (RFC 9370 for CHILD SAs) is accepted too.
        assert_eq!(
            esp("aes128gcm16-x25519-ke1_mlkem768").transforms[2],
            Transform::ke(TransformType::ADDKE1, KeId::ML_KEM_768)
        );
    }

    #[test]
    fn alternatives_keep_order_and_canonical_type_order() {
        let p = ike("aes128-aes256-sha256-modp2048-ecp256");
        assert_eq!(
            p.transforms,
            vec![
                cbc(128),
                cbc(256),
                Transform::prf(PrfId::HMAC_SHA2_256),
                Transform::integ(IntegId::HMAC_SHA2_256_128),
                kex(KeId::MODP2048),
                kex(KeId::ECP256)
            ]
        );
        // The order of keywords of different types does not matter (strongSwan docs, "Proposals").
        assert_eq!(ike("ecp256-aes128-sha256"), ike("aes128-sha256-ecp256"));
        // A PRF per integrity algorithm, in order; repeated keywords collapse.
        let p = ike("aes128-sha384-sha1-sha384-ecp256");
        let prfs: Vec<_> = p.transforms_of(TransformType::PRF).cloned().collect();
        assert_eq!(prfs, vec![Transform::prf(PrfId::HMAC_SHA2_384), Transform::prf(PrfId::HMAC_SHA1)]);
        assert_eq!(p.transforms_of(TransformType::INTEG).count(), 2);
        // An explicit PRF suppresses derivation.
        let p = ike("aes128-sha256-prfsha384-modp3072");
        assert_eq!(p.transforms_of(TransformType::PRF).collect::<Vec<_>>(), [&Transform::prf(PrfId::HMAC_SHA2_384)]);
        // Spaces around keywords are trimmed, as strongSwan's tokenizer does.
        assert_eq!(ike(" aes128 - sha256 - modp2048 "), ike("aes128-sha256-modp2048"));
    }

    #[test]
    fn strongswan_rules() {
        // AEAD with an integrity keyword: PRF derived from it, then integrity dropped (strongSwan test_proposal.c).
        assert_eq!(
            ike("aes128gcm16-sha256-modp3072").transforms,
            vec![gcm16(128), Transform::prf(PrfId::HMAC_SHA2_256), kex(KeId::MODP3072)]
        );
        assert_eq!(esp("aes128gcm16-sha256").transforms, vec![gcm16(128), Transform::esn(EsnId::NO_ESN)]);
        // ESP: PRFs dropped, KE kept, both ESN modes offered in order.
        assert_eq!(
            esp("aes128-sha256-prfsha256-modp3072").transforms,
            vec![
                cbc(128),
                Transform::integ(IntegId::HMAC_SHA2_256_128),
                kex(KeId::MODP3072),
                Transform::esn(EsnId::NO_ESN)
            ]
        );
        assert_eq!(
            esp("aes128-sha256-esn-noesn").transforms[2..],
            [Transform::esn(EsnId::ESN), Transform::esn(EsnId::NO_ESN)]
        );
        // ESP may list `none` to make PFS optional; IKE drops it.
        assert_eq!(esp("aes128-sha256-modp3072-none").transforms_of(TransformType::KE).count(), 2);
        assert_eq!(ike("aes128-sha256-modp3072-none").transforms_of(TransformType::KE).count(), 1);
    }

    #[test]
    fn errors() {
        let e = parse_ike_proposal("aes128-sha256-foo").unwrap_err();
        assert_eq!(e, CryptoError::UnknownKeyword { keyword: "foo".into(), proposal: "aes128-sha256-foo".into() });
        // Case-sensitive like strongSwan, and algorithms oxswan does not implement are unknown.
        for (s, kw) in
            [("AES128-sha256-modp2048", "AES128"), ("3des-sha1-modp2048", "3des"), ("aes128-md5-ecp256", "md5")]
        {
            assert!(
                matches!(parse_ike_proposal(s), Err(CryptoError::UnknownKeyword { keyword, .. }) if keyword == kw),
                "{s}"
            );
        }
        for s in ["", "  ", "aes128--sha256-modp2048", "-aes128-sha256-modp2048", "aes128-sha256-modp2048-"] {
            assert!(matches!(parse_ike_proposal(s), Err(CryptoError::InvalidProposal { .. })), "{s:?}");
            assert!(matches!(parse_esp_proposal(s), Err(CryptoError::InvalidProposal { .. })), "{s:?}");
        }
        for (s, why) in [
            ("sha256", "key exchange"),
            ("sha256-modp3072", "encryption"),
            ("aes128", "PRF"),
            ("aes128-sha256", "key exchange"),
            ("aes128-sha256-none", "key exchange"),
            ("aes128-prfsha256-modp2048", "integrity"),
            ("aes128gcm16-modp3072", "PRF"),
            ("aes128gcm16-aes128-sha256-modp3072", "AEAD"),
            ("aes128gcm16-prfsha256-x25519-esn", "ESP"),
        ] {
            let r = reason(parse_ike_proposal(s).unwrap_err());
            assert!(r.contains(why), "{s}: {r}");
        }
        for (s, why) in [
            ("sha256", "encryption"),
            ("modp2048", "encryption"),
            ("aes128", "integrity"),
            ("aes128gcm16-aes128-sha256-modp3072", "AEAD"),
        ] {
            let r = reason(parse_esp_proposal(s).unwrap_err());
            assert!(r.contains(why), "{s}: {r}");
        }
        // The error names the whole string.
        let e = parse_esp_proposal("aes128").unwrap_err();
        assert!(matches!(e, CryptoError::InvalidProposal { proposal, .. } if proposal == "aes128"));
    }

    #[test]
    fn to_string_and_round_trip() {
        let cases_ike = [
            ("aes256gcm16-prfsha256-x25519", "aes256gcm16-prfsha256-x25519"),
            ("aes128-sha256-modp2048", "aes128-prfsha256-sha256-modp2048"),
            ("chacha20poly1305-prfsha256-ecp384", "chacha20poly1305-prfsha256-ecp384"),
            ("aes256gcm16-prfsha384-x25519-ke1_mlkem768", "aes256gcm16-prfsha384-x25519-ke1_mlkem768"),
            (
                "aes256gcm128-prfsha384-curve25519-KE1_mlkem768-ke1_none",
                "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none",
            ),
            ("aes-aes256-sha-sha2_512-ecp521-modp4096", "aes128-aes256-prfsha1-prfsha512-sha1-sha512-ecp521-modp4096"),
            ("aes128gcm8-aes192gcm12-prfsha512-mlkem512", "aes128gcm8-aes192gcm12-prfsha512-mlkem512"),
        ];
        for (input, text) in cases_ike {
            let p = ike(input);
            assert_eq!(proposal_to_string(&p), text, "{input}");
            assert_eq!(ike(text), p, "{input}");
        }
        let cases_esp = [
            ("aes256gcm16-esn", "aes256gcm16-esn"),
            ("aes128-sha256-modp2048", "aes128-sha256-modp2048-noesn"),
            ("aes128-sha256-modp3072-none-esn-noesn", "aes128-sha256-modp3072-none-esn-noesn"),
        ];
        for (input, text) in cases_esp {
            let p = esp(input);
            assert_eq!(proposal_to_string(&p), text, "{input}");
            assert_eq!(esp(text), p, "{input}");
        }
        // Transforms without keywords (from a peer), out of order.
        let p = Proposal {
            number: 1,
            protocol: ProtocolId::IKE,
            spi: vec![],
            transforms: vec![
                Transform::ke(TransformType::ADDKE2, KeId::MODP1536),
                Transform::integ(IntegId::AES_XCBC_96),
                Transform::encr(EncrId::AES_CTR, Some(128)),
                Transform::encr(EncrId::DES3, None),
                Transform::new(TransformType::PRF, 99),
            ],
        };
        assert_eq!(proposal_to_string(&p), "ENCR_AES_CTR_128-ENCR_DES3-PRF_PrfId(99)-INTEG_AES_XCBC_96-KE2_MODP1536");
    }

    #[test]
    fn lists_and_default() {
        let v = parse_ike_proposals("default").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].number, v[1].number), (1, 2));
        assert!(v[0].transforms_of(TransformType::INTEG).count() == 3);
        assert!(v[1].transforms_of(TransformType::INTEG).count() == 0);
        assert!(v.iter().all(|p| {
            p.transforms.iter().all(|t| t.transform_id != KeId::MODP1024.0 || t.transform_type != TransformType::KE)
        }));
        let v = parse_ike_proposals("aes256gcm16-prfsha256-x25519, DEFAULT").unwrap();
        assert_eq!(v.iter().map(|p| p.number).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(v[0], ike("aes256gcm16-prfsha256-x25519"));
        let v = parse_esp_proposals("default").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].transforms.last(), Some(&Transform::esn(EsnId::NO_ESN)));
        assert!(parse_esp_proposals("aes128gcm16,").is_err());
        assert!(parse_esp_proposals("aes128gcm16,bogus").is_err());
        // `default` is only meaningful in a list.
        assert!(matches!(parse_ike_proposal("default"), Err(CryptoError::UnknownKeyword { .. })));
    }

    fn numbered(mut p: Proposal, number: u8, spi: &[u8]) -> Proposal {
        p.number = number;
        p.spi = spi.to_vec();
        p
    }

    fn sel_esp(ours: &str, theirs: &str, prefer_theirs: bool) -> Option<Proposal> {
        select_proposal(&[esp(ours)], &[esp(theirs)], prefer_theirs)
    }
    fn sel_ike(ours: &str, theirs: &str) -> Option<Proposal> {
        select_proposal(&[ike(ours)], &[ike(theirs)], false)
    }

    #[test]
    fn select_preference_and_key_length() {
        let ours = "aes128-aes256-sha1-sha256";
        let theirs = "aes256-aes128-sha256-sha1";
        assert_eq!(proposal_to_string(&sel_esp(ours, theirs, false).unwrap()), "aes128-sha1-noesn");
        assert_eq!(proposal_to_string(&sel_esp(ours, theirs, true).unwrap()), "aes256-sha256-noesn");
        // Same ID, different Key Length: no match.
        assert_eq!(sel_esp("aes128-sha256", "aes256-sha256", false), None);
        assert_eq!(sel_esp("aes128gcm16", "aes256gcm16", false), None);
        assert_eq!(sel_esp("aes128gcm16", "aes128gcm12", false), None);
        // A transform with an extra attribute never matches (RFC 7296 §3.3.6).
        let mut t = esp("aes128gcm16");
        t.transforms[0].attributes.push(oxswan_wire::sa::TransformAttribute {
            attribute_type: oxswan_wire::AttributeType(99),
            value: oxswan_wire::sa::AttributeValue::Tv(1),
        });
        assert_eq!(select_proposal(&[esp("aes128gcm16")], &[t], false), None);
        // Exactly one transform per type.
        let s =
            sel_ike("aes128-aes256-sha256-sha512-ecp256-x25519", "aes256-aes128-sha512-sha256-x25519-ecp256").unwrap();
        assert_eq!(proposal_to_string(&s), "aes128-prfsha256-sha256-ecp256");
    }

    #[test]
    fn select_number_spi_protocol() {
        let theirs =
            [numbered(esp("aes128-sha256-modp3072"), 1, &[9, 9, 9, 9]), numbered(esp("aes256gcm16"), 7, &[1, 2, 3, 4])];
        let ours = [esp("aes256gcm16"), esp("aes128-sha256-modp3072")];
        let s = select_proposal(&ours, &theirs, false).unwrap();
        assert_eq!((s.number, s.spi.as_slice(), s.protocol), (7, &[1u8, 2, 3, 4][..], ProtocolId::ESP));
        assert_eq!(proposal_to_string(&s), "aes256gcm16-noesn");
        let s = select_proposal(&ours, &theirs, true).unwrap();
        assert_eq!((s.number, s.spi.as_slice()), (1, &[9u8, 9, 9, 9][..]));
        assert_eq!(proposal_to_string(&s), "aes128-sha256-modp3072-noesn");
        // Protocol mismatch.
        assert_eq!(select_proposal(&[ike("aes128gcm16-prfsha256-x25519")], &[esp("aes128gcm16-x25519")], false), None);
        assert_eq!(select_proposal(&[], &theirs, false), None);
    }

    #[test]
    fn select_unknown_type_makes_proposal_unacceptable() {
        let mut odd = numbered(esp("aes256gcm16"), 1, &[]);
        odd.transforms.push(Transform::new(TransformType(13), 1));
        let theirs = [odd, numbered(esp("aes128gcm16"), 2, &[])];
        let s = select_proposal(&[esp("aes256gcm16-aes128gcm16")], &theirs, false).unwrap();
        assert_eq!((s.number, proposal_to_string(&s).as_str()), (2, "aes128gcm16-noesn"));
    }

    #[test]
    fn select_type_on_one_side_only() {
        // ESN missing on one side: no match.
        let mut t = esp("aes128gcm16");
        t.transforms.retain(|t| t.transform_type != TransformType::ESN);
        assert_eq!(select_proposal(&[esp("aes128gcm16")], &[t], false), None);
        // ESN.
        assert_eq!(sel_esp("aes128-sha256-noesn", "aes128-sha256-esn", false), None);
        assert_eq!(
            proposal_to_string(&sel_esp("aes128-sha256-noesn-esn", "aes128-sha256-esn", false).unwrap()),
            "aes128-sha256-esn"
        );
        assert_eq!(
            proposal_to_string(&sel_esp("aes128-sha256-esn-noesn", "aes128-sha256-noesn-esn", false).unwrap()),
            "aes128-sha256-esn"
        );
        // AEAD: a peer INTEG of NONE next to an AEAD cipher is ignored (RFC 7296 §3.3).
        let mut t = esp("aes128gcm16");
        t.transforms.push(Transform::integ(IntegId::NONE));
        assert_eq!(
            proposal_to_string(&select_proposal(&[esp("aes128gcm16")], &[t], false).unwrap()),
            "aes128gcm16-noesn"
        );
        // IKE KE is mandatory: a peer proposal without one is unacceptable.
        let mut t = ike("aes128gcm16-prfsha256-x25519");
        t.transforms.retain(|t| t.transform_type != TransformType::KE);
        assert_eq!(select_proposal(&[ike("aes128gcm16-prfsha256-x25519")], &[t], false), None);
    }

    #[test]
    fn select_esp_ke_optional_as_none() {
        assert_eq!(sel_esp("aes128-sha256-modp3072", "aes128-sha256", false), None);
        assert_eq!(sel_esp("aes128-sha256", "aes128-sha256-modp3072", false), None);
        assert_eq!(sel_esp("aes128-sha256-modp3072", "aes128-sha256-none", false), None);
        let s = sel_esp("aes128-sha256-modp3072-none", "aes128-sha256", false).unwrap();
        assert_eq!(proposal_to_string(&s), "aes128-sha256-noesn");
        let s = sel_esp("aes128-sha256", "aes128-sha256-modp3072-none", false).unwrap();
        assert_eq!(proposal_to_string(&s), "aes128-sha256-noesn");
        let s = sel_esp("aes128-sha256-modp3072-none", "aes128-sha256-none-modp3072", false).unwrap();
        assert_eq!(proposal_to_string(&s), "aes128-sha256-modp3072-noesn");
        let s = sel_esp("aes128-sha256-modp3072-none", "aes128-sha256-none-modp3072", true).unwrap();
        assert_eq!(proposal_to_string(&s), "aes128-sha256-noesn");
    }

    #[test]
    fn select_additional_ke() {
        let s =
            sel_ike("aes256gcm16-prfsha384-x25519-ke1_mlkem768", "aes256gcm16-prfsha384-x25519-ke1_mlkem768").unwrap();
        assert_eq!(proposal_to_string(&s), "aes256gcm16-prfsha384-x25519-ke1_mlkem768");
        // ADDKE1 missing on one side counts as {NONE}.
        assert_eq!(sel_ike("aes256gcm16-prfsha384-x25519-ke1_mlkem768", "aes256gcm16-prfsha384-x25519"), None);
        assert_eq!(sel_ike("aes256gcm16-prfsha384-x25519", "aes256gcm16-prfsha384-x25519-ke1_mlkem768"), None);
        let s = sel_ike("aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none", "aes256gcm16-prfsha384-x25519").unwrap();
        assert_eq!(proposal_to_string(&s), "aes256gcm16-prfsha384-x25519");
        // Cases from strongSwan's test_proposal.c: a method chosen for KE is not chosen again for ADDKE1.
        assert_eq!(sel_ike("aes128-sha256-modp3072-ke1_modp3072", "aes128-sha256-modp3072-ke1_modp3072"), None);
        let s = sel_ike("aes128-sha256-modp3072-ke1_modp3072-ke1_none", "aes128-sha256-modp3072-ke1_modp3072-ke1_none")
            .unwrap();
        assert_eq!(proposal_to_string(&s), "aes128-prfsha256-sha256-modp3072");
        let s = sel_ike("aes128-sha256-modp3072-ke1_modp3072-ke1_ecp256", "aes128-sha256-modp3072-ke1_ecp256").unwrap();
        assert_eq!(proposal_to_string(&s), "aes128-prfsha256-sha256-modp3072-ke1_ecp256");
        let s = sel_ike(
            "aes128-sha256-modp3072-ecp256-ecp384-ke1_modp3072-ke1_ecp256-ke1_ecp384-ke2_modp3072-ke2_ecp256-ke2_ecp384",
            "aes128-sha256-modp3072-ecp256-ecp384-ke1_modp3072-ke1_ecp256-ke1_ecp384-ke2_modp3072-ke2_ecp256-ke2_ecp384",
        )
        .unwrap();
        assert_eq!(proposal_to_string(&s), "aes128-prfsha256-sha256-modp3072-ke1_ecp256-ke2_ecp384");
        assert_eq!(
            sel_ike("aes128-sha256-ecp256-ke1_modp3072", "aes128-sha256-modp3072-ecp256-ke1_ecp256-ke2_ecp384"),
            None
        );
    }

    #[test]
    fn aead_classification() {
        assert!(encr_is_aead(EncrId::AES_GCM_8) && encr_is_aead(EncrId::CHACHA20_POLY1305));
        assert!(encr_is_aead(EncrId(26)));
        assert!(!encr_is_aead(EncrId::AES_CBC) && !encr_is_aead(EncrId::AES_CTR));
    }
}
