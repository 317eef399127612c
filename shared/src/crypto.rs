//! The process's cryptography is ring's: TLS (rustls, under the AWS SDK's HTTP client and the
//! HTTP step runner's reqwest) and the JWT's HMAC (jsonwebtoken's crypto provider below).
//!
//! Why ring, not aws-lc-rs (rustls' and the SDK's default): one library for all of it, and a
//! small one. aws-lc brought about a megabyte of machine code and tables into every Lambda
//! bootstrap (post-quantum key exchange, ML-DSA, Ed25519 tables, ...), a third of each zip
//! (README, "Lambda bootstraps").
//!
//! [`install`] makes ring the process default for rustls and jsonwebtoken. Both crates fix
//! their default on first use, so it runs before either is used: in every entry point, in
//! [`crate::auth::Authenticator::new`] and where HTTP clients are built. It is idempotent.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};
use ring::hmac;

/// Makes ring the process-wide crypto provider of rustls and of jsonwebtoken.
pub fn install() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // An error means another provider was installed first (an embedding program chose
        // one): it is used as is.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let _ = JWT_HMAC.install_default();
    });
}

/// jsonwebtoken's provider for the HMAC family, which is all runledger signs or accepts
/// (tokens are HS256; `auth` refuses every other `alg` before a signature is checked). RSA,
/// EC and EdDSA keys are refused as an invalid algorithm, and JWKs (unused) are unimplemented.
static JWT_HMAC: CryptoProvider = CryptoProvider {
    signer_factory: hmac_signer,
    verifier_factory: hmac_verifier,
    key_utils: KeyUtils::new_unimplemented(),
};

fn ring_algorithm(algorithm: &Algorithm) -> Result<hmac::Algorithm> {
    match algorithm {
        Algorithm::HS256 => Ok(hmac::HMAC_SHA256),
        Algorithm::HS384 => Ok(hmac::HMAC_SHA384),
        Algorithm::HS512 => Ok(hmac::HMAC_SHA512),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

fn hmac_signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    if key.family() != AlgorithmFamily::Hmac {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    let key = hmac::Key::new(ring_algorithm(algorithm)?, key.as_bytes());
    Ok(Box::new(Hmac {
        key,
        algorithm: *algorithm,
    }))
}

fn hmac_verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    if key.family() != AlgorithmFamily::Hmac {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    let key = hmac::Key::new(ring_algorithm(algorithm)?, key.try_get_as_bytes()?);
    Ok(Box::new(Hmac {
        key,
        algorithm: *algorithm,
    }))
}

/// One HMAC key, for signing or verifying (ring's `verify` compares in constant time).
struct Hmac {
    key: hmac::Key,
    algorithm: Algorithm,
}

impl Signer<Vec<u8>> for Hmac {
    fn try_sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        Ok(hmac::sign(&self.key, message).as_ref().to_vec())
    }
}

impl Verifier<Vec<u8>> for Hmac {
    fn verify(&self, message: &[u8], tag: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        hmac::verify(&self.key, message, tag).map_err(|_| signature::Error::new())
    }
}

impl JwtSigner for Hmac {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

impl JwtVerifier for Hmac {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231, test case 2: the provider computes standard HMAC-SHA-256.
    #[test]
    fn hs256_is_rfc_4231_hmac_sha256() {
        install();
        let key = EncodingKey::from_secret(b"Jefe");
        let signer = hmac_signer(&Algorithm::HS256, &key).unwrap();
        let tag = signer.try_sign(b"what do ya want for nothing?").unwrap();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let verifier =
            hmac_verifier(&Algorithm::HS256, &DecodingKey::from_secret(b"Jefe")).unwrap();
        assert!(
            verifier
                .verify(b"what do ya want for nothing?", &tag)
                .is_ok()
        );
        assert!(
            verifier
                .verify(b"what do ya want for nothing!", &tag)
                .is_err()
        );
    }

    #[test]
    fn non_hmac_algorithms_are_refused() {
        let key = EncodingKey::from_secret(b"secret");
        for algorithm in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            assert!(hmac_signer(&algorithm, &key).is_err(), "{algorithm:?}");
        }
    }

    /// A token signed and checked through jsonwebtoken's API goes through this provider.
    #[test]
    fn jsonwebtoken_round_trips_through_the_installed_provider() {
        install();
        let claims = serde_json::json!({"sub": "alice", "exp": 4_000_000_000u64});
        let key = b"a secret of at least thirty-two bytes!!";
        let header = jsonwebtoken::Header::new(Algorithm::HS256);
        let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(key)).unwrap();
        let decoded = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &DecodingKey::from_secret(key),
            &jsonwebtoken::Validation::new(Algorithm::HS256),
        )
        .unwrap();
        assert_eq!(decoded.claims["sub"], "alice");
        let wrong = DecodingKey::from_secret(b"another secret of thirty-two bytes!!!");
        let refused = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &wrong,
            &jsonwebtoken::Validation::new(Algorithm::HS256),
        );
        assert!(matches!(
            refused.map_err(|e| e.into_kind()),
            Err(ErrorKind::InvalidSignature)
        ));
    }
}
