//! The dashboard: the files under `shared/ui/` (plain ES modules, no build step), embedded in
//! the binary and served at `/` by the one router, so that every host that mounts
//! [`RouteGroup::Dashboard`](super::RouteGroup::Dashboard) serves the UI too (runledger-local;
//! the status function on AWS, which gets every path no API route claims).
//!
//! `/` is `index.html`, revalidated on every load; the files it loads are under
//! `/assets/<version>/`, where the version is a hash of every file's content: a new build
//! gets new URLs, so the files can be cached for good. Every answer carries a strict
//! Content-Security-Policy (no inline script or style, nothing from another origin) and is
//! compressed when the browser accepts it.

use super::problem::Problem;
use axum::Router;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderName, HeaderValue, StatusCode, header};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

#[derive(rust_embed::Embed)]
#[folder = "ui/"]
struct Files;

/// Where the page's files are, as `index.html` names them (`{{ASSETS}}/app.js`).
const ASSETS_PLACEHOLDER: &str = "{{ASSETS}}";

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     style-src 'self'; script-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// A year: the longest lifetime caches honour, for files whose URL changes with their content.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The hash of every embedded file (path and content, in path order): the `<version>` of
/// `/assets/<version>/`. 16 hex digits are plenty to tell builds apart.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut paths: Vec<_> = Files::iter().collect();
    paths.sort();
    let mut hasher = Sha256::new();
    for path in paths {
        let file = Files::get(&path).expect("an embedded file is there");
        hasher.update((path.len() as u64).to_le_bytes());
        hasher.update(path.as_bytes());
        hasher.update((file.data.len() as u64).to_le_bytes());
        hasher.update(&file.data);
    }
    hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
});

static INDEX: LazyLock<String> = LazyLock::new(|| {
    let html = Files::get("index.html").expect("shared/ui/index.html is embedded");
    String::from_utf8_lossy(&html.data).replace(ASSETS_PLACEHOLDER, &assets_prefix())
});

/// `/assets/<version>`, the prefix of every file the page loads.
pub fn assets_prefix() -> String {
    format!("/assets/{}", *VERSION)
}

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    use tower_http::compression::CompressionLayer;
    Router::new()
        .route("/", get(index))
        .route("/assets/{version}/{*path}", get(asset))
        // Gzip only: every browser takes it, and brotli's encoder would double the size of
        // the status function's bootstrap for a few kilobytes.
        .layer(
            CompressionLayer::new()
                .gzip(true)
                .no_br()
                .no_deflate()
                .no_zstd(),
        )
}

async fn index() -> Response {
    page_response(
        "text/html; charset=utf-8",
        "no-cache",
        INDEX.as_bytes().to_vec(),
    )
}

async fn asset(Path((version, path)): Path<(String, String)>) -> Response {
    let file = (version == *VERSION)
        .then(|| Files::get(&path))
        .flatten()
        .filter(|_| path != "index.html");
    let (Some(file), Some(content_type)) = (file, content_type(&path)) else {
        return Problem::not_found(format!(
            "no dashboard file {path} in this version (the page may be older than the server: reload it)"
        ))
        .into_response();
    };
    page_response(content_type, IMMUTABLE, file.data.into_owned())
}

/// The exact type of each kind of file the UI has: a browser runs a module only when it is
/// served as JavaScript, and `nosniff` makes it trust the type given.
fn content_type(path: &str) -> Option<&'static str> {
    let extension = path.rsplit_once('.')?.1;
    Some(match extension {
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "html" => "text/html; charset=utf-8",
        "json" => "application/json",
        "png" => "image/png",
        _ => return None,
    })
}

fn page_response(content_type: &'static str, cache: &'static str, body: Vec<u8>) -> Response {
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, cache),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    let mut response = (StatusCode::OK, body).into_response();
    for (name, value) in headers {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response.headers_mut().insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_its_files_under_the_version_and_every_one_is_embedded() {
        let index = INDEX.as_str();
        assert!(!index.contains(ASSETS_PLACEHOLDER));
        assert_eq!(VERSION.len(), 16);
        let prefix = format!("{}/", assets_prefix());
        let named: Vec<&str> = index
            .split('"')
            .filter_map(|part| part.strip_prefix(&prefix))
            .collect();
        assert!(named.contains(&"app.js"), "{named:?}");
        for path in named {
            assert!(Files::get(path).is_some(), "{path} is not embedded");
            assert!(content_type(path).is_some(), "{path} has no content type");
        }
    }

    #[test]
    fn every_embedded_file_has_a_content_type() {
        for path in Files::iter() {
            assert!(content_type(&path).is_some(), "{path}");
        }
    }
}
