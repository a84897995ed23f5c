//! The table itself: checking it at open with item-level permissions only, creating it
//! (on-demand billing, the key schema of `encoding`), and turning DynamoDB's TTL deletion on
//! for the `ttl` attribute. Opening does only the first unless asked: see the README's IAM
//! table.

use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::describe_table::DescribeTableError;
use aws_sdk_dynamodb::operation::get_item::GetItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableDescription, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use kv_trait::{KvError, WithinLimit};

use crate::backend::DynamoDbBackend;
use crate::encoding::{self, PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE};
use crate::error::from_sdk;

/// How long [`DynamoDbBackend::create_table_if_missing`] waits for a table to become active.
pub const TABLE_READY_TIMEOUT: Duration = Duration::from_secs(300);

/// The partition [`DynamoDbBackend::verify_table`] reads: no namespace's (those all start
/// with `ns#`), so the check never reads, and never bills for, anyone's data.
const PROBE_PARTITION: &str = "kvkit#table-check";

/// What [`DynamoDbBackend::enable_ttl_deletion`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TtlDeletion {
    /// DynamoDB's TTL is on (or turning on) for the `ttl` attribute: expired items are
    /// deleted, eventually and for free.
    Enabled,
    /// The endpoint does not implement DynamoDB's TTL API (some emulators, e.g. dynalite):
    /// expired items stay until overwritten or deleted. The backend still never returns
    /// them. AWS itself never answers this.
    NotSupported,
}

impl DynamoDbBackend {
    /// Checks that the table exists and is keyed as this crate writes items (`pk` and `sk`,
    /// both String), with one strongly consistent `GetItem` of an item no namespace holds:
    /// only `dynamodb:GetItem`, which every read needs anyway. [`build`] does this unless
    /// told not to.
    ///
    /// A missing table (or one still being created) and a table with another key schema are
    /// `InvalidConfig`, naming what is wrong. DynamoDB's own answer on the key schema is
    /// quoted, since a `GetItem` cannot ask for the table's description.
    ///
    /// [`build`]: crate::DynamoDbBackendBuilder::build
    pub async fn verify_table(&self) -> Result<(), KvError> {
        let probe = encoding::primary_key(&AttributeValue::S(PROBE_PARTITION.to_owned()), "-");
        let result = self
            .client()
            .get_item()
            .table_name(self.table())
            .set_key(Some(probe))
            .consistent_read(true)
            .send()
            .within(self.request_limit())
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(GetItemError::is_resource_not_found_exception) =>
            {
                Err(KvError::InvalidConfig(format!(
                    "DynamoDB table {} does not exist{} (or is not ACTIVE yet): create it with \
                     partition key {PARTITION_KEY:?} and sort key {SORT_KEY:?}, both String, \
                     or open with create_table=true (needs dynamodb:DescribeTable and \
                     dynamodb:CreateTable)",
                    self.table(),
                    self.location(),
                )))
            }
            // The request's only variable part is the key: DynamoDB refuses a key that does
            // not match the table's schema with a ValidationException.
            Err(err) if err.code() == Some("ValidationException") => {
                Err(KvError::InvalidConfig(format!(
                    "DynamoDB table {}{} is not keyed as kv-dynamodb needs (partition key \
                     {PARTITION_KEY:?} and sort key {SORT_KEY:?}, both String): DynamoDB says \
                     {:?}",
                    self.table(),
                    self.location(),
                    err.message().unwrap_or("(no message)"),
                )))
            }
            Err(err) => Err(from_sdk("GetItem", err)),
        }
    }

    /// Makes sure the table exists and is ready; returns whether this call created it.
    ///
    /// A missing table is created with on-demand (`PAY_PER_REQUEST`) billing and the key
    /// schema `pk` (String, partition key) + `sk` (String, sort key). Then this waits until
    /// the table is `ACTIVE` (at most [`TABLE_READY_TIMEOUT`]). It does not touch the
    /// table's TTL setting: that is [`enable_ttl_deletion`](Self::enable_ttl_deletion).
    ///
    /// Idempotent, and safe to call from several processes at once. An existing table with
    /// another key schema is `InvalidConfig`. Needs `dynamodb:DescribeTable` and
    /// `dynamodb:CreateTable` permissions, which the eight operations do not.
    pub async fn create_table_if_missing(&self) -> Result<bool, KvError> {
        let created = match self.describe_table().await? {
            Some(table) => {
                check_key_schema(self.table(), &table)?;
                false
            }
            None => self.create_table().await?,
        };
        self.wait_until_active().await?;
        Ok(created)
    }

    /// Makes sure DynamoDB's TTL deletion is on for the `ttl` attribute, so that expired items
    /// are eventually deleted at no cost (typically within days; until then the backend
    /// treats them as absent). Idempotent, and safe to call from several processes at once.
    ///
    /// A table whose TTL is on another attribute is `InvalidConfig` (DynamoDB allows one TTL
    /// attribute per table; the backend would still be correct, but expired items would never
    /// be deleted); one whose TTL is being turned off is `Unavailable` (it can be turned on
    /// again once that finishes, up to an hour). An endpoint without DynamoDB's TTL API is
    /// [`TtlDeletion::NotSupported`], with a `WARN` event. Needs
    /// `dynamodb:DescribeTimeToLive` and `dynamodb:UpdateTimeToLive` permissions.
    pub async fn enable_ttl_deletion(&self) -> Result<TtlDeletion, KvError> {
        let Some(status) = self.ttl_status().await? else {
            return Ok(self.ttl_not_supported());
        };
        match status {
            (Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling), Some(name))
                if name == TTL_ATTRIBUTE =>
            {
                return Ok(TtlDeletion::Enabled)
            }
            (Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling), Some(name)) => {
                return Err(KvError::InvalidConfig(format!(
                    "table {} has DynamoDB TTL on attribute {name:?}; kv-dynamodb writes it to \
                     {TTL_ATTRIBUTE:?}",
                    self.table()
                )))
            }
            (Some(TimeToLiveStatus::Disabling), _) => {
                return Err(KvError::unavailable(format!(
                    "DynamoDB TTL of table {} is being disabled; it can be enabled again once \
                     that finishes (up to an hour)",
                    self.table()
                )))
            }
            _ => {}
        }
        let specification = TimeToLiveSpecification::builder()
            .attribute_name(TTL_ATTRIBUTE)
            .enabled(true)
            .build()
            .map_err(|err| KvError::backend(format!("building UpdateTimeToLive: {err}")))?;
        let result = self
            .client()
            .update_time_to_live()
            .table_name(self.table())
            .time_to_live_specification(specification)
            .send()
            .within(self.request_limit())
            .await;
        match result {
            Ok(_) => Ok(TtlDeletion::Enabled),
            Err(err) if is_unknown_operation(err.code()) => Ok(self.ttl_not_supported()),
            // Another process may have enabled it in between: that is fine.
            Err(err) => match self.ttl_status().await? {
                Some((
                    Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling),
                    Some(name),
                )) if name == TTL_ATTRIBUTE => Ok(TtlDeletion::Enabled),
                _ => Err(from_sdk("UpdateTimeToLive", err)),
            },
        }
    }

    fn ttl_not_supported(&self) -> TtlDeletion {
        tracing::warn!(
            table = self.table(),
            "this DynamoDB endpoint has no TTL API: expired items will not be deleted (kv-dynamodb \
             still never returns them)"
        );
        TtlDeletion::NotSupported
    }

    /// The table's description; `None` when it does not exist.
    async fn describe_table(&self) -> Result<Option<TableDescription>, KvError> {
        match self
            .client()
            .describe_table()
            .table_name(self.table())
            .send()
            .within(self.request_limit())
            .await
        {
            Ok(output) => Ok(output.table),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(DescribeTableError::is_resource_not_found_exception) =>
            {
                Ok(None)
            }
            Err(err) => Err(from_sdk("DescribeTable", err)),
        }
    }

    /// `true` if this call created the table, `false` if another one was faster.
    async fn create_table(&self) -> Result<bool, KvError> {
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
        };
        let built = (|| {
            Ok::<_, aws_sdk_dynamodb::error::BuildError>((
                vec![attribute(PARTITION_KEY)?, attribute(SORT_KEY)?],
                vec![
                    key(PARTITION_KEY, KeyType::Hash)?,
                    key(SORT_KEY, KeyType::Range)?,
                ],
            ))
        })();
        let (attributes, key_schema) =
            built.map_err(|err| KvError::backend(format!("building CreateTable: {err}")))?;
        let result = self
            .client()
            .create_table()
            .table_name(self.table())
            .set_attribute_definitions(Some(attributes))
            .set_key_schema(Some(key_schema))
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .within(self.request_limit())
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(CreateTableError::is_resource_in_use_exception) =>
            {
                Ok(false)
            }
            Err(err) => Err(from_sdk("CreateTable", err)),
        }
    }

    async fn wait_until_active(&self) -> Result<(), KvError> {
        let deadline = kv_trait::monotonic_now() + TABLE_READY_TIMEOUT;
        let mut pause = Duration::from_millis(200);
        loop {
            let status = self
                .describe_table()
                .await?
                .and_then(|table| table.table_status);
            match status {
                Some(TableStatus::Active) => return Ok(()),
                Some(TableStatus::Creating | TableStatus::Updating) | None => {}
                Some(other) => {
                    return Err(KvError::backend(format!(
                        "table {} is {other:?}, not usable",
                        self.table()
                    )))
                }
            }
            if kv_trait::monotonic_now() >= deadline {
                return Err(KvError::unavailable(format!(
                    "table {} did not become ACTIVE within {TABLE_READY_TIMEOUT:?}",
                    self.table()
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// The table's TTL status and attribute; `None` when the endpoint has no TTL API.
    #[allow(clippy::type_complexity)]
    async fn ttl_status(
        &self,
    ) -> Result<Option<(Option<TimeToLiveStatus>, Option<String>)>, KvError> {
        let output = match self
            .client()
            .describe_time_to_live()
            .table_name(self.table())
            .send()
            .within(self.request_limit())
            .await
        {
            Ok(output) => output,
            Err(err) if is_unknown_operation(err.code()) => return Ok(None),
            Err(err) => return Err(from_sdk("DescribeTimeToLive", err)),
        };
        Ok(Some(
            output
                .time_to_live_description
                .map(|d| (d.time_to_live_status, d.attribute_name))
                .unwrap_or_default(),
        ))
    }
}

/// Whether an error code says the endpoint does not implement the operation at all.
fn is_unknown_operation(code: Option<&str>) -> bool {
    code == Some("UnknownOperationException")
}

/// An existing table must be keyed exactly as this crate writes items.
fn check_key_schema(table: &str, description: &TableDescription) -> Result<(), KvError> {
    let role = |name: &str| {
        description
            .key_schema()
            .iter()
            .find(|element| element.attribute_name() == name)
            .map(|element| element.key_type().clone())
    };
    let kind = |name: &str| {
        description
            .attribute_definitions()
            .iter()
            .find(|definition| definition.attribute_name() == name)
            .map(|definition| definition.attribute_type().clone())
    };
    let matches = description.key_schema().len() == 2
        && role(PARTITION_KEY) == Some(KeyType::Hash)
        && role(SORT_KEY) == Some(KeyType::Range)
        && kind(PARTITION_KEY) == Some(ScalarAttributeType::S)
        && kind(SORT_KEY) == Some(ScalarAttributeType::S);
    if matches {
        Ok(())
    } else {
        Err(KvError::InvalidConfig(format!(
            "table {table} exists with another key schema; kv-dynamodb needs partition key \
             {PARTITION_KEY:?} (String) and sort key {SORT_KEY:?} (String)"
        )))
    }
}
