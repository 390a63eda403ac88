//! Fernet encryption at rest with `ENCRYPTION_KEY`.
//!
//! Spotify client secrets, Spotify refresh tokens and TOTP secrets are stored as standard
//! Fernet tokens (version `0x80`, timestamp, IV, AES-128-CBC, HMAC-SHA256), keyed exactly as
//! the earlier Python service keyed them, so rows written by either implementation decrypt
//! with the other:
//!
//! - if `ENCRYPTION_KEY` is a value that Python's `cryptography.fernet.Fernet(key)` accepts
//!   (url-safe base64 of 32 bytes, read the way `base64.urlsafe_b64decode` reads it), that
//!   key is used as is;
//! - any other string is turned into a key: `base64url(SHA-256(utf8(value)))`.
//!
//! Tokens never expire here (no TTL). The `fernet` crate refuses a token stamped more than
//! 60 seconds in the future, so a row written by a server whose clock ran ahead only
//! decrypts once this clock catches up.
//!
//! ```
//! use melodyhue_core::secrets::SecretBox;
//!
//! let secrets = SecretBox::new("any string works as ENCRYPTION_KEY");
//! let stored = secrets.encrypt("spotify-refresh-token");
//! assert_eq!(secrets.decrypt(&stored).unwrap(), "spotify-refresh-token");
//! ```

use std::fmt;

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE};
use sha2::{Digest, Sha256};

/// Encrypts and decrypts secrets at rest with one Fernet key.
///
/// Cheap to clone; `Debug` never shows the key.
#[derive(Clone)]
pub struct SecretBox {
    fernet: fernet::Fernet,
}

/// A stored secret could not be read back.
///
/// The message never contains the secret, the token or the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// Not a Fernet token made with this key: wrong `ENCRYPTION_KEY`, or a corrupted or
    /// truncated value.
    #[error("secret cannot be decrypted: wrong ENCRYPTION_KEY or corrupted value")]
    Undecryptable,
    /// The token decrypted, but its plaintext is not UTF-8 text.
    #[error("decrypted secret is not UTF-8 text")]
    NotUtf8,
}

impl SecretBox {
    /// Makes a box from `ENCRYPTION_KEY`. Never fails: a value that is not a Fernet key is
    /// turned into one by `base64url(SHA-256(value))`, as the earlier service did.
    pub fn new(encryption_key: &str) -> Self {
        let key_bytes = python_fernet_key(encryption_key)
            .unwrap_or_else(|| Sha256::digest(encryption_key).into());
        let fernet = fernet::Fernet::new(&URL_SAFE.encode(key_bytes))
            // Url-safe base64 of 32 bytes is exactly what `Fernet::new` accepts.
            .unwrap_or_else(|| unreachable!("32 key bytes always make a Fernet key"));
        Self { fernet }
    }

    /// A fresh random Fernet key (url-safe base64 of 32 bytes), e.g. for `melodyhue gen-keys`.
    pub fn generate_key() -> String {
        fernet::Fernet::generate_key()
    }

    /// Encrypts `plaintext` into a Fernet token (url-safe base64 text).
    pub fn encrypt(&self, plaintext: &str) -> String {
        self.fernet.encrypt(plaintext.as_bytes())
    }

    /// Decrypts a Fernet token made with this key (by this service or the earlier one).
    pub fn decrypt(&self, token: &str) -> Result<String, SecretError> {
        let plaintext = self
            .fernet
            .decrypt(token)
            .map_err(|_| SecretError::Undecryptable)?;
        String::from_utf8(plaintext).map_err(|_| SecretError::NotUtf8)
    }
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretBox")
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Reads `value` the way Python's `base64.urlsafe_b64decode(str)` does (non-strict
/// `binascii.a2b_base64`), and returns the key if that yields 32 bytes, as
/// `cryptography.fernet.Fernet(value)` requires. Matching Python here matters: a value
/// it accepts but we hashed (or the reverse) would silently change the key.
///
/// Python's reading: non-ASCII text is an error; `-`/`_` and `+`/`/` are both accepted;
/// any other character is skipped; a `=` only counts once two data characters of the
/// current quantum are in, and the padding that completes a quantum ends the input;
/// without such padding, the data must end on a whole quantum; spare low bits of the last
/// character are ignored.
fn python_fernet_key(value: &str) -> Option<[u8; 32]> {
    if !value.is_ascii() {
        return None;
    }
    let mut data = String::with_capacity(44);
    let mut pads = 0;
    let mut padded_to_end = false;
    for c in value.chars() {
        let quantum_pos = data.len() % 4;
        match c {
            '=' if quantum_pos >= 2 => {
                pads += 1;
                if quantum_pos + pads >= 4 {
                    padded_to_end = true;
                    break;
                }
            }
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '_' => {
                data.push(c);
                pads = 0;
            }
            '+' => {
                data.push('-');
                pads = 0;
            }
            '/' => {
                data.push('_');
                pads = 0;
            }
            _ => {}
        }
    }
    if !padded_to_end && data.len() % 4 != 0 {
        return None;
    }
    const LENIENT_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    LENIENT_URL_SAFE.decode(data).ok()?.try_into().ok()
}
