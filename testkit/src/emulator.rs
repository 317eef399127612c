//! Test support for the AWS adapters: a local AWS emulator (moto) and unique resource names.
//!
//! `scripts/test` starts one emulator for the whole run and exports its address as
//! `RUNLEDGER_TEST_AWS_ENDPOINT`. Without it (a plain `cargo test`), the first test that needs
//! the emulator starts `moto_server` from the emulator's venv (`$RUNLEDGER_EMULATOR_VENV` or
//! the project's `.venv`; `scripts/emulator install` puts it there). When neither works the
//! test fails with a message saying so: tests that need AWS never skip.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const ENDPOINT_VARIABLE: &str = "RUNLEDGER_TEST_AWS_ENDPOINT";
pub const REGION: &str = "us-east-1";

/// The emulator this test process uses.
pub struct Emulator {
    pub endpoint: String,
}

struct Spawned {
    endpoint: String,
    // The watchdog shell; it stops the emulator when this process ends.
    _child: Option<Child>,
}

static EMULATOR: OnceLock<Result<Spawned, String>> = OnceLock::new();

impl Emulator {
    /// The shared emulator; panics with instructions when there is none.
    pub fn get() -> Emulator {
        let spawned = EMULATOR.get_or_init(locate_or_spawn);
        match spawned {
            Ok(s) => Emulator {
                endpoint: s.endpoint.clone(),
            },
            Err(message) => panic!("the AWS emulator is not available: {message}"),
        }
    }

    /// An SDK configuration pointed at the emulator with test credentials.
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .http_client(runledger::aws::https_client())
            .endpoint_url(&self.endpoint)
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "runledger-testkit",
            ))
            .load()
            .await
    }
}

/// A name no other test uses: `prefix-<ulid>` (lowercase, valid for tables, queues and buses).
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

fn locate_or_spawn() -> Result<Spawned, String> {
    if let Ok(endpoint) = std::env::var(ENDPOINT_VARIABLE)
        && !endpoint.is_empty()
    {
        wait_until_up(&endpoint, Duration::from_secs(20))?;
        return Ok(Spawned {
            endpoint,
            _child: None,
        });
    }
    // moto's server with DynamoDB writes made atomic, as `scripts/emulator start` runs it.
    let python = emulator_python();
    let launcher = workspace_root().join("scripts/moto_server.py");
    let server = python.with_file_name("moto_server");
    if !server.exists() {
        return Err(format!(
            "{ENDPOINT_VARIABLE} is not set and {} does not exist; run `scripts/emulator install` \
             (or the whole suite with `scripts/test`, which does it)",
            server.display()
        ));
    }
    let port = free_port()?;
    // Statics are never dropped, so the emulator is tied to this process another way: a
    // small shell watches the test process and stops the emulator within a second of its end.
    let watchdog = format!(
        "\"$0\" \"$1\" -H 127.0.0.1 -p {port} >/dev/null 2>&1 & emulator=$!; \
         trap 'kill $emulator 2>/dev/null' EXIT; \
         while kill -0 {parent} 2>/dev/null && kill -0 $emulator 2>/dev/null; do sleep 1; done",
        parent = std::process::id()
    );
    let child = Command::new("sh")
        .arg("-c")
        .arg(watchdog)
        .arg(&python)
        .arg(&launcher)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", server.display()))?;
    let endpoint = format!("http://127.0.0.1:{port}");
    wait_until_up(&endpoint, Duration::from_secs(30))?;
    Ok(Spawned {
        endpoint,
        _child: Some(child),
    })
}

/// The repository's root directory.
pub fn workspace_root() -> PathBuf {
    // The test kit's crate is `testkit/`, right below the workspace's root.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Python of the emulator's virtualenv, which also holds moto's server and the template
/// tools (cfn-lint, aws-sam-translator, boto3): `$RUNLEDGER_EMULATOR_VENV/bin/python`, or the
/// project's `.venv`, as `scripts/emulator` resolves it.
pub fn emulator_python() -> PathBuf {
    let venv = std::env::var_os("RUNLEDGER_EMULATOR_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv"));
    let venv = if venv.is_relative() {
        workspace_root().join(venv)
    } else {
        venv
    };
    venv.join("bin/python")
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// Polls the emulator's reset endpoint's neighbour (`/moto-api/`) until it answers.
fn wait_until_up(endpoint: &str, limit: Duration) -> Result<(), String> {
    let address = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let started = Instant::now();
    loop {
        if std::net::TcpStream::connect(&address).is_ok() {
            return Ok(());
        }
        if started.elapsed() > limit {
            return Err(format!("nothing answers at {endpoint} after {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
