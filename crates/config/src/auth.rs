//! How each side authenticates: `psk`, `pubkey` and the EAP methods (RFC 7296 §2.16), the EAP
//! identities, and the secrets they need.

use core::fmt;
use std::path::PathBuf;

use oxswan_crypto::Secret;
use oxswan_wire::Identity;

use crate::raw::{RawEapSecret, RawSide, S};
use crate::values::identity;
use crate::{Config, ConfigError, Connection, Ctx, IkeSecret, PpkSecret};

/// An EAP method (RFC 3748) for `auth = "eap-..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EapKind {
    /// `eap-mschapv2`: EAP-MSCHAPv2 with a password from `[[secrets.eap]]` (Windows', Apple's and
    /// Android's default).
    Mschapv2,
    /// `eap-md5`: EAP-MD5 challenge (RFC 3748 §5.4) with a password from `[[secrets.eap]]`; it does
    /// not authenticate the server and derives no key.
    Md5,
    /// `eap-tls`: EAP-TLS (RFC 5216), a client certificate.
    Tls,
    /// `eap-dynamic`: the server proposes methods and the client picks one it can run; a client
    /// accepts whichever method the server asks for among those it has secrets or a certificate for.
    Dynamic,
    /// `eap-radius`: the gateway passes the client's EAP to a RADIUS server (RFC 3579); only on the
    /// remote side, with `[radius]` servers.
    Radius,
}

impl EapKind {
    /// The method's name in the configuration, `eap-mschapv2`.
    pub fn name(self) -> &'static str {
        match self {
            EapKind::Mschapv2 => "eap-mschapv2",
            EapKind::Md5 => "eap-md5",
            EapKind::Tls => "eap-tls",
            EapKind::Dynamic => "eap-dynamic",
            EapKind::Radius => "eap-radius",
        }
    }

    /// Whether the method checks a password from `[[secrets.eap]]`.
    pub fn uses_password(self) -> bool {
        matches!(self, EapKind::Mschapv2 | EapKind::Md5)
    }
}

impl fmt::Display for EapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How one side authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// Pre-shared key from `[[secrets.ike]]`.
    Psk,
    /// Certificate and private key (RFC 7427 signatures).
    Pubkey,
    /// EAP inside IKE_AUTH (RFC 7296 §2.16); always the initiator's, the client's, side.
    Eap(EapKind),
}

impl AuthKind {
    /// The EAP method, if this is one.
    pub fn eap(self) -> Option<EapKind> {
        match self {
            AuthKind::Eap(k) => Some(k),
            AuthKind::Psk | AuthKind::Pubkey => None,
        }
    }

    /// Parses `psk`, `pubkey` or `eap-...`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "psk" => AuthKind::Psk,
            "pubkey" => AuthKind::Pubkey,
            "eap-mschapv2" => AuthKind::Eap(EapKind::Mschapv2),
            "eap-md5" => AuthKind::Eap(EapKind::Md5),
            "eap-tls" => AuthKind::Eap(EapKind::Tls),
            "eap-dynamic" => AuthKind::Eap(EapKind::Dynamic),
            "eap-radius" => AuthKind::Eap(EapKind::Radius),
            _ => return None,
        })
    }
}

impl fmt::Display for AuthKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthKind::Psk => f.write_str("psk"),
            AuthKind::Pubkey => f.write_str("pubkey"),
            AuthKind::Eap(k) => k.fmt(f),
        }
    }
}

/// The EAP identity a server asks for (`connections.<name>.remote.eap_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EapId {
    /// `%any`: ask the client with EAP-Identity (RFC 3748 §5.1) and accept whatever it answers.
    Any,
    /// This identity, and no other.
    Name(String),
}

/// `connections.<name>.local`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSide {
    /// How we authenticate.
    pub auth: AuthKind,
    /// Our identity; `None` with `pubkey` (or `eap-tls`) means the certificate's subject DN.
    pub id: Option<Identity>,
    /// Our EAP identity as a client; `None`: our IKE identity (see [`LocalSide::eap_identity`]).
    pub eap_id: Option<String>,
    /// Our certificate chain files (end entity first).
    pub certs: Vec<PathBuf>,
    /// Our private key file.
    pub key: Option<PathBuf>,
    /// Sign with RSASSA-PSS rather than PKCS#1 v1.5 when our key is RSA (strongSwan's `rsa_pss`).
    pub rsa_pss: bool,
}

impl LocalSide {
    /// The EAP identity we answer EAP-Identity with: `eap_id`, else our IKE identity as text (an
    /// address, an FQDN, `user@domain`); `None` when neither gives one (a DN or no identity).
    pub fn eap_identity(&self) -> Option<String> {
        self.eap_id.clone().or_else(|| match self.id.as_ref()? {
            id @ (Identity::Ipv4(_) | Identity::Ipv6(_) | Identity::Fqdn(_) | Identity::Email(_)) => {
                Some(id.to_string())
            }
            _ => None,
        })
    }
}

/// `connections.<name>.remote`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSide {
    /// How the peer must authenticate.
    pub auth: AuthKind,
    /// The identity it must have; `None` (or `%any`) accepts any that authenticates.
    pub id: Option<Identity>,
    /// The EAP identity to ask a client for; `None`: its IKE identity, without an EAP-Identity
    /// exchange.
    pub eap_id: Option<EapId>,
    /// CA certificate files for `pubkey` (and `eap-tls`).
    pub cacerts: Vec<PathBuf>,
    /// Certificate revocation list files (RFC 5280 §5) the peer's chain is checked against.
    pub crls: Vec<PathBuf>,
}

/// One `[[secrets.eap]]` entry: a user's password for EAP-MSCHAPv2 and EAP-MD5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EapSecret {
    /// The EAP identity.
    pub id: String,
    /// The password.
    pub secret: Secret,
}

/// What the sides need from the rest of the file.
pub(crate) struct Known<'a> {
    pub eap_secrets: &'a [EapSecret],
    pub radius: bool,
}

/// The files named, each of which must be there to be read (a missing one is an error at its key,
/// not at the daemon's start).
fn paths(ctx: &Ctx<'_>, v: Vec<S<String>>, key: &str) -> Result<Vec<PathBuf>, ConfigError> {
    v.into_iter().map(|p| ctx.existing_file(p, key)).collect()
}

fn auth(ctx: &Ctx<'_>, key: &str, s: &RawSide) -> Result<AuthKind, ConfigError> {
    AuthKind::parse(s.auth.get_ref()).ok_or_else(|| {
        ctx.err(
            s.auth.span(),
            &format!("{key}.auth"),
            format!(
                "`{}`: use psk, pubkey, eap-mschapv2, eap-md5, eap-tls, eap-dynamic or eap-radius",
                s.auth.get_ref()
            ),
        )
    })
}

/// An `eap_id` as written: only with an EAP method, not empty, no control characters.
fn eap_id_text<'s>(
    ctx: &Ctx<'_>,
    key: &str,
    s: &'s RawSide,
    kind: AuthKind,
) -> Result<Option<&'s S<String>>, ConfigError> {
    let Some(e) = s.eap_id.as_ref() else { return Ok(None) };
    let k = format!("{key}.eap_id");
    if kind.eap().is_none() {
        return Err(ctx.err(e.span(), &k, format!("only with an eap-* auth, not with auth = \"{kind}\"")));
    }
    let text = e.get_ref();
    if text.trim().is_empty() {
        return Err(ctx.err(e.span(), &k, "empty EAP identity"));
    }
    if text.chars().any(char::is_control) || text.trim() != text {
        return Err(ctx.err(e.span(), &k, format!("`{text}` has control characters or surrounding spaces")));
    }
    Ok(Some(e))
}

/// `connections.<name>.local`: we are the client when it names an EAP method.
pub(crate) fn local_side(ctx: &Ctx<'_>, key: &str, s: S<RawSide>, known: &Known<'_>) -> Result<LocalSide, ConfigError> {
    let span = s.span();
    let s = s.into_inner();
    let auth = auth(ctx, key, &s)?;
    let id = s.id.as_ref().map(|i| identity(ctx, i, &format!("{key}.id"))).transpose()?.flatten();
    let eap_id = eap_id_text(ctx, key, &s, auth)?;
    if let Some(e) = eap_id.filter(|e| e.get_ref() == "%any") {
        return Err(ctx.err(e.span(), &format!("{key}.eap_id"), "%any is for the remote side: name our EAP identity"));
    }
    let eap_id = eap_id.map(|e| e.get_ref().clone());
    let has_cert = !s.certs.is_empty() && s.key.is_some();
    match auth {
        AuthKind::Psk if id.is_none() => return Err(ctx.err(span, &format!("{key}.id"), "a PSK needs our identity")),
        AuthKind::Pubkey if !has_cert => return Err(ctx.err(span, key, "auth = \"pubkey\" needs `certs` and `key`")),
        AuthKind::Eap(EapKind::Radius) => {
            return Err(ctx.err(
                s.auth.span(),
                &format!("{key}.auth"),
                "eap-radius is for the remote side (a gateway passing its clients' EAP to RADIUS); a client \
                 uses eap-mschapv2, eap-md5, eap-tls or eap-dynamic",
            ));
        }
        AuthKind::Eap(EapKind::Tls) if !has_cert => {
            return Err(ctx.err(span, key, "auth = \"eap-tls\" needs `certs` and `key`"));
        }
        AuthKind::Eap(_) if id.is_none() && !has_cert => {
            return Err(ctx.err(span, &format!("{key}.id"), "an EAP client needs our identity"));
        }
        _ => {}
    }
    let side = LocalSide {
        auth,
        id,
        eap_id,
        certs: paths(ctx, s.certs, &format!("{key}.certs"))?,
        key: s.key.map(|p| ctx.existing_file(p, &format!("{key}.key"))).transpose()?,
        rsa_pss: s.rsa_pss.unwrap_or(false),
    };
    if let AuthKind::Eap(kind @ (EapKind::Mschapv2 | EapKind::Md5 | EapKind::Dynamic)) = auth {
        let at = s.eap_id.as_ref().map_or(span, S::span);
        let Some(name) = side.eap_identity() else {
            if kind == EapKind::Dynamic && has_cert {
                // EAP-TLS with the certificate's subject.
                return Ok(side);
            }
            return Err(ctx.err(at, &format!("{key}.eap_id"), "our IKE identity is a DN: name our EAP identity"));
        };
        let found = known.eap_secrets.iter().any(|e| e.id == name);
        if kind.uses_password() && !found {
            return Err(ctx.err(at, key, format!("auth = \"{kind}\": no [[secrets.eap]] entry for `{name}`")));
        }
        if kind == EapKind::Dynamic && !found && !has_cert {
            return Err(ctx.err(
                at,
                key,
                format!("auth = \"eap-dynamic\": no [[secrets.eap]] entry for `{name}` and no `certs` and `key`"),
            ));
        }
    }
    Ok(side)
}

/// `connections.<name>.remote`: the peer is our client when it names an EAP method.
pub(crate) fn remote_side(
    ctx: &Ctx<'_>,
    key: &str,
    s: S<RawSide>,
    known: &Known<'_>,
) -> Result<RemoteSide, ConfigError> {
    let span = s.span();
    let s = s.into_inner();
    let auth = auth(ctx, key, &s)?;
    let id = s.id.as_ref().map(|i| identity(ctx, i, &format!("{key}.id"))).transpose()?.flatten();
    let eap_id = eap_id_text(ctx, key, &s, auth)?
        .map(|e| if e.get_ref() == "%any" { EapId::Any } else { EapId::Name(e.get_ref().clone()) });
    match auth {
        AuthKind::Pubkey if s.cacerts.is_empty() => {
            return Err(ctx.err(
                span,
                &format!("{key}.cacerts"),
                "auth = \"pubkey\" needs the CA certificates to trust",
            ));
        }
        AuthKind::Eap(EapKind::Tls) if s.cacerts.is_empty() => {
            return Err(ctx.err(
                span,
                &format!("{key}.cacerts"),
                "auth = \"eap-tls\" needs the CA certificates the clients' certificates must lead to",
            ));
        }
        AuthKind::Eap(EapKind::Radius) if !known.radius => {
            return Err(ctx.err(s.auth.span(), &format!("{key}.auth"), "eap-radius needs [[radius.servers]]"));
        }
        AuthKind::Eap(kind) if kind.uses_password() => {
            if let Some(EapId::Name(name)) = &eap_id {
                if !known.eap_secrets.iter().any(|e| &e.id == name) {
                    let at = s.eap_id.as_ref().map_or(span, S::span);
                    return Err(ctx.err(
                        at,
                        &format!("{key}.eap_id"),
                        format!("auth = \"{kind}\": no [[secrets.eap]] entry for `{name}`"),
                    ));
                }
            } else if known.eap_secrets.is_empty() {
                return Err(ctx.err(
                    s.auth.span(),
                    &format!("{key}.auth"),
                    format!("auth = \"{kind}\" checks passwords, but there is no [[secrets.eap]] entry"),
                ));
            }
        }
        _ => {}
    }
    if !s.crls.is_empty() && s.cacerts.is_empty() {
        return Err(ctx.err(span, &format!("{key}.crls"), "revocation lists need the CA certificates (cacerts)"));
    }
    let cacerts = paths(ctx, s.cacerts, &format!("{key}.cacerts"))?;
    Ok(RemoteSide { auth, id, eap_id, cacerts, crls: paths(ctx, s.crls, &format!("{key}.crls"))? })
}

/// `[[secrets.eap]]`: non-empty identities and passwords, each identity once.
pub(crate) fn eap_secrets(ctx: &Ctx<'_>, raw: Vec<S<RawEapSecret>>) -> Result<Vec<EapSecret>, ConfigError> {
    let mut out: Vec<EapSecret> = Vec::new();
    for (i, s) in raw.into_iter().enumerate() {
        let key = format!("secrets.eap[{i}]");
        let s = s.into_inner();
        let id = s.id.get_ref();
        if id.trim().is_empty() {
            return Err(ctx.err(s.id.span(), &format!("{key}.id"), "empty EAP identity"));
        }
        if out.iter().any(|e| &e.id == id) {
            return Err(ctx.err(s.id.span(), &format!("{key}.id"), format!("`{id}` has an entry already")));
        }
        if s.secret.get_ref().is_empty() {
            return Err(ctx.err(s.secret.span(), &format!("{key}.secret"), "empty secret"));
        }
        out.push(EapSecret { id: id.clone(), secret: Secret::from_slice(s.secret.get_ref().as_bytes()) });
    }
    Ok(out)
}

/// `[[secrets.ppk]]`: each names at least one PPK_ID, none twice, and holds a key (a string, or hex
/// after `0x`, as swanctl).
pub(crate) fn ppk_secrets(ctx: &Ctx<'_>, raw: Vec<S<crate::raw::RawPpkSecret>>) -> Result<Vec<PpkSecret>, ConfigError> {
    let mut out: Vec<PpkSecret> = Vec::new();
    for (i, s) in raw.into_iter().enumerate() {
        let key = format!("secrets.ppk[{i}]");
        let span = s.span();
        let s = s.into_inner();
        if s.ids.is_empty() {
            return Err(ctx.err(span, &format!("{key}.ids"), "names no PPK_ID"));
        }
        let mut ids = Vec::new();
        for id in &s.ids {
            let v = id.get_ref();
            if v.is_empty() {
                return Err(ctx.err(id.span(), &format!("{key}.ids"), "empty PPK_ID"));
            }
            if out.iter().any(|e| e.ids.contains(v)) || ids.contains(v) {
                return Err(ctx.err(id.span(), &format!("{key}.ids"), format!("`{v}` has a PPK already")));
            }
            ids.push(v.clone());
        }
        let text = s.secret.get_ref();
        let bytes = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            Some(h) => {
                hex::decode(h).map_err(|_| ctx.err(s.secret.span(), &format!("{key}.secret"), "not hex after 0x"))?
            }
            None => text.as_bytes().to_vec(),
        };
        if bytes.is_empty() {
            return Err(ctx.err(s.secret.span(), &format!("{key}.secret"), "empty secret"));
        }
        out.push(PpkSecret { ids, secret: Secret::new(bytes) });
    }
    Ok(out)
}

/// A connection's `ppk_id` must name a `[[secrets.ppk]]` entry; PPKs are mixed into a shared key's
/// or a certificate's AUTH only (RFC 8784 with EAP is not implemented): with EAP on either side a
/// PPK setting is an error rather than silently unused.
pub(crate) fn check_ppk(ctx: &Ctx<'_>, config: &Config, c: &Connection) -> Result<(), ConfigError> {
    let at = ctx.text.find(&format!("[connections.{}", c.name)).unwrap_or(0);
    let key = format!("connections.{}", c.name);
    if (c.ppk_id.is_some() || c.ppk_required) && (c.local.auth.eap().is_some() || c.remote.auth.eap().is_some()) {
        return Err(ctx.err(at..at, &format!("{key}.ppk_id"), "PPKs (RFC 8784) with EAP are not implemented"));
    }
    if let Some(id) = &c.ppk_id
        && !config.ppk_secrets.iter().any(|s| s.ids.contains(id))
    {
        return Err(ctx.err(at..at, &format!("{key}.ppk_id"), format!("no [[secrets.ppk]] entry for `{id}`")));
    }
    Ok(())
}

/// A PSK side needs a `[[secrets.ike]]` entry for its identities; EAP and pubkey sides need none.
pub(crate) fn check_psk(ctx: &Ctx<'_>, config: &Config, c: &Connection) -> Result<(), ConfigError> {
    if c.local.auth != AuthKind::Psk && c.remote.auth != AuthKind::Psk {
        return Ok(());
    }
    let Some(local) = &c.local.id else { return Ok(()) };
    if config.psk_for(local, c.remote.id.as_ref()).is_none() {
        let at = ctx.text.find(&format!("[connections.{}", c.name)).unwrap_or(0);
        return Err(ctx.err(at..at, &format!("connections.{}", c.name), "no [[secrets.ike]] entry for its identities"));
    }
    Ok(())
}

/// Looks up a PSK, as swanctl picks it: an entry naming both identities, else one naming one of them.
pub(crate) fn psk_for<'a>(secrets: &'a [IkeSecret], local: &Identity, remote: Option<&Identity>) -> Option<&'a Secret> {
    let has = |s: &IkeSecret, id: &Identity| s.ids.iter().any(|i| i == id);
    secrets
        .iter()
        .find(|s| has(s, local) && remote.is_some_and(|r| has(s, r)))
        .or_else(|| secrets.iter().find(|s| has(s, local) || remote.is_some_and(|r| has(s, r))))
        .map(|s| &s.secret)
}
