//! TLS as the product sets it up: the AWS SDK's HTTP client (`aws::https_client`) and the
//! HTTP step runner's client, both rustls over ring (`runledger::crypto`), against a local
//! TLS server whose certificate chains to a test CA (`fixtures/tls`, for tests only). The CA
//! is trusted through `SSL_CERT_FILE`, which the clients' native root store reads, so the
//! clients under test are the product's own, built by its own constructors.
//!
//! One test in this binary: it sets a variable of the process before any client exists.

use runledger::domain::catalog::StepDefinition;
use runledger::domain::step_outcome::StepVerdict;
use runledger::runner::HttpStepRunner;
use runledger::runner::target_guard::TargetPolicy;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

/// A TLS server for `localhost` that answers every request `200` with a JSON body, and
/// records the protocol version of each connection.
async fn tls_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(fixture("localhost.pem"))
            .expect("the test certificate")
            .map(|c| c.expect("a certificate"))
            .collect();
    let key = PrivateKeyDer::from_pem_file(fixture("localhost.key")).expect("the test key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("the server's certificate");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let versions = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&versions);
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let version = tls.get_ref().1.protocol_version();
                seen.lock().unwrap().push(format!("{version:?}"));
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                // The head, then as much body as it announces.
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let head_end = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                let head = String::from_utf8_lossy(&request[..head_end]).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while request.len() < head_end + length {
                    match tls.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let body = br#"{"QueueUrls":["https://localhost/123456789012/q"]}"#;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.write_all(body).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, versions)
}

#[tokio::test]
async fn the_sdk_and_the_step_runner_speak_verified_tls_over_ring() {
    // SAFETY: the only test of this binary, and no thread reads the environment yet.
    unsafe { std::env::set_var("SSL_CERT_FILE", fixture("ca.pem")) };
    let (port, versions) = tls_server().await;
    let endpoint = format!("https://localhost:{port}");

    // The SDK, as runledger configures it (its client, test credentials, the endpoint).
    let vars = BTreeMap::from([
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_ENDPOINT_URL", endpoint.clone()),
    ]);
    let sdk = runledger::aws::lambda_sdk_config(&|name: &str| vars.get(name).cloned()).unwrap();
    let queues = aws_sdk_sqs::Client::new(&sdk)
        .list_queues()
        .send()
        .await
        .map_err(aws_sdk_sqs::error::DisplayErrorContext)
        .expect("an SQS call over TLS");
    assert_eq!(
        queues.queue_urls(),
        ["https://localhost/123456789012/q".to_owned()]
    );

    // An `http` step to an https target, through the runner's client.
    let runner = HttpStepRunner::new(TargetPolicy {
        allow_private: true,
    });
    let step: StepDefinition = serde_json::from_value(json!({
        "name": "over TLS",
        "action": "http",
        "http": {"method": "GET", "url": format!("{endpoint}/health")},
        "expect": {"status": 200},
    }))
    .unwrap();
    let outcome = runner.run(&step, &BTreeMap::new()).await;
    assert_eq!(outcome.verdict, StepVerdict::Passed, "{outcome:?}");

    // Both negotiated TLS 1.3 (ring's suites; nothing fell back to plain HTTP).
    assert_eq!(
        *versions.lock().unwrap(),
        ["Some(TLSv1_3)", "Some(TLSv1_3)"]
    );

    // A name the certificate is not for is refused: the certificate is really checked.
    let other_name = json!({
        "name": "wrong host",
        "action": "http",
        "http": {"method": "GET", "url": format!("https://127.0.0.1:{port}/health")},
    });
    let step: StepDefinition = serde_json::from_value(other_name).unwrap();
    let outcome = runner.run(&step, &BTreeMap::new()).await;
    assert_eq!(outcome.verdict, StepVerdict::Failed, "{outcome:?}");
    let message = outcome.message.unwrap_or_default();
    assert!(message.contains("certificate"), "{message}");
}
