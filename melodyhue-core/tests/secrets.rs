//! Fernet at rest: round trips, key derivation, and compatibility with the earlier Python
//! service (tokens made by Python `cryptography` 48).

use melodyhue_core::secrets::{SecretBox, SecretError};

/// `ENCRYPTION_KEY` of the service that wrote `/work/shared/legacy/melodyhue-legacy-mariadb.sql`.
const LEGACY_KEY: &str = "Wn2q0n7mCw3mYQ2Yf1pQ0v8lGk9cB3xJ5rT7uV9wX0E=";
/// `api_spotify_secrets.client_secret` of alice in the legacy dump.
const LEGACY_CLIENT_SECRET: &str = "gAAAAABrBgvN0A3FVV7Q6v7Gki3ooon7CwgD0jns_JeLx6XkguZGzVLF4r3--TYtFssIegdfHSsy7ei9qpNJo5h43vOzjKuVmFE4VDBct3vPXUVQP2CeIXM=";
/// `api_spotify_tokens.refresh_token` of alice in the legacy dump.
const LEGACY_REFRESH_TOKEN: &str = "gAAAAABrBgvNI2kv7kMDbQL-3G5GY3HB8ZqToNNjcmDArt-iMZlZGfRIUxoCh413telC80r3hihzuOjsRLos9PCzeEAjQeuzIVyRO40HKCMz8Enw3zK7rVM=";
/// `api_twofa.secret` of bob in the legacy dump.
const LEGACY_TOTP_SECRET: &str = "gAAAAABrBgvNV4s1TfDDhK64ImEQrBYVNRtV6_V_re0I2xV0lXuL1vd3EF82bNLIbWSHNXsaFOOqbe5A_ufGAgMrLKMn_B3n3HtKuLLBh2zofhhTFz1IgDn-hOaPJlvvBiTkL64q29dU";

#[test]
fn round_trip() {
    let secrets = SecretBox::new(&SecretBox::generate_key());
    for plaintext in ["", "alice-client-secret", "ünïcødé ✓", &"x".repeat(10_000)] {
        let token = secrets.encrypt(plaintext);
        assert_ne!(token, plaintext);
        assert_eq!(secrets.decrypt(&token).unwrap(), plaintext);
    }
}

#[test]
fn encryption_is_randomised() {
    let secrets = SecretBox::new(LEGACY_KEY);
    assert_ne!(secrets.encrypt("same"), secrets.encrypt("same"));
}

#[test]
fn generated_keys_are_fresh_fernet_keys() {
    let key = SecretBox::generate_key();
    assert_eq!(key.len(), 44);
    assert!(key.ends_with('='));
    assert_ne!(key, SecretBox::generate_key());
}

#[test]
fn legacy_rows_decrypt() {
    let secrets = SecretBox::new(LEGACY_KEY);
    assert_eq!(
        secrets.decrypt(LEGACY_CLIENT_SECRET).unwrap(),
        "alice-client-secret"
    );
    assert_eq!(
        secrets.decrypt(LEGACY_REFRESH_TOKEN).unwrap(),
        "alice-spotify-refresh-token"
    );
    assert_eq!(
        secrets.decrypt(LEGACY_TOTP_SECRET).unwrap(),
        "NKTWPTHCJBOZLIYUM6PCE4EI2QLSEFHI"
    );
}

#[test]
fn a_non_fernet_string_becomes_the_sha256_key() {
    let passphrase = "legacy-secret-key-0123456789abcdef";
    // base64url(SHA-256(passphrase)), computed independently with Python's hashlib.
    let derived = "f4QWFCXVktF4QaDBvLGH8XNkNW2GzPyW0S0UMu15aN8=";
    let from_passphrase = SecretBox::new(passphrase);
    let from_derived_key = SecretBox::new(derived);
    let token = from_passphrase.encrypt("hello");
    assert_eq!(from_derived_key.decrypt(&token).unwrap(), "hello");
    assert_eq!(
        from_passphrase
            .decrypt(&from_derived_key.encrypt("back"))
            .unwrap(),
        "back"
    );
}

/// `(ENCRYPTION_KEY, token)` pairs made by Python: `Fernet(key)` when `cryptography`
/// accepts the value, else `Fernet(urlsafe_b64encode(sha256(value)))`; each token's
/// plaintext is `probe-<name>`.
const PYTHON_VECTORS: &[(&str, &str, &str)] = &[
    (
        "passphrase",
        "legacy-secret-key-0123456789abcdef",
        "gAAAAABrBhJXKGsVewoF4BqZOS5GNarvKIVXtd9MydVk5U8BCgxjEnLHa_GPDABR_pYARR72KWW55F-nErKhJF0fKrbcbvLSTSNYrHvTtl5J4bHD87a14z4=",
    ),
    // Python refuses a key without its padding, so it is hashed (the `fernet` crate
    // alone would have taken it as is).
    (
        "unpadded",
        "Wn2q0n7mCw3mYQ2Yf1pQ0v8lGk9cB3xJ5rT7uV9wX0E",
        "gAAAAABrBhJXzzJXUXtMBUD3UlPZoGQTbCY8KNnHKXNOaQjkPHmwDwLEdiDiMDgagrCOHmIuus-GDo2ZgiEsMrm9xUiv23iOEQ==",
    ),
    // Python skips whitespace and whatever follows the padding: the legacy key itself.
    (
        "newline",
        "Wn2q0n7mCw3mYQ2Yf1pQ0v8lGk9cB3xJ5rT7uV9wX0E=\n",
        "gAAAAABrBhJXNxDFjUZI9mWEQQrsPvI47Gj2fjo-t64zaK99g_uvVCEWh15U9ue0uPRE2rUpzuQp4iV_r6PprG-eJwGN5lhOdQ==",
    ),
    (
        "spaces",
        " Wn2q0n7mCw3mYQ2Yf1pQ0v8lGk9cB3xJ5rT7uV9wX0E= ",
        "gAAAAABrBhJXfY9HkB_RYQqtwkPsqbFk-mMEKKFL1A03YTqFD5c0CSmW0XoTO7ONW9M7KlCzMMyJZXZ8MUhe0yW_tL-_vkHNeQ==",
    ),
    (
        "trailing_after_pad",
        "Wn2q0n7mCw3mYQ2Yf1pQ0v8lGk9cB3xJ5rT7uV9wX0E=garbage",
        "gAAAAABrBhJXg2kRAEtFQSyanFbhVdOAQrolAeCV5aRSa9c_t1paDaa23o2QJRW28cIwMaGtAgeco_Mqii8_zWoclI7hrtv0vQWSpKQx1xE6KACuLLMWBZ8=",
    ),
    // The standard alphabet spelling of `-vv8_f7_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBk=`.
    (
        "std_alphabet",
        "+vv8/f7/AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBk=",
        "gAAAAABrBhJX6dbX3xp99icJQgJYDgoDylVfN-oC89dd0604al5jNfyGLx0FQUazd8Ajxf6twwOPi40NC2iCUWkUrHRpzTVM_oTEsQXR8hoTTKSEXyopsyk=",
    ),
    // Non-ASCII text is not base64 to Python: hashed.
    (
        "non_ascii",
        "Wn2q0n7mCw3mYQ2Yf1pQ0v8lGk9cB3xJ5rT7uV9wX0Eé=",
        "gAAAAABrBhJX36CHWGd54AjPFHGUsxs3ws2iE3jVsAc60o__viyD3d8XJNOjEpEfsBUSQk1sq6r0TRPxUm6vP49nQnj04ETWDg==",
    ),
    (
        "empty",
        "",
        "gAAAAABrBhJXVdpt8cMQtfL1qXKs1es4xPo196rn0sr3iYFsWeWQlref3qkDyWvuyVU0Fksfe8Oxxu2k-2dhOsD3f6c0lpAL9w==",
    ),
];

#[test]
fn keys_are_read_exactly_as_python_reads_them() {
    for (name, key, token) in PYTHON_VECTORS {
        let decrypted = SecretBox::new(key).decrypt(token);
        assert_eq!(
            decrypted.as_deref(),
            Ok(format!("probe-{name}").as_str()),
            "vector {name}"
        );
    }
    // The lenient spellings really are the legacy key, and the strict ones are not.
    let legacy = SecretBox::new(LEGACY_KEY);
    for (name, _, token) in PYTHON_VECTORS {
        let is_legacy_key = matches!(*name, "newline" | "spaces" | "trailing_after_pad");
        assert_eq!(
            legacy.decrypt(token).is_ok(),
            is_legacy_key,
            "vector {name}"
        );
    }
    let url_safe = SecretBox::new("-vv8_f7_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBk=");
    assert_eq!(
        url_safe.decrypt(PYTHON_VECTORS[5].2).as_deref(),
        Ok("probe-std_alphabet")
    );
}

#[test]
fn wrong_key_is_an_error() {
    let other = SecretBox::new(&SecretBox::generate_key());
    assert_eq!(
        other.decrypt(LEGACY_CLIENT_SECRET),
        Err(SecretError::Undecryptable)
    );
}

#[test]
fn garbage_is_an_error() {
    let secrets = SecretBox::new(LEGACY_KEY);
    for garbage in [
        "",
        "=",
        "not a token",
        "gAAAAA",
        "gAAAAABrBgvN",
        "éé",
        "\0\0\0",
        "alice-client-secret",
        &"A".repeat(10_000),
    ] {
        assert_eq!(
            secrets.decrypt(garbage),
            Err(SecretError::Undecryptable),
            "{garbage:?}"
        );
    }
}

#[test]
fn every_truncation_and_bit_flip_is_an_error() {
    let secrets = SecretBox::new(LEGACY_KEY);
    for end in 0..LEGACY_REFRESH_TOKEN.len() {
        let truncated = &LEGACY_REFRESH_TOKEN[..end];
        // Dropping only padding leaves the same token.
        if LEGACY_REFRESH_TOKEN[end..].chars().all(|c| c == '=') {
            continue;
        }
        assert!(secrets.decrypt(truncated).is_err(), "truncated at {end}");
    }
    let bytes = LEGACY_REFRESH_TOKEN.as_bytes();
    for position in 0..bytes.len() {
        let mut tampered = bytes.to_vec();
        tampered[position] = if bytes[position] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(secrets.decrypt(&tampered).is_err(), "changed at {position}");
    }
}

#[test]
fn non_utf8_plaintext_is_an_error_not_a_panic() {
    // Python: Fernet(LEGACY_KEY).encrypt(b"\xff\xfe")
    let token = "gAAAAABrBhNMr98wnNrDc_Th7gIhN-i3dEjv7EKk1JCp2BvWWwtaUULwklgHcKWVjSL764cg89NCnhPf0kJZbYVjyZ8NHXDvCw==";
    assert_eq!(
        SecretBox::new(LEGACY_KEY).decrypt(token),
        Err(SecretError::NotUtf8)
    );
}

#[test]
fn debug_and_errors_do_not_show_the_key() {
    let secrets = SecretBox::new(LEGACY_KEY);
    let debug = format!("{secrets:?}");
    assert!(!debug.contains("Wn2q"), "{debug}");
    assert!(debug.contains("redacted"));
    let message = secrets.decrypt("garbage").unwrap_err().to_string();
    assert!(!message.contains("garbage"));
}
