//! The dashboard as the router serves it: the page at `/`, its files under a versioned path
//! with exact types and cache headers, the security headers, gzip, and clean problems for
//! what is not there. The router is driven in process; the browser test is
//! `functions/local/tests/dashboard.rs`.

use http::{Method, StatusCode, header};
use runledger::api::dashboard::{CONTENT_SECURITY_POLICY, assets_prefix};
use runledger_testkit::api::{Api, Reply};
use std::io::Read;

async fn get(api: &Api, uri: &str, headers: &[(&str, &[u8])]) -> Reply {
    api.raw(Method::GET, uri, headers, Vec::new()).await
}

fn assert_page_headers(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.what);
    assert_eq!(
        reply.header(header::CONTENT_SECURITY_POLICY),
        Some(CONTENT_SECURITY_POLICY),
        "{}",
        reply.what
    );
    assert_eq!(
        reply.header(header::X_CONTENT_TYPE_OPTIONS),
        Some("nosniff"),
        "{}",
        reply.what
    );
    assert_eq!(
        reply.header(header::REFERRER_POLICY),
        Some("no-referrer"),
        "{}",
        reply.what
    );
}

/// The `/assets/...` URLs the page names, in order.
fn named_files(index: &str) -> Vec<String> {
    index
        .split('"')
        .filter(|part| part.starts_with("/assets/"))
        .map(str::to_owned)
        .collect()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a gzip body");
    out
}

#[tokio::test]
async fn the_page_and_every_file_it_names_are_served_with_exact_types_and_cache_headers() {
    let api = Api::new();
    let index = get(&api, "/", &[]).await;
    assert_page_headers(&index);
    assert_eq!(
        index.header(header::CONTENT_TYPE),
        Some("text/html; charset=utf-8")
    );
    // The page is revalidated on every load: it names the current version's files.
    assert_eq!(index.header(header::CACHE_CONTROL), Some("no-cache"));
    let html = index.text();
    assert!(!html.contains("{{ASSETS}}"), "{html}");
    let files = named_files(&html);
    let prefix = format!("{}/", assets_prefix());
    assert!(
        files.len() >= 5 && files.iter().all(|f| f.starts_with(&prefix)),
        "{files:?}"
    );
    for file in &files {
        let reply = get(&api, file, &[]).await;
        assert_page_headers(&reply);
        let expected = match file.rsplit_once('.').map(|(_, ext)| ext) {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("the page names an unexpected kind of file: {other:?}"),
        };
        assert_eq!(reply.header(header::CONTENT_TYPE), Some(expected), "{file}");
        assert_eq!(
            reply.header(header::CACHE_CONTROL),
            Some("public, max-age=31536000, immutable"),
            "{file}"
        );
        assert_eq!(reply.header(header::CONTENT_ENCODING), None, "{file}");
        assert!(!reply.body.is_empty(), "{file}");
    }
    // The modules the page loads later (by relative import) are there too.
    let run_page = get(&api, &format!("{prefix}pages/run.js"), &[]).await;
    assert_page_headers(&run_page);
}

#[tokio::test]
async fn a_browser_that_takes_gzip_gets_gzip_of_the_same_bytes() {
    let api = Api::new();
    let gzip: &[(&str, &[u8])] = &[("accept-encoding", b"gzip, deflate, br")];
    for uri in ["/".to_owned(), format!("{}/app.js", assets_prefix())] {
        let plain = get(&api, &uri, &[]).await;
        let packed = get(&api, &uri, gzip).await;
        assert_page_headers(&packed);
        assert_eq!(
            packed.header(header::CONTENT_ENCODING),
            Some("gzip"),
            "{uri}"
        );
        assert!(
            packed
                .header(header::VARY)
                .is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding")),
            "{uri}: {:?}",
            packed.headers
        );
        assert_eq!(gunzip(&packed.body), plain.body.to_vec(), "{uri}");
        assert!(packed.body.len() < plain.body.len(), "{uri}");
    }
}

#[tokio::test]
async fn what_is_not_a_file_of_this_version_is_a_404_problem() {
    let api = Api::new();
    let prefix = assets_prefix();
    for uri in [
        // An older build's version: the page that asks is stale.
        "/assets/0123456789abcdef/app.js".to_owned(),
        format!("{prefix}/no-such-file.js"),
        format!("{prefix}/index.html"),
        format!("{prefix}/../Cargo.toml"),
        format!("{prefix}/%2e%2e/Cargo.toml"),
        format!("{prefix}/"),
        "/index.html".to_owned(),
        "/assets".to_owned(),
    ] {
        let reply = get(&api, &uri, &[]).await;
        reply.problem(StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn the_page_answers_head_and_refuses_writes() {
    let api = Api::new();
    let head = api.raw(Method::HEAD, "/", &[], Vec::new()).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    let post = api.raw(Method::POST, "/", &[], b"x".to_vec()).await;
    post.problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}
