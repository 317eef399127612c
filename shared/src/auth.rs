//! Bearer token authentication: HS256 JWTs with `sub`, `exp` and optional `roles`; `iss` and
//! `aud` must be present and match when configured, and `nbf` is honoured.

use crate::engine::Caller;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Shorter HS256 secrets are brute-forceable; refuse them.
pub const MIN_SECRET_BYTES: usize = 32;
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_S: u64 = 30;
pub const ADMIN_ROLE: &str = "admin";

#[derive(Debug, Clone)]
pub struct JwtSettings {
    pub secret: Vec<u8>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("invalid bearer token")]
    Invalid,
    #[error("the token has expired")]
    Expired,
}

#[derive(Debug, thiserror::Error)]
#[error("RUNLEDGER_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")]
pub struct WeakSecret;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aud: Option<Audience>,
}

/// `aud` is one string or an array of them (RFC 7519, 4.1.3). Only its shape is checked here;
/// whether it names the configured audience, jsonwebtoken checks.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

pub struct Authenticator {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
    settings: JwtSettings,
}

impl Authenticator {
    pub fn new(settings: JwtSettings) -> Result<Self, WeakSecret> {
        crate::crypto::install();
        if settings.secret.len() < MIN_SECRET_BYTES {
            return Err(WeakSecret);
        }
        // Only HS256 is accepted: `alg: none` and every other algorithm are refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_S;
        validation.validate_nbf = true;
        // jsonwebtoken checks `iss` and `aud` only when the token carries them, so a configured
        // issuer or audience must also be a required claim, or leaving it out would pass.
        let mut required = vec!["exp", "sub"];
        match &settings.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = &settings.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Ok(Authenticator {
            decoding: DecodingKey::from_secret(&settings.secret),
            encoding: EncodingKey::from_secret(&settings.secret),
            validation,
            settings,
        })
    }

    /// Checks an `Authorization` header value.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        let header = authorization.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Invalid)?;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })?;
        let claims = data.claims;
        if claims.sub.is_empty() || claims.sub.len() > 256 || claims.sub.contains('\u{0}') {
            return Err(AuthError::Invalid);
        }
        Ok(Caller {
            admin: claims.roles.iter().any(|r| r == ADMIN_ROLE),
            user: claims.sub,
        })
    }

    /// Issues a token for `sub`, valid for `ttl_s` seconds.
    pub fn issue(&self, sub: &str, admin: bool, ttl_s: u64) -> String {
        let claims = Claims {
            sub: sub.to_owned(),
            exp: jsonwebtoken::get_current_timestamp() + ttl_s,
            roles: if admin {
                vec![ADMIN_ROLE.to_owned()]
            } else {
                Vec::new()
            },
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone().map(Audience::One),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with a valid key cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::{Value, json};

    fn auth() -> Authenticator {
        Authenticator::new(JwtSettings {
            secret: b"0123456789abcdef0123456789abcdef".to_vec(),
            issuer: None,
            audience: None,
        })
        .unwrap()
    }

    #[test]
    fn accepts_its_own_tokens() {
        let auth = auth();
        let caller = auth
            .authenticate(Some(&format!("Bearer {}", auth.issue("alice", false, 60))))
            .unwrap();
        assert_eq!(caller, Caller::user("alice"));
        let admin = auth
            .authenticate(Some(&format!("Bearer {}", auth.issue("root", true, 60))))
            .unwrap();
        assert!(admin.admin);
    }

    #[test]
    fn refuses_missing_malformed_and_unsigned_tokens() {
        let auth = auth();
        assert_eq!(auth.authenticate(None), Err(AuthError::Missing));
        assert_eq!(
            auth.authenticate(Some("Basic abc")),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            auth.authenticate(Some("Bearer not.a.jwt")),
            Err(AuthError::Invalid)
        );
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let exp = jsonwebtoken::get_current_timestamp() + 600;
        let claims = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"alice","exp":{exp}}}"#));
        assert_eq!(
            auth.authenticate(Some(&format!("Bearer {header}.{claims}."))),
            Err(AuthError::Invalid)
        );
    }

    #[test]
    fn refuses_other_secrets_and_expired_tokens() {
        let other = Authenticator::new(JwtSettings {
            secret: b"another-secret-another-secret-xx".to_vec(),
            issuer: None,
            audience: None,
        })
        .unwrap();
        let foreign = other.issue("alice", true, 60);
        assert_eq!(
            auth().authenticate(Some(&format!("Bearer {foreign}"))),
            Err(AuthError::Invalid)
        );
        let claims = Claims {
            sub: "alice".into(),
            exp: 1_000,
            roles: vec![],
            iss: None,
            aud: None,
        };
        let expired =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &auth().encoding)
                .unwrap();
        assert_eq!(
            auth().authenticate(Some(&format!("Bearer {expired}"))),
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn checks_issuer_and_audience_when_configured() {
        let strict = Authenticator::new(JwtSettings {
            secret: b"0123456789abcdef0123456789abcdef".to_vec(),
            issuer: Some("https://issuer.example".into()),
            audience: Some("runledger".into()),
        })
        .unwrap();
        let good = strict.issue("alice", false, 60);
        assert!(strict.authenticate(Some(&format!("Bearer {good}"))).is_ok());
        let plain = auth().issue("alice", false, 60);
        assert_eq!(
            strict.authenticate(Some(&format!("Bearer {plain}"))),
            Err(AuthError::Invalid)
        );
    }

    const ISSUER: &str = "https://issuer.example";
    const AUDIENCE: &str = "runledger";

    fn strict() -> Authenticator {
        Authenticator::new(JwtSettings {
            secret: b"0123456789abcdef0123456789abcdef".to_vec(),
            issuer: Some(ISSUER.into()),
            audience: Some(AUDIENCE.into()),
        })
        .unwrap()
    }

    /// Signs arbitrary claims with the test secret, as another issuer's software would.
    fn token_for(auth: &Authenticator, claims: Value) -> String {
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &auth.encoding).unwrap();
        format!("Bearer {token}")
    }

    fn in_a_minute() -> u64 {
        jsonwebtoken::get_current_timestamp() + 60
    }

    #[test]
    fn a_configured_audience_must_be_present() {
        let strict = strict();
        let claims = json!({"sub": "alice", "exp": in_a_minute(), "iss": ISSUER});
        assert_eq!(
            strict.authenticate(Some(&token_for(&strict, claims))),
            Err(AuthError::Invalid)
        );
        // `null` is as good as absent.
        let claims = json!({"sub": "alice", "exp": in_a_minute(), "iss": ISSUER, "aud": null});
        assert_eq!(
            strict.authenticate(Some(&token_for(&strict, claims))),
            Err(AuthError::Invalid)
        );
    }

    #[test]
    fn audience_may_be_a_string_or_an_array_holding_it() {
        let strict = strict();
        let with_aud = |aud: Value| {
            let claims = json!({"sub": "alice", "exp": in_a_minute(), "iss": ISSUER, "aud": aud});
            strict.authenticate(Some(&token_for(&strict, claims)))
        };
        assert_eq!(with_aud(json!(AUDIENCE)), Ok(Caller::user("alice")));
        assert_eq!(
            with_aud(json!(["other", AUDIENCE])),
            Ok(Caller::user("alice"))
        );
        assert_eq!(with_aud(json!([AUDIENCE])), Ok(Caller::user("alice")));
        for refused in [
            json!("other"),
            json!(["other", "another"]),
            json!([]),
            json!(42),
            json!([42]),
            json!({"aud": AUDIENCE}),
        ] {
            assert_eq!(
                with_aud(refused.clone()),
                Err(AuthError::Invalid),
                "{refused}"
            );
        }
    }

    #[test]
    fn a_configured_issuer_must_be_present() {
        let strict = strict();
        for claims in [
            json!({"sub": "alice", "exp": in_a_minute(), "aud": AUDIENCE}),
            json!({"sub": "alice", "exp": in_a_minute(), "aud": AUDIENCE, "iss": null}),
            json!({"sub": "alice", "exp": in_a_minute(), "aud": AUDIENCE, "iss": "https://other.example"}),
        ] {
            assert_eq!(
                strict.authenticate(Some(&token_for(&strict, claims.clone()))),
                Err(AuthError::Invalid),
                "{claims}"
            );
        }
    }

    #[test]
    fn tokens_not_yet_valid_are_refused() {
        let auth = auth();
        let now = jsonwebtoken::get_current_timestamp();
        let with_nbf = |nbf: Value| {
            let claims = json!({"sub": "alice", "exp": now + 3600, "nbf": nbf});
            auth.authenticate(Some(&token_for(&auth, claims)))
        };
        // Well beyond the leeway.
        assert_eq!(with_nbf(json!(now + 600)), Err(AuthError::Invalid));
        assert_eq!(with_nbf(json!(now + LEEWAY_S + 5)), Err(AuthError::Invalid));
        // An `nbf` that is not a time cannot be honoured.
        assert_eq!(with_nbf(json!("tomorrow")), Err(AuthError::Invalid));
        // Past, now, and within the leeway (clock skew) are fine.
        for nbf in [now - 600, now, now + LEEWAY_S - 5] {
            assert_eq!(with_nbf(json!(nbf)), Ok(Caller::user("alice")), "{nbf}");
        }
    }

    #[test]
    fn refuses_weak_secrets() {
        let weak = JwtSettings {
            secret: b"short".to_vec(),
            issuer: None,
            audience: None,
        };
        assert!(Authenticator::new(weak).is_err());
    }
}
