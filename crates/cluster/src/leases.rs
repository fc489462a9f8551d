//! Address leases in etcd (docs/cluster.md, "Leases"): an address of a pool for an identity,
//! taken in a compare-and-set transaction (a free one, or the identity's own from wherever it is
//! held), and the node's count of the SAs holding each (its holdings).

use core::net::IpAddr;
use std::collections::HashSet;

use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp};
use oxswan_pool::AddrRange;

use crate::ClusterError;
use crate::conn::Etcd;
use crate::layout::LeaseValue;
use crate::store::{Grant, Held, Job, Shared, decode, encode, txn_revision};

/// Transactions tried for one address before giving up: each failure means another node won a
/// race (for the same address, or for the same identity), so a few suffice.
const TRIES: usize = 8;
/// Candidates drawn per read of the pool.
const CANDIDATES: usize = 4;

/// One holder of `grant` of `pool` for `owner` fewer; the last one queues the lease's deletion.
pub(crate) fn release_held(shared: &Shared, pool: &str, grant: Grant, owner: &str) {
    let id = (pool.to_owned(), owner.to_owned());
    let mut st = shared.state();
    let Some(h) = st.held.get_mut(&id) else { return };
    if h.addr != grant.addr || h.holding != grant.holding || h.refs == 0 {
        return;
    }
    h.refs -= 1;
    if h.refs == 0 {
        drop(st);
        let _ = shared.jobs.send(Job::Release { pool: id.0, owner: id.1 });
    }
}

/// Counts one more SA on the node's holding of `addr` for `id`, written at `rev`: the same
/// holding if the node holds it still (another SA of the identity, or one whose SAs are going),
/// else a new one.
fn hold(shared: &Shared, id: &(String, String), addr: IpAddr, rev: i64) -> Grant {
    let mut st = shared.state();
    let next = st.holdings + 1;
    let h = st.held.entry(id.clone()).or_insert(Held { addr, rev, refs: 0, holding: next });
    if h.addr != addr {
        // Another address of the identity's, held before: that holding has ended.
        *h = Held { addr, rev, refs: 0, holding: next };
    }
    h.rev = rev;
    h.refs += 1;
    let grant = Grant { addr, holding: h.holding };
    if grant.holding == next {
        st.holdings = next;
    }
    grant
}

/// The etcd side of [`crate::Cluster::acquire`].
pub(crate) async fn allocate(
    client: &Etcd,
    shared: &Shared,
    pool: &str,
    range: &AddrRange,
    owner: &str,
    requested: Option<IpAddr>,
) -> Result<Grant, ClusterError> {
    let l = &shared.layout;
    let me = &shared.settings.node;
    let owner_key = l.lease_owner(pool, owner);
    let id = (pool.to_owned(), owner.to_owned());
    for _ in 0..TRIES {
        let lease = shared.state().lease;
        let put = |addr: IpAddr| {
            let v = encode(&LeaseValue { pool: pool.to_owned(), owner: owner.to_owned(), addr, node: me.clone() });
            [
                TxnOp::put(owner_key.as_bytes(), v.clone(), shared.put_opts(lease)),
                TxnOp::put(l.lease_ip(pool, addr).as_bytes(), v, shared.put_opts(lease)),
            ]
        };
        let held = client.get(owner_key.as_bytes(), None).await?;
        if let Some(kv) = held.kvs().first() {
            // The identity holds an address: here (an SA of it is going, or went, and this one
            // keeps it) or on another node (the client came back here). Take it over, unless
            // either key changed since we read it.
            let v: LeaseValue = decode(kv)?;
            if !range.contains(v.addr) {
                // Another node lent it from another range: the gateways' pools differ.
                return Err(ClusterError::BadValue {
                    key: owner_key.clone(),
                    why: format!("{} is outside pool {pool} here: do the gateways' [pools] agree?", v.addr),
                });
            }
            let ip_key = l.lease_ip(pool, v.addr);
            let txn = Txn::new()
                .when([
                    Compare::mod_revision(owner_key.as_bytes(), CompareOp::Equal, kv.mod_revision()),
                    Compare::mod_revision(ip_key.as_bytes(), CompareOp::Equal, kv.mod_revision()),
                ])
                .and_then(put(v.addr));
            let r = client.txn(txn).await?;
            shared.wrote();
            if r.succeeded() {
                let grant = hold(shared, &id, v.addr, txn_revision(&r));
                if v.node != *me {
                    tracing::info!(target: "cluster", pool, owner, addr = %v.addr, from = %v.node, "lease taken over");
                }
                return Ok(grant);
            }
            continue;
        }
        let used_keys = client.get(l.pool_ips(pool), Some(GetOptions::new().with_prefix().with_keys_only())).await?;
        let prefix = l.pool_ips(pool);
        let used: HashSet<IpAddr> = used_keys
            .kvs()
            .iter()
            .filter_map(|kv| kv.key_str().ok()?.strip_prefix(prefix.as_str())?.parse().ok())
            .collect();
        let candidates = crate::pick::candidates(range, &used, owner, requested, CANDIDATES);
        if candidates.is_empty() {
            return Err(ClusterError::Exhausted(pool.to_owned()));
        }
        for addr in candidates {
            let ip_key = l.lease_ip(pool, addr);
            let txn = Txn::new()
                .when([
                    Compare::create_revision(owner_key.as_bytes(), CompareOp::Equal, 0),
                    Compare::create_revision(ip_key.as_bytes(), CompareOp::Equal, 0),
                ])
                .and_then(put(addr))
                .or_else([TxnOp::get(owner_key.as_bytes(), None)]);
            let r = client.txn(txn).await?;
            shared.wrote();
            if r.succeeded() {
                return Ok(hold(shared, &id, addr, txn_revision(&r)));
            }
            let raced_for_owner = r.op_responses().into_iter().any(|op| match op {
                etcd_client::TxnOpResponse::Get(g) => !g.kvs().is_empty(),
                _ => false,
            });
            if raced_for_owner {
                // The same identity got an address on another node meanwhile: take that one.
                break;
            }
        }
    }
    Err(ClusterError::Contended { pool: pool.to_owned(), tries: TRIES })
}
