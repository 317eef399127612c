//! Analytics rollups as items: each test's current rollup (`RU#{test}` / `CURRENT`, in the
//! flaky index while it is flaky) and its earlier days' (`RU#{test}` / `DAY#{day}`, expired
//! by TTL). A change that finishes executions writes the current record in the transaction
//! that finishes them, conditioned on the version it read.

use super::DynamoStore;
use super::items::{Item, corrupt, decode_attr, n, number_attr, s};
use super::keys::{
    ALL_FLAKY, ROLLUP_CURRENT_SK, index_pk, index_sk, owner_flaky, rollup_day_sk, rollup_pk,
};
use super::schema::{INDEX_ALL, INDEX_OWNER, TTL_ATTRIBUTE};
use super::sdk_error;
use crate::domain::analytics::Rollup;
use crate::domain::errors::StoreError;
use crate::domain::workflow::RollupChange;
use crate::ports::{OwnerScope, Page};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value;
use std::collections::HashMap;

/// How long the record of a past day is kept.
const DAY_RECORD_DAYS: i64 = 400;

/// A rollup as stored, with the version its next write is conditioned on.
#[derive(Debug, Clone)]
pub(super) struct StoredRollup {
    pub(super) rollup: Rollup,
    pub(super) version: u64,
}

impl StoredRollup {
    pub(super) fn from_item(item: &Item) -> Result<Self, StoreError> {
        Ok(StoredRollup {
            rollup: decode_attr(item, "data")?,
            version: number_attr(item, "ver")?,
        })
    }
}

/// Whether an item is a test's current rollup.
pub(super) fn is_current_rollup(item: &Item) -> bool {
    let sk = item.get("sk").and_then(|v| v.as_s().ok());
    let pk = item.get("pk").and_then(|v| v.as_s().ok());
    sk.is_some_and(|sk| sk == ROLLUP_CURRENT_SK) && pk.is_some_and(|pk| pk.starts_with("RU#"))
}

fn current_item(rollup: &Rollup, version: u64) -> Result<Item, StoreError> {
    let mut item = HashMap::from([
        ("pk".to_owned(), s(&rollup_pk(&rollup.test_id))),
        ("sk".to_owned(), s(ROLLUP_CURRENT_SK)),
        ("ver".to_owned(), n(version)),
        (
            "data".to_owned(),
            to_attribute_value(rollup).map_err(corrupt)?,
        ),
    ]);
    // Sparse: only a flaky test case's current record is in the flaky listing.
    if let Some(rank) = rollup.flaky_rank() {
        item.insert(index_pk(INDEX_OWNER), s(&owner_flaky(&rollup.owner)));
        item.insert(index_sk(INDEX_OWNER), s(&rank));
        item.insert(index_pk(INDEX_ALL), s(ALL_FLAKY));
        item.insert(index_sk(INDEX_ALL), s(&rank));
    }
    Ok(item)
}

fn day_item(rollup: &Rollup) -> Result<Item, StoreError> {
    let expires = chrono::NaiveDate::parse_from_str(&rollup.day, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp() + DAY_RECORD_DAYS * 86_400)
        .unwrap_or(0)
        .max(0);
    Ok(HashMap::from([
        ("pk".to_owned(), s(&rollup_pk(&rollup.test_id))),
        ("sk".to_owned(), s(&rollup_day_sk(&rollup.day))),
        (
            "data".to_owned(),
            to_attribute_value(rollup).map_err(corrupt)?,
        ),
        (TTL_ATTRIBUTE.to_owned(), n(expires as u64)),
    ]))
}

/// The writes of one rollup change: the current record, conditioned on the version read
/// (`None`: there was none), and the record it replaced as its day's. The day record needs
/// no condition: it is what the current record held, which the first write protects.
pub(super) fn rollup_writes(
    table: &str,
    change: &RollupChange,
    read_version: Option<u64>,
) -> Result<Vec<TransactWriteItem>, StoreError> {
    let version = read_version.map_or(1, |v| v + 1);
    let item = current_item(&change.current, version)?;
    let (condition, values) = match read_version {
        Some(v) => ("ver = :ver", HashMap::from([(":ver".to_owned(), n(v))])),
        None => ("attribute_not_exists(pk)", HashMap::new()),
    };
    let mut writes = vec![put(table, item, Some(condition), values)];
    if let Some(archived) = &change.archived {
        writes.push(put(table, day_item(archived)?, None, HashMap::new()));
    }
    Ok(writes)
}

fn put(
    table: &str,
    item: Item,
    condition: Option<&str>,
    values: HashMap<String, AttributeValue>,
) -> TransactWriteItem {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .set_condition_expression(condition.map(str::to_owned))
        .set_expression_attribute_values((!values.is_empty()).then_some(values))
        .build()
        .expect("table and item are set");
    TransactWriteItem::builder().put(put).build()
}

impl DynamoStore {
    pub(super) async fn read_current_rollup(
        &self,
        test_id: &str,
    ) -> Result<Option<Rollup>, StoreError> {
        match self
            .get_item(&rollup_pk(test_id), ROLLUP_CURRENT_SK)
            .await?
        {
            Some(item) => Ok(Some(StoredRollup::from_item(&item)?.rollup)),
            None => Ok(None),
        }
    }

    /// One query for the days before the current record's, and the current record.
    pub(super) async fn read_rollups(
        &self,
        test_id: &str,
        since: &str,
        until: &str,
    ) -> Result<Vec<Rollup>, StoreError> {
        let pk = rollup_pk(test_id);
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :since AND :until")
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":since", s(&rollup_day_sk(since)))
                .expression_attribute_values(":until", s(&rollup_day_sk(until)))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error("query rollups", e))?;
            for item in output.items.unwrap_or_default() {
                found.push(decode_attr::<Rollup>(&item, "data")?);
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        if let Some(current) = self.read_current_rollup(test_id).await?
            && current.day.as_str() >= since
            && current.day.as_str() <= until
        {
            found.push(current);
        }
        Ok(found)
    }

    pub(super) async fn read_flaky(
        &self,
        owner: OwnerScope<'_>,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page<Rollup>, StoreError> {
        let (index, partition) = match owner {
            Some(owner) => (INDEX_OWNER, owner_flaky(owner)),
            None => (INDEX_ALL, ALL_FLAKY.to_owned()),
        };
        let wanted = limit.saturating_add(1).min(1000) as i32;
        let (page, _) = self
            .index_page(index, &partition, after, true, wanted)
            .await?;
        let mut items = Vec::with_capacity(page.len());
        for item in &page {
            items.push(decode_attr::<Rollup>(item, "data")?);
        }
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().and_then(Rollup::flaky_rank)
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }
}
