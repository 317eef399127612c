//! A tiny HTTP target the local server serves under `/demo/`, so the quickstart runs a real
//! suite with nothing else installed. Unauthenticated, no state, local server only, and not
//! part of the API (nor of its OpenAPI document).

use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

pub const DEMO_TOKEN: &str = "demo-token";

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/demo/health",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
        .route(
            "/demo/login",
            post(|| async { Json(json!({"access_token": DEMO_TOKEN, "token_type": "Bearer"})) }),
        )
        .route("/demo/orders/{id}", get(order))
        .route("/demo/status/{code}", get(status))
        .route("/demo/slow/{millis}", get(slow))
}

async fn order(Path(id): Path<String>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {DEMO_TOKEN}"));
    if authorized {
        let order = json!({"id": id, "status": "shipped", "items": 2});
        (StatusCode::OK, Json(order))
    } else {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "login first"})),
        )
    }
}

/// Answers with the status the path names (`400` for one that is not a status).
async fn status(Path(code): Path<String>) -> (StatusCode, Json<Value>) {
    let status = code
        .parse::<u16>()
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::BAD_REQUEST);
    (status, Json(json!({"status": status.as_u16()})))
}

/// Answers after the given milliseconds (at most 10 s).
async fn slow(Path(millis): Path<String>) -> Json<Value> {
    let millis = millis.parse::<u64>().unwrap_or(0).min(10_000);
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
    Json(json!({"slept_ms": millis}))
}
