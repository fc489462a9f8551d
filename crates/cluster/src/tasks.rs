//! The node's background tasks: keeping its etcd lease alive (and writing everything back on a
//! new one), following the cluster's keys, writing what needs no answer, and probing the members.

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, EventType, GetOptions, KeyValue, Txn, TxnOp, WatchOptions};
use tokio::sync::mpsc;

use crate::ClusterError;
use crate::conn::Etcd;
use crate::layout::{Key, LeaseValue, NodeRecord, SaEntry};
use crate::store::{
    ClusterEvent, Job, MemberStatus, PROBE_EVERY, RETRY, Shared, State, decode, encode, options, txn_revision, within,
};

/// Keeps the node's lease alive; when it has run out (the node was cut off for longer than the
/// TTL), takes a new one and writes everything back. A keep-alive goes out a third of the TTL
/// after the last one answered; one without an answer in time (its member hung) is tried again
/// at once on another member, so that one member gone costs no more than a request's patience.
pub(crate) async fn keep_alive(client: Arc<Etcd>, shared: Arc<Shared>) {
    let every = (shared.settings.ttl / 3).max(Duration::from_millis(300));
    let patience = shared.timeout.min(every);
    let mut keeper: Option<((etcd_client::LeaseKeeper, etcd_client::LeaseKeepAliveStream), usize)> = None;
    let mut wait = every;
    loop {
        tokio::time::sleep(wait).await;
        wait = RETRY.min(every);
        let lease = shared.state().lease;
        if keeper.is_none() {
            keeper = within(patience, client.lease_keep_alive(lease)).await.ok();
        }
        let Some(((k, s), member)) = keeper.as_mut() else {
            shared.suspect();
            if lease_gone(&client, lease, patience).await {
                renew_until_done(&client, &shared).await;
                wait = every;
            }
            continue;
        };
        let member = *member;
        let answer = async {
            k.keep_alive().await?;
            s.message().await
        };
        match within(patience, answer).await {
            Ok(Some(r)) if r.ttl() > 0 => {
                let mut st = shared.state();
                st.healthy = true;
                st.renewed = Instant::now();
                wait = every;
            }
            Ok(Some(_)) => {
                keeper = None;
                renew_until_done(&client, &shared).await;
                wait = every;
            }
            Ok(None) | Err(_) => {
                shared.suspect();
                keeper = None;
                // Again at once, through another member.
                wait = Duration::from_millis(100);
                // etcd ends the stream of a lease it no longer has (revoked, or run out while
                // the node was cut off); else the stream's member may be the one gone, and the
                // next try starts at another.
                client.drop_member(member);
                if lease_gone(&client, lease, patience).await {
                    renew_until_done(&client, &shared).await;
                    wait = every;
                }
            }
        }
    }
}

/// Whether etcd answers that it has no lease `lease` any more (a time to live below zero, or not
/// found); false when it gives no answer.
async fn lease_gone(client: &Etcd, lease: i64, patience: Duration) -> bool {
    match within(patience, client.lease_time_to_live(lease)).await {
        // etcd gives -1 for a lease it does not have; 0 is one with less than a second left.
        Ok(r) => r.ttl() < 0,
        Err(ClusterError::Etcd(e)) => e.to_string().contains("requested lease not found"),
        Err(_) => false,
    }
}

/// The lease is gone: a new one, with everything written back, however many tries it takes. New
/// clients are refused until then: the addresses this node lends are not in etcd meanwhile, and
/// another node could lend them again.
async fn renew_until_done(client: &Etcd, shared: &Shared) {
    tracing::warn!(target: "cluster", "the node's etcd lease ran out; taking a new one and writing its state back");
    shared.state().healthy = false;
    let mut fresh = None;
    while let Err(e) = renew(client, shared, &mut fresh).await {
        tracing::warn!(target: "cluster", "taking a new lease and writing the node's state back: {e}; trying again");
        tokio::time::sleep(RETRY).await;
    }
}

/// A new lease, and everything the node holds written back on it: its number, record, leases and
/// directory entries. A lease another node took meanwhile is reported, not taken back. The node
/// switches to the new lease only when all of it has landed; a try that fails part way is done
/// again (by the caller) on the same lease, `fresh` (the lease and when etcd last renewed it),
/// kept alive meanwhile: what the failed try wrote is this node's own and is written over.
async fn renew(client: &Etcd, shared: &Shared, fresh: &mut Option<(i64, Instant)>) -> Result<(), ClusterError> {
    let ttl = shared.settings.ttl;
    let mut cur = match *fresh {
        Some((lease, renewed)) if renewed.elapsed() < ttl / 2 => (lease, renewed),
        _ => {
            let secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
            (within(shared.timeout, client.lease_grant(secs)).await?.id(), Instant::now())
        }
    };
    let r = write_back(client, shared, &mut cur).await;
    // Done, or the new lease ran out too: the next try starts afresh. Else it goes on with `cur`.
    *fresh = match r {
        Ok(()) | Err(ClusterError::LeaseLost(_)) => None,
        Err(_) => Some(cur),
    };
    r
}

/// [`renew`]'s writes, on the lease `cur` (its id, and when etcd last renewed it).
async fn write_back(client: &Etcd, shared: &Shared, cur: &mut (i64, Instant)) -> Result<(), ClusterError> {
    let t = shared.timeout;
    let lease = cur.0;
    let (number, held, listed, record) = {
        let st = shared.state();
        let held: Vec<_> = st.held.iter().filter(|(_, h)| h.refs > 0).map(|(k, h)| (k.clone(), h.clone())).collect();
        let listed: Vec<_> = st.listed.values().cloned().collect();
        (st.number, held, listed, shared.my_record(&st))
    };
    let l = &shared.layout;
    let me = &shared.settings.node;
    let id_key = l.id(number);
    let mine = |kv: &KeyValue| kv.value() == me.as_bytes();
    if put_unless_others(client, shared, &[(id_key, me.as_bytes().to_vec())], lease, mine).await?.is_none() {
        tracing::error!(target: "cluster", number, "another node took this node's number while it was cut off: SPIs of both carry it");
    }
    within(t, client.put(l.node(me), encode(&record), shared.put_opts(lease))).await?;
    shared.wrote();
    for (id, h) in held {
        tend(client, shared, cur, false).await?;
        let (pool, owner) = (&id.0, &id.1);
        let v = encode(&LeaseValue { pool: pool.clone(), owner: owner.clone(), addr: h.addr, node: me.clone() });
        let keys = [(l.lease_owner(pool, owner), v.clone()), (l.lease_ip(pool, h.addr), v)];
        let ours = |kv: &KeyValue| decode::<LeaseValue>(kv).is_ok_and(|o| o.node == *me);
        let rev = put_unless_others(client, shared, &keys, lease, ours).await?;
        // The SAs may have changed while this was written: the entry must still be the one
        // written, or what was written goes again.
        let written_for_nobody = {
            let mut st = shared.state();
            let same = st.held.get_mut(&id).filter(|e| e.addr == h.addr && e.holding == h.holding);
            match (rev, same) {
                (Some(rev), Some(e)) => {
                    e.rev = rev;
                    if e.refs == 0 {
                        // Its last SA went meanwhile; the release it queued saw the old revision.
                        let _ = shared.jobs.send(Job::Release { pool: pool.clone(), owner: owner.clone() });
                    }
                    None
                }
                (Some(rev), None) => Some(rev),
                (None, same) => {
                    // Taken by another node; told once, and only if the holding is still here.
                    if same.is_some() {
                        st.held.remove(&id);
                        st.leases_taken += 1;
                        st.events.push_back(ClusterEvent::LeaseTaken {
                            pool: pool.clone(),
                            addr: h.addr,
                            owner: owner.clone(),
                            by: "?".into(),
                            holding: h.holding,
                        });
                    }
                    None
                }
            }
        };
        if let Some(rev) = written_for_nobody {
            let owner_key = &keys[0].0;
            let txn = Txn::new()
                .when([Compare::mod_revision(owner_key.as_bytes(), CompareOp::Equal, rev)])
                .and_then([TxnOp::delete(owner_key.as_bytes(), None), TxnOp::delete(keys[1].0.as_bytes(), None)]);
            within(t, client.txn(txn)).await?;
            shared.wrote();
        }
    }
    for s in listed {
        tend(client, shared, cur, false).await?;
        within(t, client.put(s.key.as_bytes(), encode(&s.entry), shared.put_opts(lease))).await?;
        shared.wrote();
        // Gone meanwhile (its delete may have run before this put): delete it again.
        if shared.state().listed.get(&(s.entry.spi_i, s.entry.spi_r)).is_none_or(|x| x.key != s.key) {
            within(t, client.delete(s.key.as_bytes(), None)).await?;
            shared.wrote();
        }
    }
    // A keep-alive now, so the next one is a whole third of the TTL away.
    let renewed = tend(client, shared, cur, true).await?;
    let mut st = shared.state();
    st.lease = lease;
    st.lease_renewals += 1;
    st.healthy = true;
    st.renewed = renewed;
    Ok(())
}

/// Keeps the lease `cur` alive during a long write-back: a keep-alive when a third of the TTL
/// has gone since the last, or with `now` whatever the time. The time of the last one that
/// answered; [`ClusterError::LeaseLost`] if the lease ran out all the same.
async fn tend(client: &Etcd, shared: &Shared, cur: &mut (i64, Instant), now: bool) -> Result<Instant, ClusterError> {
    let (lease, renewed) = *cur;
    if !now && renewed.elapsed() < shared.settings.ttl / 3 {
        return Ok(renewed);
    }
    let sent = Instant::now();
    let t = shared.timeout;
    let answer = async {
        let ((mut k, mut s), _) = client.lease_keep_alive(lease).await?;
        k.keep_alive().await?;
        s.message().await
    };
    match within(t, answer).await? {
        Some(r) if r.ttl() > 0 => {
            cur.1 = sent;
            Ok(sent)
        }
        _ => Err(ClusterError::LeaseLost(lease)),
    }
}

/// Puts `keys` on `lease` in one transaction if each is absent or `mine` says it is this node's
/// own (a write of an earlier try): the revision of the write, or `None` if another node holds one
/// of them.
async fn put_unless_others(
    client: &Etcd,
    shared: &Shared,
    keys: &[(String, Vec<u8>)],
    lease: i64,
    mine: impl Fn(&KeyValue) -> bool,
) -> Result<Option<i64>, ClusterError> {
    let t = shared.timeout;
    // A few times: each lost race is with a key changing under us, ours expiring or another's.
    for _ in 0..4 {
        let mut when = Vec::new();
        for (k, _) in keys {
            let r = within(t, client.get(k.as_bytes(), None)).await?;
            match r.kvs().first() {
                None => when.push(Compare::create_revision(k.as_bytes(), CompareOp::Equal, 0)),
                Some(kv) if mine(kv) => {
                    when.push(Compare::mod_revision(k.as_bytes(), CompareOp::Equal, kv.mod_revision()));
                }
                Some(_) => return Ok(None),
            }
        }
        let puts: Vec<_> =
            keys.iter().map(|(k, v)| TxnOp::put(k.as_bytes(), v.clone(), shared.put_opts(lease))).collect();
        let r = within(t, client.txn(Txn::new().when(when).and_then(puts))).await?;
        shared.wrote();
        if r.succeeded() {
            return Ok(Some(txn_revision(&r)));
        }
    }
    Err(ClusterError::Raced { key: keys.first().map(|(k, _)| k.clone()).unwrap_or_default(), tries: 4 })
}

/// Follows every key of the cluster: the nodes' records, and leases or directory entries of
/// this node that another one takes.
pub(crate) async fn follow(client: Arc<Etcd>, shared: Arc<Shared>) {
    let root = shared.layout.root();
    loop {
        let start = match client.get(root.as_bytes(), Some(GetOptions::new().with_prefix())).await {
            Ok(r) => {
                let mut st = shared.state();
                st.nodes.clear();
                for kv in r.kvs() {
                    seen(&shared, &mut st, EventType::Put, kv);
                }
                r.header().map(|h| h.revision()).unwrap_or(0) + 1
            }
            Err(_) => {
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let opts = WatchOptions::new().with_prefix().with_start_revision(start);
        if let Ok((mut stream, member)) = client.watch(root.as_bytes(), Some(opts)).await {
            while let Ok(Some(r)) = stream.message().await {
                if r.canceled() {
                    break;
                }
                let mut st = shared.state();
                for e in r.events() {
                    if let Some(kv) = e.kv() {
                        seen(&shared, &mut st, e.event_type(), kv);
                    }
                }
            }
            client.drop_member(member);
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// One key as the watch sees it change.
fn seen(shared: &Shared, st: &mut State, kind: EventType, kv: &KeyValue) {
    let Ok(key) = kv.key_str() else { return };
    let me = &shared.settings.node;
    match (shared.layout.classify(key), kind) {
        (Key::Node(seg), EventType::Put) => {
            // A record under another node's name would outlive the node (its delete is by key).
            if let Ok(r) = decode::<NodeRecord>(kv).map_err(|e| tracing::debug!(target: "cluster", key, "{e}"))
                && crate::layout::segment(&r.node) == seg
            {
                st.nodes.insert(r.node.clone(), r);
            }
        }
        (Key::Node(seg), EventType::Delete) => {
            st.nodes.retain(|name, _| crate::layout::segment(name) != seg);
        }
        (Key::Lease, EventType::Put) => {
            let Ok(v) = decode::<LeaseValue>(kv) else { return };
            // A value under a key it does not name is no lease of its identity's.
            let l = &shared.layout;
            if v.node == *me || (key != l.lease_owner(&v.pool, &v.owner) && key != l.lease_ip(&v.pool, v.addr)) {
                return;
            }
            let id = (v.pool.clone(), v.owner.clone());
            // Only a write after ours takes it: the watch may bring older ones late (the write
            // this node took the lease over from).
            if st.held.get(&id).is_some_and(|h| kv.mod_revision() > h.rev)
                && let Some(h) = st.held.remove(&id)
            {
                st.leases_taken += 1;
                st.events.push_back(ClusterEvent::LeaseTaken {
                    pool: v.pool,
                    addr: h.addr,
                    owner: v.owner,
                    by: v.node,
                    holding: h.holding,
                });
            }
        }
        (Key::Sa, EventType::Put) => {
            let Ok(e) = decode::<SaEntry>(kv) else { return };
            let Some(by) = e.replaced_by.filter(|by| by != me) else { return };
            let spis = (e.spi_i, e.spi_r);
            if e.node != *me || st.listed.get(&spis).is_none_or(|l| l.key != key) {
                return;
            }
            st.listed.remove(&spis);
            // The entry is this node's to delete, now that the SA is no longer listed here.
            let _ = shared.jobs.send(Job::SaDelete { key: key.to_owned() });
            st.sas_replaced += 1;
            st.events.push_back(ClusterEvent::SaReplaced { identity: e.identity, spi_i: e.spi_i, spi_r: e.spi_r, by });
        }
        _ => {}
    }
}

/// Writes what needs no answer, in order, each retried until it lands.
pub(crate) async fn writer(client: Arc<Etcd>, shared: Arc<Shared>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = jobs.recv().await {
        loop {
            match run(&client, &shared, &job).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::debug!(target: "cluster", "{job:?}: {e}; trying again");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }
}

async fn run(client: &Etcd, shared: &Shared, job: &Job) -> Result<(), ClusterError> {
    let t = shared.timeout;
    let l = &shared.layout;
    let me = &shared.settings.node;
    match job {
        Job::Release { pool, owner } => {
            let id = (pool.clone(), owner.clone());
            let Some(h) = shared.state().held.get(&id).filter(|h| h.refs == 0).cloned() else { return Ok(()) };
            let owner_key = l.lease_owner(pool, owner);
            let txn =
                Txn::new().when([Compare::mod_revision(owner_key.as_bytes(), CompareOp::Equal, h.rev)]).and_then([
                    TxnOp::delete(owner_key.as_bytes(), None),
                    TxnOp::delete(l.lease_ip(pool, h.addr).as_bytes(), None),
                ]);
            let r = within(t, client.txn(txn)).await?;
            shared.wrote();
            // Done or not ours any more: either way we hold it no more, unless an SA took it
            // again meanwhile (with a write of its own).
            let mut st = shared.state();
            match st.held.get(&id) {
                Some(e) if e.refs == 0 && e.rev == h.rev => {
                    st.held.remove(&id);
                }
                Some(e) if e.refs == 0 && !r.succeeded() => {
                    // Written back on a new lease meanwhile: again, at the new revision.
                    return Err(ClusterError::Raced { key: owner_key, tries: 1 });
                }
                _ => {}
            }
        }
        Job::Orphan { pool, owner } => {
            let id = (pool.clone(), owner.clone());
            let owner_key = l.lease_owner(pool, owner);
            let got = within(t, client.get(owner_key.as_bytes(), None)).await?;
            let Some(kv) = got.kvs().first() else { return Ok(()) };
            let Ok(v) = decode::<LeaseValue>(kv) else { return Ok(()) };
            {
                let st = shared.state();
                let held = st.held.get(&id).is_some_and(|h| h.addr == v.addr);
                if v.node != *me || held || st.allocating.contains_key(&id) {
                    return Ok(());
                }
            }
            tracing::info!(target: "cluster", pool, owner, addr = %v.addr, "a lease of this node's that no SA holds (an allocation's answer was lost): freeing it");
            let txn = Txn::new()
                .when([Compare::mod_revision(owner_key.as_bytes(), CompareOp::Equal, kv.mod_revision())])
                .and_then([
                    TxnOp::delete(owner_key.as_bytes(), None),
                    TxnOp::delete(l.lease_ip(pool, v.addr).as_bytes(), None),
                ]);
            within(t, client.txn(txn)).await?;
            shared.wrote();
        }
        Job::SaPut { spis, replace_identity } => {
            let (key, entry, lease) = {
                let st = shared.state();
                let Some(l) = st.listed.get(spis) else { return Ok(()) };
                (l.key.clone(), l.entry.clone(), st.lease)
            };
            if *replace_identity {
                let others =
                    within(t, client.get(l.sas_of(&entry.identity), Some(GetOptions::new().with_prefix()))).await?;
                for kv in others.kvs() {
                    let Ok(mut old) = decode::<SaEntry>(kv) else { continue };
                    if old.node == *me || old.replaced_by.is_some() {
                        continue;
                    }
                    old.replaced_by = Some(me.clone());
                    // On the old node's lease: if that node is dead the mark goes with it.
                    let txn = Txn::new()
                        .when([Compare::mod_revision(kv.key(), CompareOp::Equal, kv.mod_revision())])
                        .and_then([TxnOp::put(kv.key(), encode(&old), shared.put_opts(kv.lease()))]);
                    within(t, client.txn(txn)).await?;
                    shared.wrote();
                }
            }
            within(t, client.put(key.as_bytes(), encode(&entry), shared.put_opts(lease))).await?;
            shared.wrote();
        }
        Job::SaDelete { key } => {
            within(t, client.delete(key.as_bytes(), None)).await?;
            shared.wrote();
        }
        Job::Publish => {
            let (record, lease) = {
                let mut st = shared.state();
                st.publish_scheduled = false;
                st.published = Some((st.load, Instant::now()));
                (shared.my_record(&st), st.lease)
            };
            within(t, client.put(l.node(me), encode(&record), shared.put_opts(lease))).await?;
            shared.wrote();
        }
    }
    Ok(())
}

/// Asks each member how it is, for `status`.
pub(crate) async fn probe(shared: Arc<Shared>) {
    let t = Duration::from_millis(800);
    let mut clients: Vec<Option<Client>> = shared.settings.endpoints.iter().map(|_| None).collect();
    loop {
        let mut members = Vec::new();
        for (ep, slot) in shared.settings.endpoints.iter().zip(clients.iter_mut()) {
            if slot.is_none() {
                *slot = within(t, Client::connect([ep.as_str()], Some(options(&shared.settings, t)))).await.ok();
            }
            let m = match slot.as_mut() {
                Some(c) => match within(t, c.status()).await {
                    Ok(s) => MemberStatus {
                        endpoint: ep.clone(),
                        reachable: true,
                        leader: s.header().is_some_and(|h| h.member_id() == s.leader()),
                        detail: s.version().to_owned(),
                    },
                    Err(e) => {
                        *slot = None;
                        MemberStatus { endpoint: ep.clone(), reachable: false, leader: false, detail: e.to_string() }
                    }
                },
                None => MemberStatus {
                    endpoint: ep.clone(),
                    reachable: false,
                    leader: false,
                    detail: "no connection".into(),
                },
            };
            members.push(m);
        }
        shared.state().members = members;
        tokio::time::sleep(PROBE_EVERY).await;
    }
}
