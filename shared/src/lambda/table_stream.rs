//! The table's DynamoDB stream, for the `log` function: each record's change logged into its
//! execution's event log ([`DynamoStore::log_changes`]: what `log_change` does for one, with
//! the entries of consecutive changes of one execution written together), in the stream's
//! order, with partial batch failures.
//!
//! Lambda hands over one shard's records in order, one batch at a time (the mapping's
//! `ParallelizationFactor` is 1). A change's entries are numbered on from those of the changes
//! before it, so the first record that fails stops the batch: it and every record after it
//! are reported (`batchItemFailures`, by sequence number), and Lambda delivers them again,
//! from the first of them, in order. The records before it are logged; should they come
//! again, logging them again changes nothing.

use super::{InvocationError, malformed};
use crate::store::dynamo::DynamoStore;
use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

/// See [`log_batch`].
pub type Logged<'a> = Pin<Box<dyn Future<Output = Result<Value, InvocationError>> + 'a>>;

/// Logs a batch of stream records, answering with the records to deliver again.
pub(super) fn log_batch(store: &DynamoStore, event: Value) -> Logged<'_> {
    Box::pin(log_records(store, event))
}

async fn log_records(store: &DynamoStore, event: Value) -> Result<Value, InvocationError> {
    let batch: Event =
        serde_json::from_value(event).map_err(|e| malformed("DynamoDB stream batch", e))?;
    // Each record's change, with the record's place in the batch. A removal (an idempotency
    // record's TTL expiry, say) has no new image and logs nothing, as does anything but an
    // execution item (the store tells).
    let changes: Vec<(usize, Option<Item>, Item)> = batch
        .records
        .iter()
        .enumerate()
        .filter(|(_, record)| !record.change.new_image.is_empty())
        .map(|(index, record)| {
            let change = &record.change;
            let old = (!change.old_image.is_empty()).then(|| change.old_image.clone().into());
            (index, old, change.new_image.clone().into())
        })
        .collect();
    let pairs: Vec<(Option<&Item>, &Item)> = changes
        .iter()
        .map(|(_, old, new)| (old.as_ref(), new))
        .collect();
    let failed = match store.log_changes(&pairs).await {
        Ok(logged) => {
            tracing::debug!(
                records = batch.records.len(),
                logged,
                "logged a stream batch"
            );
            None
        }
        Err((change, error)) => {
            let first = changes[change].0;
            let record = &batch.records[first];
            tracing::warn!(
                %error,
                sequence_number = record.change.sequence_number.as_deref().unwrap_or("none"),
                left = batch.records.len() - first,
                "a stream record was not logged: it and the records after it come again"
            );
            Some(first)
        }
    };
    let mut response = DynamoDbEventResponse::default();
    for record in failed.map_or(&[][..], |first| &batch.records[first..]) {
        // Lambda resumes from a reported sequence number. Without one it cannot, so the whole
        // batch fails, to come again whole (the records already logged change nothing then).
        let Some(sequence_number) = record.change.sequence_number.clone() else {
            return Err(malformed(
                "DynamoDB stream batch",
                "a record that failed has no sequence number",
            ));
        };
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = Some(sequence_number);
        response.batch_item_failures.push(failure);
    }
    serde_json::to_value(response)
        .map_err(|e| InvocationError::Unavailable(format!("encode the response: {e}")))
}

/// A table item, as the store reads it.
type Item = HashMap<String, AttributeValue>;
