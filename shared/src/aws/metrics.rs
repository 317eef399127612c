//! Counts AWS requests per service and operation with an SDK interceptor, so the bench can
//! say how many DynamoDB, SQS and EventBridge calls each engine operation costs. Every
//! transmission counts, retries included.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Requests by `(service, operation)`; clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    counts: Arc<Mutex<BTreeMap<(String, String), u64>>>,
}

impl RequestCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// The counts so far, and zero them.
    pub fn take(&self) -> BTreeMap<(String, String), u64> {
        std::mem::take(&mut *self.counts.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Requests to one service since the last `take`, without zeroing.
    pub fn total(&self, service: &str) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|((s, _), _)| s == service)
            .map(|(_, n)| n)
            .sum()
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = cfg
            .load::<Metadata>()
            .map(|m| (m.service().to_owned(), m.name().to_owned()))
            .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((service, operation))
            .or_default() += 1;
        Ok(())
    }
}

/// What the bench attaches to the AWS clients.
#[derive(Debug, Clone, Default)]
pub struct Metering {
    pub requests: RequestCounter,
    pub writes: WriteLog,
}

/// The DynamoDB items each write request touched (`pk`, `sk`, whether in a transaction), read
/// from the requests as sent, so the bench can price them in write units from the items'
/// sizes.
#[derive(Debug, Clone, Default)]
pub struct WriteLog {
    writes: Arc<Mutex<Vec<ItemWrite>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemWrite {
    pub pk: String,
    pub sk: String,
    /// Transactional writes are billed twice.
    pub transactional: bool,
}

impl WriteLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// The writes so far, and forget them.
    pub fn take(&self) -> Vec<ItemWrite> {
        std::mem::take(&mut *self.writes.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Intercept for WriteLog {
    fn name(&self) -> &'static str {
        "WriteLog"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(operation) = cfg.load::<Metadata>().map(|m| m.name().to_owned()) else {
            return Ok(());
        };
        let Some(body) = context.request().body().bytes() else {
            return Ok(());
        };
        let Ok(request) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Ok(());
        };
        let touched = touched_items(&operation, &request);
        self.writes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(touched);
        Ok(())
    }
}

impl Metering {
    /// Prices this log's writes to `table` (one client for all the reads back).
    pub fn pricer(&self, sdk: &aws_config::SdkConfig, table: &str) -> WritePricer {
        WritePricer {
            writes: self.writes.clone(),
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            table: table.to_owned(),
        }
    }
}

/// Prices logged writes in DynamoDB write units.
#[derive(Debug, Clone)]
pub struct WritePricer {
    writes: WriteLog,
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
}

impl WritePricer {
    /// The write units of the writes logged since the last call: each item a write touched,
    /// at its size now (read back), 1 KB a unit, twice in a transaction. An estimate: an
    /// item that shrank is priced at its new size.
    pub async fn write_units(&self) -> Result<f64, String> {
        use aws_sdk_dynamodb::types::AttributeValue;
        let mut units = 0.0;
        for write in self.writes.take() {
            let item = self
                .dynamodb
                .get_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(write.pk))
                .key("sk", AttributeValue::S(write.sk))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| format!("read an item back: {e}"))?
                .item
                .unwrap_or_default();
            let billed = item_size(&item).div_ceil(1024).max(1) as f64;
            units += if write.transactional {
                2.0 * billed
            } else {
                billed
            };
        }
        Ok(units)
    }
}

/// The items a DynamoDB write request names (none for reads).
fn touched_items(operation: &str, request: &serde_json::Value) -> Vec<ItemWrite> {
    let key = |item: &serde_json::Value, transactional| {
        Some(ItemWrite {
            pk: item.get("pk")?.get("S")?.as_str()?.to_owned(),
            sk: item.get("sk")?.get("S")?.as_str()?.to_owned(),
            transactional,
        })
    };
    match operation {
        "PutItem" => key(&request["Item"], false).into_iter().collect(),
        "UpdateItem" | "DeleteItem" => key(&request["Key"], false).into_iter().collect(),
        "BatchWriteItem" => request["RequestItems"]
            .as_object()
            .into_iter()
            .flat_map(|tables| tables.values())
            .filter_map(|writes| writes.as_array())
            .flatten()
            .filter_map(|w| {
                key(&w["PutRequest"]["Item"], false)
                    .or_else(|| key(&w["DeleteRequest"]["Key"], false))
            })
            .collect(),
        "TransactWriteItems" => request["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| {
                key(&t["Put"]["Item"], true)
                    .or_else(|| key(&t["Update"]["Key"], true))
                    .or_else(|| key(&t["Delete"]["Key"], true))
                    .or_else(|| key(&t["ConditionCheck"]["Key"], true))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// An item's size as DynamoDB bills it (attribute names plus values; numbers and nesting
/// approximated as DynamoDB documents them).
pub fn item_size(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &aws_sdk_dynamodb::types::AttributeValue) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue as V;
    match value {
        V::S(s) => s.len(),
        V::N(n) => n.len().div_ceil(2) + 1,
        V::B(b) => b.as_ref().len(),
        V::Bool(_) | V::Null(_) => 1,
        V::L(items) => 3 + items.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        V::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        V::Ss(items) => items.iter().map(String::len).sum(),
        V::Ns(items) => items.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        V::Bs(items) => items.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn write_requests_name_the_items_they_touch() {
        let k = |pk: &str, sk: &str| json!({"pk": {"S": pk}, "sk": {"S": sk}});
        let put = json!({"Item": {"pk": {"S": "EX#a"}, "sk": {"S": "EXEC"}, "ver": {"N": "1"}}});
        assert_eq!(touched_items("PutItem", &put)[0].pk, "EX#a");
        let transaction = json!({"TransactItems": [
            {"Put": {"Item": k("EX#a", "STEP#1")}},
            {"Update": {"Key": k("EX#a", "EXEC")}}
        ]});
        let touched = touched_items("TransactWriteItems", &transaction);
        assert_eq!(touched.len(), 2);
        assert!(touched.iter().all(|w| w.transactional));
        assert_eq!(touched[1].sk, "EXEC");
        let batch = json!({"RequestItems": {"t": [{"PutRequest": {"Item": k("EX#a", "STEP#2")}}]}});
        assert_eq!(touched_items("BatchWriteItem", &batch)[0].sk, "STEP#2");
        assert!(touched_items("GetItem", &json!({"Key": k("EX#a", "EXEC")})).is_empty());
    }
}
