//! Test cases' quarantines (`QU#{case}` / `QUAR`, in the owner and admin listings, expired by
//! TTL a day after they lapse) and their audit history (`QU#{case}` / `H#{at}#{ulid}`).

use super::DynamoStore;
use super::items::{Item, corrupt, decode_attr, n, s};
use super::keys::{
    ALL_QUARANTINES, QUARANTINE_SK, case_history_sk, index_pk, index_sk, owner_quarantines,
    quarantine_pk,
};
use super::schema::{INDEX_ALL, INDEX_OWNER, TTL_ATTRIBUTE};

use crate::domain::errors::StoreError;
use crate::domain::quarantine::{CaseHistoryEntry, Quarantine};
use crate::ports::{OwnerScope, Page};
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value;
use std::collections::HashMap;

const DAY_SECONDS: i64 = 24 * 3600;

fn quarantine_item(quarantine: &Quarantine) -> Result<Item, StoreError> {
    let id = &quarantine.test_case_id;
    let expires = (quarantine.until.millis() / 1000 + DAY_SECONDS).max(0) as u64;
    Ok(HashMap::from([
        ("pk".to_owned(), s(&quarantine_pk(id))),
        ("sk".to_owned(), s(QUARANTINE_SK)),
        (
            index_pk(INDEX_OWNER),
            s(&owner_quarantines(&quarantine.owner)),
        ),
        (index_sk(INDEX_OWNER), s(id)),
        (index_pk(INDEX_ALL), s(ALL_QUARANTINES)),
        (index_sk(INDEX_ALL), s(id)),
        (TTL_ATTRIBUTE.to_owned(), n(expires)),
        (
            "data".to_owned(),
            to_attribute_value(quarantine).map_err(corrupt)?,
        ),
    ]))
}

/// A history entry's write; `unique` (a monotonic ULID) orders entries of one millisecond.
fn history_put(
    table: &str,
    test_case_id: &str,
    entry: &CaseHistoryEntry,
    unique: &str,
) -> Result<TransactWriteItem, StoreError> {
    let item = HashMap::from([
        ("pk".to_owned(), s(&quarantine_pk(test_case_id))),
        ("sk".to_owned(), s(&case_history_sk(entry.at, unique))),
        (
            "data".to_owned(),
            to_attribute_value(entry).map_err(corrupt)?,
        ),
    ]);
    Ok(put(table, item, None))
}

fn put(table: &str, item: Item, condition: Option<&str>) -> TransactWriteItem {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .set_condition_expression(condition.map(str::to_owned))
        .build()
        .expect("table and item are set");
    TransactWriteItem::builder().put(put).build()
}

impl DynamoStore {
    pub(super) async fn write_quarantine(
        &self,
        quarantine: &Quarantine,
        entry: &CaseHistoryEntry,
    ) -> Result<(), StoreError> {
        let writes = vec![
            put(&self.table, quarantine_item(quarantine)?, None),
            history_put(
                &self.table,
                &quarantine.test_case_id,
                entry,
                &self.ids.next_ulid(),
            )?,
        ];
        self.transact(writes).await
    }

    pub(super) async fn remove_quarantine(
        &self,
        test_case_id: &str,
        entry: &CaseHistoryEntry,
    ) -> Result<bool, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .key("pk", s(&quarantine_pk(test_case_id)))
            .key("sk", s(QUARANTINE_SK))
            .condition_expression("attribute_exists(pk)")
            .build()
            .expect("table and key are set");
        let writes = vec![
            TransactWriteItem::builder().delete(delete).build(),
            history_put(&self.table, test_case_id, entry, &self.ids.next_ulid())?,
        ];
        match self.transact(writes).await {
            Ok(()) => Ok(true),
            // The only condition: there was no quarantine to lift.
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn read_quarantine(
        &self,
        test_case_id: &str,
    ) -> Result<Option<Quarantine>, StoreError> {
        match self
            .get_item(&quarantine_pk(test_case_id), QUARANTINE_SK)
            .await?
        {
            Some(item) => decode_attr(&item, "data").map(Some),
            None => Ok(None),
        }
    }

    pub(super) async fn quarantines_page(
        &self,
        owner: OwnerScope<'_>,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page<Quarantine>, StoreError> {
        let (index, partition) = match owner {
            Some(owner) => (INDEX_OWNER, owner_quarantines(owner)),
            None => (INDEX_ALL, ALL_QUARANTINES.to_owned()),
        };
        let wanted = limit.saturating_add(1).min(1000) as i32;
        let (page, _) = self
            .index_page(index, &partition, after, true, wanted)
            .await?;
        let mut items: Vec<Quarantine> = Vec::with_capacity(page.len());
        for item in &page {
            items.push(decode_attr(item, "data")?);
        }
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|q| q.test_case_id.clone())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    pub(super) async fn read_case_history(
        &self,
        test_case_id: &str,
    ) -> Result<Vec<CaseHistoryEntry>, StoreError> {
        let items = self
            .query_prefix(&quarantine_pk(test_case_id), "H#", None, None)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "reading a test case's history failed");
                e
            })?;
        items.iter().map(|item| decode_attr(item, "data")).collect()
    }
}
