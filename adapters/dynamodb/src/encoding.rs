//! How keys, values, counters, expiry and namespaces map onto DynamoDB items, and the
//! condition expressions that decide liveness inside DynamoDB; the item layout is described in
//! the crate docs.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use kv_trait::{format_counter, is_live_at, KvError, MAX_KEY_BYTES};

/// The partition key attribute: the namespace.
pub(crate) const PARTITION_KEY: &str = "pk";
/// The sort key attribute: the key.
pub(crate) const SORT_KEY: &str = "sk";
/// The value attribute (Binary).
pub(crate) const VALUE: &str = "v";
/// The counter attribute (Number), used instead of [`VALUE`] by `increment`.
pub(crate) const COUNTER: &str = "n";
/// The exact deadline attribute (Number, Unix milliseconds).
pub(crate) const DEADLINE: &str = "exp";
/// DynamoDB's TTL attribute (Number, Unix seconds rounded up).
pub const TTL_ATTRIBUTE: &str = "ttl";

/// What every partition key starts with, so that the empty namespace is a non-empty string.
pub const NAMESPACE_PREFIX: &str = "ns#";

/// The longest namespace, in UTF-8 bytes.
pub const MAX_NAMESPACE_BYTES: usize = 1024;

/// DynamoDB's item size limit: 400 KB, counted as 409,600 bytes.
pub const AWS_ITEM_LIMIT_BYTES: usize = 409_600;

/// The longest value that fits [`AWS_ITEM_LIMIT_BYTES`] in the largest item this crate writes:
/// 407,518 bytes.
///
/// By AWS's size rules (attribute names count, strings and binaries count their bytes, a
/// number counts 1 byte per 2 significant digits plus 1), that item has a 1024-byte namespace
/// (`pk`: 2 + 3 + 1024), a 1024-byte key (`sk`: 2 + 1024), the value (`v`: 1 + length), a
/// 19-digit deadline (`exp`: 3 + 11) and a 16-digit TTL (`ttl`: 3 + 9): 2,082 bytes besides
/// the value's.
pub const AWS_MAX_VALUE_BYTES: usize = AWS_ITEM_LIMIT_BYTES - largest_item_overhead();

/// Every byte of the largest item except the value's, by AWS's size rules.
const fn largest_item_overhead() -> usize {
    /// AWS: a number takes 1 byte per 2 significant digits, plus 1.
    const fn number(digits: usize) -> usize {
        digits.div_ceil(2) + 1
    }
    let i64_max_digits = 19; // deadlines in Unix ms are at most i64::MAX
    let ttl_digits = 16; // i64::MAX ms in seconds, rounded up: 9223372036854776
    (PARTITION_KEY.len() + NAMESPACE_PREFIX.len() + MAX_NAMESPACE_BYTES)
        + (SORT_KEY.len() + MAX_KEY_BYTES)
        + VALUE.len()
        + (DEADLINE.len() + number(i64_max_digits))
        + (TTL_ATTRIBUTE.len() + number(ttl_digits))
}

/// An item, as the SDK sends and receives it.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// The partition key value of `namespace`.
pub(crate) fn partition_key(namespace: &str) -> AttributeValue {
    AttributeValue::S(format!("{NAMESPACE_PREFIX}{namespace}"))
}

/// The primary key of `key` in the namespace whose partition key is `partition`.
pub(crate) fn primary_key(partition: &AttributeValue, key: &str) -> Item {
    HashMap::from([
        (PARTITION_KEY.to_owned(), partition.clone()),
        (SORT_KEY.to_owned(), AttributeValue::S(key.to_owned())),
    ])
}

/// A whole item holding bytes `value`, expiring at `deadline_ms` (Unix ms) if given.
pub(crate) fn value_item(
    partition: &AttributeValue,
    key: &str,
    value: &[u8],
    deadline_ms: Option<u64>,
) -> Item {
    let mut item = primary_key(partition, key);
    item.insert(VALUE.to_owned(), binary(value));
    if let Some(deadline) = deadline_ms {
        item.insert(DEADLINE.to_owned(), number(deadline));
        item.insert(TTL_ATTRIBUTE.to_owned(), number(ttl_seconds(deadline)));
    }
    item
}

/// A whole item holding counter `n`, with no TTL.
pub(crate) fn counter_item(partition: &AttributeValue, key: &str, n: i64) -> Item {
    let mut item = primary_key(partition, key);
    item.insert(COUNTER.to_owned(), number(n));
    item
}

/// The value of DynamoDB's TTL attribute for a deadline: Unix seconds, rounded up, so that
/// DynamoDB never deletes an item before its exact deadline.
pub(crate) fn ttl_seconds(deadline_ms: u64) -> u64 {
    deadline_ms.div_ceil(1000)
}

pub(crate) fn binary(bytes: &[u8]) -> AttributeValue {
    AttributeValue::B(Blob::new(bytes))
}

pub(crate) fn number(n: impl ToString) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

/// The placeholder map for expression attribute names: `#x` stands for attribute `x`.
///
/// Placeholders are used for every attribute (`ttl` and others are DynamoDB reserved words),
/// and each request names exactly the attributes its expressions use, as DynamoDB requires.
pub(crate) fn names(attributes: &[&str]) -> HashMap<String, String> {
    attributes
        .iter()
        .map(|name| (format!("#{name}"), (*name).to_owned()))
        .collect()
}

/// Condition expressions. `:now` is the clock reading (Unix ms) at the start of the call.
pub(crate) mod condition {
    /// The item is missing or expired. Names: `sk`, `exp`.
    pub(crate) const ABSENT: &str = "attribute_not_exists(#sk) OR #exp <= :now";

    /// The item still has deadline `:seen` (the one it was read with, already past). Names:
    /// `exp`.
    pub(crate) const EXPIRED_AT: &str = "#exp = :seen";

    /// The item is live and holds bytes `:expected`. Names: `exp`, `v`.
    pub(crate) const HOLDS_BYTES: &str =
        "(attribute_not_exists(#exp) OR #exp > :now) AND #v = :expected";

    /// The item is live and holds bytes `:expected` or counter `:counter`. Names: `exp`,
    /// `v`, `n`.
    pub(crate) const HOLDS_BYTES_OR_COUNTER: &str =
        "(attribute_not_exists(#exp) OR #exp > :now) AND (#v = :expected OR #n = :counter)";

    /// For `ADD #n :delta`: the item is missing, or a live counter. Names: `sk`, `n`, `exp`.
    pub(crate) const ADDABLE: &str =
        "attribute_not_exists(#sk) OR (attribute_exists(#n) AND (attribute_not_exists(#exp) OR #exp > :now))";

    /// [`ADDABLE`], and `n + delta` stays at most `i64::MAX` (`:limit` is `i64::MAX - delta`).
    pub(crate) const ADDABLE_UP: &str =
        "attribute_not_exists(#sk) OR (attribute_exists(#n) AND (attribute_not_exists(#exp) OR #exp > :now) AND #n <= :limit)";

    /// [`ADDABLE`], and `n + delta` stays at least `i64::MIN` (`:limit` is `i64::MIN - delta`).
    pub(crate) const ADDABLE_DOWN: &str =
        "attribute_not_exists(#sk) OR (attribute_exists(#n) AND (attribute_not_exists(#exp) OR #exp > :now) AND #n >= :limit)";
}

/// The condition under which `ADD #n :delta` may run, and its `:limit` if it needs one.
///
/// DynamoDB numbers have 38 digits of precision, so `n + delta` could leave the `i64` range
/// without DynamoDB noticing; the condition keeps it inside.
pub(crate) fn addable_condition(delta: i64) -> (&'static str, Option<i64>) {
    match delta {
        0 => (condition::ADDABLE, None),
        // Both limits are in range: i64::MAX - delta for delta > 0, i64::MIN - delta for < 0.
        1.. => (condition::ADDABLE_UP, Some(i64::MAX - delta)),
        _ => (condition::ADDABLE_DOWN, Some(i64::MIN - delta)),
    }
}

/// What an item stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stored {
    /// Bytes written by `set`, `set_with_ttl` or CAS (attribute `v`).
    Bytes(Vec<u8>),
    /// A counter written by `increment` (attribute `n`).
    Counter(i64),
}

impl Stored {
    /// The value as `get` returns it: counters as canonical decimal bytes.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        match self {
            Stored::Bytes(bytes) => bytes,
            Stored::Counter(n) => format_counter(n),
        }
    }
}

/// The deadline of an item: `None` when it never expires.
pub(crate) fn deadline(item: &Item) -> Result<Option<u64>, KvError> {
    match item.get(DEADLINE) {
        None => Ok(None),
        Some(AttributeValue::N(n)) => n.parse().map(Some).map_err(|_| {
            foreign(format!(
                "its {DEADLINE} attribute {n:?} is not Unix milliseconds"
            ))
        }),
        Some(_) => Err(foreign(format!("its {DEADLINE} attribute is not a Number"))),
    }
}

/// Whether an item with this deadline is live at `now_ms`.
pub(crate) fn item_is_live(item: &Item, now_ms: u64) -> Result<bool, KvError> {
    Ok(deadline(item)?.is_none_or(|deadline| is_live_at(deadline, now_ms)))
}

/// What an item stores, if it is live at `now_ms`.
pub(crate) fn live_value(item: &Item, now_ms: u64) -> Result<Option<Stored>, KvError> {
    if !item_is_live(item, now_ms)? {
        return Ok(None);
    }
    stored(item).map(Some)
}

/// What an item stores.
pub(crate) fn stored(item: &Item) -> Result<Stored, KvError> {
    match (item.get(VALUE), item.get(COUNTER)) {
        (Some(AttributeValue::B(blob)), _) => Ok(Stored::Bytes(blob.as_ref().to_vec())),
        (None, Some(AttributeValue::N(n))) => counter(n).map(Stored::Counter),
        (Some(_), _) => Err(foreign(format!("its {VALUE} attribute is not Binary"))),
        (None, Some(_)) => Err(foreign(format!("its {COUNTER} attribute is not a Number"))),
        (None, None) => Err(foreign(format!(
            "it has neither a {VALUE} nor a {COUNTER} attribute"
        ))),
    }
}

/// A counter from a DynamoDB Number (an item written by hand could hold a fraction).
pub(crate) fn counter(n: &str) -> Result<i64, KvError> {
    n.parse()
        .map_err(|_| foreign(format!("its {COUNTER} attribute {n:?} is not an i64")))
}

/// The key (sort key) of an item from a `Query`.
pub(crate) fn key_of(item: &Item) -> Result<String, KvError> {
    match item.get(SORT_KEY) {
        Some(AttributeValue::S(key)) => Ok(key.clone()),
        _ => Err(foreign(format!("its {SORT_KEY} attribute is not a String"))),
    }
}

fn foreign(why: String) -> KvError {
    KvError::backend(format!(
        "an item in the table was not written by kv-dynamodb: {why}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_value_leaves_room_for_every_attribute() {
        assert_eq!(largest_item_overhead(), 2082);
        assert_eq!(AWS_MAX_VALUE_BYTES, 407_518);
        // A 19-digit number takes 11 bytes, a 16-digit one 9.
        assert_eq!(kv_trait::NEVER_UNIX_MS.to_string().len(), 19);
        assert_eq!(ttl_seconds(kv_trait::NEVER_UNIX_MS).to_string().len(), 16);
    }

    #[test]
    fn the_ttl_attribute_rounds_up_to_whole_seconds() {
        assert_eq!(ttl_seconds(1_000), 1);
        assert_eq!(ttl_seconds(1_001), 2);
        assert_eq!(ttl_seconds(1_999), 2);
        assert_eq!(ttl_seconds(0), 0);
    }

    #[test]
    fn the_empty_namespace_is_a_non_empty_partition_key() {
        assert_eq!(partition_key(""), AttributeValue::S("ns#".into()));
        assert_eq!(partition_key("app"), AttributeValue::S("ns#app".into()));
    }

    #[test]
    fn items_hold_bytes_or_counters_and_an_optional_deadline() {
        let pk = partition_key("n");
        let plain = value_item(&pk, "k", b"", None);
        assert_eq!(plain.len(), 3);
        assert_eq!(stored(&plain).unwrap(), Stored::Bytes(vec![]));
        assert!(item_is_live(&plain, u64::MAX).unwrap());

        let expiring = value_item(&pk, "k", b"v", Some(10_500));
        assert_eq!(expiring.get(TTL_ATTRIBUTE), Some(&number(11)));
        assert!(item_is_live(&expiring, 10_499).unwrap());
        assert!(!item_is_live(&expiring, 10_500).unwrap());
        assert_eq!(live_value(&expiring, 10_500).unwrap(), None);

        let counter = counter_item(&pk, "k", -7);
        assert_eq!(
            live_value(&counter, 0).unwrap().unwrap().into_bytes(),
            b"-7"
        );
    }

    #[test]
    fn foreign_items_are_backend_errors() {
        let pk = partition_key("n");
        let mut item = primary_key(&pk, "k");
        assert!(matches!(stored(&item), Err(KvError::Backend(_))));
        item.insert(COUNTER.into(), AttributeValue::N("1.5".into()));
        assert!(matches!(stored(&item), Err(KvError::Backend(_))));
        item.insert(DEADLINE.into(), AttributeValue::S("soon".into()));
        assert!(matches!(deadline(&item), Err(KvError::Backend(_))));
    }

    #[test]
    fn increment_limits_keep_the_sum_in_range() {
        assert_eq!(addable_condition(0), (condition::ADDABLE, None));
        assert_eq!(
            addable_condition(1),
            (condition::ADDABLE_UP, Some(i64::MAX - 1))
        );
        assert_eq!(
            addable_condition(i64::MAX),
            (condition::ADDABLE_UP, Some(0))
        );
        assert_eq!(
            addable_condition(-1),
            (condition::ADDABLE_DOWN, Some(i64::MIN + 1))
        );
        assert_eq!(
            addable_condition(i64::MIN),
            (condition::ADDABLE_DOWN, Some(0))
        );
    }

    #[test]
    fn placeholders_name_their_attributes() {
        let map = names(&[SORT_KEY, TTL_ATTRIBUTE]);
        assert_eq!(map["#sk"], "sk");
        assert_eq!(map["#ttl"], "ttl");
        assert_eq!(map.len(), 2);
    }

    /// Any attribute value, of any type DynamoDB has.
    fn any_attribute() -> impl proptest::strategy::Strategy<Value = AttributeValue> {
        use proptest::prelude::*;
        prop_oneof![
            ".{0,12}".prop_map(AttributeValue::S),
            "-?[0-9.eE+]{0,24}".prop_map(AttributeValue::N),
            proptest::collection::vec(any::<u8>(), 0..12).prop_map(|b| binary(&b)),
            any::<bool>().prop_map(AttributeValue::Bool),
            Just(AttributeValue::Null(true)),
            proptest::collection::vec(".{0,4}", 0..3).prop_map(AttributeValue::Ss),
        ]
    }

    proptest::proptest! {
        /// An item another program wrote, with any of kvkit's attribute names holding any
        /// type, decodes to what it stores or to a `Backend` error, never a panic.
        #[test]
        fn decoding_any_item_never_panics(
            attributes in proptest::collection::hash_map(
                proptest::sample::select(vec![VALUE, COUNTER, DEADLINE, SORT_KEY, TTL_ATTRIBUTE, "other"]),
                any_attribute(),
                0..5,
            ),
            now in proptest::prelude::any::<u64>(),
        ) {
            let item: Item = attributes.into_iter().map(|(name, value)| (name.to_owned(), value)).collect();
            let backend = |result: &Result<_, KvError>| matches!(result, Ok(_) | Err(KvError::Backend(_)));
            proptest::prop_assert!(backend(&stored(&item).map(drop)));
            proptest::prop_assert!(backend(&deadline(&item).map(drop)));
            proptest::prop_assert!(backend(&live_value(&item, now).map(drop)));
            proptest::prop_assert!(backend(&key_of(&item).map(drop)));
        }
    }
}
