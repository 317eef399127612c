//! The real `runledger-local` process under a low open-file limit (`prlimit --nofile=256:256`):
//! 300 connections that each send half a request head and hold it must neither exhaust its
//! file descriptors nor lock out a client that sends a whole request.

use runledger_testkit::server::{Launch, Server};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Well under the 10 s header-read time-out, after which held connections free their places
/// anyway: an answer within this is the server making room, not the time-out.
const ANSWERED_WITHIN: Duration = Duration::from_secs(5);

#[tokio::test]
async fn half_sent_heads_do_not_exhaust_a_low_open_file_limit() {
    let dir = TempDir::new().expect("a temp data dir");
    let server = Server::launch(
        dir.path(),
        Launch {
            wrapper: &["prlimit", "--nofile=256:256"],
            ..Launch::default()
        },
    );
    let address = server.address().to_owned();
    let mut held = Vec::new();
    for _ in 0..300 {
        let mut stream = TcpStream::connect(&address).await.expect("connect");
        // A connection the server closed already (to make room) may refuse the write.
        let _ = stream
            .write_all(b"GET /api/v1/health HTTP/1.1\r\nhost: ")
            .await;
        held.push(stream);
    }
    // Let the server take them all in before the real client comes.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let status = loop {
        let status = health(&address).await;
        if status == "HTTP/1.1 200 OK" || started.elapsed() >= ANSWERED_WITHIN {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = String::from_utf8_lossy(&server.whole_log()).into_owned();
    assert_eq!(
        status, "HTTP/1.1 200 OK",
        "no answer within {ANSWERED_WITHIN:?} while 300 connections were held; log:\n{log}"
    );
    assert!(
        !log.contains("Too many open files"),
        "the server ran out of file descriptors:\n{log}"
    );
    drop(held);
}

/// A whole health request on a new connection; the answer's status line, or what went wrong.
async fn health(address: &str) -> String {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await?;
        stream
            .write_all(b"GET /api/v1/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    match tokio::time::timeout(Duration::from_secs(2), exchange).await {
        Ok(Ok(answer)) => {
            let answer = String::from_utf8_lossy(&answer);
            answer.lines().next().unwrap_or("(no answer)").to_owned()
        }
        Ok(Err(e)) => format!("(failed: {e})"),
        Err(_) => "(no answer in 2 s)".to_owned(),
    }
}
