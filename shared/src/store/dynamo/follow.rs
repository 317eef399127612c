//! Following the table's change stream from the process itself, for `sync_log`: what tests
//! and `runledger-local --backend aws` use where no `log` function takes the stream in. Only
//! with the `log-follower` feature, so the Lambda functions link no streams client.

use super::items::Item;
use super::{DynamoStore, sdk_error};
use crate::domain::errors::StoreError;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// Follows the table's change stream for [`DynamoStore::sync_log`]: where each shard was
/// read to. Lambda does this itself for the `log` function on AWS.
pub struct LogFollower {
    streams: aws_sdk_dynamodbstreams::Client,
    state: tokio::sync::Mutex<FollowState>,
}

#[derive(Default)]
struct FollowState {
    stream: Option<String>,
    /// Each shard's next iterator; `None` once a closed shard is read to its end.
    shards: HashMap<String, Option<String>>,
}

impl LogFollower {
    pub fn new(streams: aws_sdk_dynamodbstreams::Client) -> Self {
        LogFollower {
            streams,
            state: tokio::sync::Mutex::new(FollowState::default()),
        }
    }
}

impl DynamoStore {
    /// Takes in every change waiting in the table's stream (one caller at a time).
    pub(super) async fn follow_stream(&self, follower: &LogFollower) -> Result<(), StoreError> {
        use aws_sdk_dynamodbstreams::types::ShardIteratorType;
        let mut state = follower.state.lock().await;
        let stream = match &state.stream {
            Some(arn) => arn.clone(),
            None => {
                let table = self
                    .client
                    .describe_table()
                    .table_name(&self.table)
                    .send()
                    .await
                    .map_err(|e| sdk_error("describe table", e))?;
                let arn = table
                    .table
                    .and_then(|t| t.latest_stream_arn)
                    .ok_or_else(|| StoreError::Unavailable("the table has no stream".into()))?;
                state.stream = Some(arn.clone());
                arn
            }
        };
        let description = follower
            .streams
            .describe_stream()
            .stream_arn(&stream)
            .send()
            .await
            .map_err(|e| sdk_error("describe the stream", e))?;
        let shards = description
            .stream_description
            .and_then(|d| d.shards)
            .unwrap_or_default();
        for shard in shards {
            let Some(shard_id) = shard.shard_id else {
                continue;
            };
            let mut iterator = match state.shards.get(&shard_id) {
                Some(None) => continue,
                Some(Some(iterator)) => iterator.clone(),
                None => follower
                    .streams
                    .get_shard_iterator()
                    .stream_arn(&stream)
                    .shard_id(&shard_id)
                    .shard_iterator_type(ShardIteratorType::TrimHorizon)
                    .send()
                    .await
                    .map_err(|e| sdk_error("start reading the stream", e))?
                    .shard_iterator
                    .unwrap_or_default(),
            };
            loop {
                let read = follower
                    .streams
                    .get_records()
                    .shard_iterator(&iterator)
                    .send()
                    .await;
                let output = match read {
                    Ok(output) => output,
                    Err(e) => {
                        // An expired iterator starts over: logging a change again is harmless.
                        state.shards.remove(&shard_id);
                        return Err(sdk_error("read the stream", e));
                    }
                };
                let records = output.records.unwrap_or_default();
                let changes: Vec<(Option<Item>, Item)> = records
                    .iter()
                    .filter_map(|record| {
                        let change = record.dynamodb.as_ref()?;
                        let new = from_stream_item(change.new_image.clone()?);
                        Some((change.old_image.clone().map(from_stream_item), new))
                    })
                    .collect();
                let pairs: Vec<(Option<&Item>, &Item)> = changes
                    .iter()
                    .map(|(old, new)| (old.as_ref(), new))
                    .collect();
                self.log_changes(&pairs).await.map_err(|(_, e)| e)?;
                match output.next_shard_iterator {
                    Some(next) if !records.is_empty() => iterator = next,
                    Some(next) => {
                        state.shards.insert(shard_id.clone(), Some(next));
                        break;
                    }
                    None => {
                        state.shards.insert(shard_id.clone(), None);
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A stream record's image as a table item (the two SDKs have their own value types).
pub fn from_stream_item(
    item: HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
) -> Item {
    item.into_iter()
        .map(|(name, value)| (name, from_stream_value(value)))
        .collect()
}

fn from_stream_value(value: aws_sdk_dynamodbstreams::types::AttributeValue) -> AttributeValue {
    use aws_sdk_dynamodbstreams::types::AttributeValue as Streamed;
    match value {
        Streamed::S(v) => AttributeValue::S(v),
        Streamed::N(v) => AttributeValue::N(v),
        Streamed::B(v) => {
            AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(v.into_inner()))
        }
        Streamed::Bool(v) => AttributeValue::Bool(v),
        Streamed::Null(v) => AttributeValue::Null(v),
        Streamed::Ss(v) => AttributeValue::Ss(v),
        Streamed::Ns(v) => AttributeValue::Ns(v),
        Streamed::Bs(v) => AttributeValue::Bs(
            v.into_iter()
                .map(|b| aws_sdk_dynamodb::primitives::Blob::new(b.into_inner()))
                .collect(),
        ),
        Streamed::L(v) => AttributeValue::L(v.into_iter().map(from_stream_value).collect()),
        Streamed::M(v) => AttributeValue::M(
            v.into_iter()
                .map(|(k, v)| (k, from_stream_value(v)))
                .collect(),
        ),
        _ => AttributeValue::Null(true),
    }
}
