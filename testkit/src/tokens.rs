//! Tokens: one HS256 secret for every test router and test server, and tokens minted with it.

use runledger::auth::{Authenticator, JwtSettings};

/// The HS256 secret the in-process router and the test servers verify with. It must never
/// show up in a response.
pub const SECRET: &str = "runledger-test-secret-do-not-leak-0123456789abcdef";

/// An authenticator over `secret`, without issuer or audience checks.
pub fn authenticator_with(secret: &[u8]) -> Authenticator {
    Authenticator::new(JwtSettings {
        secret: secret.to_vec(),
        issuer: None,
        audience: None,
    })
    .expect("the test secret is long enough")
}

/// An authenticator over [`SECRET`].
pub fn authenticator() -> Authenticator {
    authenticator_with(SECRET.as_bytes())
}

/// A token for `user` (an administrator when `admin`), signed with [`SECRET`], valid an hour.
pub fn mint_token(user: &str, admin: bool) -> String {
    authenticator().issue(user, admin, 3600)
}
