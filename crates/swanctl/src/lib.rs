//! strongSwan's swanctl.conf, read as strongSwan reads it ([`settings`]) and converted into
//! oxswan's TOML configuration ([`convert`]), for `oxswan import-swanctl FILE`.
//!
//! Certificates and keys are found as swanctl finds them, beside the file (`x509/`, `x509ca/`,
//! `x509crl/`, `private/`, `rsa/`, `ecdsa/`, `pkcs8/`), and written into the TOML as absolute
//! paths, so that the converted file works wherever it is put and whatever the daemon's working
//! directory (oxswan opens the paths of its configuration as they are written).
#![forbid(unsafe_code)]

mod convert;
mod creds;
pub mod settings;
mod values;

use std::path::Path;

pub use convert::{Import, Note, convert};
pub use settings::{Loc, ParseError, Section, Settings};

/// Reads a swanctl.conf with its includes and converts it. An error only when the file (or one it
/// includes) cannot be read or parsed; everything else is a [`Note`] of the result.
pub fn import(path: &Path) -> Result<Import, ParseError> {
    let settings = settings::load(path)?;
    let (root, reference_warnings) = settings.resolved()?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let notes = settings
        .warnings
        .into_iter()
        .chain(reference_warnings)
        .map(|(loc, message)| Note { loc, key: "(file)".into(), message })
        .collect();
    Ok(convert(&root, &dir, path, notes))
}
