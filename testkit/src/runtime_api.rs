//! Lambda's side of a function binary run as a process, for a function behind a Function URL
//! in `RESPONSE_STREAM` mode: the Lambda runtime API the binary polls (next invocation,
//! response, errors), and in front of it the Function URL, which turns each HTTP request
//! into an invocation (payload 2.0) and streams the function's answer back to the client.
//!
//! A streamed answer is the runtime's `POST .../response` with
//! `Lambda-Runtime-Function-Response-Mode: streaming`, chunked: a JSON prelude (status,
//! headers, cookies), eight NUL bytes, then the body as the function writes it. Each
//! instance (process) takes one invocation at a time; several instances serve requests at
//! once. When a client leaves, its invocation's body is still read to its end (the function
//! is not stopped), so an instance stays busy until the function closes the stream itself.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path as FsPath;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// What the function answered an invocation with.
enum Answer {
    Streamed {
        status: StatusCode,
        headers: HeaderMap,
        body: mpsc::Receiver<Bytes>,
    },
    Failed(String),
}

struct Invocation {
    id: String,
    event: Value,
    answer: oneshot::Sender<Answer>,
}

struct Shared {
    invocations: mpsc::UnboundedSender<Invocation>,
    waiting: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    streamed: AtomicUsize,
    buffered: AtomicUsize,
    failures: Mutex<Vec<String>>,
    next_id: AtomicUsize,
}

/// A Function URL and the runtime API behind it, on one loopback port.
pub struct FunctionUrl {
    address: SocketAddr,
    shared: Arc<Shared>,
    instances: Vec<tokio::process::Child>,
    server: tokio::task::JoinHandle<()>,
}

impl FunctionUrl {
    pub async fn start() -> FunctionUrl {
        let (invocations, waiting) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            invocations,
            waiting: tokio::sync::Mutex::new(waiting),
            in_flight: Mutex::default(),
            streamed: AtomicUsize::new(0),
            buffered: AtomicUsize::new(0),
            failures: Mutex::default(),
            next_id: AtomicUsize::new(1),
        });
        let app = axum::Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(failed))
            .route("/2018-06-01/runtime/init/error", post(init_failed))
            .fallback(client_request)
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        FunctionUrl {
            address,
            shared,
            instances: Vec::new(),
            server,
        }
    }

    /// The URL clients call (`http://127.0.0.1:<port>`).
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Starts one instance of the function: `binary` with Lambda's variables (the runtime
    /// API here) and `environment`, nothing else inherited.
    pub fn spawn_instance(&mut self, binary: &FsPath, environment: &[(&str, &str)]) {
        let mut command = tokio::process::Command::new(binary);
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", self.address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "stream")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .envs(environment.iter().copied())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Ok(path) = std::env::var("PATH") {
            command.env("PATH", path);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        self.instances.push(child);
    }

    /// Answers the function sent streamed, and answered whole.
    pub fn responses(&self) -> (usize, usize) {
        (
            self.shared.streamed.load(Ordering::SeqCst),
            self.shared.buffered.load(Ordering::SeqCst),
        )
    }

    /// Invocation and cold start errors the function reported, and instances that exited.
    pub fn failures(&mut self) -> Vec<String> {
        let mut failures = self.shared.failures.lock().expect("failures").clone();
        for child in &mut self.instances {
            if let Ok(Some(status)) = child.try_wait() {
                failures.push(format!("an instance exited: {status}"));
            }
        }
        failures
    }
}

impl Drop for FunctionUrl {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    let invocation = shared.waiting.lock().await.recv().await;
    let Some(invocation) = invocation else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    shared
        .in_flight
        .lock()
        .expect("in flight")
        .insert(invocation.id.clone(), invocation.answer);
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_millis()
        + 900_000;
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, HeaderValue::from_str(&value).expect("header"));
    };
    set("lambda-runtime-aws-request-id", invocation.id.clone());
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:stream".to_owned(),
    );
    set("content-type", "application/json".to_owned());
    (headers, invocation.event.to_string()).into_response()
}

/// The function's answer. Streamed: the prelude up to eight NULs, then body chunks handed to
/// the client as they come (and still read to the end once the client is gone).
async fn respond(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> StatusCode {
    let Some(answer) = shared.in_flight.lock().expect("in flight").remove(&id) else {
        return StatusCode::NOT_FOUND;
    };
    let streaming = headers
        .get("lambda-runtime-function-response-mode")
        .is_some_and(|mode| mode == "streaming");
    let mut body = body.into_data_stream();
    if !streaming {
        shared.buffered.fetch_add(1, Ordering::SeqCst);
        let mut whole = Vec::new();
        while let Some(Ok(chunk)) = body.next().await {
            whole.extend_from_slice(&chunk);
        }
        let _ = answer.send(Answer::Failed(format!(
            "a buffered answer to a RESPONSE_STREAM URL: {}",
            String::from_utf8_lossy(&whole)
        )));
        return StatusCode::ACCEPTED;
    }
    shared.streamed.fetch_add(1, Ordering::SeqCst);
    const DELIMITER: &[u8] = &[0; 8];
    let mut head = Vec::new();
    let rest = loop {
        let Some(Ok(chunk)) = body.next().await else {
            let _ = answer.send(Answer::Failed("the stream ended inside its prelude".into()));
            return StatusCode::ACCEPTED;
        };
        head.extend_from_slice(&chunk);
        if let Some(at) = head.windows(DELIMITER.len()).position(|w| w == DELIMITER) {
            break head.split_off(at + DELIMITER.len());
        }
    };
    head.truncate(head.len() - DELIMITER.len());
    let prelude: Value = match serde_json::from_slice(&head) {
        Ok(prelude) => prelude,
        Err(e) => {
            let _ = answer.send(Answer::Failed(format!("a prelude that is not JSON: {e}")));
            return StatusCode::ACCEPTED;
        }
    };
    let status = prelude["statusCode"]
        .as_u64()
        .and_then(|code| StatusCode::from_u16(code as u16).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response_headers = HeaderMap::new();
    for (name, value) in prelude["headers"].as_object().into_iter().flatten() {
        if let (Ok(name), Some(Ok(value))) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            value.as_str().map(HeaderValue::from_str),
        ) {
            response_headers.insert(name, value);
        }
    }
    let (sender, receiver) = mpsc::channel(64);
    let _ = answer.send(Answer::Streamed {
        status,
        headers: response_headers,
        body: receiver,
    });
    let mut client = Some(sender);
    let mut next_chunk = (!rest.is_empty()).then(|| Bytes::from(rest));
    loop {
        let chunk = match next_chunk.take() {
            Some(chunk) => chunk,
            None => match body.next().await {
                Some(Ok(chunk)) => chunk,
                _ => break,
            },
        };
        if let Some(sender) = &client
            && sender.send(chunk).await.is_err()
        {
            // The client left: the rest is read and dropped, the function is not stopped.
            client = None;
        }
    }
    StatusCode::ACCEPTED
}

async fn failed(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    shared
        .failures
        .lock()
        .expect("failures")
        .push(format!("invocation {id}: {body}"));
    if let Some(answer) = shared.in_flight.lock().expect("in flight").remove(&id) {
        let _ = answer.send(Answer::Failed(body));
    }
    StatusCode::ACCEPTED
}

async fn init_failed(State(shared): State<Arc<Shared>>, body: String) -> StatusCode {
    shared
        .failures
        .lock()
        .expect("failures")
        .push(format!("cold start: {body}"));
    StatusCode::ACCEPTED
}

/// A client's request, as the Function URL hands it to the function (payload 2.0).
async fn client_request(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let mut headers = serde_json::Map::new();
    for (name, value) in &parts.headers {
        let value = value.to_str().unwrap_or_default();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|joined| {
                *joined = json!(format!("{},{value}", joined.as_str().unwrap_or_default()))
            })
            .or_insert(json!(value));
    }
    let id = format!(
        "00000000-0000-4000-8000-{:012}",
        shared.next_id.fetch_add(1, Ordering::SeqCst)
    );
    let path = parts.uri.path().to_owned();
    let event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": parts.uri.query().unwrap_or(""),
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "streamurl",
            "domainName": "streamurl.lambda-url.us-east-1.on.aws",
            "domainPrefix": "streamurl",
            "http": {
                "method": parts.method.as_str(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": parts.headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or(""),
            },
            "requestId": id,
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Dec/2026:00:00:00 +0000",
            "timeEpoch": 1796083200000u64,
        },
        "body": String::from_utf8_lossy(&body),
        "isBase64Encoded": false,
    });
    let (answer, answered) = oneshot::channel();
    let invocation = Invocation { id, event, answer };
    if shared.invocations.send(invocation).is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match tokio::time::timeout(Duration::from_secs(30), answered).await {
        Ok(Ok(Answer::Streamed {
            status,
            headers,
            body,
        })) => {
            let chunks = futures_util::stream::unfold(body, |mut body| async move {
                let chunk = body.recv().await?;
                Some((Ok::<_, std::convert::Infallible>(chunk), body))
            });
            (status, headers, Body::from_stream(chunks)).into_response()
        }
        Ok(Ok(Answer::Failed(why))) => (StatusCode::BAD_GATEWAY, why).into_response(),
        Ok(Err(_)) => (StatusCode::BAD_GATEWAY, "no answer").into_response(),
        Err(_) => (StatusCode::GATEWAY_TIMEOUT, "no instance took the request").into_response(),
    }
}
