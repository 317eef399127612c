//! The server harness for the end-to-end tests: runs the real `runledger-local` binary on a
//! loopback port and talks to it over HTTP.

use crate::tokens::{SECRET, mint_token};
use crate::wire::{encode, id_of, is_terminal};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long to wait for the server to print its address.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// The default bound for polling the server for a state.
pub const POLL_DEADLINE: Duration = Duration::from_secs(20);

/// How [`Server::launch`] starts the process, beyond its data dir.
pub struct Launch<'a> {
    /// The address to listen on.
    pub listen: &'a str,
    /// Adds or overrides variables (an empty value counts as unset, as for every
    /// `RUNLEDGER_*` variable).
    pub env: &'a [(&'a str, &'a str)],
    /// A command that runs the server (e.g. `["prlimit", "--nofile=256:256"]`): the binary and
    /// its arguments follow it.
    pub wrapper: &'a [&'a str],
    /// Whether to name the `serve` subcommand (it is the default).
    pub subcommand: bool,
}

impl Default for Launch<'_> {
    fn default() -> Self {
        Launch {
            listen: "127.0.0.1:0",
            env: &[],
            wrapper: &[],
            subcommand: true,
        }
    }
}

/// A running `runledger-local serve`; killed (SIGKILL) when dropped.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
    /// `http://127.0.0.1:PORT/api/v1`.
    pub api_url: String,
    /// The token the server printed for the user `local`.
    pub printed_token: String,
    /// The dashboard link the server printed (`http://127.0.0.1:PORT/#token=...`).
    pub printed_dashboard_link: String,
    pub data_dir: PathBuf,
    log: tempfile::NamedTempFile,
}

impl Server {
    /// Starts a server on `data_dir` with the default test settings.
    pub fn start(data_dir: &Path) -> Server {
        Server::start_with(data_dir, &[])
    }

    /// Starts a server on `data_dir`; `env` adds or overrides `RUNLEDGER_*` variables.
    pub fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        Server::start_at(data_dir, "127.0.0.1:0", env)
    }

    /// The address this server listens on (`127.0.0.1:PORT`), to restart on the same one.
    pub fn address(&self) -> &str {
        self.origin
            .strip_prefix("http://")
            .expect("an http:// origin")
    }

    /// Starts a server on `data_dir` listening on `listen`.
    pub fn start_at(data_dir: &Path, listen: &str, env: &[(&str, &str)]) -> Server {
        Server::launch(
            data_dir,
            Launch {
                listen,
                env,
                ..Launch::default()
            },
        )
    }

    /// Starts a server on `data_dir` as `launch` says.
    pub fn launch(data_dir: &Path, launch: Launch<'_>) -> Server {
        let log = tempfile::NamedTempFile::new().expect("a temp file for the server log");
        let stderr = log.reopen().expect("reopen the log file");
        let mut command = match launch.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(local_binary());
                command
            }
            None => Command::new(local_binary()),
        };
        if launch.subcommand {
            command.arg("serve");
        }
        command
            .arg("--listen")
            .arg(launch.listen)
            .arg("--data-dir")
            .arg(data_dir)
            .env_remove("RUNLEDGER_LISTEN")
            .env_remove("RUNLEDGER_DATA_DIR")
            .env_remove("RUNLEDGER_JWT_ISSUER")
            .env_remove("RUNLEDGER_JWT_AUDIENCE")
            .env_remove("RUNLEDGER_LOG_FORMAT")
            .env_remove("NO_COLOR")
            .env("RUNLEDGER_JWT_SECRET", SECRET)
            .env("RUNLEDGER_SWEEP_INTERVAL_MS", "200")
            .env("RUNLEDGER_WORKERS", "4")
            .env("RUNLEDGER_ALLOW_PRIVATE_TARGETS", "true")
            .env("RUNLEDGER_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        for (name, value) in launch.env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("spawn runledger-local");
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            // Keeps draining stdout until the process exits, so it never blocks on a pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = lines_tx.send(line);
            }
        });
        let mut server = Server {
            child: Some(child),
            origin: String::new(),
            api_url: String::new(),
            printed_token: String::new(),
            printed_dashboard_link: String::new(),
            data_dir: data_dir.to_owned(),
            log,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some((_, link)) =
                        line.split_once("dashboard (signs you in as `local`): ")
                    {
                        server.printed_dashboard_link = link.to_owned();
                    }
                    if let Some(rest) = line.strip_prefix("export RUNLEDGER_URL=") {
                        let mut parts = rest.split_whitespace();
                        let url = parts.next().expect("a URL after RUNLEDGER_URL=");
                        let token = parts
                            .next()
                            .and_then(|p| p.strip_prefix("RUNLEDGER_TOKEN="))
                            .expect("RUNLEDGER_TOKEN= on the export line");
                        server.api_url = url.to_owned();
                        server.origin = url
                            .strip_suffix("/api/v1")
                            .expect("the URL ends in /api/v1")
                            .to_owned();
                        server.printed_token = token.to_owned();
                        return server;
                    }
                }
                Err(_) => {
                    let status = server
                        .child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten());
                    panic!(
                        "runledger-local did not print its address within {READY_TIMEOUT:?} \
                         (exit status: {status:?}); log:\n{}",
                        server.log_text()
                    );
                }
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the child is running").id()
    }

    /// A client for `user` (a token minted with the shared secret).
    pub fn client(&self, user: &str) -> Api {
        Api::new(&self.api_url, &mint_token(user, false))
    }

    /// Sends SIGKILL and reaps the process: no graceful shutdown at all.
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL the server");
            child.wait().expect("reap the server");
        }
    }

    /// Sends SIGTERM and waits up to `limit` for the process to exit; returns its status,
    /// or `None` when it is still running after `limit` (it is then killed).
    pub async fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        let pid = self.pid();
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .expect("run kill -TERM");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + limit;
        loop {
            let child = self.child.as_mut().expect("the child is running");
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                self.kill_hard();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last 16 KiB of the server's stderr so far (its log).
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&self.log_bytes(16 * 1024)).into_owned()
    }

    /// The server's whole stderr so far, byte for byte.
    pub fn whole_log(&self) -> Vec<u8> {
        self.log_bytes(u64::MAX)
    }

    fn log_bytes(&self, tail: u64) -> Vec<u8> {
        let mut file = match self.log.reopen() {
            Ok(file) => file,
            Err(e) => return format!("(log unavailable: {e})").into_bytes(),
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(tail)));
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        bytes
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- runledger-local log ({}) ----\n{}",
                self.api_url,
                self.log_text()
            );
        }
    }
}

/// The `runledger-local` executable that cargo built for the running test: the one
/// `CARGO_BIN_EXE_runledger-local` names when set at run time, else the one beside the test
/// executable's directory (`target/<profile>/deps/<test>` next to `target/<profile>/`).
pub fn local_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CARGO_BIN_EXE_runledger-local") {
        return PathBuf::from(path);
    }
    let test = std::env::current_exe().expect("the test executable's path");
    let binary = test
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join(format!("runledger-local{}", std::env::consts::EXE_SUFFIX)))
        .expect("the test executable sits in target/<profile>/deps");
    assert!(
        binary.exists(),
        "{} does not exist: run the test through `cargo test -p runledger-local`",
        binary.display()
    );
    binary
}

/// One HTTP response: status, raw text and the body parsed as JSON (`Null` if not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub text: String,
    pub body: Value,
}

impl Resp {
    /// Asserts the status code and returns the body.
    #[track_caller]
    pub fn expect(self, status: u16, what: &str) -> Value {
        assert_eq!(
            self.status, status,
            "{what}: expected HTTP {status}, got {} with body {}",
            self.status, self.text
        );
        self.body
    }

    /// Asserts an RFC 9457 problem with this status and `code`.
    #[track_caller]
    pub fn expect_problem(self, status: u16, code: &str, what: &str) -> Value {
        assert!(
            self.content_type.starts_with("application/problem+json"),
            "{what}: expected a problem+json body, got content-type {:?}: {}",
            self.content_type,
            self.text
        );
        let body = self.expect(status, what);
        assert_eq!(
            body["status"],
            json!(status),
            "{what}: problem status: {body}"
        );
        assert_eq!(body["code"], json!(code), "{what}: problem code: {body}");
        body
    }
}

/// A client of the API as one user.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    pub fn new(api_url: &str, token: &str) -> Api {
        runledger::crypto::install();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client");
        Api {
            http,
            base: api_url.to_owned(),
            token: token.to_owned(),
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(reqwest::Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(reqwest::Method::POST, path, Some(body), &[])
            .await
    }

    pub async fn post_with(&self, path: &str, body: Value, headers: &[(&str, &str)]) -> Resp {
        self.send(reqwest::Method::POST, path, Some(body), headers)
            .await
    }

    /// `POST` with no body at all.
    pub async fn post_empty(&self, path: &str) -> Resp {
        self.send(reqwest::Method::POST, path, None, &[]).await
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let url = format!("{}{}", self.base, path);
        self.try_send(method.clone(), path, body, headers)
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
    }

    /// Like [`Api::send`], but a failed exchange (refused, reset) is an `Err`.
    pub async fn try_send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Result<Resp, String> {
        let url = format!("{}{}", self.base, path);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .header("authorization", format!("Bearer {}", self.token));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).expect("serialize the body"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        exchange(request, &format!("{method} {url}")).await
    }

    /// Posts a file as it is (a test report, say) with its content type and `headers`.
    pub async fn post_file(
        &self,
        path: &str,
        content_type: &str,
        file: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let url = format!("{}{}", self.base, path);
        let mut request = self
            .http
            .post(&url)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", content_type)
            .body(file);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        exchange(request, &format!("POST {url}"))
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"))
    }

    // ----- catalog and executions -------------------------------------------------------

    /// Creates a test case; returns its id.
    pub async fn create_case(&self, case: Value) -> String {
        let body = self
            .post("/test-cases", case)
            .await
            .expect(201, "create a test case");
        id_of(&body)
    }

    /// Creates a test suite; returns its id.
    pub async fn create_suite(&self, suite: Value) -> String {
        let body = self
            .post("/test-suites", suite)
            .await
            .expect(201, "create a test suite");
        id_of(&body)
    }

    /// Starts a case execution, asserting `202`; returns the trace.
    pub async fn start_case(&self, test_case_id: &str, config: Option<Value>) -> Value {
        let mut body = json!({"test_case_id": test_case_id});
        if let Some(config) = config {
            body["config"] = config;
        }
        self.post("/executions/case", body)
            .await
            .expect(202, "start a case execution")
    }

    /// Starts a suite execution, asserting `202`; returns the trace.
    pub async fn start_suite(&self, test_suite_id: &str, config: Option<Value>) -> Value {
        let mut body = json!({"test_suite_id": test_suite_id});
        if let Some(config) = config {
            body["config"] = config;
        }
        self.post("/executions/suite", body)
            .await
            .expect(202, "start a suite execution")
    }

    pub async fn execution(&self, id: &str) -> Value {
        self.get(&format!("/executions/{id}"))
            .await
            .expect(200, "get an execution")
    }

    pub async fn history(&self, id: &str) -> Vec<Value> {
        let body = self
            .get(&format!("/executions/{id}/history"))
            .await
            .expect(200, "get the history");
        body["items"].as_array().expect("history items").clone()
    }

    pub async fn children(&self, id: &str) -> Vec<Value> {
        let body = self
            .get(&format!("/executions/{id}/children?limit=200"))
            .await
            .expect(200, "list the children");
        assert_eq!(body["next_cursor"], Value::Null, "one page of children");
        body["items"].as_array().expect("children items").clone()
    }

    /// Reports step results, asserting `200`; returns the response body.
    pub async fn report(&self, id: &str, steps: Value) -> Value {
        self.post(&format!("/executions/{id}/steps"), json!({"steps": steps}))
            .await
            .expect(200, "report steps")
    }

    /// Every step of an execution, paging through `/steps`.
    pub async fn all_steps(&self, id: &str, limit: usize) -> Vec<Value> {
        let mut steps = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10_000 {
            let path = match &cursor {
                Some(c) => format!("/executions/{id}/steps?limit={limit}&cursor={}", encode(c)),
                None => format!("/executions/{id}/steps?limit={limit}"),
            };
            let page = self.get(&path).await.expect(200, "list steps");
            steps.extend(
                page["items"]
                    .as_array()
                    .expect("step items")
                    .iter()
                    .cloned(),
            );
            match &page["next_cursor"] {
                Value::String(next) => cursor = Some(next.clone()),
                Value::Null => return steps,
                other => panic!("next_cursor is neither a string nor null: {other}"),
            }
        }
        panic!("paging {id}'s steps never ended");
    }

    /// Polls the execution until `done` holds for it, for at most `limit`.
    pub async fn wait_until(
        &self,
        id: &str,
        limit: Duration,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let execution = self.execution(id).await;
            if done(&execution) {
                return execution;
            }
            if Instant::now() >= deadline {
                panic!("{what}: not reached within {limit:?}; last seen: {execution:#}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls until the execution is terminal; returns it.
    pub async fn wait_terminal(&self, id: &str) -> Value {
        self.wait_until(
            id,
            POLL_DEADLINE,
            "execution reaches a terminal status",
            |e| is_terminal(&e["status"]),
        )
        .await
    }
}

/// Sends a request and reads its answer (JSON parsed when it is JSON); `what` names it.
async fn exchange(request: reqwest::RequestBuilder, what: &str) -> Result<Resp, String> {
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response
        .text()
        .await
        .map_err(|e| format!("{what}: reading the body: {e}"))?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Resp {
        status,
        content_type,
        text,
        body,
    })
}
