//! The batch requests: `BatchGetItem` and `BatchWriteItem` in DynamoDB's chunk sizes, with
//! the keys and items DynamoDB left unprocessed resent until none are left.
//!
//! DynamoDB may answer a batch with part of it undone (`UnprocessedKeys`, `UnprocessedItems`):
//! throttling, an answer over 16 MB, an internal limit. Those parts were not applied and are
//! resent after a backoff, never dropped: a dropped key would read as absent, a dropped
//! item would be a write that silently did not happen. Each chunk (its first request, the
//! resends and the waits between them) runs within one operation timeout, as a single
//! operation does; a chunk still unfinished by then fails with `Unavailable`. As for a single
//! operation, the wait for a place among the backend's requests in flight
//! (`max_concurrent_requests`) before each request does not count: under a burst, the
//! timeout measures DynamoDB, not the queue in front of it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{KeysAndAttributes, PutRequest, WriteRequest};
use kv_trait::{monotonic_now, KvError, Place, RequestLimit};

use crate::backend::DynamoDbBackend;
use crate::encoding::{self, names, Item, Stored, COUNTER, DEADLINE, SORT_KEY, VALUE};
use crate::error::from_sdk;

/// The most keys one `BatchGetItem` may ask for (DynamoDB's limit).
pub(crate) const GET_CHUNK: usize = 100;

/// The most items one `BatchWriteItem` may write (DynamoDB's limit).
pub(crate) const WRITE_CHUNK: usize = 25;

/// How many `DeleteItem` requests `delete_many` keeps in flight at once.
pub(crate) const DELETE_CONCURRENCY: usize = 32;

/// The wait before the first resend of unprocessed keys or items; it doubles for each
/// further resend of the same chunk, up to [`MAX_RESEND_DELAY`].
const FIRST_RESEND_DELAY: Duration = Duration::from_millis(25);

/// The longest wait between two resends of one chunk.
const MAX_RESEND_DELAY: Duration = Duration::from_secs(1);

/// The wait before resend number `resend` (0 for the first) of one chunk.
///
/// Without jitter: the waits are those of one chunk of one call, sent one after another, so
/// there is no crowd of this process's own requests to spread out, and fixed waits keep the
/// time a chunk may take predictable (and testable). Whole requests that DynamoDB throttles
/// are retried by the SDK first, with its own jittered backoff.
pub(crate) fn resend_delay(resend: u32) -> Duration {
    FIRST_RESEND_DELAY
        .saturating_mul(2u32.saturating_pow(resend))
        .min(MAX_RESEND_DELAY)
}

/// The time budget of one chunk: its deadline, and how many resends it has made.
struct Budget {
    operation: &'static str,
    deadline: Instant,
    timeout: Duration,
    resends: u32,
}

impl Budget {
    fn start(operation: &'static str, timeout: Duration) -> Self {
        let now = monotonic_now();
        Self {
            operation,
            // A timeout too long for `Instant` is as good as none: a year will do.
            deadline: now
                .checked_add(timeout)
                .unwrap_or(now + Duration::from_secs(365 * 24 * 3600)),
            timeout,
            resends: 0,
        }
    }

    /// A place among the backend's requests in flight (`limit`), to hold until the answer
    /// is in. The wait moves the deadline back by as long as it took, so that it does not
    /// count against the budget (see the module docs).
    async fn place<'a>(&mut self, limit: &'a RequestLimit) -> Place<'a> {
        let waiting = monotonic_now();
        let place = limit.place().await;
        self.deadline = self
            .deadline
            .checked_add(waiting.elapsed())
            .unwrap_or(self.deadline);
        place
    }

    /// Sends one request of the chunk, cut off at the deadline. A write cut off in flight
    /// may have been applied: `Unavailable`, as the contract allows, and never resent.
    async fn send<T>(
        &self,
        request: impl std::future::Future<Output = Result<T, KvError>>,
    ) -> Result<T, KvError> {
        match tokio::time::timeout_at(self.deadline.into(), request).await {
            Ok(outcome) => outcome,
            Err(_) => Err(self.out_of_time("a request was still unanswered")),
        }
    }

    /// Waits before resending `left` unprocessed keys or items; fails with `Unavailable`
    /// when the wait would end past the deadline (no use waiting for a request that could
    /// not be sent in time).
    async fn pause(&mut self, left: usize) -> Result<(), KvError> {
        let delay = resend_delay(self.resends);
        self.resends += 1;
        if monotonic_now() + delay >= self.deadline {
            return Err(self.out_of_time(&format!(
                "{left} of its keys or items were still unprocessed after {} resends",
                self.resends - 1
            )));
        }
        tokio::time::sleep(delay).await;
        Ok(())
    }

    fn out_of_time(&self, what: &str) -> KvError {
        KvError::unavailable(format!(
            "DynamoDB {}: {what} when the operation timeout ({:?}) ran out",
            self.operation, self.timeout
        ))
    }
}

impl DynamoDbBackend {
    /// The live values of `keys` (distinct, at most `GET_CHUNK`), by key, and the items found
    /// expired, for the caller to settle: one strongly consistent `BatchGetItem` projecting
    /// `sk, v, n, exp`, then one more for the keys it left unprocessed, and so on. Keys in
    /// neither have no item.
    pub(crate) async fn batch_get(
        &self,
        keys: &[&str],
    ) -> Result<(HashMap<String, Vec<u8>>, Vec<(String, Item)>), KvError> {
        let mut found = HashMap::with_capacity(keys.len());
        let mut expired = Vec::new();
        let mut pending: Vec<Item> = keys.iter().map(|key| self.primary_key(key)).collect();
        let mut budget = Budget::start("BatchGetItem", self.operation_timeout());
        loop {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(pending))
                .consistent_read(true)
                // `sk` to tell which key each item is: the answer is in no particular order.
                .projection_expression("#sk, #v, #n, #exp")
                .set_expression_attribute_names(Some(names(&[SORT_KEY, VALUE, COUNTER, DEADLINE])))
                .build()
                .map_err(|err| KvError::backend(format!("BatchGetItem request: {err}")))?;
            let place = budget.place(self.request_limit()).await;
            let output = budget
                .send(async move {
                    self.reader()
                        .batch_get_item()
                        .request_items(self.table(), request)
                        .send()
                        .await
                        .map_err(|err| from_sdk("BatchGetItem", err))
                })
                .await;
            drop(place);
            let output = output?;
            // Liveness by the clock read once this answer is in hand, as `get` does.
            let now = kv_trait::unix_millis_now();
            let items = output
                .responses
                .and_then(|mut tables| tables.remove(self.table()))
                .unwrap_or_default();
            for item in items {
                let key = encoding::key_of(&item)?;
                match encoding::live_value(&item, now)? {
                    Some(value) => {
                        found.insert(key, Stored::into_bytes(value));
                    }
                    None => expired.push((key, item)),
                }
            }
            pending = output
                .unprocessed_keys
                .and_then(|mut tables| tables.remove(self.table()))
                .map(|unprocessed| unprocessed.keys)
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok((found, expired));
            }
            budget.pause(pending.len()).await?;
        }
    }

    /// Writes `items` (of distinct keys, at most `WRITE_CHUNK`) unconditionally: one
    /// `BatchWriteItem` of `PutRequest`s, then one more for the items it left unprocessed,
    /// and so on.
    ///
    /// Sent by the client that never resends a request that may have been applied (see
    /// `error.rs`): resending a whole batch whose answer was lost could undo another client's
    /// write made in between. The unprocessed items of an answer were not applied, so
    /// sending them again is as if they were sent once.
    pub(crate) async fn batch_put(&self, items: Vec<Item>) -> Result<(), KvError> {
        let mut pending = items
            .into_iter()
            .map(|item| {
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|put| WriteRequest::builder().put_request(put).build())
                    .map_err(|err| KvError::backend(format!("BatchWriteItem request: {err}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut budget = Budget::start("BatchWriteItem", self.operation_timeout());
        loop {
            let batch = std::mem::take(&mut pending);
            let place = budget.place(self.request_limit()).await;
            let output = budget
                .send(async move {
                    self.writer()
                        .batch_write_item()
                        .request_items(self.table(), batch)
                        .send()
                        .await
                        .map_err(|err| from_sdk("BatchWriteItem", err))
                })
                .await;
            drop(place);
            let output = output?;
            pending = output
                .unprocessed_items
                .and_then(|mut tables| tables.remove(self.table()))
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok(());
            }
            budget.pause(pending.len()).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunk that waited for a place among the requests in flight longer than its whole
    /// budget still sends its request: the wait does not count.
    #[tokio::test]
    async fn waiting_for_a_place_does_not_spend_the_budget() {
        let limit = std::sync::Arc::new(RequestLimit::new(1));
        let mut budget = Budget::start("BatchGetItem", Duration::from_millis(100));
        let (taken, was_taken) = tokio::sync::oneshot::channel();
        let holder = std::sync::Arc::clone(&limit);
        tokio::spawn(async move {
            let _only_place = holder.place().await;
            let _ = taken.send(());
            tokio::time::sleep(Duration::from_millis(300)).await;
        });
        was_taken.await.unwrap();
        let waiting = monotonic_now();
        let _place = budget.place(&limit).await;
        assert!(waiting.elapsed() >= Duration::from_millis(250));
        let answer = budget
            .send(async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok::<_, KvError>("answered")
            })
            .await;
        assert_eq!(answer.ok(), Some("answered"));
        // The request itself is still bounded by the budget.
        let slow = budget
            .send(async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<_, KvError>("too late")
            })
            .await;
        assert!(matches!(slow, Err(KvError::Unavailable(_))), "{slow:?}");
    }

    #[test]
    fn resend_delays_double_up_to_a_bound() {
        let millis: Vec<u128> = (0..9).map(|n| resend_delay(n).as_millis()).collect();
        assert_eq!(millis, [25, 50, 100, 200, 400, 800, 1000, 1000, 1000]);
        assert_eq!(resend_delay(u32::MAX), MAX_RESEND_DELAY);
    }
}
