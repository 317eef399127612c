//! What lives in the data dir: the database file and the JWT secret kept there. The
//! `RUNLEDGER_*` variables are parsed in `runledger::settings`.

use runledger::auth::{JwtSettings, MIN_SECRET_BYTES};
use runledger::settings::{DATA_DIR, DEFAULT_DATA_DIR, JWT_SECRET, JwtVariables};
use std::io::Write;
use std::path::{Path, PathBuf};

const SECRET_FILE: &str = "jwt-secret";
pub const DATABASE_FILE: &str = "runledger.redb";

/// What to do when the data dir holds no secret yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingSecret {
    /// Create one (readable by the owner only): `serve`, on first start.
    Create,
    /// Fail: `token` must sign with the server's secret, and a new one no server knows would
    /// only print tokens that are refused.
    Refuse,
}

/// The JWT settings: `RUNLEDGER_JWT_SECRET` when set, else the secret kept in `data_dir`.
pub fn jwt_settings(
    jwt: JwtVariables,
    data_dir: &Path,
    missing: MissingSecret,
) -> Result<JwtSettings, String> {
    let secret = match jwt.secret {
        Some(secret) => {
            if secret.len() < MIN_SECRET_BYTES {
                return Err(format!(
                    "{JWT_SECRET} must be at least {MIN_SECRET_BYTES} bytes"
                ));
            }
            secret.into_bytes()
        }
        None => {
            let secret = stored_secret(data_dir, missing)?;
            if secret.len() < MIN_SECRET_BYTES {
                return Err(format!(
                    "{} holds a JWT secret shorter than {MIN_SECRET_BYTES} bytes",
                    secret_path(data_dir).display()
                ));
            }
            secret
        }
    };
    Ok(JwtSettings {
        secret,
        issuer: jwt.issuer,
        audience: jwt.audience,
    })
}

fn secret_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SECRET_FILE)
}

fn stored_secret(data_dir: &Path, missing: MissingSecret) -> Result<Vec<u8>, String> {
    let path = secret_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => return Ok(text.trim().as_bytes().to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    if missing == MissingSecret::Refuse {
        // Absolute, so that a user in the wrong directory sees which one was meant.
        let looked = std::path::absolute(&path).unwrap_or(path);
        return Err(format!(
            "no JWT secret: {JWT_SECRET} is not set and {} does not exist. \
             `runledger-local serve` creates it in its data dir on first start: run this \
             where the server runs, or name its data dir with --data-dir or {DATA_DIR} \
             (default {DEFAULT_DATA_DIR})",
            looked.display()
        ));
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
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            stored_secret(data_dir, MissingSecret::Refuse)
        }
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}

/// 256 bits from the operating system's generator, hex-encoded.
fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random generator is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn database_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DATABASE_FILE)
}
