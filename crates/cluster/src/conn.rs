//! The connection to etcd: one client per member, the member that answered last used first, and a
//! request that finds its member gone (refused, no leader, no answer in time) tried on the next.
//! etcd-client's own balanced channel spreads requests over every endpoint and fails those that
//! land on a dead member, so with one member of three down a third of the requests would fail:
//! that is no cluster that "keeps working when a member dies".

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use etcd_client::{
    Client, ConnectOptions, DeleteOptions, DeleteResponse, Error, GetOptions, GetResponse, LeaseGrantResponse,
    LeaseKeepAliveStream, LeaseKeeper, LeaseRevokeResponse, LeaseTimeToLiveResponse, PutOptions, PutResponse, Txn,
    TxnResponse, WatchOptions, WatchStream,
};

/// Whether an error says the member is out of reach (rather than that the request is wrong), so
/// another member may answer it.
fn member_gone(e: &Error) -> bool {
    match e {
        Error::TransportError(_) | Error::IoError(_) => true,
        Error::GRpcStatus(s) => matches!(
            s.code(),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled | tonic::Code::Unknown
        ),
        _ => false,
    }
}

/// etcd, through whichever member answers.
pub(crate) struct Etcd {
    endpoints: Vec<String>,
    options: ConnectOptions,
    clients: Mutex<Vec<Option<Client>>>,
    current: AtomicUsize,
    /// How long a request goes round the members while none answers (a leader election takes a
    /// second or two: members without a leader refuse at once).
    patience: Duration,
}

/// The pause between two rounds of the members.
const ROUND: Duration = Duration::from_millis(100);

impl Etcd {
    pub(crate) fn new(endpoints: Vec<String>, options: ConnectOptions, patience: Duration) -> Self {
        let clients = Mutex::new(endpoints.iter().map(|_| None).collect());
        Self { endpoints, options, clients, current: AtomicUsize::new(0), patience }
    }

    fn slot(&self, i: usize) -> Option<Client> {
        self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(i).cloned().flatten()
    }

    fn set(&self, i: usize, c: Option<Client>) {
        if let Some(s) = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_mut(i) {
            *s = c;
        }
    }

    /// Member `i`'s client, connected now if it was not.
    async fn client(&self, i: usize) -> Result<Client, Error> {
        if let Some(c) = self.slot(i) {
            return Ok(c);
        }
        let ep = self.endpoints.get(i).ok_or_else(|| Error::InvalidArgs("no etcd endpoint".into()))?;
        let c = Client::connect([ep.as_str()], Some(self.options.clone())).await?;
        self.set(i, Some(c.clone()));
        Ok(c)
    }

    /// `f` on the member that answered last, then on each other one while members are gone.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, Error>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        self.call_at(f).await.map(|(v, _)| v)
    }

    /// [`Self::call`], with the index of the member that answered: a stream's, to drop that
    /// member when the stream breaks.
    async fn call_at<T, F, Fut>(&self, f: F) -> Result<(T, usize), Error>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let n = self.endpoints.len().max(1);
        let until = Instant::now() + self.patience;
        loop {
            let start = self.current.load(Ordering::Relaxed);
            let mut last = Error::InvalidArgs("no etcd endpoint".into());
            for k in 0..n {
                let i = (start + k) % n;
                let attempt = match self.client(i).await {
                    Ok(c) => f(c).await,
                    Err(e) => Err(e),
                };
                match attempt {
                    Ok(v) => {
                        self.current.store(i, Ordering::Relaxed);
                        return Ok((v, i));
                    }
                    Err(e) if member_gone(&e) => {
                        self.set(i, None);
                        last = e;
                    }
                    Err(e) => return Err(e),
                }
            }
            if Instant::now() + ROUND >= until {
                return Err(last);
            }
            tokio::time::sleep(ROUND).await;
        }
    }

    pub(crate) async fn get(&self, key: impl Into<Vec<u8>>, o: Option<GetOptions>) -> Result<GetResponse, Error> {
        let key = key.into();
        self.call(|mut c| {
            let (k, o) = (key.clone(), o.clone());
            async move { c.get(k, o).await }
        })
        .await
    }

    pub(crate) async fn put(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        o: Option<PutOptions>,
    ) -> Result<PutResponse, Error> {
        let (key, value) = (key.into(), value.into());
        self.call(|mut c| {
            let (k, v, o) = (key.clone(), value.clone(), o.clone());
            async move { c.put(k, v, o).await }
        })
        .await
    }

    pub(crate) async fn delete(
        &self,
        key: impl Into<Vec<u8>>,
        o: Option<DeleteOptions>,
    ) -> Result<DeleteResponse, Error> {
        let key = key.into();
        self.call(|mut c| {
            let (k, o) = (key.clone(), o.clone());
            async move { c.delete(k, o).await }
        })
        .await
    }

    pub(crate) async fn txn(&self, txn: Txn) -> Result<TxnResponse, Error> {
        self.call(|mut c| {
            let t = txn.clone();
            async move { c.txn(t).await }
        })
        .await
    }

    pub(crate) async fn lease_grant(&self, ttl: i64) -> Result<LeaseGrantResponse, Error> {
        self.call(|mut c| async move { c.lease_grant(ttl, None).await }).await
    }

    pub(crate) async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse, Error> {
        self.call(|mut c| async move { c.lease_revoke(id).await }).await
    }

    pub(crate) async fn lease_time_to_live(&self, id: i64) -> Result<LeaseTimeToLiveResponse, Error> {
        self.call(|mut c| async move { c.lease_time_to_live(id, None).await }).await
    }

    /// A keep-alive stream for lease `id`, and the member it is with.
    pub(crate) async fn lease_keep_alive(
        &self,
        id: i64,
    ) -> Result<((LeaseKeeper, LeaseKeepAliveStream), usize), Error> {
        self.call_at(|mut c| async move { c.lease_keep_alive(id).await }).await
    }

    /// A watch, and the member it is with.
    pub(crate) async fn watch(
        &self,
        key: impl Into<Vec<u8>>,
        o: Option<WatchOptions>,
    ) -> Result<(WatchStream, usize), Error> {
        let key = key.into();
        self.call_at(|mut c| {
            let (k, o) = (key.clone(), o.clone());
            async move { c.watch(k, o).await }
        })
        .await
    }

    /// Forgets member `i` (a stream with it broke): requests that would start there start at the
    /// one after it. Another member that answered since stays first.
    pub(crate) fn drop_member(&self, i: usize) {
        self.set(i, None);
        let next = (i + 1) % self.endpoints.len().max(1);
        let _ = self.current.compare_exchange(i, next, Ordering::Relaxed, Ordering::Relaxed);
    }
}
