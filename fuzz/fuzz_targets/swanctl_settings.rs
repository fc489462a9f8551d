//! strongSwan's settings syntax (swanctl.conf) fed arbitrary text: parsing, resolving references
//! and converting what parsed into oxswan's TOML never panic, and the TOML is always TOML.
//!
//! Input: the file's text (includes name files relative to a directory that does not exist, so
//! they match nothing).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let file = Path::new("/nonexistent/oxswan-fuzz/swanctl.conf");
    let Ok(settings) = oxswan_swanctl::settings::parse_str(file, text) else { return };
    let Ok((root, _)) = settings.resolved() else { return };
    let import = oxswan_swanctl::convert(&root, Path::new("/nonexistent/oxswan-fuzz"), file, Vec::new());
    assert!(import.toml.parse::<toml_edit::DocumentMut>().is_ok(), "{}", import.toml);
});
