//! Provisioning: the table, its secondary indexes and what they project, and TTL.

use super::DynamoStore;
use super::keys::{index_pk, index_sk};
use super::sdk_error;
use crate::domain::errors::StoreError;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};

/// The table's secondary indexes: owner listings, admin listings, children, active deadlines.
pub const INDEX_OWNER: &str = "gsi1";
pub const INDEX_ALL: &str = "gsi2";
pub const INDEX_PARENT: &str = "gsi3";
pub const INDEX_ACTIVE: &str = "gsi4";

/// What an index copies of each item. The listing indexes copy whole executions (a page is
/// one query); the deadline index only keys: the sweep and recovery read the few executions
/// they act on, and an update that does not move the deadline then writes nothing to it.
pub fn projection_of(index: &str) -> ProjectionType {
    if index == INDEX_ACTIVE {
        ProjectionType::KeysOnly
    } else {
        ProjectionType::All
    }
}

/// The attribute DynamoDB's TTL expires items by (idempotency claims), in epoch seconds.
pub const TTL_ATTRIBUTE: &str = "expires_at";

impl DynamoStore {
    /// Creates the table with its indexes and TTL (for tests and `--create-resources`); an
    /// existing table is left as it is.
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .expect("key schema fields are set")
        };
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute fields are set")
        };
        let index = |name: &str| {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key(&index_pk(name), KeyType::Hash))
                .key_schema(key(&index_sk(name), KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(projection_of(name))
                        .build(),
                )
                .build()
                .expect("index fields are set")
        };
        let mut request = client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .attribute_definitions(attribute("pk"))
            .attribute_definitions(attribute("sk"))
            // The event log is written from the table's change stream (see `log`).
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .expect("stream fields are set"),
            );
        for name in [INDEX_OWNER, INDEX_ALL, INDEX_PARENT, INDEX_ACTIVE] {
            request = request
                .attribute_definitions(attribute(&index_pk(name)))
                .attribute_definitions(attribute(&index_sk(name)))
                .global_secondary_indexes(index(name));
        }
        match request.send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) =>
            {
                return Ok(());
            }
            Err(e) => return Err(sdk_error("create table", e)),
        }
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(TTL_ATTRIBUTE)
                    .build()
                    .expect("ttl fields are set"),
            )
            .send()
            .await
            .map_err(|e| sdk_error("enable TTL", e))?;
        Ok(())
    }

    /// Deletes the table; one that does not exist is fine. A table still being created (or
    /// updated) cannot be deleted yet, so that is retried for up to a minute.
    pub async fn delete_table(client: &Client, table: &str) -> Result<(), String> {
        let mut tries = 0;
        loop {
            match client.delete_table().table_name(table).send().await {
                Ok(_) => return Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) =>
                {
                    return Ok(());
                }
                Err(e)
                    if tries < 30
                        && e.as_service_error()
                            .is_some_and(|s| s.is_resource_in_use_exception()) =>
                {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                }
                Err(e) => {
                    return Err(format!(
                        "DeleteTable {table}: {}",
                        aws_sdk_dynamodb::error::DisplayErrorContext(e)
                    ));
                }
            }
        }
    }
}
