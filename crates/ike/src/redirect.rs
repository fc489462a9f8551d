//! Redirect (RFC 5685): the gateway identities of REDIRECT and REDIRECTED_FROM, and what an
//! initiator said of redirects in its IKE_SA_INIT request. The exchanges that carry them are in the
//! tasks: IKE_SA_INIT (the endpoint's admission, §4.1), IKE_AUTH (§6) and INFORMATIONAL (§5).

use core::fmt;
use core::net::IpAddr;

use oxswan_wire::NotifyType;
use oxswan_wire::notify::NotifyPayload;

/// GW Identity Types (RFC 5685 §8, IANA "Gateway Identity Types").
const GW_IPV4: u8 = 1;
const GW_IPV6: u8 = 2;
const GW_FQDN: u8 = 3;

/// The gateway a REDIRECT sends a client to: an address, or a name the client resolves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Gateway {
    Addr(IpAddr),
    /// A fully qualified domain name (RFC 5685 §8: "a fully qualified domain name string", at
    /// most 255 octets as the GW Ident Len allows).
    Fqdn(String),
}

/// Why a text is not a gateway.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("empty gateway")]
    Empty,
    #[error("`{0}` is longer than the 255 octets of a gateway identity")]
    TooLong(String),
    #[error("`{0}` is neither an IP address nor a domain name (letters, digits, `-` and `.`)")]
    NotAName(String),
    #[error("`{0}` is not an address a client can reach (unspecified or multicast)")]
    Unreachable(IpAddr),
}

impl Gateway {
    /// An IP address, or a domain name of letters, digits and hyphens in dot-separated labels of
    /// 1 to 63 (RFC 1035 §2.3.4; a trailing dot allowed).
    pub fn parse(s: &str) -> Result<Self, GatewayError> {
        if s.is_empty() {
            return Err(GatewayError::Empty);
        }
        if let Ok(a) = s.parse::<IpAddr>() {
            if a.is_unspecified() || a.is_multicast() {
                return Err(GatewayError::Unreachable(a));
            }
            return Ok(Self::Addr(a));
        }
        if s.len() > 255 {
            return Err(GatewayError::TooLong(s.to_owned()));
        }
        let name = s.strip_suffix('.').unwrap_or(s);
        let label_ok = |l: &str| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        // A name of digits and dots alone would read as a mistyped address.
        let numeric = name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if name.is_empty() || numeric || !name.split('.').all(label_ok) {
            return Err(GatewayError::NotAName(s.to_owned()));
        }
        Ok(Self::Fqdn(s.to_owned()))
    }

    /// `GW Ident Type | GW Ident Len | New Responder GW Identity` (RFC 5685 §8).
    pub(crate) fn identity(&self) -> Vec<u8> {
        match self {
            Self::Addr(IpAddr::V4(a)) => [&[GW_IPV4, 4][..], &a.octets()].concat(),
            Self::Addr(IpAddr::V6(a)) => [&[GW_IPV6, 16][..], &a.octets()].concat(),
            // `parse` keeps names to 255 octets; a longer one is cut rather than mislabelled.
            Self::Fqdn(n) => {
                let name = n.as_bytes().get(..255).unwrap_or(n.as_bytes());
                let len = u8::try_from(name.len()).unwrap_or(u8::MAX);
                [&[GW_FQDN, len][..], name].concat()
            }
        }
    }

    /// N(REDIRECT) to this gateway, with the initiator's nonce after it in an IKE_SA_INIT
    /// response (§4.1, "Nonce Data"), without in IKE_AUTH and INFORMATIONAL (§5, §6).
    pub(crate) fn notify(&self, nonce: &[u8]) -> NotifyPayload {
        NotifyPayload::new(NotifyType::REDIRECT, [self.identity().as_slice(), nonce].concat())
    }

    /// The address, if this gateway is one.
    pub fn addr(&self) -> Option<IpAddr> {
        match self {
            Self::Addr(a) => Some(*a),
            Self::Fqdn(_) => None,
        }
    }
}

impl fmt::Display for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Addr(a) => a.fmt(f),
            Self::Fqdn(n) => f.write_str(n),
        }
    }
}

/// The gateway a REDIRECT or REDIRECTED_FROM names, if it is an address (an FQDN would need a
/// resolver; it is `Err` with its text), and the octets after it (the Nonce Data of an
/// IKE_SA_INIT redirect); `None` when the notify is too short for what it says it holds.
pub(crate) fn redirect_gateway(data: &[u8]) -> Option<(Result<IpAddr, String>, &[u8])> {
    let (&ty, rest) = data.split_first()?;
    let (&len, rest) = rest.split_first()?;
    let (id, after) = rest.split_at_checked(usize::from(len))?;
    let to = match (ty, <[u8; 4]>::try_from(id), <[u8; 16]>::try_from(id)) {
        (GW_IPV4, Ok(o), _) => Ok(IpAddr::from(o)),
        (GW_IPV6, _, Ok(o)) => Ok(IpAddr::from(o)),
        (GW_FQDN, _, _) => Err(format!("redirect to the FQDN {} (not supported)", String::from_utf8_lossy(id))),
        _ => Err(format!("REDIRECT with gateway identity type {ty} and length {len}")),
    };
    Some((to, after))
}

/// Where a REDIRECT sends us, for [`crate::Event::Redirect`].
pub(crate) fn redirect_target(data: &[u8]) -> Result<IpAddr, String> {
    redirect_gateway(data).map_or_else(|| Err("malformed REDIRECT".to_owned()), |(to, _)| to)
}

/// What an initiator said of redirects in its IKE_SA_INIT request (RFC 5685 §3, §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum PeerRedirect {
    /// Nothing: it must never be sent a REDIRECT (§3).
    #[default]
    Unsupported,
    /// REDIRECT_SUPPORTED.
    Supported,
    /// REDIRECTED_FROM: another gateway sent it here, the one named if it named an address. It
    /// follows redirects too (§4: the notify replaces REDIRECT_SUPPORTED).
    From(Option<IpAddr>),
}

impl PeerRedirect {
    /// From the request's notifies.
    pub(crate) fn of(notifies: &[NotifyPayload]) -> Self {
        if let Some(n) = notifies.iter().find(|n| n.notify_type == NotifyType::REDIRECTED_FROM) {
            return Self::From(redirect_gateway(&n.data).and_then(|(from, _)| from.ok()));
        }
        if notifies.iter().any(|n| n.notify_type == NotifyType::REDIRECT_SUPPORTED) {
            return Self::Supported;
        }
        Self::Unsupported
    }

    /// Whether the peer follows redirects (§3: it must not be sent one otherwise).
    pub(crate) fn follows(self) -> bool {
        self != Self::Unsupported
    }

    /// Whether a configured redirect may send the peer to `to`: it follows redirects, and `to` is
    /// not where it says it came from (two gateways that would bounce it between them, §4). An
    /// operator's redirect of an established client needs only [`Self::follows`].
    pub(crate) fn may_send_to(self, to: &Gateway) -> bool {
        match self {
            Self::Unsupported => false,
            Self::Supported => true,
            Self::From(from) => from.is_none() || from != to.addr(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateways_parse_as_addresses_or_names() {
        assert_eq!(Gateway::parse("192.0.2.7"), Ok(Gateway::Addr("192.0.2.7".parse().unwrap())));
        assert_eq!(Gateway::parse("2001:db8::1"), Ok(Gateway::Addr("2001:db8::1".parse().unwrap())));
        assert_eq!(Gateway::parse("vpn2.example.com."), Ok(Gateway::Fqdn("vpn2.example.com.".into())));
        for bad in ["", "0.0.0.0", "::", "224.0.0.1", "10.0.0", "a..b", "-a.b", "a b", "vpn_2.example"] {
            assert!(Gateway::parse(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(Gateway::parse(&"a.".repeat(128)), Err(GatewayError::TooLong(_))));
        assert!(matches!(Gateway::parse(&"a".repeat(64)), Err(GatewayError::NotAName(_))));
    }

    #[test]
    fn identities_round_trip_and_carry_the_nonce() {
        let v4 = Gateway::parse("192.0.2.7").unwrap();
        let v6 = Gateway::parse("2001:db8::1").unwrap();
        let nonce = [9u8; 32];
        for g in [&v4, &v6] {
            let n = g.notify(&nonce);
            let (to, after) = redirect_gateway(&n.data).unwrap();
            assert_eq!(to, Ok(g.addr().unwrap()));
            assert_eq!(after, nonce);
        }
        let name = Gateway::parse("vpn2.example.com").unwrap();
        assert_eq!(name.identity(), [&[3u8, 16][..], b"vpn2.example.com"].concat());
        assert!(redirect_target(&name.identity()).unwrap_err().contains("vpn2.example.com"));
        assert!(redirect_gateway(&[1, 4, 192, 0]).is_none());
    }

    #[test]
    fn a_peer_is_redirected_only_when_it_said_so_and_not_back() {
        let a = Gateway::parse("192.0.2.1").unwrap();
        let b = Gateway::parse("192.0.2.2").unwrap();
        let supported = NotifyPayload::new(NotifyType::REDIRECT_SUPPORTED, Vec::new());
        let from_a = NotifyPayload::new(NotifyType::REDIRECTED_FROM, a.identity());
        assert_eq!(PeerRedirect::of(&[]), PeerRedirect::Unsupported);
        assert!(!PeerRedirect::Unsupported.may_send_to(&a));
        assert!(PeerRedirect::of(&[supported]).may_send_to(&a));
        let came = PeerRedirect::of(&[from_a]);
        assert_eq!(came, PeerRedirect::From(a.addr()));
        assert!(!came.may_send_to(&a));
        assert!(came.may_send_to(&b));
        assert!(came.follows() && !PeerRedirect::Unsupported.follows());
    }
}
