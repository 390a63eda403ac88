//! Arbitrary strings as access and refresh tokens: refused cleanly or accepted, never a panic.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use melodyhue_core::auth::tokens::TokenIssuer;
use melodyhue_core::config::JwtAlgorithm;

fuzz_target!(|token: &str| {
    let issuer = TokenIssuer::new(
        b"fuzz-secret",
        JwtAlgorithm::HS256,
        Duration::from_secs(900),
        Duration::from_secs(86_400),
    );
    let now = chrono::Utc::now();
    let _ = issuer.decode_access(token, now);
    let _ = issuer.decode_refresh(token, now);
});
