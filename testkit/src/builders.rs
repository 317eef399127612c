//! Builders for what tests create: catalog inputs, step definitions and reports, start
//! requests and configurations (domain types), and the same as JSON request bodies.

use runledger::domain::catalog::{HttpRequestSpec, StepAction, StepDefinition, TestCaseInput};
use runledger::domain::execution::{ExecutionConfig, StepReport, StepStatus};
use runledger::engine::{Caller, StartRequest};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A user nobody else uses.
pub fn fresh_user() -> Caller {
    Caller::user(&format!(
        "conf-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    ))
}

/// A tag nobody else uses.
pub fn fresh_tag() -> String {
    format!("conf-{}", ulid::Ulid::new().to_string().to_lowercase())
}

pub fn request(config: ExecutionConfig, idempotency_key: Option<&str>) -> StartRequest {
    StartRequest {
        config,
        idempotency_key: idempotency_key.map(str::to_owned),
    }
}

pub fn case_input(name: &str, tags: &[&str], steps: Vec<StepDefinition>) -> TestCaseInput {
    TestCaseInput {
        name: name.to_owned(),
        description: None,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        variables: BTreeMap::new(),
        timeout_s: None,
        steps,
    }
}

pub fn external_step(name: &str) -> StepDefinition {
    StepDefinition {
        name: name.to_owned(),
        action: StepAction::External,
        http: None,
        expect: None,
        capture: BTreeMap::new(),
        continue_on_failure: false,
    }
}

pub fn external_steps(count: usize) -> Vec<StepDefinition> {
    (0..count)
        .map(|i| external_step(&format!("step {i}")))
        .collect()
}

pub fn http_step(name: &str) -> StepDefinition {
    StepDefinition {
        name: name.to_owned(),
        action: StepAction::Http,
        http: Some(HttpRequestSpec {
            method: "GET".into(),
            url: "http://127.0.0.1:9/never-called".into(),
            headers: BTreeMap::new(),
            body: None,
            timeout_ms: None,
        }),
        expect: None,
        capture: BTreeMap::new(),
        continue_on_failure: false,
    }
}

pub fn http_steps(count: usize) -> Vec<StepDefinition> {
    (0..count)
        .map(|i| http_step(&format!("step {i}")))
        .collect()
}

/// A step result with only its index and status.
pub fn report(index: u32, status: StepStatus) -> StepReport {
    StepReport {
        index,
        status,
        ..StepReport::default()
    }
}

pub fn config(timeout_s: Option<u64>, max_retries: Option<u32>) -> ExecutionConfig {
    ExecutionConfig {
        timeout_s,
        max_retries,
        ..ExecutionConfig::default()
    }
}

// ----- JSON request bodies ----------------------------------------------------------------

/// A test case body with `steps` external steps named `step-0`, `step-1`, ..., tagged
/// `api-test`.
pub fn external_case(name: &str, steps: usize) -> Value {
    let steps: Vec<Value> = (0..steps)
        .map(|i| json!({"name": format!("step-{i}"), "action": "external"}))
        .collect();
    json!({"name": name, "tags": ["api-test"], "steps": steps})
}

/// A test case body with one built-in HTTP step.
pub fn http_case(name: &str) -> Value {
    json!({
        "name": name,
        "steps": [{
            "name": "health",
            "action": "http",
            "http": {"method": "GET", "url": "http://127.0.0.1:9/health"}
        }]
    })
}
