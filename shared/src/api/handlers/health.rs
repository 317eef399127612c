//! Liveness and the API's own description; neither needs a token.

use crate::api::extract::NoQuery;
use crate::api::openapi;
use crate::api::wire::Health;
use axum::Json;
use axum::response::IntoResponse;
use http::header;

/// Liveness; no authentication
#[utoipa::path(get, path = "/health", tag = "health", security(()),
    responses((status = 200, description = "The service is up", body = Health)))]
pub async fn health(_: NoQuery) -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// This OpenAPI document; no authentication
#[utoipa::path(get, path = "/openapi.json", tag = "health", security(()),
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
pub async fn openapi(_: NoQuery) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi::document_json(),
    )
}
