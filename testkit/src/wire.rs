//! Reading what the API answers, whichever harness carried it: ids, statuses, query values.

use runledger::domain::execution::ExecutionStatus;
use serde_json::Value;

/// The `id` of a created resource; panics when the body has none.
#[track_caller]
pub fn id_of(body: &Value) -> String {
    body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {body}"))
        .to_owned()
}

/// Whether a `status` field names a terminal execution status (the domain's own rule).
pub fn is_terminal(status: &Value) -> bool {
    serde_json::from_value::<ExecutionStatus>(status.clone())
        .is_ok_and(ExecutionStatus::is_terminal)
}

/// The statuses of a list of steps (or executions), in order.
pub fn statuses(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["status"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// An id of the right shape that nothing has: `prefix` and a fresh ULID.
pub fn absent_id(prefix: &str) -> String {
    format!("{prefix}{}", ulid::Ulid::new())
}

/// Percent-encodes a query parameter value.
pub fn encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
