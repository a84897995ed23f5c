//! Counting a store's requests per operation (for DynamoDB, where the emulator's latency
//! means nothing but the number of requests is what a real table bills and waits for).
//!
//! Each timed operation runs inside [`attributed`], which tells whatever counts requests
//! (an SDK interceptor, called inside the operation's future) which operation it belongs to.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::workload::Op;

tokio::task_local! {
    /// The operation the current task is timing.
    static CURRENT: Op;
}

/// Runs `operation` as the timed operation `op`.
pub(crate) async fn attributed<F: Future>(op: Op, operation: F) -> F::Output {
    CURRENT.scope(op, operation).await
}

/// Requests sent, per operation they were sent for (requests outside a timed operation,
/// such as pre-loading, are not counted).
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestCounts {
    by_op: Arc<[AtomicU64; Op::ALL.len()]>,
}

impl RequestCounts {
    /// Counts one request, for the operation the calling task is timing.
    #[cfg_attr(not(feature = "dynamodb"), allow(dead_code))]
    pub(crate) fn count(&self) {
        if let Ok(op) = CURRENT.try_with(|op| *op) {
            self.by_op[op.index()].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Requests counted for `op` so far.
    pub(crate) fn of(&self, op: Op) -> u64 {
        self.by_op[op.index()].load(Ordering::Relaxed)
    }

    /// Whether anything counts requests into this (no request at all was counted).
    pub(crate) fn any(&self) -> bool {
        Op::ALL.iter().any(|&op| self.of(op) > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_are_counted_for_the_operation_being_timed() {
        let counts = RequestCounts::default();
        counts.count(); // outside any operation: not counted
        let inside = counts.clone();
        attributed(Op::Set, async move {
            inside.count();
            inside.count();
        })
        .await;
        assert_eq!(counts.of(Op::Set), 2);
        assert_eq!(counts.of(Op::Get), 0);
        assert!(counts.any());
    }
}
