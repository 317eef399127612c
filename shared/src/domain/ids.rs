//! Identifiers: a kind prefix and a ULID, so ids sort by creation time and say what they name.

pub const TEST_CASE_PREFIX: &str = "tc_";
pub const TEST_SUITE_PREFIX: &str = "ts_";
pub const EXECUTION_PREFIX: &str = "ex_";

/// Where new ids come from; tests swap in a deterministic source.
pub trait IdSource: Send + Sync {
    fn next_ulid(&self) -> String;

    fn catalog_id(&self, kind: super::catalog::CatalogKind) -> String {
        format!("{}{}", kind.id_prefix(), self.next_ulid())
    }
    fn execution_id(&self) -> String {
        format!("{EXECUTION_PREFIX}{}", self.next_ulid())
    }
}

/// Monotonic ULIDs: ids made in the same millisecond still sort in creation order.
#[derive(Default)]
pub struct UlidSource {
    generator: std::sync::Mutex<ulid::Generator>,
}

impl IdSource for UlidSource {
    fn next_ulid(&self) -> String {
        let mut generator = self
            .generator
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match generator.generate() {
            Ok(id) => id.to_string(),
            // Overflow within one millisecond (2^80 ids): fall back to a fresh random ULID.
            Err(_) => ulid::Ulid::new().to_string(),
        }
    }
}

/// Ids are used in keys and paths: accept only the shape we hand out.
pub fn is_well_formed(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 26 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}
