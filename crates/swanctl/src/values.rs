//! swanctl.conf's values as charon reads them (src/libcharon/plugins/vici/vici_config.c): lists,
//! booleans, times and volumes, turned into oxswan's notation.

/// A comma-separated list, each item trimmed of spaces (swanctl's `enumerator_create_token(value,
/// ",", " ")`); empty items dropped.
pub(crate) fn list(v: &str) -> Vec<String> {
    v.split(',').map(|s| s.trim_matches(' ').to_owned()).filter(|s| !s.is_empty()).collect()
}

/// `yes`, `true`, `enabled`, `1` / `no`, `false`, `disabled`, `0`, in any case (`parse_bool`).
pub(crate) fn boolean(v: &str) -> Option<bool> {
    const YES: [&str; 4] = ["yes", "true", "enabled", "1"];
    const NO: [&str; 4] = ["no", "false", "disabled", "0"];
    if YES.iter().any(|y| y.eq_ignore_ascii_case(v)) {
        Some(true)
    } else if NO.iter().any(|n| n.eq_ignore_ascii_case(v)) {
        Some(false)
    } else {
        None
    }
}

/// An unsigned number as C's strtoul with base 0 reads it (`0x` hex, a leading `0` octal), and
/// the rest of the text after it and any spaces.
fn c_number(v: &str) -> Option<(u64, &str)> {
    let t = v.trim_start();
    let (digits, radix) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (h, 16)
    } else if t.len() > 1 && t.starts_with('0') && t.as_bytes().get(1).is_some_and(u8::is_ascii_digit) {
        (t.get(1..)?, 8)
    } else {
        (t, 10)
    };
    let end = digits.find(|c: char| !c.is_digit(radix)).unwrap_or(digits.len());
    let n = u64::from_str_radix(digits.get(..end)?, radix).ok()?;
    Some((n, digits.get(end..)?.trim_start_matches(' ')))
}

/// A time (`parse_time`): a number with an optional `s`, `m`, `h` or `d`; in seconds.
pub(crate) fn seconds(v: &str) -> Option<u64> {
    let (n, rest) = c_number(v)?;
    let factor = match rest {
        "" | "s" | "S" => 1,
        "m" | "M" => 60,
        "h" | "H" => 3600,
        "d" | "D" => 86_400,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// Seconds in oxswan's notation, in the largest unit that divides them.
pub(crate) fn duration(secs: u64) -> String {
    match secs {
        0 => "0".to_owned(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// A volume (`parse_bytes`): a number with an optional `k`, `m` or `g` (powers of 1024).
pub(crate) fn volume(v: &str) -> Option<u64> {
    let (n, rest) = c_number(v)?;
    let factor: u64 = match rest {
        "" => 1,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        _ => return None,
    };
    // charon saturates.
    Some(n.saturating_mul(factor))
}

/// A secret as swanctl reads it: `0x` hex, `0s` base64, else the text itself; `None` when the
/// encoded bytes are not text (oxswan's secrets are TOML strings).
pub(crate) fn secret(v: &str) -> Result<String, &'static str> {
    String::from_utf8(secret_octets(v)?).map_err(|_| "binary (not UTF-8 text), which oxswan's TOML secrets cannot hold")
}

/// The octets of a swanctl secret: `0x` hex, `0s` base64, or the text itself.
pub(crate) fn secret_octets(v: &str) -> Result<Vec<u8>, &'static str> {
    use base64::Engine as _;
    if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        hex::decode(h).map_err(|_| "not hexadecimal after 0x")
    } else if let Some(b) = v.strip_prefix("0s").or_else(|| v.strip_prefix("0S")) {
        base64::engine::general_purpose::STANDARD.decode(b).map_err(|_| "not base64 after 0s")
    } else {
        Ok(v.as_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn times_as_charon_reads_them() {
        assert_eq!(seconds("30"), Some(30));
        assert_eq!(seconds("30s"), Some(30));
        assert_eq!(seconds("15m"), Some(900));
        assert_eq!(seconds("4H"), Some(14_400));
        assert_eq!(seconds("1d"), Some(86_400));
        assert_eq!(seconds("2 h"), Some(7200));
        assert_eq!(seconds("0x10"), Some(16));
        assert_eq!(seconds("010"), Some(8), "strtoul base 0 reads a leading 0 as octal");
        assert_eq!(seconds("1w"), None);
        assert_eq!(seconds("h"), None);
        assert_eq!(seconds("1hh"), None);
        assert_eq!(duration(14_400), "4h");
        assert_eq!(duration(90), "90s");
        assert_eq!(duration(5400), "90m");
        assert_eq!(duration(0), "0");
    }

    #[test]
    fn volumes_lists_booleans_secrets() {
        assert_eq!(volume("500M"), Some(500 << 20));
        assert_eq!(volume("2k"), Some(2048));
        assert_eq!(volume("7"), Some(7));
        assert_eq!(volume("1T"), None);
        assert_eq!(list(" a, b ,,c "), vec!["a", "b", "c"]);
        assert_eq!(boolean("Yes"), Some(true));
        assert_eq!(boolean("disabled"), Some(false));
        assert_eq!(boolean("maybe"), None);
        assert_eq!(secret("0x736563726574").unwrap(), "secret");
        assert_eq!(secret("0sc2VjcmV0").unwrap(), "secret");
        assert_eq!(secret("plain 0x").unwrap(), "plain 0x");
        assert!(secret("0xff00").is_err());
        assert!(secret("0xzz").is_err());
    }
}
