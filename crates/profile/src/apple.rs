//! An Apple configuration profile (`.mobileconfig`) for the IKEv2 client of iOS, iPadOS and macOS:
//! the CA as a root certificate payload, for certificate clients the PKCS#12 identity, and a VPN
//! payload of `VPNType` IKEv2 with the keys Apple's Configuration Profile Reference documents
//! (`com.apple.vpn.managed`).

use plist::{Dictionary, Value};

use crate::suites::apple as names;
use crate::{CertKind, Client, Credential, Gateway, ProfileError};

/// Minutes an IKE or CHILD SA lives on the client before it rekeys (Apple's default is 1440 for
/// IKE and 60 for the CHILD SA; the gateway rekeys its side on its own schedule).
const IKE_LIFETIME_MINUTES: i64 = 1440;
const CHILD_LIFETIME_MINUTES: i64 = 60;

fn int(v: i64) -> Value {
    Value::Integer(v.into())
}

fn string(s: &str) -> Value {
    Value::String(s.to_owned())
}

/// The keys every payload has: its type, version, a reverse-DNS identifier and a UUID.
fn payload(kind: &str, identifier: String, name: String) -> Result<Dictionary, ProfileError> {
    let mut d = Dictionary::new();
    d.insert("PayloadType".into(), string(kind));
    d.insert("PayloadVersion".into(), int(1));
    d.insert("PayloadIdentifier".into(), Value::String(identifier));
    d.insert("PayloadUUID".into(), Value::String(crate::uuid()?));
    d.insert("PayloadDisplayName".into(), Value::String(name));
    Ok(d)
}

fn security_association(lifetime: i64) -> Value {
    let mut d = Dictionary::new();
    d.insert("EncryptionAlgorithm".into(), string(names::ENCRYPTION));
    d.insert("IntegrityAlgorithm".into(), string(names::INTEGRITY));
    d.insert("DiffieHellmanGroup".into(), int(names::DH_GROUP));
    d.insert("LifeTimeInMinutes".into(), int(lifetime));
    Value::Dictionary(d)
}

/// The profile for `client` of `gateway`, as XML. With `on_demand` the VPN connects by itself
/// whenever the device has a network (an `OnDemandRules` rule `Connect`).
///
/// The profile is a credential: a password client's password (`AuthPassword`) or a certificate
/// client's PKCS#12 password is in it, so that one import sets everything up.
pub fn mobileconfig(gateway: &Gateway, client: &Client, on_demand: bool) -> Result<Vec<u8>, ProfileError> {
    let id = format!("oxswan.{}.{}", gateway.name, client.name);
    let mut content = Vec::new();

    let mut ca = payload("com.apple.security.root", format!("{id}.ca"), gateway.ca_common_name.clone())?;
    ca.insert("PayloadCertificateFileName".into(), string("ca.cer"));
    ca.insert("PayloadContent".into(), Value::Data(gateway.ca_der.clone()));
    content.push(Value::Dictionary(ca));

    let mut ike = Dictionary::new();
    ike.insert("RemoteAddress".into(), string(&gateway.name));
    ike.insert("RemoteIdentifier".into(), string(&gateway.name));
    // With EAP this only says how the gateway is checked (its certificate, issued by our CA).
    ike.insert("AuthenticationMethod".into(), string("Certificate"));
    ike.insert("ServerCertificateIssuerCommonName".into(), string(&gateway.ca_common_name));
    match &client.credential {
        Credential::Password { user, password } => {
            ike.insert("LocalIdentifier".into(), string(user));
            ike.insert("ExtendedAuthEnabled".into(), int(1));
            ike.insert("AuthName".into(), string(user));
            ike.insert("AuthPassword".into(), string(password));
        }
        Credential::Certificate { id: cert_id, kind, p12, p12_password } => {
            let mut identity = payload("com.apple.security.pkcs12", format!("{id}.identity"), cert_id.clone())?;
            identity.insert("PayloadCertificateFileName".into(), Value::String(format!("{}.p12", client.name)));
            identity.insert("PayloadContent".into(), Value::Data(p12.clone()));
            identity.insert("Password".into(), string(p12_password));
            let uuid = identity.get("PayloadUUID").cloned().unwrap_or_else(|| string(""));
            content.push(Value::Dictionary(identity));
            ike.insert("LocalIdentifier".into(), string(cert_id));
            ike.insert("ExtendedAuthEnabled".into(), int(0));
            ike.insert("PayloadCertificateUUID".into(), uuid);
            let kind = match kind {
                CertKind::EcdsaP256 => "ECDSA256",
                CertKind::Rsa => "RSA",
            };
            ike.insert("CertificateType".into(), string(kind));
        }
    }
    ike.insert("IKESecurityAssociationParameters".into(), security_association(IKE_LIFETIME_MINUTES));
    ike.insert("ChildSecurityAssociationParameters".into(), security_association(CHILD_LIFETIME_MINUTES));
    ike.insert("EnablePFS".into(), int(0));
    ike.insert("DeadPeerDetectionRate".into(), string("Medium"));
    ike.insert("DisableMOBIKE".into(), int(0));
    ike.insert("DisableRedirect".into(), int(0));
    ike.insert("EnableCertificateRevocationCheck".into(), int(0));
    ike.insert("UseConfigurationAttributeInternalIPSubnet".into(), int(0));
    ike.insert("OnDemandEnabled".into(), int(i64::from(on_demand)));
    if on_demand {
        let mut rule = Dictionary::new();
        rule.insert("Action".into(), string("Connect"));
        ike.insert("OnDemandRules".into(), Value::Array(vec![Value::Dictionary(rule)]));
    }

    let mut vpn = payload("com.apple.vpn.managed", format!("{id}.vpn"), format!("VPN {}", gateway.name))?;
    vpn.insert("UserDefinedName".into(), string(&gateway.name));
    vpn.insert("VPNType".into(), string("IKEv2"));
    vpn.insert("IKEv2".into(), Value::Dictionary(ike));
    // Every IPv4 packet through the tunnel (the gateway's traffic selectors are 0.0.0.0/0).
    let mut ipv4 = Dictionary::new();
    ipv4.insert("OverridePrimary".into(), int(1));
    vpn.insert("IPv4".into(), Value::Dictionary(ipv4));
    content.push(Value::Dictionary(vpn));

    let mut top = payload("Configuration", id, format!("{} VPN ({})", gateway.name, client.name))?;
    top.insert(
        "PayloadDescription".into(),
        Value::String(format!("IKEv2 VPN to {} for {}, made by oxswan", gateway.name, client.name)),
    );
    top.insert("PayloadRemovalDisallowed".into(), Value::Boolean(false));
    top.insert("PayloadContent".into(), Value::Array(content));
    let mut out = Vec::new();
    Value::Dictionary(top).to_writer_xml(&mut out).map_err(|e| ProfileError::Plist(e.to_string()))?;
    Ok(out)
}
