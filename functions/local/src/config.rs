//! Settings from flags and `RUNLEDGER_` variables, and the JWT secret kept in the data dir.

use runledger::auth::{JwtSettings, MIN_SECRET_BYTES};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8686";
pub const DEFAULT_DATA_DIR: &str = ".runledger";
const SECRET_FILE: &str = "jwt-secret";
pub const DATABASE_FILE: &str = "runledger.redb";

/// Reads the JWT settings: `RUNLEDGER_JWT_SECRET` when set, else the secret kept in
/// `data_dir`, created on first use (readable by the owner only).
pub fn jwt_settings(data_dir: &Path) -> Result<JwtSettings, String> {
    let secret = match std::env::var("RUNLEDGER_JWT_SECRET") {
        Ok(secret) if !secret.is_empty() => secret.into_bytes(),
        _ => stored_secret(data_dir)?,
    };
    if secret.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "RUNLEDGER_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes"
        ));
    }
    Ok(JwtSettings {
        secret,
        issuer: non_empty_var("RUNLEDGER_JWT_ISSUER"),
        audience: non_empty_var("RUNLEDGER_JWT_AUDIENCE"),
    })
}

fn stored_secret(data_dir: &Path) -> Result<Vec<u8>, String> {
    let path = data_dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => return Ok(text.trim().as_bytes().to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let secret = random_secret();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            file.write_all(secret.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(secret.into_bytes())
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => stored_secret(data_dir),
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}

/// 256 bits from the operating system's generator, hex-encoded.
fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random generator is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn non_empty_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A boolean variable: `true`/`1`/`yes` or `false`/`0`/`no`; `default` when unset.
pub fn bool_var(name: &str, default: bool) -> Result<bool, String> {
    match non_empty_var(name)
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => Ok(default),
        Some("true" | "1" | "yes") => Ok(true),
        Some("false" | "0" | "no") => Ok(false),
        Some(other) => Err(format!("{name} must be true or false, not `{other}`")),
    }
}

pub fn number_var(name: &str, default: u64) -> Result<u64, String> {
    match non_empty_var(name) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("{name} must be a whole number, not `{text}`")),
    }
}

pub fn database_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DATABASE_FILE)
}
