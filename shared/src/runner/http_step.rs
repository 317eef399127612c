//! Runs one `http` step: template, guard, send, read, check, capture.

use super::expect::{self, ObservedResponse};
use super::limits::{
    MAX_RENDERED_BODY_BYTES, MAX_RENDERED_HEADER_BYTES, MAX_RENDERED_HEADERS_BYTES,
    MAX_RENDERED_STEP_BYTES, MAX_RENDERED_URL_BYTES, MAX_VARIABLES_BYTES, size,
};
use super::target_guard::{BlockedTarget, DnsFailure, GuardedResolver, TargetPolicy};
use super::template::{self, TemplateError};
use crate::domain::catalog::{DEFAULT_STEP_TIMEOUT_MS, HttpRequestSpec, StepDefinition};
use crate::domain::step_outcome::{StepOutcome, StepVerdict};
use crate::domain::time::Timestamp;
use crate::ports::StepRunner;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::Method;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::time::{Duration, Instant};
use url::Url;

/// At most this much of a response body is read; the rest is not.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// At most this much of the body is shown in a step's output.
const OUTPUT_BODY_BYTES: usize = 2 * 1024;
const MAX_REDIRECTS: usize = 5;
/// URLs in messages are cut to this many characters.
const MAX_URL_CHARS: usize = 200;

/// Runs `http` steps with one HTTP client that only reaches targets the policy allows.
pub struct HttpStepRunner {
    /// The error, when the client could not be built, fails every step rather than panicking.
    client: Result<reqwest::Client, String>,
    policy: TargetPolicy,
}

impl std::fmt::Debug for HttpStepRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpStepRunner")
            .field("policy", &self.policy)
            .field("client_ok", &self.client.is_ok())
            .finish()
    }
}

impl HttpStepRunner {
    pub fn new(policy: TargetPolicy) -> Self {
        crate::crypto::install();
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            // `previous` starts with the original URL, which is not a redirect.
            if attempt.previous().len() > MAX_REDIRECTS {
                let error = format!("too many redirects (more than {MAX_REDIRECTS})");
                attempt.error(error)
            } else if let Err(blocked) = policy.check_url(attempt.url()) {
                attempt.error(blocked)
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .dns_resolver(GuardedResolver::new(policy))
            .redirect(redirect)
            .no_proxy()
            .referer(false)
            .user_agent(concat!("runledger/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("the HTTP client could not be set up: {}", error_chain(&e)));
        if let Err(error) = &client {
            tracing::error!(%error, "HTTP step runner has no client; http steps will fail");
        }
        HttpStepRunner { client, policy }
    }

    pub async fn run(&self, step: &StepDefinition, vars: &BTreeMap<String, String>) -> StepOutcome {
        let started_at = Timestamp::now();
        let clock = Instant::now();
        let (verdict, failures, output, captures) = match self.execute(step, vars).await {
            Ok(done) => {
                let mut failures = done.failures;
                let verdict = match done.over_limit {
                    Some(error) => {
                        failures.push(error);
                        StepVerdict::Error
                    }
                    None if failures.is_empty() => StepVerdict::Passed,
                    None => StepVerdict::Failed,
                };
                (verdict, failures, Some(done.output), done.captures)
            }
            Err(Abort::Failed(failure)) => {
                (StepVerdict::Failed, vec![failure], None, BTreeMap::new())
            }
            Err(Abort::OverLimit(error)) => {
                (StepVerdict::Error, vec![error], None, BTreeMap::new())
            }
        };
        let duration_ms = elapsed_ms(clock);
        let finished_at = Timestamp::now();
        let (message, captures) = if verdict == StepVerdict::Passed {
            (None, captures)
        } else {
            (Some(failures.join("; ")), BTreeMap::new())
        };
        StepOutcome {
            verdict,
            message,
            output,
            captures,
            started_at,
            finished_at,
            duration_ms,
        }
    }

    /// `Err` when there was no response to judge.
    async fn execute(
        &self,
        step: &StepDefinition,
        vars: &BTreeMap<String, String>,
    ) -> Result<Executed, Abort> {
        let spec = step
            .http
            .as_ref()
            .ok_or_else(|| format!("step `{}` has no `http` request to send", step.name))?;
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let prepared = prepare(spec, vars)?;
        self.policy
            .check_url(&prepared.url)
            .map_err(|blocked| blocked.to_string())?;

        let timeout_ms = spec.timeout_ms.unwrap_or(DEFAULT_STEP_TIMEOUT_MS);
        let request = client
            .request(prepared.method.clone(), prepared.url.clone())
            .headers(prepared.headers)
            .body(prepared.body);
        let sent = Instant::now();
        let received =
            tokio::time::timeout(Duration::from_millis(timeout_ms), send_and_read(request))
                .await
                .map_err(|_| format!("timed out after {timeout_ms} ms"))?
                .map_err(|e| describe_error(&e, &prepared.url, timeout_ms))?;
        let observed = ObservedResponse {
            status: received.status.as_u16(),
            headers: received.headers,
            body: received.body,
            duration_ms: elapsed_ms(sent),
        };

        let output = summary(
            &prepared.method,
            &prepared.url,
            &received.final_url,
            received.status,
            &observed,
            received.truncated,
        );
        let mut failures = expect::check(step.expect.as_ref(), &observed);
        let (captures, over_limit) =
            match capture(&step.capture, &observed.body, vars, &mut failures) {
                Ok(captures) => (captures, None),
                Err(error) => (BTreeMap::new(), Some(error)),
            };
        Ok(Executed {
            failures,
            output,
            captures,
            over_limit,
        })
    }
}

#[async_trait]
impl StepRunner for HttpStepRunner {
    async fn run_step(
        &self,
        step: &StepDefinition,
        variables: &BTreeMap<String, String>,
    ) -> StepOutcome {
        self.run(step, variables).await
    }
}

struct Executed {
    failures: Vec<String>,
    output: String,
    captures: BTreeMap<String, String>,
    /// The step got its response but would exceed one of the runner's limits.
    over_limit: Option<String>,
}

/// Why a step ended before there was a response to judge.
enum Abort {
    /// `failed`: the request could not be made as written, or got no answer.
    Failed(String),
    /// `error`: it would exceed one of the runner's limits.
    OverLimit(String),
}

impl From<String> for Abort {
    fn from(message: String) -> Self {
        Abort::Failed(message)
    }
}

struct Prepared {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// Templates and parses everything the request needs, within the rendering caps.
fn prepare(spec: &HttpRequestSpec, vars: &BTreeMap<String, String>) -> Result<Prepared, Abort> {
    let method = Method::from_bytes(spec.method.as_bytes())
        .map_err(|_| format!("invalid HTTP method `{}`", shorten(&spec.method)))?;
    let mut budget = Budget::default();
    let url_text = budget.render(Part::Url, &spec.url, vars)?;
    let url =
        Url::parse(&url_text).map_err(|e| format!("invalid URL `{}`: {e}", shorten(&url_text)))?;

    let mut headers = HeaderMap::new();
    for (name, value) in &spec.headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name `{}`", shorten(name)))?;
        let value = budget.render(Part::Header(name), value, vars)?;
        let value = HeaderValue::from_str(&value)
            .map_err(|_| format!("invalid value for header `{name}` after templating"))?;
        headers.append(header, value);
    }

    let body = match &spec.body {
        None => Vec::new(),
        Some(Value::String(text)) => budget.render(Part::Body, text, vars)?.into_bytes(),
        Some(json) => {
            let body = budget.render_json(json, vars)?;
            if !headers.contains_key(CONTENT_TYPE) {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            body
        }
    };
    Ok(Prepared {
        method,
        url,
        headers,
        body,
    })
}

/// What a step renders, each part under its own cap (see `limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part<'a> {
    Url,
    Header(&'a str),
    Body,
}

/// A cap a part is rendered under: its own, or what is left of one it shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cap<'a> {
    Own(Part<'a>),
    Headers,
    Step,
}

impl Cap<'_> {
    fn exceeded(self) -> String {
        match self {
            Cap::Own(Part::Url) => {
                format!("the rendered URL exceeds {}", size(MAX_RENDERED_URL_BYTES))
            }
            Cap::Own(Part::Header(name)) => format!(
                "the rendered header `{}` exceeds {}",
                shorten(name),
                size(MAX_RENDERED_HEADER_BYTES)
            ),
            Cap::Own(Part::Body) => {
                format!(
                    "the rendered body exceeds {}",
                    size(MAX_RENDERED_BODY_BYTES)
                )
            }
            Cap::Headers => format!(
                "the rendered headers exceed {} together",
                size(MAX_RENDERED_HEADERS_BYTES)
            ),
            Cap::Step => format!(
                "the rendered URL, headers and body exceed {} together",
                size(MAX_RENDERED_STEP_BYTES)
            ),
        }
    }
}

impl Part<'_> {
    fn cap(self) -> usize {
        match self {
            Part::Url => MAX_RENDERED_URL_BYTES,
            Part::Header(_) => MAX_RENDERED_HEADER_BYTES,
            Part::Body => MAX_RENDERED_BODY_BYTES,
        }
    }

    /// How template errors name the part.
    fn field(self) -> String {
        match self {
            Part::Url => "url".to_owned(),
            Part::Header(name) => format!("header `{name}`"),
            Part::Body => "body".to_owned(),
        }
    }
}

/// What is left of the shared caps while a step's request is rendered.
#[derive(Debug)]
struct Budget {
    headers: usize,
    step: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            headers: MAX_RENDERED_HEADERS_BYTES,
            step: MAX_RENDERED_STEP_BYTES,
        }
    }
}

impl Budget {
    /// The most `part` may render now, and the cap that sets it (the most specific on a tie).
    fn limit<'a>(&self, part: Part<'a>) -> (usize, Cap<'a>) {
        let mut tightest = (part.cap(), Cap::Own(part));
        if matches!(part, Part::Header(_)) && self.headers < tightest.0 {
            tightest = (self.headers, Cap::Headers);
        }
        if self.step < tightest.0 {
            tightest = (self.step, Cap::Step);
        }
        tightest
    }

    fn take(&mut self, part: Part<'_>, rendered: usize) {
        if matches!(part, Part::Header(_)) {
            self.headers = self.headers.saturating_sub(rendered);
        }
        self.step = self.step.saturating_sub(rendered);
    }

    fn render(
        &mut self,
        part: Part<'_>,
        text: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<String, Abort> {
        let (limit, cap) = self.limit(part);
        let rendered = template::render(text, vars, limit).map_err(|e| refusal(part, cap, &e))?;
        self.take(part, rendered.len());
        Ok(rendered)
    }

    /// A JSON body, encoded: its leaves are rendered, then it is encoded, both under the
    /// body's limit (escaping only lengthens the leaves, so the first check fails early).
    fn render_json(
        &mut self,
        json: &Value,
        vars: &BTreeMap<String, String>,
    ) -> Result<Vec<u8>, Abort> {
        let (limit, cap) = self.limit(Part::Body);
        let rendered =
            template::render_json(json, vars, limit).map_err(|e| refusal(Part::Body, cap, &e))?;
        let mut out = CappedBytes::new(limit);
        match serde_json::to_writer(&mut out, &rendered) {
            Ok(()) => {}
            Err(e) if e.is_io() => return Err(Abort::OverLimit(cap.exceeded())),
            Err(e) => return Err(Abort::Failed(format!("cannot encode the body: {e}"))),
        }
        self.take(Part::Body, out.bytes.len());
        Ok(out.bytes)
    }
}

fn refusal(part: Part<'_>, cap: Cap<'_>, error: &TemplateError) -> Abort {
    match error {
        TemplateError::TooLong { .. } => Abort::OverLimit(cap.exceeded()),
        TemplateError::UnknownVariable(_) => Abort::Failed(in_field(&part.field(), error)),
    }
}

fn in_field(field: &str, error: &TemplateError) -> String {
    format!("{error} in the {field}")
}

/// Bytes that refuse to grow past `limit`, their capacity included: an encoded body stops
/// at its cap (the write fails) rather than after it.
struct CappedBytes {
    bytes: Vec<u8>,
    limit: usize,
}

impl CappedBytes {
    fn new(limit: usize) -> Self {
        CappedBytes {
            bytes: Vec::new(),
            limit,
        }
    }
}

impl std::io::Write for CappedBytes {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let needed = self.bytes.len() + buf.len();
        if needed > self.limit {
            return Err(std::io::Error::other("over the cap"));
        }
        if needed > self.bytes.capacity() {
            let target = template::grown_capacity(self.bytes.capacity(), needed, self.limit);
            self.bytes.reserve_exact(target - self.bytes.len());
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Received {
    status: reqwest::StatusCode,
    headers: HeaderMap,
    final_url: Url,
    body: Bytes,
    truncated: bool,
}

async fn send_and_read(request: reqwest::RequestBuilder) -> Result<Received, reqwest::Error> {
    let mut response = request.send().await?;
    let status = response.status();
    let headers = response.headers().clone();
    let final_url = response.url().clone();
    let mut body = BytesMut::new();
    let mut truncated = false;
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY_BYTES - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Received {
        status,
        headers,
        final_url,
        body: body.freeze(),
        truncated,
    })
}

/// `GET http://host/path -> 200 OK in 12 ms`, then the start of the body.
fn summary(
    method: &Method,
    url: &Url,
    final_url: &Url,
    status: reqwest::StatusCode,
    observed: &ObservedResponse,
    truncated: bool,
) -> String {
    let mut out = format!(
        "{method} {} -> {} {} in {} ms",
        shorten(url.as_str()),
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        observed.duration_ms
    );
    if final_url != url {
        out.push_str(&format!(" (redirected to {})", shorten(final_url.as_str())));
    }
    out.push('\n');
    if truncated {
        out.push_str(&format!(
            "[response body longer than {MAX_BODY_BYTES} bytes; the rest was not read]\n"
        ));
    }
    let body = &observed.body;
    if body.len() > OUTPUT_BODY_BYTES {
        out.push_str(&lossy_prefix(body, OUTPUT_BODY_BYTES));
        out.push_str(&format!(
            "\n[... {} more bytes not shown]",
            body.len() - OUTPUT_BODY_BYTES
        ));
    } else {
        out.push_str(&String::from_utf8_lossy(body));
    }
    out
}

/// The first `max` bytes (of more) as lossy UTF-8, not cutting inside a character.
fn lossy_prefix(bytes: &[u8], max: usize) -> String {
    let mut cut = max.min(bytes.len());
    // A continuation byte (0b10xx_xxxx) right after the cut means the cut splits a character.
    while cut > 0 && max - cut < 3 && bytes.get(cut).is_some_and(|b| b & 0xc0 == 0x80) {
        cut -= 1;
    }
    String::from_utf8_lossy(&bytes[..cut]).into_owned()
}

/// The values `wanted` picks from the response body. `Err` (an error naming the capture)
/// when they would take the run's variables past their cap: each capture may copy the whole
/// body, so without it a few names could pile up gigabytes for the later steps.
fn capture(
    wanted: &BTreeMap<String, String>,
    body: &[u8],
    vars: &BTreeMap<String, String>,
    failures: &mut Vec<String>,
) -> Result<BTreeMap<String, String>, String> {
    let mut captures = BTreeMap::new();
    if wanted.is_empty() {
        return Ok(captures);
    }
    let doc = match serde_json::from_slice::<Value>(body) {
        Ok(doc) => doc,
        Err(_) => {
            for name in wanted.keys() {
                failures.push(format!("capture `{name}`: the response body is not JSON"));
            }
            return Ok(captures);
        }
    };
    // What the run holds after this step: a name captured again has its old value replaced.
    let mut held: usize = vars
        .iter()
        .filter(|(name, _)| !wanted.contains_key(*name))
        .map(|(name, value)| name.len() + value.len())
        .sum();
    for (name, pointer) in wanted {
        match expect::json_pointer(&doc, pointer) {
            Some(value) => {
                let fits =
                    |len: usize| held.saturating_add(name.len() + len) <= MAX_VARIABLES_BYTES;
                // A string is measured before it is copied; anything else is encoded first,
                // which the response's own cap bounds.
                let text = match value {
                    Value::String(text) if !fits(text.len()) => None,
                    other => Some(expect::captured_string(other)).filter(|t| fits(t.len())),
                };
                let Some(text) = text else {
                    return Err(format!(
                        "capture `{name}`: the run's variables would exceed {}",
                        size(MAX_VARIABLES_BYTES)
                    ));
                };
                held += name.len() + text.len();
                captures.insert(name.clone(), text);
            }
            None => failures.push(format!(
                "capture `{name}`: {} not found in the response body",
                shorten(pointer)
            )),
        }
    }
    Ok(captures)
}

/// A clear, short message for a request that got no response.
fn describe_error(error: &reqwest::Error, url: &Url, timeout_ms: u64) -> String {
    let url_text = shorten(url.as_str());
    let chain = || sources(error);
    if let Some(blocked) = chain().find_map(|e| e.downcast_ref::<BlockedTarget>()) {
        return if error.is_redirect() {
            format!("redirect refused: {blocked}")
        } else {
            blocked.to_string()
        };
    }
    if error.is_timeout() {
        return format!("timed out after {timeout_ms} ms");
    }
    if let Some(dns) = chain().find_map(|e| e.downcast_ref::<DnsFailure>()) {
        return format!("cannot reach {url_text}: {dns}");
    }
    let cause = chain()
        .find_map(|e| e.downcast_ref::<std::io::Error>())
        .map(io_reason)
        .unwrap_or_else(|| innermost(error));
    if error.is_connect() {
        format!("cannot reach {url_text}: {cause}")
    } else if error.is_redirect() {
        format!("redirect from {url_text} failed: {cause}")
    } else if error.is_body() || error.is_decode() {
        format!("error reading the response from {url_text}: {cause}")
    } else {
        format!("request to {url_text} failed: {cause}")
    }
}

fn io_reason(error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        ErrorKind::ConnectionReset => "connection reset by the server".to_owned(),
        ErrorKind::ConnectionAborted => "connection aborted".to_owned(),
        ErrorKind::TimedOut => "connection timed out".to_owned(),
        ErrorKind::HostUnreachable => "host unreachable".to_owned(),
        ErrorKind::NetworkUnreachable => "network unreachable".to_owned(),
        ErrorKind::UnexpectedEof => "connection closed unexpectedly".to_owned(),
        _ => error.to_string(),
    }
}

/// `error` and everything it wraps, outermost first.
fn sources<'a>(
    error: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |e: &&'a (dyn StdError + 'static)| {
        (*e).source()
    })
}

/// The message of the innermost wrapped error (reqwest's own messages name the URL).
fn innermost(error: &reqwest::Error) -> String {
    sources(error)
        .last()
        .map(|e| e.to_string())
        .unwrap_or_else(|| error.to_string())
}

fn error_chain(error: &(dyn StdError + 'static)) -> String {
    sources(error)
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_URL_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::{Expectations, StepAction};
    use serde_json::json;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// Builds the response to a request (its head and body as text); `None` never answers.
    type Responder = dyn Fn(&str) -> Option<Vec<u8>> + Send + Sync;

    /// A tiny HTTP/1.1 server on 127.0.0.1 answering canned responses, one per connection.
    struct TestServer {
        addr: SocketAddr,
        requests: Arc<Mutex<Vec<String>>>,
    }

    impl TestServer {
        async fn start(respond: impl Fn(&str) -> Option<Vec<u8>> + Send + Sync + 'static) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let requests = Arc::new(Mutex::new(Vec::new()));
            let respond: Arc<Responder> = Arc::new(respond);
            let seen = Arc::clone(&requests);
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let respond = Arc::clone(&respond);
                    let seen = Arc::clone(&seen);
                    tokio::spawn(async move { serve_one(stream, &*respond, &seen).await });
                }
            });
            TestServer { addr, requests }
        }

        fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }

        fn requests(&self) -> Vec<String> {
            self.requests.lock().unwrap().clone()
        }
    }

    async fn serve_one(mut stream: TcpStream, respond: &Responder, seen: &Mutex<Vec<String>>) {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        let head_end = loop {
            if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        };
        let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        while data.len() < head_end + length {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        }
        let request = String::from_utf8_lossy(&data).into_owned();
        seen.lock().unwrap().push(request.clone());
        match respond(&request) {
            Some(response) => {
                let _ = stream.write_all(&response).await;
                let _ = stream.shutdown().await;
            }
            None => {
                // Never answer; keep the connection open until the client gives up.
                let _ = stream.read(&mut buf).await;
            }
        }
    }

    fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n",
            body.len()
        );
        for (name, value) in headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        out.extend_from_slice(body);
        out
    }

    fn json_response(status: &str, body: &Value) -> Vec<u8> {
        response(
            status,
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        )
    }

    fn step(http: Value, expect: Option<Value>, capture: Value) -> StepDefinition {
        StepDefinition {
            name: "step".into(),
            action: StepAction::Http,
            http: Some(serde_json::from_value(http).unwrap()),
            expect: expect.map(|e| serde_json::from_value::<Expectations>(e).unwrap()),
            capture: serde_json::from_value(capture).unwrap(),
            continue_on_failure: false,
        }
    }

    fn get(url: &str) -> StepDefinition {
        step(json!({"method": "GET", "url": url}), None, json!({}))
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn lenient() -> HttpStepRunner {
        HttpStepRunner::new(TargetPolicy {
            allow_private: true,
        })
    }

    fn strict() -> HttpStepRunner {
        HttpStepRunner::new(TargetPolicy {
            allow_private: false,
        })
    }

    fn message(outcome: &StepOutcome) -> &str {
        assert_eq!(outcome.verdict, StepVerdict::Failed, "{outcome:?}");
        outcome.message.as_deref().unwrap()
    }

    #[tokio::test]
    async fn passes_and_captures() {
        let server = TestServer::start(|request| {
            assert!(request.starts_with("POST /login?tenant=acme HTTP/1.1\r\n"));
            Some(json_response(
                "200 OK",
                &json!({"status": "ok", "access_token": "tok-123", "user": {"id": 7}}),
            ))
        })
        .await;
        let step = step(
            json!({
                "method": "POST",
                "url": "{{base_url}}/login?tenant={{ tenant }}",
                "headers": {"x-trace": "trace-{{tenant}}"},
                "body": {"user": "{{tenant}}-admin", "n": 1}
            }),
            Some(json!({
                "status": 200,
                "json": {"/status": "ok"},
                "body_contains": "tok-",
                "headers": {"Content-Type": "application/json"},
                "max_duration_ms": 10_000
            })),
            json!({"token": "/access_token", "user_id": "/user/id"}),
        );
        let vars = vars(&[("base_url", &server.url("")), ("tenant", "acme")]);
        let outcome = lenient().run(&step, &vars).await;

        assert_eq!(outcome.verdict, StepVerdict::Passed, "{outcome:?}");
        assert_eq!(outcome.message, None);
        assert_eq!(
            outcome.captures,
            BTreeMap::from([
                ("token".to_owned(), "tok-123".to_owned()),
                ("user_id".to_owned(), "7".to_owned()),
            ])
        );
        let output = outcome.output.as_deref().unwrap();
        let first_line = output.lines().next().unwrap();
        assert!(
            first_line.starts_with(&format!(
                "POST {}/login?tenant=acme -> 200 OK in ",
                server.url("")
            )),
            "{output}"
        );
        assert!(first_line.ends_with(" ms"), "{output}");
        assert!(output.contains("\"access_token\":\"tok-123\""), "{output}");
        assert!(outcome.finished_at >= outcome.started_at);
        assert!(outcome.duration_ms < 10_000);

        // The request was templated and sent as JSON.
        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        let request = requests[0].to_ascii_lowercase();
        assert!(request.contains("\r\nx-trace: trace-acme\r\n"), "{request}");
        assert!(
            request.contains("\r\ncontent-type: application/json\r\n"),
            "{request}"
        );
        assert!(
            request.contains(&format!(
                "\r\nuser-agent: runledger/{}\r\n",
                env!("CARGO_PKG_VERSION")
            )),
            "{request}"
        );
        let body = &requests[0][requests[0].find("\r\n\r\n").unwrap() + 4..];
        assert_eq!(
            serde_json::from_str::<Value>(body).unwrap(),
            json!({"user": "acme-admin", "n": 1})
        );
    }

    #[tokio::test]
    async fn string_bodies_are_sent_as_is_with_the_steps_content_type() {
        let server = TestServer::start(|_| Some(response("204 No Content", &[], b""))).await;
        let step = step(
            json!({
                "method": "PUT",
                "url": server.url("/raw"),
                "headers": {"Content-Type": "text/plain"},
                "body": "hello {{who}}"
            }),
            None,
            json!({}),
        );
        let outcome = lenient().run(&step, &vars(&[("who", "world")])).await;
        assert_eq!(outcome.verdict, StepVerdict::Passed, "{outcome:?}");
        let request = &server.requests()[0];
        assert!(
            request
                .to_ascii_lowercase()
                .contains("content-type: text/plain\r\n")
        );
        assert!(!request.contains("application/json"), "{request}");
        assert!(request.ends_with("\r\n\r\nhello world"), "{request}");
    }

    #[tokio::test]
    async fn failed_expectations_are_all_reported_and_nothing_is_captured() {
        let server = TestServer::start(|_| {
            Some(json_response(
                "503 Service Unavailable",
                &json!({"status": "down", "access_token": "t"}),
            ))
        })
        .await;
        let step = step(
            json!({"method": "GET", "url": server.url("/health")}),
            Some(json!({"status": 200, "json": {"/status": "ok"}})),
            json!({"token": "/access_token", "missing": "/nope"}),
        );
        let outcome = lenient().run(&step, &BTreeMap::new()).await;
        assert_eq!(
            message(&outcome),
            "expected status 200, got 503; /status: expected \"ok\", got \"down\"; \
             capture `missing`: /nope not found in the response body"
        );
        assert!(outcome.captures.is_empty());
        let output = outcome.output.unwrap();
        assert!(
            output.starts_with(&format!(
                "GET {} -> 503 Service Unavailable in ",
                server.url("/health")
            )),
            "{output}"
        );
    }

    #[tokio::test]
    async fn default_expectation_is_a_2xx_status() {
        let server = TestServer::start(|_| Some(response("404 Not Found", &[], b"nope"))).await;
        let outcome = lenient()
            .run(&get(&server.url("/x")), &BTreeMap::new())
            .await;
        assert_eq!(message(&outcome), "expected a 2xx status, got 404");
        assert!(outcome.output.unwrap().ends_with("\nnope"));
    }

    #[tokio::test]
    async fn capture_pointer_missing_fails_the_step() {
        let server = TestServer::start(|_| Some(json_response("200 OK", &json!({"a": 1})))).await;
        let step = step(
            json!({"method": "GET", "url": server.url("/")}),
            None,
            json!({"token": "/access_token"}),
        );
        let outcome = lenient().run(&step, &BTreeMap::new()).await;
        assert_eq!(
            message(&outcome),
            "capture `token`: /access_token not found in the response body"
        );
        assert!(outcome.captures.is_empty());
    }

    #[tokio::test]
    async fn unreachable_port_fails_with_cannot_reach() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let url = format!("http://{addr}/x");
        let outcome = lenient().run(&get(&url), &BTreeMap::new()).await;
        assert_eq!(
            message(&outcome),
            format!("cannot reach {url}: connection refused")
        );
        assert_eq!(outcome.output, None);
        assert!(outcome.captures.is_empty());
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        let server = TestServer::start(|_| None).await;
        let step = step(
            json!({"method": "GET", "url": server.url("/slow"), "timeout_ms": 200}),
            None,
            json!({}),
        );
        let clock = Instant::now();
        let outcome = lenient().run(&step, &BTreeMap::new()).await;
        assert_eq!(message(&outcome), "timed out after 200 ms");
        let waited = clock.elapsed();
        assert!(waited >= Duration::from_millis(200), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        assert!(outcome.duration_ms >= 200);
        assert_eq!(
            server.requests().len(),
            1,
            "the request did reach the server"
        );
    }

    #[tokio::test]
    async fn the_timeout_covers_reading_the_body() {
        // The head promises 100 bytes of body; 7 come, then nothing, with the socket open.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
                .await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let step = step(
            json!({"method": "GET", "url": format!("http://{addr}/"), "timeout_ms": 300}),
            None,
            json!({}),
        );
        let outcome = lenient().run(&step, &BTreeMap::new()).await;
        assert_eq!(message(&outcome), "timed out after 300 ms");
    }

    #[tokio::test]
    async fn private_targets_are_refused_when_not_allowed() {
        let server = TestServer::start(|_| Some(response("200 OK", &[], b"ok"))).await;
        // An IP literal, refused before any connection.
        let outcome = strict().run(&get(&server.url("/")), &BTreeMap::new()).await;
        assert_eq!(
            message(&outcome),
            "target 127.0.0.1 is a loopback address; private targets are not allowed"
        );
        // A name resolving to loopback, refused by the resolver.
        let url = format!("http://localhost:{}/", server.addr.port());
        let outcome = strict().run(&get(&url), &BTreeMap::new()).await;
        let text = message(&outcome);
        assert!(
            text.starts_with("host `localhost` resolves only to refused addresses"),
            "{text}"
        );
        assert!(text.contains("private targets are not allowed"), "{text}");
        assert!(
            server.requests().is_empty(),
            "no request may reach the server"
        );

        // The same name is fine when private targets are allowed.
        let outcome = lenient().run(&get(&url), &BTreeMap::new()).await;
        assert_eq!(outcome.verdict, StepVerdict::Passed, "{outcome:?}");
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn metadata_address_is_refused_even_when_private_targets_are_allowed() {
        let clock = Instant::now();
        let outcome = lenient()
            .run(
                &get("http://169.254.169.254/latest/meta-data/"),
                &BTreeMap::new(),
            )
            .await;
        assert_eq!(
            message(&outcome),
            "target 169.254.169.254 is a link-local/cloud metadata address and is always refused"
        );
        // Refused up front: no connection attempt, no output, no waiting for a timeout.
        assert_eq!(outcome.output, None);
        assert!(clock.elapsed() < Duration::from_secs(2));

        let outcome = lenient()
            .run(&get("http://[fd00:ec2::254]/latest/"), &BTreeMap::new())
            .await;
        assert!(message(&outcome).contains("always refused"));
    }

    #[tokio::test]
    async fn redirects_are_followed_but_not_to_refused_targets() {
        let server = TestServer::start(|request| {
            let path = request.split(' ').nth(1).unwrap_or("");
            Some(match path {
                "/start" => response("302 Found", &[("location", "/end")], b""),
                "/end" => response("200 OK", &[], b"arrived"),
                "/metadata" => response(
                    "302 Found",
                    &[("location", "http://169.254.169.254/latest/meta-data/")],
                    b"",
                ),
                "/loop" => response("302 Found", &[("location", "/loop")], b""),
                _ => response("404 Not Found", &[], b""),
            })
        })
        .await;
        let runner = lenient();

        let outcome = runner
            .run(&get(&server.url("/start")), &BTreeMap::new())
            .await;
        assert_eq!(outcome.verdict, StepVerdict::Passed, "{outcome:?}");
        let output = outcome.output.unwrap();
        assert!(output.contains("(redirected to "), "{output}");
        assert!(output.ends_with("\narrived"), "{output}");

        let clock = Instant::now();
        let outcome = runner
            .run(&get(&server.url("/metadata")), &BTreeMap::new())
            .await;
        assert_eq!(
            message(&outcome),
            "redirect refused: target 169.254.169.254 is a link-local/cloud metadata \
             address and is always refused"
        );
        assert!(clock.elapsed() < Duration::from_secs(2));

        let before = server.requests().len();
        let outcome = runner
            .run(&get(&server.url("/loop")), &BTreeMap::new())
            .await;
        let text = message(&outcome);
        assert!(text.contains("too many redirects"), "{text}");
        // The original request and 5 redirects.
        assert_eq!(server.requests().len() - before, 1 + MAX_REDIRECTS);
    }

    #[tokio::test]
    async fn dns_failures_fail_with_cannot_reach() {
        let outcome = lenient()
            .run(&get("http://no-such-host.invalid/x"), &BTreeMap::new())
            .await;
        let text = message(&outcome);
        assert!(
            text.starts_with(
                "cannot reach http://no-such-host.invalid/x: cannot resolve host `no-such-host.invalid`: "
            ),
            "{text}"
        );
    }

    #[tokio::test]
    async fn template_errors_fail_the_step() {
        let outcome = lenient()
            .run(&get("{{base_url}}/health"), &BTreeMap::new())
            .await;
        assert_eq!(message(&outcome), "unknown variable `base_url` in the url");
        assert_eq!(outcome.output, None);

        let step = step(
            json!({"method": "POST", "url": "http://127.0.0.1:1/", "body": {"a": ["{{secret}}"]}}),
            None,
            json!({}),
        );
        let outcome = lenient().run(&step, &BTreeMap::new()).await;
        assert_eq!(message(&outcome), "unknown variable `secret` in the body");
    }

    #[tokio::test]
    async fn invalid_urls_and_schemes_fail_the_step() {
        let outcome = lenient()
            .run(&get("{{u}}"), &vars(&[("u", "not a url")]))
            .await;
        assert!(
            message(&outcome).starts_with("invalid URL `not a url`: "),
            "{outcome:?}"
        );
        let outcome = lenient()
            .run(&get("{{u}}"), &vars(&[("u", "file:///etc/passwd")]))
            .await;
        assert_eq!(
            message(&outcome),
            "URL scheme `file` is not allowed; only http and https are"
        );
    }

    #[tokio::test]
    async fn a_step_without_a_request_fails() {
        let step = StepDefinition {
            name: "lonely".into(),
            action: StepAction::Http,
            http: None,
            expect: None,
            capture: BTreeMap::new(),
            continue_on_failure: false,
        };
        let outcome = lenient().run(&step, &BTreeMap::new()).await;
        assert_eq!(
            message(&outcome),
            "step `lonely` has no `http` request to send"
        );
    }

    #[tokio::test]
    async fn large_bodies_are_read_up_to_1_mib() {
        let server = TestServer::start(|_| {
            let mut body = vec![b'a'; 3 * MAX_BODY_BYTES];
            body[0] = b'{';
            Some(response("200 OK", &[], &body))
        })
        .await;
        let step = step(
            json!({"method": "GET", "url": server.url("/big")}),
            Some(json!({"body_contains": "aaaa"})),
            json!({}),
        );
        let outcome = lenient().run(&step, &BTreeMap::new()).await;
        assert_eq!(outcome.verdict, StepVerdict::Passed, "{outcome:?}");
        let output = outcome.output.unwrap();
        assert!(
            output.contains("[response body longer than 1048576 bytes; the rest was not read]"),
            "{}",
            &output[..200]
        );
        assert!(
            output.ends_with(&format!(
                "[... {} more bytes not shown]",
                MAX_BODY_BYTES - OUTPUT_BODY_BYTES
            )),
            "{}",
            &output[output.len() - 100..]
        );
        assert!(output.len() < OUTPUT_BODY_BYTES + 400);
    }

    /// The outcome of a step the runner refused as over one of its limits: its message.
    fn over_limit(outcome: &StepOutcome) -> &str {
        assert_eq!(outcome.verdict, StepVerdict::Error, "{outcome:?}");
        assert_eq!(outcome.output, None, "nothing was sent");
        assert!(outcome.captures.is_empty());
        outcome.message.as_deref().unwrap()
    }

    /// Nothing listens there: a step that got as far as sending would fail to connect.
    const NOWHERE: &str = "http://127.0.0.1:1/";

    #[tokio::test]
    async fn a_small_case_cannot_render_a_huge_header() {
        // 64 KiB of test case: 5,000 references to a 40,000-character variable would render
        // a 200 MB header (and did, before the caps).
        let step = step(
            json!({"method": "GET", "url": NOWHERE, "headers": {"a": "{{v}}".repeat(5_000)}}),
            None,
            json!({}),
        );
        let outcome = lenient()
            .run(&step, &vars(&[("v", &"x".repeat(40_000))]))
            .await;
        assert_eq!(
            over_limit(&outcome),
            "the rendered header `a` exceeds 64 KiB"
        );
    }

    #[tokio::test]
    async fn headers_are_capped_together_and_urls_alone() {
        let v = "x".repeat(20_000);
        let headers: BTreeMap<String, String> = (0..4)
            .map(|i| (format!("h{i}"), "{{v}}".to_owned()))
            .collect();
        let four = step(
            json!({"method": "GET", "url": NOWHERE, "headers": headers}),
            None,
            json!({}),
        );
        let outcome = lenient().run(&four, &vars(&[("v", &v)])).await;
        assert_eq!(
            over_limit(&outcome),
            "the rendered headers exceed 64 KiB together"
        );
        // Three of them fit.
        let headers: BTreeMap<String, String> = (0..3)
            .map(|i| (format!("h{i}"), "{{v}}".to_owned()))
            .collect();
        let three = step(
            json!({"method": "GET", "url": NOWHERE, "headers": headers}),
            None,
            json!({}),
        );
        let outcome = lenient().run(&three, &vars(&[("v", &v)])).await;
        assert!(
            message(&outcome).starts_with("cannot reach "),
            "{outcome:?}"
        );

        let outcome = lenient()
            .run(
                &get(&format!("{NOWHERE}?q={{{{v}}}}")),
                &vars(&[("v", &"x".repeat(8 * 1024))]),
            )
            .await;
        assert_eq!(over_limit(&outcome), "the rendered URL exceeds 8 KiB");
    }

    #[tokio::test]
    async fn bodies_are_capped_as_sent() {
        let v = "x".repeat(40_000);
        let text_body = step(
            json!({"method": "POST", "url": NOWHERE, "body": "{{v}}".repeat(30)}),
            None,
            json!({}),
        );
        let outcome = lenient().run(&text_body, &vars(&[("v", &v)])).await;
        assert_eq!(over_limit(&outcome), "the rendered body exceeds 1 MiB");

        let json_body = step(
            json!({"method": "POST", "url": NOWHERE, "body": {"a": vec!["{{v}}"; 30]}}),
            None,
            json!({}),
        );
        let outcome = lenient().run(&json_body, &vars(&[("v", &v)])).await;
        assert_eq!(over_limit(&outcome), "the rendered body exceeds 1 MiB");

        // The leaves fit (5 x 200,000 bytes), but each control character is sent as six
        // (`\u0001`): the encoded body is what counts.
        let json_body = step(
            json!({"method": "POST", "url": NOWHERE, "body": {"a": vec!["{{v}}"; 5]}}),
            None,
            json!({}),
        );
        let outcome = lenient()
            .run(&json_body, &vars(&[("v", &"\u{1}".repeat(200_000))]))
            .await;
        assert_eq!(over_limit(&outcome), "the rendered body exceeds 1 MiB");
    }

    #[test]
    fn the_step_cap_takes_what_every_part_rendered() {
        // The parts' own caps fit in the step's, so it is checked here with little left.
        let vars = vars(&[("v", "0123456789")]);
        let mut budget = Budget {
            headers: MAX_RENDERED_HEADERS_BYTES,
            step: 25,
        };
        assert_eq!(
            budget.render(Part::Url, "{{v}}", &vars).ok().unwrap(),
            "0123456789"
        );
        assert_eq!(
            budget
                .render(Part::Header("a"), "{{v}}", &vars)
                .ok()
                .unwrap(),
            "0123456789"
        );
        assert_eq!(
            (budget.step, budget.headers),
            (5, MAX_RENDERED_HEADERS_BYTES - 10)
        );
        match budget.render(Part::Body, "{{v}}", &vars) {
            Err(Abort::OverLimit(message)) => assert_eq!(
                message,
                "the rendered URL, headers and body exceed 2 MiB together"
            ),
            other => panic!("{:?}", other.map_err(|_| "not over the limit")),
        }
        // Unknown variables still fail the step, naming where.
        match budget.render(Part::Header("x-b"), "{{nope}}", &vars) {
            Err(Abort::Failed(message)) => {
                assert_eq!(message, "unknown variable `nope` in the header `x-b`")
            }
            other => panic!("{:?}", other.map_err(|_| "not failed")),
        }
    }

    #[tokio::test]
    async fn captures_cannot_pile_up_past_the_variables_cap() {
        let big = "x".repeat(600_000);
        let server = TestServer::start(move |_| {
            Some(json_response("200 OK", &json!({"a": big, "small": "ok"})))
        })
        .await;
        // Seven copies of a 600 KB value: over 4 MiB.
        let wanted: BTreeMap<String, String> =
            (0..7).map(|i| (format!("c{i}"), "/a".to_owned())).collect();
        let seven = step(
            json!({"method": "GET", "url": server.url("/")}),
            None,
            json!(wanted),
        );
        let outcome = lenient().run(&seven, &BTreeMap::new()).await;
        assert_eq!(outcome.verdict, StepVerdict::Error, "{:?}", outcome.message);
        assert_eq!(
            outcome.message.as_deref(),
            Some("capture `c6`: the run's variables would exceed 4 MiB")
        );
        assert!(outcome.captures.is_empty());
        assert!(outcome.output.is_some(), "the response came");

        // What the run already holds counts: six fit alone, not next to 1 MB held.
        let wanted: BTreeMap<String, String> =
            (0..6).map(|i| (format!("c{i}"), "/a".to_owned())).collect();
        let six = step(
            json!({"method": "GET", "url": server.url("/")}),
            None,
            json!(wanted),
        );
        let outcome = lenient().run(&six, &BTreeMap::new()).await;
        assert_eq!(
            outcome.verdict,
            StepVerdict::Passed,
            "{:?}",
            outcome.message
        );
        assert_eq!(outcome.captures.len(), 6);
        let held = vars(&[("earlier", &"y".repeat(1_000_000))]);
        let outcome = lenient().run(&six, &held).await;
        assert_eq!(
            outcome.message.as_deref(),
            Some("capture `c5`: the run's variables would exceed 4 MiB")
        );
        // Capturing a name again replaces its value rather than adding to it.
        let held = vars(&[("c0", &"y".repeat(1_000_000))]);
        let outcome = lenient().run(&six, &held).await;
        assert_eq!(
            outcome.verdict,
            StepVerdict::Passed,
            "{:?}",
            outcome.message
        );
    }

    #[tokio::test]
    async fn captured_values_are_rendered_under_the_same_caps() {
        let big = "x".repeat(100_000);
        let server =
            TestServer::start(move |_| Some(json_response("200 OK", &json!({"a": big})))).await;
        let first = step(
            json!({"method": "GET", "url": server.url("/")}),
            None,
            json!({"token": "/a"}),
        );
        let outcome = lenient().run(&first, &BTreeMap::new()).await;
        assert_eq!(
            outcome.verdict,
            StepVerdict::Passed,
            "{:?}",
            outcome.message
        );
        // The next step sees the capture as any variable, and its header is capped.
        let next = step(
            json!({"method": "GET", "url": server.url("/"), "headers": {"authorization": "Bearer {{token}}"}}),
            None,
            json!({}),
        );
        let outcome = lenient().run(&next, &outcome.captures).await;
        assert_eq!(
            over_limit(&outcome),
            "the rendered header `authorization` exceeds 64 KiB"
        );
        assert_eq!(server.requests().len(), 1, "the second step sent nothing");
    }

    #[test]
    fn lossy_prefix_does_not_split_characters() {
        let text = "ééé"; // 2 bytes each
        assert_eq!(lossy_prefix(text.as_bytes(), 3), "é");
        assert_eq!(lossy_prefix(text.as_bytes(), 4), "éé");
        assert_eq!(lossy_prefix(b"ab\xffcd", 4), "ab\u{fffd}c");
    }

    #[test]
    fn runner_builds_without_panicking() {
        let runner = lenient();
        assert!(runner.client.is_ok(), "{:?}", runner.client.as_ref().err());
    }
}
