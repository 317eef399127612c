//! A tiny HTTP target the local server serves under `/demo/`, so the quickstart runs a real
//! suite with nothing else installed. Unauthenticated, no state, local server only.

use super::json_response;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use serde_json::json;

pub const DEMO_TOKEN: &str = "demo-token";

/// Answers `/demo/...` requests; `None` for any other path.
pub async fn handle(request: &Request<Bytes>, path: &str) -> Option<Response<Bytes>> {
    let rest = path.strip_prefix("/demo/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    let response = match (request.method(), segments.as_slice()) {
        (&Method::GET, ["health"]) => json_response(StatusCode::OK, &json!({"status": "ok"})),
        (&Method::POST, ["login"]) => json_response(
            StatusCode::OK,
            &json!({"access_token": DEMO_TOKEN, "token_type": "Bearer"}),
        ),
        (&Method::GET, ["orders", id]) => {
            let authorized = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                == Some(&format!("Bearer {DEMO_TOKEN}"));
            if authorized {
                json_response(
                    StatusCode::OK,
                    &json!({"id": id, "status": "shipped", "items": 2}),
                )
            } else {
                json_response(StatusCode::UNAUTHORIZED, &json!({"error": "login first"}))
            }
        }
        (&Method::GET, ["status", code]) => {
            let status = code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::BAD_REQUEST);
            json_response(status, &json!({"status": status.as_u16()}))
        }
        (&Method::GET, ["slow", millis]) => {
            let millis = millis.parse::<u64>().unwrap_or(0).min(10_000);
            tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
            json_response(StatusCode::OK, &json!({"slept_ms": millis}))
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "no such demo route"}),
        ),
    };
    Some(response)
}
