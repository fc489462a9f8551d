//! The key material of the captured strongSwan exchange, shared by the cross-check tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, dead_code)]

use std::collections::HashMap;

const DATA: &str = include_str!("../data/charon-psk-x25519-aes256gcm.txt");

/// The `name = hex` lines of tests/data/charon-psk-x25519-aes256gcm.txt.
pub fn values() -> HashMap<String, Vec<u8>> {
    DATA.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, value) = l.split_once('=').expect("name = hex");
            (name.trim().to_owned(), hex::decode(value.trim()).expect("hex value"))
        })
        .collect()
}

/// One value, by name.
pub fn get<'a>(v: &'a HashMap<String, Vec<u8>>, name: &str) -> &'a [u8] {
    v.get(name).unwrap_or_else(|| panic!("{name} missing from the key file"))
}
