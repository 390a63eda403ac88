//! JWT access and refresh tokens (HMAC only), checked against the injectable clock.

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::JwtAlgorithm;
use crate::model::{Role, Session, User, new_id};

/// Why a token was refused. The `Display` forms are the `detail` codes of `/auth/refresh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, another algorithm (including `none`), another key, or missing claims.
    #[error("invalid_token")]
    Invalid,
    /// Past its `exp`.
    #[error("token_expired")]
    Expired,
    /// A valid token of the other kind (an access token used to refresh, or the reverse).
    #[error("not_refresh_token")]
    WrongType,
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    /// User id.
    pub sub: String,
    /// Username when issued.
    pub username: String,
    /// Role when issued.
    pub role: String,
    /// Expiry, unix seconds.
    pub exp: i64,
    /// The login family the token was issued in (absent in tokens of the earlier service).
    pub family: Option<String>,
}

/// The claims of a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshClaims {
    /// User id.
    pub sub: String,
    /// Unique id of this token.
    pub jti: String,
    /// The login family (absent in tokens of the earlier service).
    pub family: Option<String>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// Every claim either kind of token may carry; checked after decoding.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: i64,
    exp: i64,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    /// The session family, so a reused (already rotated) token can revoke its whole family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fam: Option<String>,
}

/// Signs and checks MelodyHue's JWTs.
#[derive(Clone)]
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    algorithm: Algorithm,
    access_ttl: Duration,
    refresh_ttl: Duration,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Signing failed; with HMAC keys this only happens if serialization breaks.
#[derive(Debug, thiserror::Error)]
#[error("cannot sign token: {0}")]
pub struct SignError(#[from] jsonwebtoken::errors::Error);

impl TokenIssuer {
    /// An issuer with this key, algorithm and lifetimes.
    pub fn new(
        secret: &[u8],
        algorithm: JwtAlgorithm,
        access_ttl: std::time::Duration,
        refresh_ttl: std::time::Duration,
    ) -> Self {
        let algorithm = match algorithm {
            JwtAlgorithm::HS256 => Algorithm::HS256,
            JwtAlgorithm::HS384 => Algorithm::HS384,
            JwtAlgorithm::HS512 => Algorithm::HS512,
        };
        let to_chrono = |d: std::time::Duration| Duration::from_std(d).unwrap_or(Duration::MAX);
        TokenIssuer {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            algorithm,
            access_ttl: to_chrono(access_ttl),
            refresh_ttl: to_chrono(refresh_ttl),
        }
    }

    /// An access token for `user`, issued in the login family `family`.
    pub fn access_token(
        &self,
        user: &User,
        family: &str,
        now: DateTime<Utc>,
    ) -> Result<String, SignError> {
        self.sign(&Claims {
            sub: user.id.clone(),
            iat: now.timestamp(),
            exp: (now + self.access_ttl).timestamp(),
            kind: Some("access".into()),
            username: Some(user.username.clone()),
            role: Some(user.role.as_str().into()),
            jti: None,
            fam: Some(family.to_owned()),
        })
    }

    /// A new session of the login family `family` for `user_id`, starting at `now`, and its
    /// refresh token. The session's times are whole seconds, so that
    /// [`TokenIssuer::refresh_token_of`] signs the very same token again from the stored row.
    pub fn new_session(
        &self,
        user_id: &str,
        family: &str,
        now: DateTime<Utc>,
    ) -> Result<(Session, String), SignError> {
        let created_at = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
        let mut session = Session {
            id: new_id(),
            user_id: user_id.to_owned(),
            token_hash: String::new(),
            family_id: family.to_owned(),
            created_at,
            expires_at: created_at + self.refresh_ttl,
            rotated_at: None,
        };
        let token = self.refresh_token_of(&session)?;
        session.token_hash = super::token_hash(&token);
        Ok((session, token))
    }

    /// The refresh token of `session`, a function of the row alone: `jti` is the session id,
    /// `iat` and `exp` its times, and HMAC signatures are deterministic. So the server can hand
    /// back the token of a session it stores only the hash of (the refresh-token reuse interval),
    /// without keeping any token; only the holder of the signing key can do it.
    pub fn refresh_token_of(&self, session: &Session) -> Result<String, SignError> {
        self.sign(&Claims {
            sub: session.user_id.clone(),
            iat: session.created_at.timestamp(),
            exp: session.expires_at.timestamp(),
            kind: Some("refresh".into()),
            username: None,
            role: None,
            jti: Some(session.id.clone()),
            fam: Some(session.family_id.clone()),
        })
    }

    /// Checks an access token.
    pub fn decode_access(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<AccessClaims, TokenError> {
        let claims = self.decode(token, now)?;
        if claims.kind.as_deref() != Some("access") {
            return Err(TokenError::WrongType);
        }
        Ok(AccessClaims {
            sub: claims.sub,
            username: claims.username.unwrap_or_default(),
            role: claims.role.unwrap_or_else(|| Role::User.as_str().into()),
            exp: claims.exp,
            family: claims.fam,
        })
    }

    /// Checks a refresh token.
    pub fn decode_refresh(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<RefreshClaims, TokenError> {
        let claims = self.decode(token, now)?;
        if claims.kind.as_deref() != Some("refresh") {
            return Err(TokenError::WrongType);
        }
        Ok(RefreshClaims {
            sub: claims.sub,
            jti: claims.jti.unwrap_or_default(),
            family: claims.fam,
            expires_at: DateTime::from_timestamp(claims.exp, 0).unwrap_or(now),
        })
    }

    fn sign(&self, claims: &Claims) -> Result<String, SignError> {
        Ok(jsonwebtoken::encode(
            &Header::new(self.algorithm),
            claims,
            &self.encoding,
        )?)
    }

    fn decode(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(self.algorithm);
        validation.algorithms = vec![self.algorithm];
        // Expiry is checked against the injectable clock below, not the system clock.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|_| TokenError::Invalid)?
            .claims;
        if claims.exp <= now.timestamp() {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration as StdDuration;

    fn issuer(secret: &[u8]) -> TokenIssuer {
        TokenIssuer::new(
            secret,
            JwtAlgorithm::HS256,
            StdDuration::from_secs(900),
            StdDuration::from_secs(86_400),
        )
    }

    fn user() -> User {
        let now = Utc::now();
        User {
            id: "u1".into(),
            username: "alice".into(),
            email: "a@example.com".into(),
            password_hash: String::new(),
            role: Role::Admin,
            created_at: now,
            updated_at: now,
            last_login_at: None,
        }
    }

    #[test]
    fn access_tokens_round_trip_and_expire() {
        let issuer = issuer(b"secret");
        let now = Utc::now();
        let token = issuer.access_token(&user(), "fam", now).unwrap();
        let claims = issuer.decode_access(&token, now).unwrap();
        assert_eq!((claims.sub.as_str(), claims.role.as_str()), ("u1", "admin"));
        assert_eq!(
            issuer.decode_access(&token, now + Duration::minutes(16)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn kinds_keys_and_algorithms_are_checked() {
        let issuer = issuer(b"secret");
        let now = Utc::now();
        let (_, refresh) = issuer.new_session("u1", "fam", now).unwrap();
        assert_eq!(
            issuer.decode_access(&refresh, now),
            Err(TokenError::WrongType)
        );
        let access = issuer.access_token(&user(), "fam", now).unwrap();
        assert_eq!(
            issuer.decode_refresh(&access, now),
            Err(TokenError::WrongType)
        );
        let other = self::issuer(b"other");
        assert_eq!(other.decode_access(&access, now), Err(TokenError::Invalid));
        // alg "none": header {"alg":"none","typ":"JWT"}, no signature.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1MSIsImV4cCI6OTk5OTk5OTk5OSwidHlwZSI6ImFjY2VzcyJ9.";
        assert_eq!(issuer.decode_access(none, now), Err(TokenError::Invalid));
        assert_eq!(
            issuer.decode_access("garbage", now),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn refresh_tokens_differ_within_one_second() {
        let issuer = issuer(b"secret");
        let now = Utc::now();
        let (_, a) = issuer.new_session("u1", "f", now).unwrap();
        let (_, b) = issuer.new_session("u1", "f", now).unwrap();
        assert_ne!(a, b);
        assert_eq!(
            issuer.decode_refresh(&a, now).unwrap().family.as_deref(),
            Some("f")
        );
    }

    #[test]
    fn a_sessions_token_is_signed_again_identically_from_its_row() {
        let issuer = issuer(b"secret");
        let now = DateTime::from_timestamp_millis(1_767_268_800_987).unwrap();
        let (session, token) = issuer.new_session("u1", "f", now).unwrap();
        assert_eq!(session.created_at.timestamp_subsec_nanos(), 0);
        assert_eq!(session.token_hash, crate::auth::token_hash(&token));
        assert_eq!(issuer.refresh_token_of(&session).unwrap(), token);
        let claims = issuer.decode_refresh(&token, now).unwrap();
        assert_eq!(claims.jti, session.id);
        assert_eq!(claims.expires_at, session.expires_at);
        // Another key cannot make it.
        assert_ne!(
            self::issuer(b"other").refresh_token_of(&session).unwrap(),
            token
        );
    }
}
