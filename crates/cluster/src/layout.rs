//! Where the cluster keeps what it shares: the etcd keys under the cluster's prefix and the values
//! stored at them. Pure functions, so the layout is tested without a store.
//!
//! ```text
//! PREFIX/ids/NNN                      node name              the node's number, for SPIs (held on its lease)
//! PREFIX/nodes/NODE                   NodeRecord (JSON)      address and load (held on its lease)
//! PREFIX/leases/POOL/ip/ADDR          LeaseValue (JSON)      who holds ADDR (held on the holder's lease)
//! PREFIX/leases/POOL/owner/HEX(ID)    LeaseValue (JSON)      which ADDR identity ID holds (same lease)
//! PREFIX/sas/HEX(ID)/NODE/SPIS        SaEntry (JSON)         an IKE SA of ID on NODE (held on NODE's lease)
//! PREFIX/secrets/KIND/EPOCH           32 octets              a cluster secret (held on a lease of 3 epochs)
//! ```

use core::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

/// A name usable as one key segment as it is: no `/`, nothing an operator would misread.
fn safe(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// One key segment for `s`: `s` itself where it is safe, else `%` and its hex (`%` is never part of a
/// safe segment, so the two cannot meet).
pub fn segment(s: &str) -> String {
    if safe(s) { s.to_owned() } else { format!("%{}", hex::encode(s.as_bytes())) }
}

/// The keys of one cluster, under its prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    prefix: String,
}

impl Layout {
    /// Keys under `prefix` (as `[cluster] prefix` gives it: a leading `/`, none trailing).
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.trim_end_matches('/').to_owned() }
    }

    /// Everything of the cluster: what the watch follows.
    pub fn root(&self) -> String {
        format!("{}/", self.prefix)
    }

    /// The node numbers.
    pub fn ids(&self) -> String {
        format!("{}/ids/", self.prefix)
    }

    /// Node number `n`.
    pub fn id(&self, n: u8) -> String {
        format!("{}/ids/{n:03}", self.prefix)
    }

    /// The nodes' records.
    pub fn nodes(&self) -> String {
        format!("{}/nodes/", self.prefix)
    }

    /// A node's record.
    pub fn node(&self, node: &str) -> String {
        format!("{}{}", self.nodes(), segment(node))
    }

    /// All addresses of a pool in use.
    pub fn pool_ips(&self, pool: &str) -> String {
        format!("{}/leases/{}/ip/", self.prefix, segment(pool))
    }

    /// Who holds `addr` of `pool`.
    pub fn lease_ip(&self, pool: &str, addr: IpAddr) -> String {
        format!("{}{addr}", self.pool_ips(pool))
    }

    /// Which address of `pool` the identity `owner` holds.
    pub fn lease_owner(&self, pool: &str, owner: &str) -> String {
        format!("{}/leases/{}/owner/{}", self.prefix, segment(pool), hex::encode(owner.as_bytes()))
    }

    /// Every IKE SA of an identity, on any node.
    pub fn sas_of(&self, identity: &str) -> String {
        format!("{}/sas/{}/", self.prefix, hex::encode(identity.as_bytes()))
    }

    /// One IKE SA, by its SPIs (initiator's and responder's, as 16 hex digits each).
    pub fn sa(&self, identity: &str, node: &str, spi_i: u64, spi_r: u64) -> String {
        format!("{}{}/{spi_i:016x}{spi_r:016x}", self.sas_of(identity), segment(node))
    }

    /// A secret of `kind` (`ticket`, `cookie`) for one epoch.
    pub fn secret(&self, kind: &str, epoch: u64) -> String {
        format!("{}/secrets/{}/{epoch}", self.prefix, segment(kind))
    }

    /// What a key of the cluster is, for the watch.
    pub fn classify<'a>(&self, key: &'a str) -> Key<'a> {
        let Some(rest) = key.strip_prefix(self.prefix.as_str()).and_then(|k| k.strip_prefix('/')) else {
            return Key::Other;
        };
        let mut parts = rest.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("nodes"), Some(node), None, ..) => Key::Node(node),
            (Some("leases"), Some(_), Some("ip" | "owner"), Some(_), None) => Key::Lease,
            (Some("sas"), Some(_), Some(_), Some(_), None) => Key::Sa,
            _ => Key::Other,
        }
    }
}

/// What a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    /// A node's record (its segment).
    Node(&'a str),
    /// Either key of an address lease.
    Lease,
    /// An IKE SA in the directory.
    Sa,
    /// Anything else (numbers, secrets, keys of no one).
    Other,
}

/// The value at both keys of a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseValue {
    /// The pool.
    pub pool: String,
    /// The identity the address is lent to.
    pub owner: String,
    /// The address.
    pub addr: IpAddr,
    /// The node whose IKE SAs hold it.
    pub node: String,
}

/// An IKE SA in the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaEntry {
    /// The node that holds it.
    pub node: String,
    /// The peer's identity (the EAP identity where there is one).
    pub identity: String,
    /// The connection.
    pub conn: String,
    /// IKE SPIs, initiator's and responder's.
    pub spi_i: u64,
    /// See `spi_i`.
    pub spi_r: u64,
    /// The peer's address and port as last seen (MOBIKE moves it).
    pub remote: SocketAddr,
    /// Its virtual IPs.
    pub vips: Vec<IpAddr>,
    /// Set by another node when the identity came back there (`unique`, INITIAL_CONTACT): the node
    /// holding this SA closes it and removes the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
}

/// A node's record: how to reach it and how loaded it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Its name.
    pub node: String,
    /// Its number, the top octet of the SPIs it chooses.
    pub number: u8,
    /// Where clients reach it (`[cluster] address`); none: it takes no redirected clients.
    pub address: Option<String>,
    /// IKE SAs it holds.
    pub ike_sas: u64,
    /// Above how many it sends new clients elsewhere (`[cluster] redirect_above`).
    pub redirect_above: Option<u32>,
}

impl NodeRecord {
    /// Whether it takes redirected clients now: it has an address and room below its threshold.
    pub fn has_room(&self) -> bool {
        self.address.is_some() && self.redirect_above.is_none_or(|limit| self.ike_sas < u64::from(limit))
    }
}

/// The node to send a new client to, if this one (`me`) is full: the least loaded other node with
/// room, and only if it holds fewer IKE SAs than this one (else redirecting only moves the load
/// around). Ties go to the lower number, so all nodes agree.
pub fn redirect_target<'a>(
    me: &NodeRecord,
    others: impl IntoIterator<Item = &'a NodeRecord>,
) -> Option<&'a NodeRecord> {
    let limit = me.redirect_above?;
    if me.ike_sas < u64::from(limit) {
        return None;
    }
    others
        .into_iter()
        .filter(|n| n.node != me.node && n.has_room() && n.ike_sas < me.ike_sas)
        .min_by_key(|n| (n.ike_sas, n.number))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn segments_are_unambiguous() {
        assert_eq!(segment("rw-pool_1.v4"), "rw-pool_1.v4");
        assert_eq!(segment("a/b"), "%612f62");
        assert_eq!(segment(""), "%");
        assert_ne!(segment("%61"), "%61");
    }

    #[test]
    fn keys_classify_back() {
        let l = Layout::new("/ox/");
        assert_eq!(l.root(), "/ox/");
        assert_eq!(l.id(7), "/ox/ids/007");
        let ip = l.lease_ip("p", "10.3.0.1".parse().unwrap());
        assert_eq!(ip, "/ox/leases/p/ip/10.3.0.1");
        assert_eq!(l.classify(&ip), Key::Lease);
        assert_eq!(l.classify(&l.lease_owner("p", "carol@x")), Key::Lease);
        assert_eq!(l.classify(&l.node("gw1")), Key::Node("gw1"));
        let sa = l.sa("carol@x", "gw1", 1, 0xff);
        assert!(sa.starts_with(&l.sas_of("carol@x")));
        assert!(sa.ends_with("/gw1/000000000000000100000000000000ff"));
        assert_eq!(l.classify(&sa), Key::Sa);
        assert_eq!(l.classify(&l.secret("ticket", 3)), Key::Other);
        assert_eq!(l.classify("/other/nodes/gw1"), Key::Other);
        // An IPv6 address is one segment: no slash in it.
        assert_eq!(l.classify(&l.lease_ip("p", "fd00::1".parse().unwrap())), Key::Lease);
    }

    fn node(name: &str, number: u8, sas: u64, limit: Option<u32>) -> NodeRecord {
        NodeRecord {
            node: name.into(),
            number,
            address: Some(format!("{name}.example")),
            ike_sas: sas,
            redirect_above: limit,
        }
    }

    #[test]
    fn redirect_goes_to_the_least_loaded_node_with_room() {
        let me = node("a", 1, 10, Some(10));
        let others = [node("b", 2, 5, Some(10)), node("c", 3, 3, Some(10)), node("d", 4, 3, Some(3))];
        assert_eq!(redirect_target(&me, &others).map(|n| n.node.as_str()), Some("c"));
        // Below its limit a node keeps its clients.
        assert_eq!(redirect_target(&node("a", 1, 9, Some(10)), &others), None);
        // No limit: never redirects for load.
        assert_eq!(redirect_target(&node("a", 1, 99, None), &others), None);
        // Nodes without an address, or as loaded, take none.
        let mut far = node("e", 5, 0, None);
        far.address = None;
        assert_eq!(redirect_target(&me, &[far, node("f", 6, 10, None)]), None);
        // A tie goes to the lower number.
        let tie = [node("y", 9, 2, None), node("x", 8, 2, None)];
        assert_eq!(redirect_target(&me, &tie).map(|n| n.number), Some(8));
    }
}
