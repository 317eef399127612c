//! The local server's connection limits, over real sockets: connections that never finish a
//! request head are closed after the header-read time-out, at the cap a new connection takes
//! the place of the oldest idle one, and when every connection is busy one more is answered
//! `503`, while the server keeps answering everyone else. And what the connection tracking
//! must not change: a whole response still goes out with its length, not in chunks.

use runledger::api::{RouteGroup, Router};
use runledger_local::server::{Limits, serve};
use runledger_testkit::stores::{engine_over, in_memory};
use runledger_testkit::tokens::authenticator;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn start(limits: Limits) -> (String, tokio::sync::oneshot::Sender<()>) {
    let router = Router::new(
        engine_over(in_memory()),
        Arc::new(authenticator()),
        &RouteGroup::ALL,
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, Arc::new(router), limits, async {
        let _ = stopped.await;
    }));
    (address, stop)
}

/// Sends a whole health request on a new connection and reads the whole answer.
async fn health_answer(address: &str) -> String {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream
        .write_all(b"GET /api/v1/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).to_string()
}

/// The status line of a health request's answer.
async fn health(address: &str) -> String {
    let answer = health_answer(address).await;
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_whole_response_is_sent_with_its_length_not_in_chunks() {
    let (address, _stop) = start(Limits::default()).await;
    let answer = health_answer(&address).await;
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok"), "{head}");
    assert!(!head.contains("transfer-encoding"), "chunked: {head}");
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .unwrap_or_else(|| panic!("no content-length: {head}"));
    assert_eq!(length.parse::<usize>().expect("a length"), body.len());
    assert!(body.starts_with('{'), "{body}");
}

/// Opens a connection that sends half a request head and nothing more.
async fn half_open(address: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream
        .write_all(b"GET /api/v1/health HTTP/1.1\r\nhost: ")
        .await
        .expect("write");
    stream
}

/// Whether the server closed the connection (end of stream) within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn a_request_head_that_never_ends_is_cut_off() {
    let (address, _stop) = start(Limits {
        max_connections: 64,
        header_read_timeout: Duration::from_millis(300),
    })
    .await;
    let mut stalled = half_open(&address).await;
    assert_eq!(health(&address).await, "HTTP/1.1 200 OK");
    assert!(
        closed_within(&mut stalled, Duration::from_secs(5)).await,
        "a half-sent request head must not hold its connection"
    );
}

/// Opens a connection whose request is being answered: a whole head with a valid token, and
/// half of the body it announces, so the handler waits for the rest.
async fn busy(address: &str) -> TcpStream {
    let token = runledger_testkit::tokens::mint_token("alice", false);
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let head = format!(
        "POST /api/v1/test-cases HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"name\":"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream
}

#[tokio::test]
async fn at_the_cap_a_new_connection_takes_the_place_of_the_oldest_idle_one() {
    let (address, _stop) = start(Limits {
        max_connections: 4,
        header_read_timeout: Duration::from_secs(60),
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(half_open(&address).await);
        // One at a time, so that their ages are what they were opened in.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    assert_eq!(health(&address).await, "HTTP/1.1 200 OK");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered at once, not after the header-read time-out"
    );
    assert!(
        closed_within(&mut held[0], Duration::from_secs(2)).await,
        "the oldest idle connection made room"
    );
    for stream in &mut held[1..] {
        assert!(
            !closed_within(stream, Duration::from_millis(100)).await,
            "only as many connections are closed as need room"
        );
    }
}

#[tokio::test]
async fn connections_over_the_cap_get_503_when_all_are_busy_and_the_rest_keep_working() {
    let (address, _stop) = start(Limits {
        max_connections: 4,
        header_read_timeout: Duration::from_secs(60),
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(busy(&address).await);
    }
    // Let the server start answering all four before the fifth arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    assert_eq!(health(&address).await, "HTTP/1.1 503 Service Unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "refused soon, not held"
    );
    // The busy clients go away, their places come back, and service resumes.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = health(&address).await;
        if status == "HTTP/1.1 200 OK" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "service did not resume: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
