//! TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps, one step of skew each way) with totp-rs.
//!
//! totp-rs checks codes; remembering which time step was already accepted (so a code works once)
//! is the caller's job, through [`crate::store::TwoFactorStore::claim_totp_step`].

use chrono::{DateTime, Utc};
use totp_rs::{Builder, Secret, Totp};

/// The issuer shown in authenticator apps.
pub const ISSUER: &str = "MelodyHue";

/// A secret that is not valid base32, or too short for RFC 4226.
#[derive(Debug, thiserror::Error)]
#[error("unusable TOTP secret")]
pub struct InvalidSecret;

/// A fresh random secret (160 bits), base32 without padding.
pub fn generate_secret() -> String {
    Secret::generate().to_base32()
}

/// The `otpauth://` URL authenticator apps scan.
pub fn otpauth_url(email: &str, secret: &str) -> String {
    let account: String = percent_encoding::utf8_percent_encode(email, ACCOUNT_NAME).collect();
    format!("otpauth://totp/{ISSUER}:{account}?secret={secret}&issuer={ISSUER}")
}

/// Characters escaped in the account label; `@` stays readable as in the earlier service.
const ACCOUNT_NAME: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'@')
    .remove(b'.')
    .remove(b'-')
    .remove(b'_')
    .remove(b'+');

fn totp(secret: &str) -> Result<Totp, InvalidSecret> {
    let secret =
        Secret::try_from_base32(secret.trim().trim_end_matches('=')).map_err(|_| InvalidSecret)?;
    Builder::new()
        .with_secret(secret)
        .build()
        .map_err(|_| InvalidSecret)
}

fn unix_seconds(now: DateTime<Utc>) -> u64 {
    u64::try_from(now.timestamp()).unwrap_or(0)
}

/// A code as typed, without the separators authenticator apps show or users type between
/// digits (`123 456`, `123-456`): every kind of space and dash is left out.
pub fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| !(c.is_whitespace() || matches!(c, '-' | '\u{2010}'..='\u{2015}' | '\u{2212}')))
        .collect()
}

/// The time step `code` belongs to, when it is valid at `now` (± one step); `None` otherwise.
/// Spaces and dashes in `code` are ignored ([`normalize_code`]).
pub fn verify(secret: &str, code: &str, now: DateTime<Utc>) -> Result<Option<i64>, InvalidSecret> {
    let code = normalize_code(code);
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    Ok(totp(secret)?
        .check(&code, unix_seconds(now))
        .and_then(|step| i64::try_from(step).ok()))
}

/// The code of `secret` at `time` (for tests and tools).
pub fn code_at(secret: &str, time: DateTime<Utc>) -> Result<String, InvalidSecret> {
    Ok(totp(secret)?.generate(unix_seconds(time)).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn codes_verify_within_one_step() {
        let secret = generate_secret();
        let now = Utc::now();
        let code = code_at(&secret, now).unwrap();
        let step = verify(&secret, &code, now).unwrap().unwrap();
        assert_eq!(step, now.timestamp() / 30);
        assert!(
            verify(&secret, &code, now + Duration::seconds(30))
                .unwrap()
                .is_some()
        );
        assert!(
            verify(&secret, &code, now + Duration::seconds(95))
                .unwrap()
                .is_none()
        );
        assert!(verify(&secret, "12345", now).unwrap().is_none());
        let (head, tail) = code.split_at(3);
        for typed in [
            format!("{head} {tail}"),
            format!("{head}-{tail}"),
            format!(" {head} - {tail} "),
            format!("{head}\u{a0}{tail}"),
            format!("{head}\u{2013}{tail}"),
        ] {
            assert_eq!(
                verify(&secret, &typed, now).unwrap(),
                Some(step),
                "{typed:?}"
            );
        }
        assert!(
            verify(&secret, &format!("{head}.{tail}"), now)
                .unwrap()
                .is_none()
        );
        assert!(verify(&secret, &format!("{code}0"), now).unwrap().is_none());
        assert!(verify(&secret, "abcdef", now).unwrap().is_none());
    }

    #[test]
    fn legacy_secret_and_rfc_vector() {
        // RFC 6238 appendix B, SHA-1, truncated to 6 digits: T=59 -> 94287082.
        let rfc = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let t = DateTime::from_timestamp(59, 0).unwrap();
        assert_eq!(code_at(rfc, t).unwrap(), "287082");
        assert!(code_at("NKTWPTHCJBOZLIYUM6PCE4EI2QLSEFHI", Utc::now()).is_ok());
        assert!(verify("not base32!", "123456", Utc::now()).is_err());
    }

    #[test]
    fn otpauth_url_shape() {
        assert_eq!(
            otpauth_url("a@b.example", "ABC"),
            "otpauth://totp/MelodyHue:a@b.example?secret=ABC&issuer=MelodyHue"
        );
    }
}
