//! RFC 9457 problem responses. Details are written for clients: they never carry internals.

use crate::auth::AuthError;
use crate::domain::catalog::CatalogKind;
use crate::domain::validation::{FieldError, ValidationErrors};
use crate::engine::EngineError;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem response; boxed so `Result<_, Problem>` stays small on the happy path.
#[derive(Debug, Clone)]
pub struct Problem(Box<ProblemBody>);

/// An RFC 9457 problem document, as every error response carries it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub struct ProblemBody {
    /// Always `about:blank`: `code` says what happened.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: String,
    pub status: u16,
    /// Stable snake_case code, e.g. `execution_not_found`, `validation_failed`.
    pub code: &'static str,
    pub detail: String,
    /// `validation_failed` only: one entry per invalid field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    #[serde(skip)]
    #[schema(ignore)]
    www_authenticate: Option<&'static str>,
    #[serde(skip)]
    #[schema(ignore)]
    allow: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Problem(Box::new(ProblemBody {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            code,
            detail: detail.into(),
            errors: Vec::new(),
            www_authenticate: None,
            allow: None,
        }))
    }

    pub fn validation(errors: ValidationErrors) -> Self {
        let count = errors.errors.len();
        let mut problem = Problem::new(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            format!("the request has {count} invalid field(s)"),
        );
        problem.0.errors = errors.errors;
        problem
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Problem::validation(ValidationErrors::single(field, message))
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn method_not_allowed(allowed: &[&str]) -> Self {
        let mut problem = Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not take that method",
        );
        problem.0.allow = Some(allowed.join(", "));
        problem
    }

    pub fn too_large(limit: usize) -> Self {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request bodies are limited to {limit} bytes"),
        )
    }

    /// The `Allow` header's methods, for a `405`.
    pub fn allow(&self) -> Option<&str> {
        self.0.allow.as_deref()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let problem = *self.0;
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(challenge) = problem.www_authenticate {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if let Some(allow) = problem.allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
            headers.insert(header::ALLOW, allow);
        }
        // A 503 is an outage of a dependency or a full server: say when to come back.
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl std::ops::Deref for Problem {
    type Target = ProblemBody;
    fn deref(&self) -> &ProblemBody {
        &self.0
    }
}

/// For extractors that cannot fail, such as `()`.
impl From<std::convert::Infallible> for Problem {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

impl From<AuthError> for Problem {
    fn from(error: AuthError) -> Self {
        let (code, challenge) = match error {
            AuthError::Missing => ("unauthenticated", "Bearer"),
            AuthError::Invalid => ("invalid_token", r#"Bearer error="invalid_token""#),
            AuthError::Expired => (
                "token_expired",
                r#"Bearer error="invalid_token", error_description="the token has expired""#,
            ),
        };
        let mut problem = Problem::new(StatusCode::UNAUTHORIZED, code, error.to_string());
        problem.0.www_authenticate = Some(challenge);
        problem
    }
}

impl From<EngineError> for Problem {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::NotFound { what, id } => {
                let code = match (what, CatalogKind::named(what)) {
                    (_, Some(kind)) => kind.not_found_code(),
                    ("execution", None) => "execution_not_found",
                    _ => "not_found",
                };
                Problem::new(
                    StatusCode::NOT_FOUND,
                    code,
                    format!("no {what} with id {id}"),
                )
            }
            EngineError::Validation(errors) => Problem::validation(errors),
            EngineError::InvalidTransition(e) => {
                Problem::new(StatusCode::CONFLICT, "invalid_transition", e.to_string())
            }
            EngineError::Conflict { code, detail } => {
                Problem::new(StatusCode::CONFLICT, code.code(), detail)
            }
            EngineError::InvalidReport(detail) => {
                Problem::new(StatusCode::BAD_REQUEST, "invalid_report", detail)
            }
            EngineError::Unavailable(internal) => {
                tracing::error!(error = %internal, "store unavailable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the service is temporarily unavailable; retry later",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_a_503_problem_that_says_when_to_retry() {
        let outage = EngineError::Unavailable("DynamoDB write failed".into());
        let response = Problem::from(outage).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let refused = Problem::new(StatusCode::CONFLICT, "invalid_transition", "no");
        assert!(
            !refused
                .into_response()
                .headers()
                .contains_key(header::RETRY_AFTER)
        );
    }
}
