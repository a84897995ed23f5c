//! Creating the table: on-demand billing, the key schema of `encoding`, DynamoDB TTL on the
//! `ttl` attribute.

use std::time::Duration;

use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::describe_table::DescribeTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TableDescription, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use kv_trait::KvError;

use crate::backend::DynamoDbBackend;
use crate::encoding::{PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE};
use crate::error::from_sdk;

/// How long [`DynamoDbBackend::create_table_if_missing`] waits for a table to become active.
pub const TABLE_READY_TIMEOUT: Duration = Duration::from_secs(300);

impl DynamoDbBackend {
    /// Makes sure the table exists and is ready; returns whether this call created it.
    ///
    /// A missing table is created with on-demand (`PAY_PER_REQUEST`) billing and the key
    /// schema `pk` (String, partition key) + `sk` (String, sort key). Then this waits until
    /// the table is `ACTIVE` (at most [`TABLE_READY_TIMEOUT`]) and enables DynamoDB's TTL on
    /// the `ttl` attribute, so that expired items are eventually deleted at no cost.
    ///
    /// Idempotent, and safe to call from several processes at once. An existing table with
    /// another key schema is `InvalidConfig`, as is one whose TTL is on another attribute
    /// (DynamoDB allows one TTL attribute per table; the backend would still be correct, but
    /// expired items would never be deleted). Needs `dynamodb:DescribeTable`, `CreateTable`,
    /// `DescribeTimeToLive` and `UpdateTimeToLive` permissions, which the eight operations do
    /// not.
    pub async fn create_table_if_missing(&self) -> Result<bool, KvError> {
        let created = match self.describe_table().await? {
            Some(table) => {
                check_key_schema(self.table(), &table)?;
                false
            }
            None => self.create_table().await?,
        };
        self.wait_until_active().await?;
        self.enable_ttl().await?;
        Ok(created)
    }

    /// The table's description; `None` when it does not exist.
    async fn describe_table(&self) -> Result<Option<TableDescription>, KvError> {
        match self
            .client()
            .describe_table()
            .table_name(self.table())
            .send()
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

    async fn enable_ttl(&self) -> Result<(), KvError> {
        match self.ttl_status().await? {
            (Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling), Some(name))
                if name == TTL_ATTRIBUTE =>
            {
                return Ok(())
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
            .await;
        match result {
            Ok(_) => Ok(()),
            // Another process may have enabled it in between: that is fine.
            Err(err) => match self.ttl_status().await? {
                (Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling), Some(name))
                    if name == TTL_ATTRIBUTE =>
                {
                    Ok(())
                }
                _ => Err(from_sdk("UpdateTimeToLive", err)),
            },
        }
    }

    async fn ttl_status(&self) -> Result<(Option<TimeToLiveStatus>, Option<String>), KvError> {
        let output = self
            .client()
            .describe_time_to_live()
            .table_name(self.table())
            .send()
            .await
            .map_err(|err| from_sdk("DescribeTimeToLive", err))?;
        Ok(output
            .time_to_live_description
            .map(|d| (d.time_to_live_status, d.attribute_name))
            .unwrap_or_default())
    }
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
