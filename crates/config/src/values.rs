//! Values as strongSwan writes them: durations, volumes, identities, distinguished names, traffic
//! selectors.

use core::net::IpAddr;
use core::time::Duration;

use oxswan_ike::child::TsConfig;
use oxswan_wire::Identity;
use oxswan_wire::ts::TrafficSelector;

use crate::raw::S;
use crate::{ConfigError, Ctx};

/// A duration as strongSwan writes them: a number of seconds, or with `s`, `m`, `h` or `d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(factor).map(Duration::from_secs)
}

pub(crate) fn duration(ctx: &Ctx<'_>, v: Option<S<String>>, key: &str) -> Result<Option<Duration>, ConfigError> {
    v.map(|v| {
        parse_duration(v.get_ref()).filter(|d| !d.is_zero()).ok_or_else(|| {
            ctx.err(v.span(), key, format!("`{}` is not a duration such as 30s, 15m, 4h, 1d", v.get_ref()))
        })
    })
    .transpose()
}

/// strongSwan's default rekey times: 4h for IKE SAs, 1h for CHILD SAs.
pub const IKE_REKEY_TIME: Duration = Duration::from_secs(4 * 3600);
/// See [`IKE_REKEY_TIME`].
pub const CHILD_REKEY_TIME: Duration = Duration::from_secs(3600);

/// A rekey or life time: `default` when absent, never when `0`.
pub(crate) fn lifetime(
    ctx: &Ctx<'_>,
    v: Option<S<String>>,
    key: &str,
    default: Option<Duration>,
) -> Result<Option<Duration>, ConfigError> {
    match span_of_time(ctx, v, key)? {
        None => Ok(default),
        Some(d) => Ok((!d.is_zero()).then_some(d)),
    }
}

/// A duration that may be zero (`rand_time`, `over_time`).
pub(crate) fn span_of_time(ctx: &Ctx<'_>, v: Option<S<String>>, key: &str) -> Result<Option<Duration>, ConfigError> {
    v.map(|v| {
        parse_duration(v.get_ref()).ok_or_else(|| {
            ctx.err(v.span(), key, format!("`{}` is not a duration such as 30s, 15m, 4h, 1d", v.get_ref()))
        })
    })
    .transpose()
}

/// An amount of octets or packets: an integer, or a string with a k, M or G suffix (powers of 1024,
/// as strongSwan reads them).
pub fn parse_volume(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, factor) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (s.get(..i)?, 1u64 << 10),
        Some((i, 'm' | 'M')) => (s.get(..i)?, 1 << 20),
        Some((i, 'g' | 'G')) => (s.get(..i)?, 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(factor)
}

pub(crate) fn volume(ctx: &Ctx<'_>, v: Option<S<toml::Value>>, key: &str) -> Result<Option<u64>, ConfigError> {
    let Some(v) = v else { return Ok(None) };
    let parsed = match v.get_ref() {
        toml::Value::Integer(n) => u64::try_from(*n).ok(),
        toml::Value::String(s) => parse_volume(s),
        _ => None,
    };
    parsed.map(Some).ok_or_else(|| {
        ctx.err(v.span(), key, format!("{} is not an amount such as 1000, \"500M\" or \"2G\"", describe(v.get_ref())))
    })
}

fn describe(v: &toml::Value) -> String {
    match v {
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::String(s) => format!("`{s}`"),
        other => format!("a {}", other.type_str()),
    }
}

/// An identity with strongSwan's rules: an IP address is ID_IPV4/IPV6_ADDR, `@x` forces ID_FQDN `x`,
/// a name with `@` is ID_RFC822_ADDR, one with `=` a DN, anything else ID_FQDN; `%any` is `None`.
pub fn parse_identity(s: &str) -> Result<Option<Identity>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty identity".into());
    }
    if s == "%any" {
        return Ok(None);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(Some(match ip {
            IpAddr::V4(a) => Identity::Ipv4(a),
            IpAddr::V6(a) => Identity::Ipv6(a),
        }));
    }
    if let Some(fqdn) = s.strip_prefix('@') {
        return Ok(Some(Identity::Fqdn(fqdn.to_owned())));
    }
    if s.contains('=') {
        return parse_dn(s).map(|der| Some(Identity::Dn(der)));
    }
    if !s.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!("`{s}` has spaces or characters outside printable ASCII"));
    }
    Ok(Some(if s.contains('@') { Identity::Email(s.to_owned()) } else { Identity::Fqdn(s.to_owned()) }))
}

/// A distinguished name as strongSwan writes it, `C=CH, O=Example, CN=vpn.example.com` (attributes
/// in the order of the certificate's subject, `\,` for a literal comma), DER-encoded with one
/// attribute per RDN and UTF8String values as strongSwan does (IA5String for `E` and `DC`). The
/// engine compares DNs by attribute value, so this matches a certificate that uses PrintableString.
pub fn parse_dn(s: &str) -> Result<Vec<u8>, String> {
    // Attribute types by the names strongSwan accepts (RFC 4519 and PKCS #9 OIDs, DER body).
    const TYPES: &[(&str, &[u8])] = &[
        ("C", &[0x55, 0x04, 0x06]),
        ("ST", &[0x55, 0x04, 0x08]),
        ("L", &[0x55, 0x04, 0x07]),
        ("O", &[0x55, 0x04, 0x0a]),
        ("OU", &[0x55, 0x04, 0x0b]),
        ("CN", &[0x55, 0x04, 0x03]),
        ("SN", &[0x55, 0x04, 0x04]),
        ("serialNumber", &[0x55, 0x04, 0x05]),
        ("T", &[0x55, 0x04, 0x0c]),
        ("G", &[0x55, 0x04, 0x2a]),
        ("E", &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]),
        ("emailAddress", &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]),
        ("DC", &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19]),
        ("UID", &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01]),
    ];
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => cur.push(chars.next().ok_or("a DN may not end with `\\`")?),
            ',' => parts.push(core::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    let mut rdns = Vec::new();
    for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once('=').ok_or_else(|| format!("`{part}` in a DN is not TYPE=value"))?;
        let (key, value) = (key.trim(), value.trim());
        let oid = TYPES.iter().find(|(n, _)| n.eq_ignore_ascii_case(key)).map(|(_, o)| *o).ok_or_else(|| {
            format!("`{key}` is not a DN attribute type oxswan knows (C, ST, L, O, OU, CN, E, DC, ...)")
        })?;
        if value.is_empty() {
            return Err(format!("`{key}=` has no value"));
        }
        let tag = if matches!(key.to_ascii_uppercase().as_str(), "E" | "EMAILADDRESS" | "DC") { 0x16 } else { 0x0c };
        let atv = [der_tlv(0x06, oid), der_tlv(tag, value.as_bytes())].concat();
        rdns.extend(der_tlv(0x31, &der_tlv(0x30, &atv)));
    }
    if rdns.is_empty() {
        return Err("empty DN".into());
    }
    Ok(der_tlv(0x30, &rdns))
}

/// One DER TLV (definite length, short or long form).
fn der_tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let len = body.len();
    if len < 0x80 {
        v.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        v.push(0x80 | bytes.len() as u8);
        v.extend(bytes);
    }
    v.extend_from_slice(body);
    v
}

pub(crate) fn identity(ctx: &Ctx<'_>, v: &S<String>, key: &str) -> Result<Option<Identity>, ConfigError> {
    parse_identity(v.get_ref()).map_err(|m| ctx.err(v.span(), key, m))
}

/// A traffic selector: `dynamic`, an address, or `address/prefix`.
pub fn parse_ts(s: &str) -> Result<TsConfig, String> {
    let s = s.trim();
    if s == "dynamic" {
        return Ok(TsConfig::Dynamic);
    }
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| format!("`{s}` is not `dynamic`, an address or a subnet"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len: u8 = match len {
        Some(l) => l.parse().ok().filter(|l| *l <= max).ok_or_else(|| format!("`{s}`: prefix length 0 to {max}"))?,
        None => max,
    };
    TrafficSelector::from_prefix(ip, len, 0, 0, u16::MAX).map(TsConfig::Selector).ok_or_else(|| format!("`{s}`"))
}
