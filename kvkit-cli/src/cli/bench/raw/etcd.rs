//! Raw etcd-client, as an application writes it: one client over the URL's members, keys
//! under a prefix of the run's own (`kvkit-bench-raw/RUN/`), plain values without kvkit's
//! envelope. `get` is a range, `set` a put, `increment` a read and then a transaction that
//! writes the sum if the key's revision is unchanged (again on a conflict), compare-and-swap
//! a transaction comparing the value (or the key's absence): the same work as the adapter's,
//! without TTLs or namespaces.
//!
//! A batch is one transaction (a `Txn` with no condition) per 128 keys, the most operations
//! etcd takes in one by default (`--max-txn-ops`): `get_many` a transaction of gets, which
//! all read one revision, linearizably, answered in the order asked; `set_many` a
//! transaction of puts, one Raft round and one revision for the whole batch. A transaction
//! may not put one key twice, so a key given twice is put once, with its last value.

use etcd_client::{Client, Compare, CompareOp, DeleteOptions, Txn, TxnOp, TxnOpResponse};
use kv_trait::{KvBackend, KvError};

use crate::cli::bench::driver::Driver;

/// The most operations one transaction may hold: etcd's default `--max-txn-ops`.
const TXN_OPS: usize = 128;

/// The raw etcd side.
pub(crate) struct RawEtcd {
    client: Client,
    prefix: String,
}

impl RawEtcd {
    /// Connects to the members `url` names (`etcd://host:port,...`; kvkit's options and
    /// credentials are left out: the benchmark's cluster is the caller's own).
    pub(crate) async fn open(url: &str, run_id: &str) -> Result<Self, KvError> {
        let members = url
            .split_once("://")
            .map_or(url, |(_, rest)| rest)
            .split(['?', '/'])
            .next()
            .unwrap_or_default();
        let members = members.rsplit_once('@').map_or(members, |(_, hosts)| hosts);
        let endpoints: Vec<String> = members
            .split(',')
            .map(|member| format!("http://{member}"))
            .collect();
        let client = Client::connect(endpoints, None)
            .await
            .map_err(KvError::unavailable)?;
        Ok(Self {
            client,
            prefix: format!("kvkit-bench-raw/{run_id}/"),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

fn failed(err: etcd_client::Error) -> KvError {
    KvError::backend(err)
}

impl Driver for RawEtcd {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let reply = self
            .client
            .kv_client()
            .get(self.key(key), None)
            .await
            .map_err(failed)?;
        Ok(reply.kvs().first().map(|kv| kv.value().to_vec()))
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.client
            .kv_client()
            .put(self.key(key), value, None)
            .await
            .map(drop)
            .map_err(failed)
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        let key = self.key(key);
        let mut kv = self.client.kv_client();
        let reply = kv.get(key.as_str(), None).await.map_err(failed)?;
        let mut current = reply.kvs().first().cloned();
        loop {
            let (revision, value) = current
                .as_ref()
                .map_or((0, None), |kv| (kv.mod_revision(), Some(kv.value())));
            let sum = super::next_counter(value, delta).ok_or(KvError::NotAnInteger)?;
            let unchanged = match revision {
                0 => Compare::create_revision(key.as_str(), CompareOp::Equal, 0),
                revision => Compare::mod_revision(key.as_str(), CompareOp::Equal, revision),
            };
            let txn = Txn::new()
                .when([unchanged])
                .and_then([TxnOp::put(key.as_str(), sum.to_string(), None)])
                .or_else([TxnOp::get(key.as_str(), None)]);
            let reply = kv.txn(txn).await.map_err(failed)?;
            if reply.succeeded() {
                return Ok(sum);
            }
            current = match reply.op_responses().first() {
                Some(TxnOpResponse::Get(get)) => get.kvs().first().cloned(),
                _ => None,
            };
        }
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        let key = self.key(key);
        let condition = match expected {
            Some(expected) => Compare::value(key.as_str(), CompareOp::Equal, expected),
            None => Compare::create_revision(key.as_str(), CompareOp::Equal, 0),
        };
        let txn = Txn::new()
            .when([condition])
            .and_then([TxnOp::put(key.as_str(), new, None)]);
        let reply = self.client.kv_client().txn(txn).await.map_err(failed)?;
        Ok(reply.succeeded())
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let mut values = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(TXN_OPS) {
            let gets: Vec<TxnOp> = chunk
                .iter()
                .map(|key| TxnOp::get(self.key(key), None))
                .collect();
            let reply = self
                .client
                .kv_client()
                .txn(Txn::new().and_then(gets))
                .await
                .map_err(failed)?;
            // One response per operation, in the transaction's order. (`op_responses` copies
            // the reply's responses: called once, and the copies' values moved out.)
            let responses = reply.op_responses();
            if responses.len() != chunk.len() {
                return Err(KvError::backend(format!(
                    "a transaction of {} gets answered {} responses",
                    chunk.len(),
                    responses.len()
                )));
            }
            for response in responses {
                let TxnOpResponse::Get(mut get) = response else {
                    return Err(KvError::backend("a get in a transaction answered no range"));
                };
                let value = get.take_kvs().into_iter().next();
                values.push(value.map(|kv| kv.into_key_value().1));
            }
        }
        Ok(values)
    }

    async fn set_many(&self, entries: &[(&str, &[u8])]) -> Result<(), KvError> {
        for chunk in super::last_of_each_sorted(entries).chunks(TXN_OPS) {
            let puts: Vec<TxnOp> = chunk
                .iter()
                .map(|&(key, value)| TxnOp::put(self.key(key), value, None))
                .collect();
            self.client
                .kv_client()
                .txn(Txn::new().and_then(puts))
                .await
                .map_err(failed)?;
        }
        Ok(())
    }

    fn backend(&self) -> Option<&dyn KvBackend> {
        None
    }

    async fn clean_up(&self, _: Vec<String>) -> Result<(), KvError> {
        self.client
            .kv_client()
            .delete(
                self.prefix.as_str(),
                Some(DeleteOptions::new().with_prefix()),
            )
            .await
            .map(drop)
            .map_err(failed)
    }
}
