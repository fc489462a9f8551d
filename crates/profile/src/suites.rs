//! The algorithms each kind of client is given, and the gateway's proposals that contain them all.
//!
//! Every profile names its algorithms explicitly rather than leaving the client to its defaults:
//! Windows' default IKE proposal needs MODP-1024 (RFC 8247 §2.4: SHOULD NOT), and an explicit
//! suite makes what a client proposes known, so that the test of each profile proves the gateway
//! accepts it. The suites are AEAD where the client's configuration can say so, with PRF-HMAC-SHA-256
//! and a key exchange of at least 128-bit strength (RFC 8247 §2.4).

/// One client's IKE and ESP proposal in strongSwan's syntax (what the gateway must accept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    /// The IKE SA's proposal.
    pub ike: &'static str,
    /// The CHILD SA's proposal. No key exchange: no stock client does PFS for the CHILD SA made
    /// in IKE_AUTH, and the profiles do not turn it on for rekeys either.
    pub esp: &'static str,
}

/// iOS and macOS: AES-256-GCM, PRF-HMAC-SHA-256 (Apple's `IntegrityAlgorithm` is the PRF with an
/// AEAD), group 19 (ECP-256). `IKESecurityAssociationParameters` and
/// `ChildSecurityAssociationParameters` in the profile say exactly this.
pub const APPLE: Suite = Suite { ike: "aes256gcm16-prfsha256-ecp256", esp: "aes256gcm16" };

/// The Apple profile's names for [`APPLE`].
pub mod apple {
    /// `EncryptionAlgorithm` of both SAs.
    pub const ENCRYPTION: &str = "AES-256-GCM";
    /// `IntegrityAlgorithm` (the IKE SA's PRF).
    pub const INTEGRITY: &str = "SHA2-256";
    /// `DiffieHellmanGroup` (IANA's number; 19 is ECP-256).
    pub const DH_GROUP: i64 = 19;
}

/// Windows 10 and 11 (`Set-VpnConnectionIPsecConfiguration`): IKE with AES-256-CBC, SHA-256 and
/// group 14 (MODP-2048), which every Windows build that has that cmdlet accepts; ESP with
/// AES-256-GCM and no PFS.
pub const WINDOWS: Suite = Suite { ike: "aes256-sha256-modp2048", esp: "aes256gcm16" };

/// The cmdlet's parameter values for [`WINDOWS`].
pub mod windows {
    /// `-EncryptionMethod` (IKE).
    pub const ENCRYPTION_METHOD: &str = "AES256";
    /// `-IntegrityCheckMethod` (IKE's integrity and PRF).
    pub const INTEGRITY_CHECK_METHOD: &str = "SHA256";
    /// `-DHGroup` (IKE).
    pub const DH_GROUP: &str = "Group14";
    /// `-CipherTransformConstants` (ESP).
    pub const CIPHER_TRANSFORM: &str = "GCMAES256";
    /// `-AuthenticationTransformConstants` (ESP; with GCM the same constant).
    pub const AUTHENTICATION_TRANSFORM: &str = "GCMAES256";
    /// `-PfsGroup` (CHILD SA rekeys).
    pub const PFS_GROUP: &str = "None";
}

/// strongSwan for Android (its `ike-proposal` and `esp-proposal` take strongSwan's syntax).
pub const ANDROID: Suite = Suite { ike: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16" };

/// oxswan as a Linux client.
pub const LINUX: Suite = Suite { ike: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16" };

/// What Windows proposes when nobody configured it (AES-256-CBC with SHA-1 or SHA-256 and
/// MODP-1024), accepted only with `--allow-legacy`.
const WINDOWS_DEFAULT_IKE: [&str; 2] = ["aes256-sha256-modp1024", "aes256-sha1-modp1024"];
/// Windows' default ESP proposals (AES-CBC with HMAC-SHA-1).
const WINDOWS_DEFAULT_ESP: [&str; 2] = ["aes256-sha1", "aes128-sha1"];

/// The gateway's IKE proposals: every client suite above, and a few more that the same clients
/// propose when configured by hand (ChaCha20-Poly1305, MODP-3072, ECP-256 with CBC); with
/// `legacy`, Windows' unconfigured default as well.
pub fn gateway_ike(legacy: bool) -> Vec<&'static str> {
    let mut v = vec![
        ANDROID.ike,
        APPLE.ike,
        "chacha20poly1305-prfsha256-x25519",
        "aes256gcm16-prfsha384-ecp384",
        "aes256gcm16-prfsha512-modp3072",
        WINDOWS.ike,
        "aes256-sha256-ecp256",
    ];
    if legacy {
        v.extend(WINDOWS_DEFAULT_IKE);
    }
    v
}

/// The gateway's ESP proposals, as [`gateway_ike`].
pub fn gateway_esp(legacy: bool) -> Vec<&'static str> {
    let mut v = vec!["aes256gcm16", "aes128gcm16", "chacha20poly1305", "aes256-sha256"];
    if legacy {
        v.extend(WINDOWS_DEFAULT_ESP);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_accepts_every_client_and_nothing_weak_unless_asked() {
        for s in [APPLE, WINDOWS, ANDROID, LINUX] {
            for legacy in [false, true] {
                assert!(gateway_ike(legacy).contains(&s.ike), "{s:?}");
                assert!(gateway_esp(legacy).contains(&s.esp), "{s:?}");
            }
        }
        let weak = |p: &&str| p.contains("modp1024") || p.contains("sha1");
        assert!(!gateway_ike(false).iter().any(weak));
        assert!(!gateway_esp(false).iter().any(weak));
        assert!(gateway_ike(true).iter().any(|p| p.contains("modp1024")));
        assert!(gateway_esp(true).contains(&"aes256-sha1"));
    }
}
