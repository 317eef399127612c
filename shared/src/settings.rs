//! Every `RUNLEDGER_*` variable, parsed once, for both hosts (the Lambda functions and
//! `runledger-local`), from a variable lookup ([`Vars`]): the process environment in a real
//! process, a map in tests that configure a host from a stack's definition.
//!
//! An empty value counts as unset everywhere. Booleans take `true`/`false`, `1`/`0` or
//! `yes`/`no` in any case ([`bool_var`]); anything else is refused with the variable's name.
//!
//! `RUNLEDGER_LISTEN`, `RUNLEDGER_DATA_DIR` and `RUNLEDGER_BACKEND` are also flags of
//! `runledger-local serve` (`--listen`, `--data-dir`, `--backend`): clap reads those, flag
//! first, then the variable, then the default. Their names and defaults are here so that clap
//! and this page say the same; nothing here parses them a second time.

use lambda_runtime::tracing::subscriber::filter::Targets;

/// A variable lookup: the process environment ([`env_var`]) in a real process, a map in tests.
/// An empty value counts as unset.
pub type Vars<'a> = &'a dyn Fn(&str) -> Option<String>;

/// [`Vars`] over the process environment.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

// --- runledger-local's flags (parsed by clap; see the module documentation) ---

/// `RUNLEDGER_LISTEN` (`--listen`): the address `runledger-local serve` listens on.
pub const LISTEN: &str = "RUNLEDGER_LISTEN";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8686";
/// `RUNLEDGER_DATA_DIR` (`--data-dir`): the database file and the generated JWT secret.
pub const DATA_DIR: &str = "RUNLEDGER_DATA_DIR";
pub const DEFAULT_DATA_DIR: &str = ".runledger";
/// `RUNLEDGER_BACKEND` (`--backend`): `embedded` or `aws`.
pub const BACKEND: &str = "RUNLEDGER_BACKEND";
pub const DEFAULT_BACKEND: &str = "embedded";

// --- the variables parsed here ---

pub const JWT_SECRET: &str = "RUNLEDGER_JWT_SECRET";
/// `RUNLEDGER_JWT_SECRET_PARAMETER`: the name of the SSM Parameter Store SecureString that
/// holds the JWT secret (what the SAM template sets). `RUNLEDGER_JWT_SECRET` gives the secret
/// itself instead (local runs, `cargo lambda watch`).
pub const JWT_SECRET_PARAMETER: &str = "RUNLEDGER_JWT_SECRET_PARAMETER";
pub const JWT_ISSUER: &str = "RUNLEDGER_JWT_ISSUER";
pub const JWT_AUDIENCE: &str = "RUNLEDGER_JWT_AUDIENCE";
/// `RUNLEDGER_ALLOW_PRIVATE_TARGETS`: let `http` steps reach private addresses. On for the
/// local server, off in Lambda unless set, so a test case cannot probe the VPC.
pub const ALLOW_PRIVATE_TARGETS: &str = "RUNLEDGER_ALLOW_PRIVATE_TARGETS";
pub const WORKERS: &str = "RUNLEDGER_WORKERS";
pub const SWEEP_INTERVAL_MS: &str = "RUNLEDGER_SWEEP_INTERVAL_MS";
pub const LOG: &str = "RUNLEDGER_LOG";
pub const LOG_FORMAT: &str = "RUNLEDGER_LOG_FORMAT";
pub const TABLE: &str = "RUNLEDGER_TABLE";
pub const QUEUE_HIGH_URL: &str = "RUNLEDGER_QUEUE_HIGH_URL";
pub const QUEUE_NORMAL_URL: &str = "RUNLEDGER_QUEUE_NORMAL_URL";
pub const QUEUE_LOW_URL: &str = "RUNLEDGER_QUEUE_LOW_URL";
pub const STEP_QUEUE_URL: &str = "RUNLEDGER_STEP_QUEUE_URL";
pub const EVENT_BUS: &str = "RUNLEDGER_EVENT_BUS";
/// `RUNLEDGER_STREAM_MAX_SECONDS`: the stream function closes an event stream after this
/// long, a little under its timeout, so the client resumes (`Last-Event-ID`) rather than
/// being cut off mid-event.
pub const STREAM_MAX_SECONDS: &str = "RUNLEDGER_STREAM_MAX_SECONDS";

pub const DEFAULT_TABLE: &str = "runledger";
pub const DEFAULT_EVENT_BUS: &str = "runledger";
/// Private targets: allowed on a laptop, refused in Lambda unless asked for.
pub const LOCAL_ALLOWS_PRIVATE_TARGETS: bool = true;
pub const LAMBDA_ALLOWS_PRIVATE_TARGETS: bool = false;
pub const DEFAULT_WORKERS: u64 = 16;
pub const DEFAULT_SWEEP_INTERVAL_MS: u64 = 1000;
/// The shortest sweep interval taken; a smaller value is raised to it.
pub const MIN_SWEEP_INTERVAL_MS: u64 = 10;
/// 14 minutes: under Lambda's longest timeout (15), which the template gives the function.
pub const DEFAULT_STREAM_MAX_SECONDS: u64 = 840;

/// `name`'s value, unset when empty.
fn lookup(var: Vars<'_>, name: &str) -> Option<String> {
    var(name).filter(|v| !v.is_empty())
}

/// The one boolean parser: `true`/`1`/`yes` or `false`/`0`/`no`, in any case; `default` when
/// unset. Anything else is refused with an error naming the variable.
pub fn bool_var(var: Vars<'_>, name: &str, default: bool) -> Result<bool, String> {
    let Some(value) = lookup(var, name) else {
        return Ok(default);
    };
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!(
            "{name} must be true or false (or 1/0, yes/no), not {value:?}"
        )),
    }
}

/// A whole number; `default` when unset.
pub fn number_var(var: Vars<'_>, name: &str, default: u64) -> Result<u64, String> {
    match lookup(var, name) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("{name} must be a whole number, not `{text}`")),
    }
}

/// Resource names and URLs on AWS (the SAM template sets them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// `RUNLEDGER_TABLE`: the single DynamoDB table.
    pub table: String,
    /// `RUNLEDGER_QUEUE_HIGH_URL`, `..._NORMAL_URL`, `..._LOW_URL`: work queues by priority.
    pub queue_urls: QueueUrls,
    /// `RUNLEDGER_STEP_QUEUE_URL`: the asynchronous step-report queue.
    pub step_queue_url: Option<String>,
    /// `RUNLEDGER_EVENT_BUS`: the custom EventBridge bus.
    pub event_bus: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueUrls {
    pub high: String,
    pub normal: String,
    pub low: String,
}

impl AwsSettings {
    pub fn from_env() -> Result<Self, String> {
        Self::from_vars(&env_var)
    }

    pub fn from_vars(var: Vars<'_>) -> Result<Self, String> {
        let var = |name: &str| lookup(var, name);
        let required = |name: &str| var(name).ok_or_else(|| format!("{name} is not set"));
        Ok(AwsSettings {
            table: var(TABLE).unwrap_or_else(|| DEFAULT_TABLE.to_owned()),
            queue_urls: QueueUrls {
                high: required(QUEUE_HIGH_URL)?,
                normal: required(QUEUE_NORMAL_URL)?,
                low: required(QUEUE_LOW_URL)?,
            },
            step_queue_url: var(STEP_QUEUE_URL),
            event_bus: var(EVENT_BUS).unwrap_or_else(|| DEFAULT_EVENT_BUS.to_owned()),
        })
    }
}

/// The JWT variables as set. Where the secret comes from is each host's business: Lambda
/// takes exactly one of [`secret`](Self::secret) and [`secret_parameter`](Self::secret_parameter)
/// (`runledger::aws::backend::jwt_settings`); `runledger-local` takes the secret, else the
/// one kept in its data dir.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwtVariables {
    /// `RUNLEDGER_JWT_SECRET`: the secret itself.
    pub secret: Option<String>,
    /// `RUNLEDGER_JWT_SECRET_PARAMETER`: the SSM parameter holding it (Lambda).
    pub secret_parameter: Option<String>,
    /// `RUNLEDGER_JWT_ISSUER`: when set, tokens' `iss` must match.
    pub issuer: Option<String>,
    /// `RUNLEDGER_JWT_AUDIENCE`: when set, tokens' `aud` must match.
    pub audience: Option<String>,
}

impl JwtVariables {
    pub fn from_vars(var: Vars<'_>) -> Self {
        JwtVariables {
            secret: lookup(var, JWT_SECRET),
            secret_parameter: lookup(var, JWT_SECRET_PARAMETER),
            issuer: lookup(var, JWT_ISSUER),
            audience: lookup(var, JWT_AUDIENCE),
        }
    }
}

/// How a host logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSettings {
    /// `RUNLEDGER_LOG`: `target=level` directives (e.g. `runledger=debug,info`).
    pub filter: Option<String>,
    /// `RUNLEDGER_LOG_FORMAT=json`: JSON log lines (`runledger-local`; Lambda always logs
    /// JSON).
    pub json: bool,
}

impl LogSettings {
    pub fn from_vars(var: Vars<'_>) -> Self {
        LogSettings {
            filter: lookup(var, LOG),
            json: lookup(var, LOG_FORMAT).as_deref() == Some("json"),
        }
    }

    /// What to log: the first of `RUNLEDGER_LOG` and `fallback` that parses, else `default`.
    /// Comma-separated `target=level` directives (`info`, `runledger=debug,hyper=warn`):
    /// tracing's `Targets` rather than `EnvFilter`, which would put a regex engine into every
    /// Lambda bootstrap for span and field filters nobody uses here.
    pub fn targets(&self, fallback: Option<String>, default: &str) -> Targets {
        [self.filter.clone(), fallback]
            .into_iter()
            .flatten()
            .find_map(|directives| directives.parse().ok())
            .unwrap_or_else(|| default.parse().unwrap_or_default())
    }
}

/// `RUNLEDGER_ALLOW_PRIVATE_TARGETS`, with the host's default
/// ([`LOCAL_ALLOWS_PRIVATE_TARGETS`] or [`LAMBDA_ALLOWS_PRIVATE_TARGETS`]).
pub fn allow_private_targets(var: Vars<'_>, default: bool) -> Result<bool, String> {
    bool_var(var, ALLOW_PRIVATE_TARGETS, default)
}

/// What `runledger-local serve` reads besides its flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSettings {
    /// `RUNLEDGER_WORKERS`: built-in runner workers (executions run at once).
    pub workers: u64,
    /// `RUNLEDGER_SWEEP_INTERVAL_MS`: how often the timeout sweep runs (at least
    /// [`MIN_SWEEP_INTERVAL_MS`]).
    pub sweep_interval_ms: u64,
    /// `RUNLEDGER_ALLOW_PRIVATE_TARGETS`, on unless set.
    pub allow_private_targets: bool,
}

impl LocalSettings {
    pub fn from_vars(var: Vars<'_>) -> Result<Self, String> {
        Ok(LocalSettings {
            workers: number_var(var, WORKERS, DEFAULT_WORKERS)?,
            sweep_interval_ms: number_var(var, SWEEP_INTERVAL_MS, DEFAULT_SWEEP_INTERVAL_MS)?
                .max(MIN_SWEEP_INTERVAL_MS),
            allow_private_targets: allow_private_targets(var, LOCAL_ALLOWS_PRIVATE_TARGETS)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    #[test]
    fn booleans_take_three_spellings_in_any_case() {
        for (text, expected) in [
            ("true", true),
            ("TRUE", true),
            ("True", true),
            ("1", true),
            ("yes", true),
            ("Yes", true),
            ("false", false),
            ("FALSE", false),
            ("0", false),
            ("no", false),
            ("NO", false),
        ] {
            let var = vars(&[(ALLOW_PRIVATE_TARGETS, text)]);
            assert_eq!(
                bool_var(&var, ALLOW_PRIVATE_TARGETS, !expected),
                Ok(expected),
                "{text}"
            );
        }
    }

    #[test]
    fn booleans_unset_or_empty_take_the_default_and_others_are_refused() {
        assert_eq!(bool_var(&vars(&[]), ALLOW_PRIVATE_TARGETS, true), Ok(true));
        let empty = vars(&[(ALLOW_PRIVATE_TARGETS, "")]);
        assert_eq!(bool_var(&empty, ALLOW_PRIVATE_TARGETS, false), Ok(false));
        for text in ["maybe", "on", "2", " true"] {
            let var = vars(&[(ALLOW_PRIVATE_TARGETS, text)]);
            let refused = bool_var(&var, ALLOW_PRIVATE_TARGETS, false).unwrap_err();
            assert!(refused.contains(ALLOW_PRIVATE_TARGETS), "{refused}");
        }
    }

    #[test]
    fn the_log_filter_is_runledger_log_then_the_fallback_then_the_default() {
        use tracing::Level;
        let enables = |log: &[(&str, &str)], fallback: Option<&str>, level: Level| {
            LogSettings::from_vars(&vars(log))
                .targets(fallback.map(str::to_owned), "info")
                .would_enable("runledger::engine", &level)
        };
        assert!(enables(&[], None, Level::INFO));
        assert!(!enables(&[], None, Level::DEBUG));
        assert!(enables(&[], Some("debug"), Level::DEBUG));
        assert!(!enables(&[(LOG, "warn")], Some("debug"), Level::INFO));
        assert!(enables(
            &[(LOG, "runledger=debug,warn")],
            None,
            Level::DEBUG
        ));
        assert!(!enables(&[(LOG, "hyper=debug,warn")], None, Level::INFO));
        // One that does not parse is skipped.
        assert!(enables(
            &[(LOG, "runledger=loud")],
            Some("debug"),
            Level::DEBUG
        ));
    }

    #[test]
    fn private_targets_default_by_host() {
        let unset = vars(&[]);
        assert_eq!(
            allow_private_targets(&unset, LAMBDA_ALLOWS_PRIVATE_TARGETS),
            Ok(false)
        );
        let local = LocalSettings::from_vars(&unset).expect("defaults");
        assert!(local.allow_private_targets);
        assert_eq!(local.workers, DEFAULT_WORKERS);
        assert_eq!(local.sweep_interval_ms, DEFAULT_SWEEP_INTERVAL_MS);
    }

    #[test]
    fn local_numbers_are_whole_and_the_sweep_has_a_floor() {
        let set = vars(&[(WORKERS, "4"), (SWEEP_INTERVAL_MS, "1")]);
        let local = LocalSettings::from_vars(&set).expect("settings");
        assert_eq!((local.workers, local.sweep_interval_ms), (4, 10));
        let bad = vars(&[(WORKERS, "four")]);
        let refused = LocalSettings::from_vars(&bad).unwrap_err();
        assert!(refused.contains(WORKERS), "{refused}");
    }

    #[test]
    fn aws_resources_need_the_queues_and_default_the_rest() {
        let missing = AwsSettings::from_vars(&vars(&[])).unwrap_err();
        assert!(missing.contains(QUEUE_HIGH_URL), "{missing}");
        let set = vars(&[
            (QUEUE_HIGH_URL, "h"),
            (QUEUE_NORMAL_URL, "n"),
            (QUEUE_LOW_URL, "l"),
            (TABLE, ""),
        ]);
        let settings = AwsSettings::from_vars(&set).expect("settings");
        assert_eq!(settings.table, DEFAULT_TABLE);
        assert_eq!(settings.event_bus, DEFAULT_EVENT_BUS);
        assert_eq!(settings.step_queue_url, None);
    }
}
