//! A profile for the strongSwan VPN client for Android (`.sswan`, JSON), in the format its
//! import activity reads: `uuid`, `name`, `type`, `remote` (`addr`, `id`, `cert`), `local`
//! (`eap_id` or `p12`), `ike-proposal`, `esp-proposal`.

use serde_json::{Value, json};

use crate::suites::ANDROID;
use crate::{Client, Credential, Gateway, ProfileError, base64};

/// The `.sswan` for `client` of `gateway`. Neither the password nor the PKCS#12 password is in it:
/// the app asks for them when the profile is imported, so the file can travel by mail or QR code
/// (a password client's profile is small enough for one).
/// A name-based UUID (RFC 9562 §5.5, SHA-1) of the gateway and the client.
fn stable_uuid(gateway: &str, client: &str) -> String {
    let name = format!("oxswan .sswan\0{gateway}\0{client}");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, name.as_bytes());
    let mut b = [0u8; 16];
    for (d, s) in b.iter_mut().zip(digest.as_ref()) {
        *d = *s;
    }
    uuid::Builder::from_sha1_bytes(b).into_uuid().hyphenated().to_string()
}

pub fn sswan(gateway: &Gateway, client: &Client) -> Result<String, ProfileError> {
    let (kind, local) = match &client.credential {
        Credential::Password { user, .. } => ("ikev2-eap", json!({ "eap_id": user })),
        Credential::Certificate { id, p12, .. } => ("ikev2-cert", json!({ "id": id, "p12": base64(p12) })),
    };
    let profile: Value = json!({
        // The app replaces a profile of the same UUID: the same one for the same client, so that
        // an exported profile imported again updates the first.
        "uuid": stable_uuid(&gateway.name, &client.name),
        "name": format!("{} ({})", gateway.name, client.name),
        "type": kind,
        "remote": {
            "addr": gateway.name,
            "id": gateway.name,
            // The CA: the app trusts the gateway's certificate by it.
            "cert": base64(&gateway.ca_der),
        },
        "local": local,
        "ike-proposal": ANDROID.ike,
        "esp-proposal": ANDROID.esp,
        // A gateway without IPv6 for its clients: IPv6 is blocked rather than sent past the
        // tunnel.
        "split-tunneling": { "block-ipv6": !gateway.ipv6 },
    });
    serde_json::to_string_pretty(&profile).map_err(|e| ProfileError::BadValue {
        what: "profile",
        value: client.name.clone(),
        why: if e.is_io() { "cannot be written" } else { "not representable as JSON" },
    })
}
