//! `impl Store for EtcdBackend`: one request per operation where etcd allows it (the README
//! counts them). `kv_trait` validates every input before it gets here.
//!
//! Reads are etcd's default, linearizable ranges (never `serializable`): the member asks the
//! leader for the commit index before answering, so a read sees every write that completed
//! before it started. Writes and transactions all go through Raft.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, KvClient, LeaseClient,
    PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchClient,
};
use kv_trait::store::{last_of_each, Key, Store, Ttl, Value};
use kv_trait::url_config::error_chain;
use kv_trait::{
    async_trait, monotonic_now, unix_millis_now, Capabilities, KvError, Place, RequestLimit,
    Sharing, WatchScope, WatchStream,
};

use crate::config::EtcdBackendBuilder;
use crate::counter::PendingIncrements;
use crate::encoding::{after, plain, with_deadline, Entry, KeySpace};
use crate::error::{
    from_etcd, from_etcd_opening, lease_not_found, never_sent, refused_before_proposal,
};
use crate::lease::{Leases, Need};

/// Keys fetched per range request by `list_keys` (keys only, no values).
pub(crate) const LIST_PAGE: i64 = 1000;

/// Values of keys with a TTL fetched per transaction by `list_keys`, to judge their
/// deadlines: at most this many values (1 MiB each at most) in one reply.
pub(crate) const LIST_VALUE_BATCH: usize = 32;

/// The largest reply accepted: a batch of values and their keys, with room to spare.
const MAX_REPLY_BYTES: usize = 48 * 1024 * 1024;

/// Operations per transaction of a batch: etcd's default `--max-txn-ops`.
const TXN_OPS: usize = 128;

/// Pause between two attempts of a read that failed with `Unavailable`.
const RETRY_PAUSE: Duration = Duration::from_millis(25);

/// Pause before sending again a request that found no connection to its member: short, since
/// the channel then picks a member at random again and the others are likely up.
const RESEND_PAUSE: Duration = Duration::from_millis(2);

/// First pause before sending again a request etcd refused as overloaded
/// (`refused_before_proposal`); it doubles with each refusal of the same request, up to
/// [`MAX_OVERLOAD_PAUSE`], so that a burst backs off while the member catches up.
const OVERLOAD_PAUSE: Duration = Duration::from_millis(5);

/// The longest pause between two sends of a request etcd refused as overloaded.
const MAX_OVERLOAD_PAUSE: Duration = Duration::from_millis(200);

/// HTTP/2 keep-alive: a member that stops answering (paused, cut off) is noticed within
/// about interval + timeout even when no request is waiting on it. etcd refuses pings more
/// often than every 5 s by default.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A key-value store in an etcd cluster that keeps the whole kvkit contract.
///
/// Reads are linearizable and every write goes through Raft; `increment` and
/// `compare_and_swap` are etcd transactions, atomic across any number of backends, processes
/// and hosts using the same cluster and namespace. The crate docs describe the data and the
/// requests.
///
/// Cloning is cheap: clones share the connections.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// # // The member the tests use (skipped without one).
/// # let Some(etcd) = kv_test_services::etcd::single() else { return Ok(()) };
/// # let url = etcd.url_with(&format!("namespace=doc-{}", std::process::id()));
/// use kv_etcd::EtcdBackend;
/// use kv_trait::KvBackend;
///
/// // e.g. "etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379?namespace=web"
/// let store = EtcdBackend::from_url(&url).await?;
/// store.set_with_ttl("session/42", b"token", 30_000_000_000).await?; // 30 s
/// assert_eq!(store.increment("visits", 1).await?, 1);
/// assert!(store.compare_and_swap("lock", None, b"me").await?);
/// assert_eq!(store.list_keys("").await?, ["lock", "session/42", "visits"]);
/// # for key in ["lock", "session/42", "visits"] { store.delete(key).await?; }
/// # Ok::<(), kv_trait::KvError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct EtcdBackend {
    shared: Arc<Shared>,
}

struct Shared {
    kv: KvClient,
    lease: LeaseClient,
    watch: WatchClient,
    space: KeySpace,
    namespace: String,
    max_value_bytes: usize,
    request_timeout: Duration,
    /// One place per operation in flight (`max_concurrent_requests`), taken before the
    /// operation's timeout starts (see `writing` and `reading`).
    places: RequestLimit,
    /// For `Debug` and errors: never the password.
    endpoint: String,
    leases: Leases,
    /// `increment`s waiting for their key's next transaction (see `counter.rs`).
    increments: PendingIncrements,
}

impl EtcdBackend {
    /// Opens the cluster an `etcd://` URL names (see [`EtcdBackendBuilder::from_url`] for the
    /// form and options).
    pub async fn from_url(url: &str) -> Result<Self, KvError> {
        EtcdBackendBuilder::from_url(url)?.build().await
    }

    /// A builder from a URL, to adjust settings before opening.
    pub fn builder(url: &str) -> Result<EtcdBackendBuilder, KvError> {
        EtcdBackendBuilder::from_url(url)
    }

    pub(crate) async fn open(config: EtcdBackendBuilder) -> Result<Self, KvError> {
        let endpoint = config.endpoint();
        let scheme = if config.tls.enabled {
            "https://"
        } else {
            "http://"
        };
        let members: Vec<String> = config
            .member_list(",", scheme)
            .split(',')
            .map(str::to_owned)
            .collect();
        let mut options = ConnectOptions::new()
            .with_timeout(config.request_timeout)
            .with_connect_timeout(config.connect_timeout)
            .with_keep_alive(KEEP_ALIVE_INTERVAL, KEEP_ALIVE_TIMEOUT)
            .with_keep_alive_while_idle(false)
            // A member without a leader fails at once (`no leader`) instead of waiting.
            .with_require_leader(true);
        if let (Some(user), Some(password)) = (&config.user, &config.password) {
            options = options
                .with_user(user.clone(), password.expose())
                .with_auto_token_refresh(true);
        }
        #[cfg(feature = "tls")]
        if config.tls.enabled {
            options = options.with_tls(crate::tls::options(&config.tls)?);
        }
        let budget = config.connect_timeout + config.request_timeout;
        let opened = tokio::time::timeout(budget, async {
            // Both steps are sent again while they find no connection to the member they were
            // routed to: a member that is down must not make opening fail.
            let client = loop {
                match Client::connect(&members, Some(options.clone())).await {
                    Err(err) if never_sent(&err) => tokio::time::sleep(RESEND_PAUSE).await,
                    connected => break connected.map_err(from_etcd_opening)?,
                }
            };
            let mut kv = client
                .kv_client()
                .max_decoding_message_size(MAX_REPLY_BYTES);
            // One linearizable read: the cluster has a leader and lets us in. The namespace's
            // prefix itself is never a key (keys are not empty).
            let space = KeySpace::new(&config.namespace);
            loop {
                let count = Some(GetOptions::new().with_count_only());
                match kv.get(space.prefix(), count).await {
                    Err(err) if never_sent(&err) => tokio::time::sleep(RESEND_PAUSE).await,
                    read => break read.map(drop).map_err(from_etcd_opening)?,
                };
            }
            Ok::<_, KvError>((client.lease_client(), client.watch_client(), kv, space))
        })
        .await;
        let (lease, watch, kv, space) = match opened {
            Ok(Ok(opened)) => opened,
            Ok(Err(KvError::InvalidConfig(message))) => {
                return Err(KvError::InvalidConfig(format!("{endpoint}: {message}")))
            }
            // A member that requires client certificates closes the connection of a client
            // without one, after the handshake: the client sees nothing but the close.
            Ok(Err(KvError::Unavailable(source)))
                if config.tls.enabled && config.tls.client_identity.is_none() =>
            {
                return Err(KvError::unavailable(format!(
                    "{endpoint}: {} (over TLS without a client certificate: if the members \
                     require one, set `cert_file` and `key_file`)",
                    error_chain(&*source)
                )))
            }
            Ok(Err(err)) => return Err(in_context(err, &endpoint)),
            Err(_) => {
                return Err(KvError::unavailable(format!(
                    "{endpoint}: etcd did not answer within {budget:?}"
                )))
            }
        };
        Ok(Self {
            shared: Arc::new(Shared {
                kv,
                lease,
                watch,
                space,
                namespace: config.namespace.clone(),
                max_value_bytes: config.max_value_bytes,
                request_timeout: config.request_timeout,
                places: RequestLimit::new(config.max_concurrent_requests),
                endpoint,
                leases: Leases::default(),
                increments: PendingIncrements::default(),
            }),
        })
    }

    /// The longest value this backend accepts, in bytes.
    pub fn max_value_bytes(&self) -> usize {
        self.shared.max_value_bytes
    }

    /// This backend's namespace.
    pub fn namespace(&self) -> &str {
        &self.shared.namespace
    }

    /// The etcd key prefix of this backend's namespace, e.g. `kvkit/web/`: what
    /// `etcdctl get --prefix` shows the keys under.
    pub fn key_prefix(&self) -> &[u8] {
        self.shared.space.prefix()
    }

    /// The cluster, without the password (see [`EtcdBackendBuilder::endpoint`]).
    pub fn endpoint(&self) -> &str {
        &self.shared.endpoint
    }

    /// The increments waiting for their keys' next transactions (see `counter.rs`).
    pub(crate) fn pending_increments(&self) -> &PendingIncrements {
        &self.shared.increments
    }

    fn kv(&self) -> KvClient {
        self.shared.kv.clone()
    }

    fn timed_out(&self) -> KvError {
        KvError::unavailable(format!(
            "{}: etcd did not answer within the request timeout ({:?})",
            self.shared.endpoint, self.shared.request_timeout
        ))
    }

    /// A place among this backend's operations in flight (`max_concurrent_requests`), held
    /// until the operation ends. Taken before the operation's timeout starts: a burst waits
    /// here, in the client, rather than in etcd's queues, where it made etcd refuse requests.
    /// `writing` and `reading` take it, and neither runs inside the other, so an operation
    /// never holds one place while waiting for another.
    async fn place(&self) -> Place<'_> {
        self.shared.places.place().await
    }

    /// Runs a write within the request timeout, once it has a place (`place`). A write is
    /// never sent twice: when its reply is lost, the caller gets `Unavailable`.
    pub(crate) async fn writing<T>(
        &self,
        write: impl Future<Output = Result<T, KvError>>,
    ) -> Result<T, KvError> {
        let _place = self.place().await;
        tokio::time::timeout(self.shared.request_timeout, write)
            .await
            .unwrap_or_else(|_| Err(self.timed_out()))
    }

    /// Runs a read within the request timeout, once it has a place (`place`), again after an
    /// `Unavailable` failure while time is left (a read changes nothing, so it may go to
    /// another member).
    async fn reading<T, F, Fut>(&self, mut read: F) -> Result<T, KvError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, KvError>>,
    {
        let _place = self.place().await;
        let give_up = monotonic_now() + self.shared.request_timeout;
        loop {
            let left = give_up.saturating_duration_since(monotonic_now());
            match tokio::time::timeout(left, read()).await {
                Ok(Err(err)) if err.is_retryable() && monotonic_now() + RETRY_PAUSE < give_up => {
                    tracing::debug!(error = %err, "read failed; trying again");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Ok(result) => return result,
                Err(_) => return Err(self.timed_out()),
            }
        }
    }

    /// Sends a request made by `request`, again (after a pause) while it fails without having
    /// been applied, until the request timeout is near: when it could not leave this process
    /// (`never_sent`: the member it was routed to is down, so the channel may pick another),
    /// and when etcd refused it as overloaded before proposing it (`refused_before_proposal`,
    /// with a pause that doubles each time). Any other outcome is returned.
    async fn resending<T, F, Fut>(&self, mut request: F) -> Result<T, KvError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let give_up = monotonic_now() + self.shared.request_timeout;
        let mut overload_pause = OVERLOAD_PAUSE;
        loop {
            match request().await {
                Err(err) if never_sent(&err) && monotonic_now() + RESEND_PAUSE < give_up => {
                    tracing::debug!(error = %err, "no connection to a member; sending again");
                    tokio::time::sleep(RESEND_PAUSE).await;
                }
                Err(err)
                    if refused_before_proposal(&err)
                        && monotonic_now() + overload_pause < give_up =>
                {
                    tracing::debug!(error = %err, pause = ?overload_pause, "etcd is overloaded; sending again");
                    tokio::time::sleep(overload_pause).await;
                    overload_pause = (overload_pause * 2).min(MAX_OVERLOAD_PAUSE);
                }
                outcome => return outcome.map_err(from_etcd),
            }
        }
    }

    /// The stored entry of etcd key `key`, live or not.
    async fn entry(&self, key: &[u8]) -> Result<Option<Entry>, KvError> {
        let reply = self
            .resending(|| {
                let mut kv = self.kv();
                async move { kv.get(key, None).await }
            })
            .await?;
        reply
            .kvs()
            .first()
            .map(|kv| Entry::decode(kv.value(), kv.mod_revision()))
            .transpose()
    }

    /// The live value of etcd key `key`. An entry found expired is deleted on the revision
    /// it was read at before the answer is "gone" (and read again if it changed since).
    ///
    /// Why: expiry is judged on this process's clock, not in etcd. An `increment` or
    /// compare-and-swap elsewhere may have judged the entry live just before its deadline
    /// and still be sending its transaction, conditional on that revision. Answering "gone"
    /// and then letting its value appear would not be linearizable (it took effect while the
    /// key was live, before this read). Once the read's delete is applied, such a transaction
    /// fails its comparison and judges the key again, absent this time.
    async fn live_value(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let mut entry = self.entry(key).await?;
        loop {
            match entry {
                None => return Ok(None),
                Some(found) if found.is_live_at(unix_millis_now()) => return Ok(Some(found.value)),
                Some(expired) => match self.transact(expire(key, expired.mod_revision)).await? {
                    None => return Ok(None),
                    Some(changed) => entry = changed,
                },
            }
        }
    }

    /// Sends `txn`; `Ok(None)` when its comparison held, else the entry its `or_else` read.
    pub(crate) async fn transact(&self, txn: Txn) -> Result<Option<Option<Entry>>, KvError> {
        let reply = self
            .resending(|| {
                let (mut kv, txn) = (self.kv(), txn.clone());
                async move { kv.txn(txn).await }
            })
            .await?;
        if reply.succeeded() {
            return Ok(None);
        }
        entry_read_by(&reply).map(Some)
    }

    /// A lease for a key with deadline `deadline_ms`: `None` when the deadline is beyond any
    /// lease (the key is then stored without a deadline).
    async fn lease_for(&self, deadline_ms: u64) -> Result<Option<i64>, KvError> {
        match self.shared.leases.need(deadline_ms, unix_millis_now()) {
            Need::Never => Ok(None),
            Need::Have(lease) => Ok(Some(lease)),
            Need::Grant {
                bucket_end_s,
                ttl_s,
            } => {
                let ttl = i64::try_from(ttl_s).unwrap_or(i64::MAX);
                let granted = self
                    .resending(|| async { self.shared.lease.clone().grant(ttl, None).await })
                    .await?;
                self.shared.leases.remember(bucket_end_s, granted.id());
                Ok(Some(granted.id()))
            }
        }
    }

    /// `set_with_ttl`'s put: the value with its deadline, on a lease that outlives it. A put
    /// refused because the lease is gone wrote nothing, and is sent once more on a new lease.
    async fn put_expiring(&self, key: Vec<u8>, value: &[u8], ttl: Ttl) -> Result<(), KvError> {
        let deadline_ms = ttl.unix_deadline_ms();
        for _ in 0..2 {
            let Some(lease) = self.lease_for(deadline_ms).await? else {
                // Beyond any lease: "effectively never", a key without TTL.
                return self.put(key, plain(value), None).await;
            };
            let options = PutOptions::new().with_lease(lease);
            let stored = with_deadline(value, deadline_ms);
            let written = self
                .resending(|| {
                    let (mut kv, key, stored, options) =
                        (self.kv(), key.clone(), stored.clone(), options.clone());
                    async move {
                        match kv.put(key, stored, Some(options)).await {
                            // Refused, so nothing was written: told apart from the other
                            // failures here, before they become a KvError.
                            Err(err) if lease_not_found(&err) => Ok(false),
                            outcome => outcome.map(|_| true),
                        }
                    }
                })
                .await?;
            if written {
                return Ok(());
            }
            self.shared.leases.forget(lease);
        }
        Err(KvError::backend(
            "etcd refused two fresh leases in a row as not found",
        ))
    }

    async fn put(
        &self,
        key: Vec<u8>,
        stored: Vec<u8>,
        options: Option<PutOptions>,
    ) -> Result<(), KvError> {
        self.resending(|| {
            let (mut kv, key, stored, options) =
                (self.kv(), key.clone(), stored.clone(), options.clone());
            async move { kv.put(key, stored, options).await }
        })
        .await
        .map(drop)
    }

    /// One pass of `list_keys` (see the README: a page of keys, then the values of the
    /// page's keys that have a TTL).
    async fn list_once(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        let space = &self.shared.space;
        let (mut start, end) = space.range(prefix);
        let mut keys = Vec::new();
        loop {
            let page = GetOptions::new()
                .with_range(end.clone())
                .with_keys_only()
                .with_limit(LIST_PAGE);
            let reply = self
                .resending(|| {
                    let (mut kv, start, page) = (self.kv(), start.clone(), page.clone());
                    async move { kv.get(start, Some(page)).await }
                })
                .await?;
            let kvs = reply.kvs();
            // A key without a lease has no deadline (kv-etcd attaches a lease to every key
            // it gives one), so only keys with a lease need their values read.
            let expiring: Vec<&[u8]> = kvs
                .iter()
                .filter(|kv| kv.lease() != 0)
                .map(|kv| kv.key())
                .collect();
            let entries = self.entries(&expiring).await?;
            let now = unix_millis_now();
            for kv in kvs {
                let live = kv.lease() == 0
                    || entries
                        .get(kv.key())
                        .is_some_and(|entry| entry.is_live_at(now));
                if live {
                    keys.push(space.user_key(kv.key())?);
                }
            }
            match kvs.last() {
                Some(last) if reply.more() => start = after(last.key()),
                _ => break,
            }
        }
        Ok(keys)
    }

    /// The entries of etcd keys `keys`, read in transactions of [`LIST_VALUE_BATCH`] gets.
    /// A key deleted meanwhile is missing from the map.
    async fn entries(&self, keys: &[&[u8]]) -> Result<HashMap<Vec<u8>, Entry>, KvError> {
        let mut entries = HashMap::with_capacity(keys.len());
        for batch in keys.chunks(LIST_VALUE_BATCH) {
            let gets: Vec<TxnOp> = batch.iter().map(|key| TxnOp::get(*key, None)).collect();
            let txn = Txn::new().and_then(gets);
            let reply = self
                .resending(|| {
                    let (mut kv, txn) = (self.kv(), txn.clone());
                    async move { kv.txn(txn).await }
                })
                .await?;
            for response in reply.op_responses() {
                if let TxnOpResponse::Get(get) = response {
                    for kv in get.kvs() {
                        entries.insert(
                            kv.key().to_vec(),
                            Entry::decode(kv.value(), kv.mod_revision())?,
                        );
                    }
                }
            }
        }
        Ok(entries)
    }
}

/// The entry the `or_else` branch of a transaction read (its one get).
fn entry_read_by(reply: &TxnResponse) -> Result<Option<Entry>, KvError> {
    match reply.op_responses().first() {
        Some(TxnOpResponse::Get(get)) => get
            .kvs()
            .first()
            .map(|kv| Entry::decode(kv.value(), kv.mod_revision()))
            .transpose(),
        _ => Err(KvError::backend(
            "etcd answered a failed transaction without the read of its else branch",
        )),
    }
}

/// Writes `stored` to `key` iff the key does not exist; else reads it.
pub(crate) fn if_absent(key: &[u8], stored: Vec<u8>) -> Txn {
    Txn::new()
        .when([Compare::create_revision(key, CompareOp::Equal, 0)])
        .and_then([TxnOp::put(key, stored, None)])
        .or_else([TxnOp::get(key, None)])
}

/// Writes `stored` to `key` iff the key was last written at `revision` (keeping its lease
/// when `keep_lease`); else reads it.
pub(crate) fn if_unchanged(key: &[u8], revision: i64, stored: Vec<u8>, keep_lease: bool) -> Txn {
    let options = keep_lease.then(|| PutOptions::new().with_ignore_lease());
    Txn::new()
        .when([Compare::mod_revision(key, CompareOp::Equal, revision)])
        .and_then([TxnOp::put(key, stored, options)])
        .or_else([TxnOp::get(key, None)])
}

/// Deletes `key` iff it was last written at `revision` (an entry found expired there); else
/// reads it.
fn expire(key: &[u8], revision: i64) -> Txn {
    Txn::new()
        .when([Compare::mod_revision(key, CompareOp::Equal, revision)])
        .and_then([TxnOp::delete(key, None)])
        .or_else([TxnOp::get(key, None)])
}

/// Deletes the entries of `chunk` found expired, iff no key of it changed since `entries`
/// was read; else reads them all again.
fn expire_unchanged(chunk: &[Vec<u8>], entries: &[Option<Entry>], now_ms: u64) -> Txn {
    let unchanged = chunk.iter().zip(entries).map(|(key, entry)| match entry {
        Some(entry) => Compare::mod_revision(key.as_slice(), CompareOp::Equal, entry.mod_revision),
        None => Compare::create_revision(key.as_slice(), CompareOp::Equal, 0),
    });
    let deletes = chunk
        .iter()
        .zip(entries)
        .filter(|(_, entry)| entry.as_ref().is_some_and(|e| !e.is_live_at(now_ms)))
        .map(|(key, _)| TxnOp::delete(key.as_slice(), None));
    Txn::new()
        .when(unchanged.collect::<Vec<_>>())
        .and_then(deletes.collect::<Vec<_>>())
        .or_else(gets(chunk))
}

/// A get of each of `keys`, in order.
fn gets(keys: &[Vec<u8>]) -> Vec<TxnOp> {
    keys.iter()
        .map(|key| TxnOp::get(key.as_slice(), None))
        .collect()
}

/// The entries the gets of `reply` read, one per get, in order.
fn entries_read_by(reply: &TxnResponse, gets: usize) -> Result<Vec<Option<Entry>>, KvError> {
    let entries = reply
        .op_responses()
        .iter()
        .map(|response| match response {
            TxnOpResponse::Get(get) => get
                .kvs()
                .first()
                .map(|kv| Entry::decode(kv.value(), kv.mod_revision()))
                .transpose(),
            _ => Err(KvError::backend("etcd answered a get with another reply")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if entries.len() != gets {
        return Err(KvError::backend(format!(
            "etcd answered {} of {gets} gets",
            entries.len()
        )));
    }
    Ok(entries)
}

/// Writes `stored` to `key` iff its stored bytes are exactly `expected`; else reads it.
fn if_stored(key: &[u8], expected: Vec<u8>, stored: Vec<u8>) -> Txn {
    Txn::new()
        .when([Compare::value(key, CompareOp::Equal, expected)])
        .and_then([TxnOp::put(key, stored, None)])
        .or_else([TxnOp::get(key, None)])
}

/// `err` with the cluster it came from, as the same variant.
fn in_context(err: KvError, endpoint: &str) -> KvError {
    match err {
        KvError::Unavailable(source) => {
            KvError::unavailable(format!("{endpoint}: {}", error_chain(&*source)))
        }
        KvError::Backend(source) => {
            KvError::backend(format!("{endpoint}: {}", error_chain(&*source)))
        }
        other => other,
    }
}

impl fmt::Debug for EtcdBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdBackend")
            .field("endpoint", &self.shared.endpoint)
            .field("namespace", &self.shared.namespace)
            .field("max_value_bytes", &self.shared.max_value_bytes)
            .field("request_timeout", &self.shared.request_timeout)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Store for EtcdBackend {
    const KIND: &'static str = "etcd";

    fn max_value_bytes(&self) -> usize {
        self.shared.max_value_bytes
    }

    fn namespace_name(&self) -> &str {
        &self.shared.namespace
    }

    /// One range request.
    async fn read(&self, key: Key<'_>) -> Result<Option<Vec<u8>>, KvError> {
        let key = self.shared.space.key(&key);
        self.reading(|| self.live_value(&key)).await
    }

    /// One put; with a TTL, a lease grant before it when no lease of this backend covers the
    /// deadline yet.
    async fn write(&self, key: Key<'_>, value: Value<'_>, ttl: Option<Ttl>) -> Result<(), KvError> {
        let key = self.shared.space.key(&key);
        self.writing(async {
            match ttl {
                // A put without a lease also detaches the key from the lease it had.
                None => self.put(key, plain(&value), None).await,
                Some(ttl) => self.put_expiring(key, &value, ttl).await,
            }
        })
        .await
    }

    /// One delete that returns the deleted entry, to tell a live key from an expired one.
    async fn remove(&self, key: Key<'_>) -> Result<bool, KvError> {
        let key = self.shared.space.key(&key);
        self.writing(async {
            let options = DeleteOptions::new().with_prev_key();
            let reply = self
                .resending(|| {
                    let (mut kv, key, options) = (self.kv(), key.clone(), options.clone());
                    async move { kv.delete(key, Some(options)).await }
                })
                .await?;
            let now = unix_millis_now();
            match reply.prev_kvs().first() {
                Some(kv) => Ok(Entry::decode(kv.value(), kv.mod_revision())?.is_live_at(now)),
                None => Ok(false),
            }
        })
        .await
    }

    /// One range request.
    async fn contains(&self, key: Key<'_>) -> Result<bool, KvError> {
        let key = self.shared.space.key(&key);
        self.reading(|| async { Ok(self.live_value(&key).await?.is_some()) })
            .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        self.reading(|| self.list_once(prefix)).await
    }

    /// Combined with this backend's other increments of the key that wait meanwhile (see
    /// `counter.rs`): a transaction that creates the counter if the key is absent, else reads
    /// it; then, for a key that exists, a transaction that writes the sum if the key is
    /// unchanged since, else reads it again.
    async fn add(&self, key: Key<'_>, delta: i64) -> Result<i64, KvError> {
        let key = self.shared.space.key(&key);
        self.combined_increment(key, delta).await
    }

    /// One transaction that writes `new` iff the key is absent (`expected = None`) or holds
    /// exactly `expected` without TTL; only when that fails on a key that does match (an
    /// expired key for `None`, `expected` with a TTL for `Some`) a second one, conditional on
    /// the key's revision.
    async fn swap_if(
        &self,
        key: Key<'_>,
        expected: Option<&[u8]>,
        new: Value<'_>,
    ) -> Result<bool, KvError> {
        let key = self.shared.space.key(&key);
        // Not combined (unlike `add`): a compare-and-swap that loses returns `false` after its
        // one transaction, so racing ones cost no extra Raft rounds, and etcd applies
        // concurrent ones in one batch.
        self.writing(async {
            let mut txn = match expected {
                None => if_absent(&key, plain(&new)),
                Some(expected) => if_stored(&key, plain(expected), plain(&new)),
            };
            loop {
                let Some(current) = self.transact(txn).await? else {
                    return Ok(true);
                };
                let now = unix_millis_now();
                let matches = match (&current, expected) {
                    (None, None) => true,
                    (Some(entry), None) => !entry.is_live_at(now),
                    (None, Some(_)) => false,
                    (Some(entry), Some(expected)) => {
                        entry.is_live_at(now) && entry.value == expected
                    }
                };
                if !matches {
                    return Ok(false);
                }
                txn = match current {
                    None => if_absent(&key, plain(&new)),
                    Some(entry) => if_unchanged(&key, entry.mod_revision, plain(&new), false),
                };
            }
        })
        .await
    }

    /// One transaction of gets per `TXN_OPS` keys: each reads one revision of the
    /// cluster, linearizably. A chunk in which some entry has expired is settled as `get`
    /// settles one (see `live_value`): one more transaction deletes the expired entries iff
    /// no key of the chunk changed since, else reads the chunk again.
    async fn read_many(&self, keys: &[Key<'_>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let keys: Vec<Vec<u8>> = keys.iter().map(|key| self.shared.space.key(key)).collect();
        let mut values = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(TXN_OPS) {
            let read = Txn::new().and_then(gets(chunk));
            let mut reply = self
                .reading(|| {
                    self.resending(|| {
                        let (mut kv, txn) = (self.kv(), read.clone());
                        async move { kv.txn(txn).await }
                    })
                })
                .await?;
            loop {
                let entries = entries_read_by(&reply, chunk.len())?;
                let now = unix_millis_now();
                if entries.iter().flatten().all(|entry| entry.is_live_at(now)) {
                    values.extend(entries.into_iter().map(|e| e.map(|e| e.value)));
                    break;
                }
                let settle = expire_unchanged(chunk, &entries, now);
                reply = self
                    .reading(|| {
                        self.resending(|| {
                            let (mut kv, txn) = (self.kv(), settle.clone());
                            async move { kv.txn(txn).await }
                        })
                    })
                    .await?;
                if reply.succeeded() {
                    values.extend(entries.into_iter().map(|entry| {
                        entry
                            .filter(|entry| entry.is_live_at(now))
                            .map(|entry| entry.value)
                    }));
                    break;
                }
            }
        }
        Ok(values)
    }

    /// Without a TTL, one transaction of puts per `TXN_OPS` entries (applied in order, so a
    /// repeated key keeps its last value). With one, a put per entry, as `set_with_ttl`
    /// (each needs its lease).
    async fn write_many(
        &self,
        entries: &[(Key<'_>, Value<'_>)],
        ttl: Option<Ttl>,
    ) -> Result<(), KvError> {
        if ttl.is_some() {
            for (key, value) in entries {
                self.write(*key, *value, ttl).await?;
            }
            return Ok(());
        }
        // A transaction may not put one key twice: the last value of each goes.
        for chunk in last_of_each(entries).chunks(TXN_OPS) {
            let txn = Txn::new().and_then(
                chunk
                    .iter()
                    .map(|(key, value)| TxnOp::put(self.shared.space.key(key), plain(value), None))
                    .collect::<Vec<_>>(),
            );
            self.writing(async {
                self.resending(|| {
                    let (mut kv, txn) = (self.kv(), txn.clone());
                    async move { kv.txn(txn).await }
                })
                .await
            })
            .await?;
        }
        Ok(())
    }

    /// One transaction of deletes per `TXN_OPS` distinct keys, each returning the entry it
    /// deleted, to count the live ones.
    async fn remove_many(&self, keys: &[Key<'_>]) -> Result<u64, KvError> {
        let distinct: std::collections::BTreeSet<Vec<u8>> =
            keys.iter().map(|key| self.shared.space.key(key)).collect();
        let distinct: Vec<Vec<u8>> = distinct.into_iter().collect();
        let mut removed = 0;
        for chunk in distinct.chunks(TXN_OPS) {
            let options = DeleteOptions::new().with_prev_key();
            let txn = Txn::new().and_then(
                chunk
                    .iter()
                    .map(|key| TxnOp::delete(key.as_slice(), Some(options.clone())))
                    .collect::<Vec<_>>(),
            );
            let reply = self
                .writing(async {
                    self.resending(|| {
                        let (mut kv, txn) = (self.kv(), txn.clone());
                        async move { kv.txn(txn).await }
                    })
                    .await
                })
                .await?;
            let now = unix_millis_now();
            for response in reply.op_responses() {
                if let TxnOpResponse::Delete(deleted) = response {
                    for kv in deleted.prev_kvs() {
                        let live = Entry::decode(kv.value(), kv.mod_revision())?.is_live_at(now);
                        removed += u64::from(live);
                    }
                }
            }
        }
        Ok(removed)
    }

    async fn watch(&self, prefix: &str) -> Result<WatchStream, KvError> {
        let (start, _) = self.shared.space.range(prefix);
        // The revision now, read linearizably: every write acknowledged after `watch` returns
        // has a later one, so the watch starting after it sees them all.
        let current = self
            .reading(|| {
                let (mut kv, start) = (self.kv(), start.clone());
                async move {
                    let reply = kv.get(start, Some(crate::watch::revision_probe())).await;
                    reply
                        .map_err(from_etcd)?
                        .header()
                        .map(|header| header.revision())
                        .ok_or_else(|| KvError::backend("etcd's reply had no header"))
                }
            })
            .await?;
        crate::watch::watch(
            self.shared.watch.clone(),
            self.shared.space.clone(),
            prefix,
            current,
            self.shared.request_timeout,
        )
        .await
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(self.shared.max_value_bytes)
            .with_sharing(Sharing::Network)
            .with_native_batches(true)
            .with_watch(WatchScope::Store)
    }
}

kv_trait::impl_kv_backend!(EtcdBackend);
