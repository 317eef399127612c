//! The in-process API harness for the API-level tests: the router over the embedded adapters,
//! tokens for it, and the checks every response must pass.

use crate::builders::external_case;
use crate::stores::{engine_over, in_memory};
use crate::tokens::{SECRET, authenticator, mint_token};
use crate::wire::id_of;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use runledger::api::{RouteGroup, Router};
use runledger::auth::Authenticator;
use runledger::ports::ExecutionStore;
use serde_json::{Value, json};
use std::sync::Arc;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Words that would betray internals if they ever appeared in an error body.
const LEAKS: [&str; 12] = [
    "redb",
    "panicked",
    "panic",
    "backtrace",
    "stack trace",
    "RUST_BACKTRACE",
    ".rs:",
    "src/",
    "_by_owner",
    "TableDefinition",
    "WriteTransaction",
    "StorageError",
];

pub struct Api {
    pub router: Router,
}

impl Api {
    pub fn new() -> Self {
        Api::over(in_memory())
    }

    /// The router over `store` (the other adapters embedded).
    pub fn over(store: Arc<dyn ExecutionStore>) -> Self {
        let engine = engine_over(store);
        let router = Router::new(engine, Arc::new(authenticator()), &RouteGroup::ALL);
        Api { router }
    }

    /// The router over an in-memory store that verifies tokens with `authenticator` (for
    /// issuer and audience checks, which the default one leaves off).
    pub fn with_authenticator(authenticator: Authenticator) -> Self {
        let engine = engine_over(in_memory());
        let router = Router::new(engine, Arc::new(authenticator), &RouteGroup::ALL);
        Api { router }
    }

    /// A valid token for a plain user.
    pub fn token(&self, user: &str) -> String {
        mint_token(user, false)
    }

    /// A valid token for an administrator.
    pub fn admin_token(&self, user: &str) -> String {
        mint_token(user, true)
    }

    /// Sends a request with raw header values and body, and checks the invariants every
    /// response must hold (never 5xx; every error is a clean problem document).
    pub async fn raw(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &[u8])],
        body: impl Into<Bytes>,
    ) -> Reply {
        let mut builder = Request::builder().method(method.clone()).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, http::HeaderValue::from_bytes(value).unwrap());
        }
        let request = builder.body(body.into()).expect("valid request");
        let response = self.router.handle(request).await;
        let reply = Reply {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.body().clone(),
            what: format!("{method} {uri}"),
        };
        reply.check_invariants();
        reply
    }

    /// Sends a request authenticated with `token` (if any) and an optional raw body.
    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: impl Into<Bytes>,
    ) -> Reply {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &[u8])> = Vec::new();
        if let Some(bearer) = &bearer {
            headers.push(("authorization", bearer.as_bytes()));
        }
        let body: Bytes = body.into();
        if !body.is_empty() {
            headers.push(("content-type", b"application/json"));
        }
        self.raw(method, uri, &headers, body).await
    }

    pub async fn get(&self, uri: &str, token: &str) -> Reply {
        self.send(Method::GET, uri, Some(token), Bytes::new()).await
    }

    pub async fn delete(&self, uri: &str, token: &str) -> Reply {
        self.send(Method::DELETE, uri, Some(token), Bytes::new())
            .await
    }

    pub async fn post(&self, uri: &str, token: &str, body: &Value) -> Reply {
        self.send(
            Method::POST,
            uri,
            Some(token),
            serde_json::to_vec(body).unwrap(),
        )
        .await
    }

    pub async fn post_empty(&self, uri: &str, token: &str) -> Reply {
        self.send(Method::POST, uri, Some(token), Bytes::new())
            .await
    }

    pub async fn put(&self, uri: &str, token: &str, body: &Value) -> Reply {
        self.send(
            Method::PUT,
            uri,
            Some(token),
            serde_json::to_vec(body).unwrap(),
        )
        .await
    }

    pub async fn post_raw(&self, uri: &str, token: &str, body: impl Into<Bytes>) -> Reply {
        self.send(Method::POST, uri, Some(token), body).await
    }

    /// Posts `body` to `uri`, asserts `status`, returns the id of what it made.
    pub async fn post_for_id(
        &self,
        uri: &str,
        token: &str,
        body: &Value,
        status: StatusCode,
    ) -> String {
        let reply = self.post(uri, token, body).await;
        assert_eq!(reply.status, status, "{}", reply.text());
        id_of(&reply.json())
    }

    /// Creates a test case of `steps` external steps; returns its id.
    pub async fn create_external_case(&self, token: &str, name: &str, steps: usize) -> String {
        let case = external_case(name, steps);
        self.post_for_id("/api/v1/test-cases", token, &case, StatusCode::CREATED)
            .await
    }

    /// Creates a test suite over `case_ids`; returns its id.
    pub async fn create_suite(&self, token: &str, name: &str, case_ids: &[&str]) -> String {
        let suite = json!({"name": name, "test_case_ids": case_ids, "mode": "sequential"});
        self.post_for_id("/api/v1/test-suites", token, &suite, StatusCode::CREATED)
            .await
    }

    /// Starts a case execution; returns its id.
    pub async fn start_case(&self, token: &str, case_id: &str) -> String {
        let start = json!({"test_case_id": case_id});
        self.post_for_id(
            "/api/v1/executions/case",
            token,
            &start,
            StatusCode::ACCEPTED,
        )
        .await
    }

    /// Starts a suite execution; returns its id.
    pub async fn start_suite(&self, token: &str, suite_id: &str) -> String {
        let start = json!({"test_suite_id": suite_id});
        self.post_for_id(
            "/api/v1/executions/suite",
            token,
            &start,
            StatusCode::ACCEPTED,
        )
        .await
    }

    /// The ids in a listing (one page of at most 200).
    pub async fn list_ids(&self, uri: &str, token: &str) -> Vec<String> {
        let reply = self.get(uri, token).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.text());
        reply.json()["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| item["id"].as_str().expect("id").to_owned())
            .collect()
    }

    /// The execution trace and its history, for "nothing changed" comparisons.
    pub async fn snapshot(&self, id: &str, token: &str) -> (Value, Value) {
        let trace = self.get(&format!("/api/v1/executions/{id}"), token).await;
        assert_eq!(trace.status, StatusCode::OK, "{}", trace.text());
        let history = self
            .get(&format!("/api/v1/executions/{id}/history"), token)
            .await;
        assert_eq!(history.status, StatusCode::OK, "{}", history.text());
        (trace.json(), history.json())
    }
}

impl Default for Api {
    fn default() -> Self {
        Self::new()
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub what: String,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{}: body is not JSON ({e}): {}", self.what, self.text()))
    }

    pub fn header(&self, name: impl header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts this is an RFC 9457 problem with `status` and `code`; returns the body.
    #[track_caller]
    pub fn problem(&self, status: StatusCode, code: &str) -> Value {
        assert_eq!(
            self.status,
            status,
            "{}: expected {status}, got {}: {}",
            self.what,
            self.status,
            self.text()
        );
        assert_eq!(
            self.header(header::CONTENT_TYPE),
            Some(PROBLEM_JSON),
            "{}: content-type",
            self.what
        );
        let body = self.json();
        assert_eq!(body["code"], code, "{}: {}", self.what, self.text());
        assert_eq!(body["status"], status.as_u16(), "{}", self.what);
        assert!(body["title"].is_string(), "{}: title", self.what);
        assert!(body["type"].is_string(), "{}: type", self.what);
        body
    }

    /// Asserts a `400 validation_failed` whose first error names `field`.
    #[track_caller]
    pub fn validation(&self, field: &str) -> Value {
        let body = self.problem(StatusCode::BAD_REQUEST, "validation_failed");
        let errors = body["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no errors array: {}", self.what, self.text()));
        assert!(!errors.is_empty(), "{}: empty errors", self.what);
        assert_eq!(
            errors[0]["field"],
            field,
            "{}: first error field: {}",
            self.what,
            self.text()
        );
        assert!(errors[0]["message"].is_string(), "{}", self.what);
        body
    }

    /// Asserts a `401` problem with `code` and a `Bearer` challenge.
    #[track_caller]
    pub fn unauthorized(&self, code: &str) -> Value {
        let body = self.problem(StatusCode::UNAUTHORIZED, code);
        let challenge = self
            .header(header::WWW_AUTHENTICATE)
            .unwrap_or_else(|| panic!("{}: 401 without WWW-Authenticate", self.what));
        assert!(
            challenge.starts_with("Bearer"),
            "{}: challenge {challenge:?}",
            self.what
        );
        body
    }

    /// What every response must hold, whatever the request.
    fn check_invariants(&self) {
        assert!(
            !self.status.is_server_error(),
            "{}: server error {}: {}",
            self.what,
            self.status,
            self.text()
        );
        if self.status.is_client_error() {
            assert_eq!(
                self.header(header::CONTENT_TYPE),
                Some(PROBLEM_JSON),
                "{}: error without problem+json: {}",
                self.what,
                self.text()
            );
            assert_no_leak(&self.what, &self.text());
        }
    }
}

/// Fails if `text` carries the secret, storage internals or a stack trace.
#[track_caller]
pub fn assert_no_leak(what: &str, text: &str) {
    assert!(
        !text.contains(SECRET),
        "{what}: the JWT secret leaked: {text}"
    );
    let lower = text.to_lowercase();
    for leak in LEAKS {
        assert!(
            !lower.contains(&leak.to_lowercase()),
            "{what}: error body carries {leak:?}: {text}"
        );
    }
    // "table" as a word (a storage table), not as part of e.g. "stable".
    let has_table_word = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| word == "table" || word == "tables");
    assert!(
        !has_table_word,
        "{what}: error body mentions a table: {text}"
    );
}
