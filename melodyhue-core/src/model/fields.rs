//! The values a client or an embedder hands in, each a type that checks its rule when it is
//! made: a [`Username`] is 3 to 80 characters whoever calls [`Accounts::register`](crate::service::Accounts::register).
//!
//! The rules are those of the earlier FastAPI service (its pydantic request models, see the
//! original `API.md`), kept exactly: lengths count Unicode scalar values (Python's `len`), no
//! trimming unless said, and the NUL character is refused everywhere (PostgreSQL cannot store
//! it in text). Each type names its limits as constants; its [`utoipa::ToSchema`] carries
//! them, so the OpenAPI document is written from the same numbers the checks use.
//!
//! A refused text gives an [`InvalidValue`] saying which rule failed; the HTTP layer turns it
//! into FastAPI's `422` entry (`string_too_short`, `value_error`...).

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr};

/// The NUL character, refused in every string a client sends: PostgreSQL cannot store it in
/// text (error 22021), and no backend should differ from another.
pub const NUL: char = '\0';

/// Why a text is not a valid value of its type: the first rule it breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidValue {
    /// It contains the NUL character (`U+0000`).
    #[error("must not contain the NUL character")]
    ContainsNul,
    /// It has fewer characters than the type's minimum.
    #[error("must have at least {min_chars} characters")]
    TooShort {
        /// The minimum, in characters.
        min_chars: usize,
    },
    /// It has more characters than the type's maximum.
    #[error("must have at most {max_chars} characters")]
    TooLong {
        /// The maximum, in characters.
        max_chars: usize,
    },
    /// It is not an e-mail address as [`Email`] accepts them.
    #[error("is not a valid e-mail address")]
    NotAnEmailAddress,
    /// It does not match the type's pattern.
    #[error("must match the pattern {pattern}")]
    PatternMismatch {
        /// The regular expression (ECMA-262), e.g. [`HexColor::PATTERN`].
        pattern: &'static str,
    },
}

/// Checks the rules every text of a client shares: no NUL character, and a length in
/// characters (not bytes) within `min_chars..=max_chars`, in that order.
pub fn check_text(text: &str, min_chars: usize, max_chars: usize) -> Result<(), InvalidValue> {
    if text.contains(NUL) {
        return Err(InvalidValue::ContainsNul);
    }
    let chars = text.chars().count();
    if chars < min_chars {
        return Err(InvalidValue::TooShort { min_chars });
    }
    if chars > max_chars {
        return Err(InvalidValue::TooLong { max_chars });
    }
    Ok(())
}

/// The impls every value type shares, given its `parse(String)` and `schema_object()`.
macro_rules! text_value {
    ($name:ident) => {
        impl $name {
            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The text, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;

            fn try_from(text: String) -> Result<Self, InvalidValue> {
                Self::parse(text)
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;

            fn from_str(text: &str) -> Result<Self, InvalidValue> {
                Self::parse(text.to_owned())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::parse(text).map_err(serde::de::Error::custom)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                Self::schema_object().into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

/// What a value that is not secret shares: shown, compared and serialized as its text.
macro_rules! shown_value {
    ($name:ident) => {
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    };
}

/// A secret: never shown (`Debug` prints `"***"`), never serialized.
macro_rules! secret_value {
    ($name:ident) => {
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(\"***\")"))
            }
        }
    };
}

/// A text whose only rules are those of [`check_text`], kept as given.
macro_rules! bounded_text {
    (
        $(#[$doc:meta])*
        $name:ident, $min:literal..=$max:literal, $description:expr
    ) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// The fewest characters.
            pub const MIN_CHARS: usize = $min;
            /// The most characters.
            pub const MAX_CHARS: usize = $max;

            /// `text` if it keeps the rules, else the first it breaks.
            pub fn parse(text: impl Into<String>) -> Result<Self, InvalidValue> {
                let text = text.into();
                check_text(&text, Self::MIN_CHARS, Self::MAX_CHARS)?;
                Ok($name(text))
            }

            fn schema_object() -> ObjectBuilder {
                let description: Option<&str> = $description;
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(description)
                    // A lower bound of 0 says nothing, as in the earlier service's schema.
                    .min_length((Self::MIN_CHARS > 0).then_some(Self::MIN_CHARS))
                    .max_length(Some(Self::MAX_CHARS))
            }
        }

        text_value!($name);
    };
}

bounded_text!(
    /// The display name of an account: 3 to 80 characters, not unique (pydantic
    /// `constr(min_length=3, max_length=80)` of the earlier service).
    Username, 3..=80, None
);
shown_value!(Username);

bounded_text!(
    /// A new password (registration, change, reset): 8 to 128 characters (the earlier
    /// service's `min_length=8, max_length=128`).
    Password, 8..=128, None
);
secret_value!(Password);

bounded_text!(
    /// A password given to be checked (login, the old password of a change): 1 to 1024
    /// characters, looser than [`Password`] so that passwords set under older rules still
    /// work, and bounded so that nobody makes the server hash megabytes.
    LoginPassword, 1..=1024, None
);
secret_value!(LoginPassword);

bounded_text!(
    /// The name of an overlay: 1 to 120 characters ([`OverlayName::DEFAULT`] when a creation
    /// gives none).
    OverlayName, 1..=120, None
);
shown_value!(OverlayName);

bounded_text!(
    /// How an overlay is drawn, e.g. `classic`: 1 to 64 characters
    /// ([`OverlayTemplate::DEFAULT`] when a creation gives none).
    OverlayTemplate, 1..=64, None
);
shown_value!(OverlayTemplate);

bounded_text!(
    /// A theme, layout or avatar mode of the settings (`light`, `default`, `gravatar`...): 1
    /// to 32 characters.
    SettingValue, 1..=32, None
);
shown_value!(SettingValue);

bounded_text!(
    /// Why a moderator warns or bans a user: 3 to 500 characters.
    ModerationReason, 3..=500, None
);
shown_value!(ModerationReason);

bounded_text!(
    /// What a password login names its account by: an e-mail address (it contains `@`) or a
    /// username, 1 to 255 characters.
    LoginIdentifier, 1..=255, Some("An e-mail address (contains `@`) or a username.")
);
shown_value!(LoginIdentifier);

bounded_text!(
    /// The ticket of a login waiting for its TOTP code: 1 to 64 characters.
    LoginTicket, 1..=64, None
);
secret_value!(LoginTicket);

bounded_text!(
    /// A TOTP code as typed: six digits, with room for the spaces and dashes users type
    /// between them (`123 456`), 1 to 16 characters.
    TotpCode, 1..=16, Some("The 6-digit TOTP code.")
);
secret_value!(TotpCode);

bounded_text!(
    /// A token mailed to a user (password reset, 2FA disable, e-mail revert): 1 to 256
    /// characters.
    MailedToken, 1..=256, None
);
secret_value!(MailedToken);

bounded_text!(
    /// A refresh token a client sends back (`/auth/refresh`, `/auth/logout`): at most 4096
    /// characters (more is no token of this server's; empty counts as none).
    RefreshToken, 0..=4096, None
);
secret_value!(RefreshToken);

bounded_text!(
    /// The client id of a user's own Spotify app, as they store it: at most 255 characters
    /// (blank clears it).
    SpotifyClientId, 0..=255, None
);
shown_value!(SpotifyClientId);

bounded_text!(
    /// The client secret of a user's own Spotify app: at most 255 characters (blank clears it).
    SpotifyClientSecret, 0..=255, None
);
secret_value!(SpotifyClientSecret);

bounded_text!(
    /// A Spotify refresh token a user stores by hand: at most 1024 characters (blank clears
    /// it).
    SpotifyRefreshToken, 0..=1024, None
);
secret_value!(SpotifyRefreshToken);

impl OverlayName {
    /// The name of an overlay created without one.
    pub const DEFAULT: &'static str = "Overlay";
}

impl Default for OverlayName {
    fn default() -> Self {
        OverlayName(Self::DEFAULT.to_owned())
    }
}

impl OverlayTemplate {
    /// The template of an overlay created without one.
    pub const DEFAULT: &'static str = "classic";
}

impl Default for OverlayTemplate {
    fn default() -> Self {
        OverlayTemplate(Self::DEFAULT.to_owned())
    }
}

/// An e-mail address: trimmed, at most 255 characters (counted before trimming), one `@`
/// with a plausible local part (RFC 5322's `addr-spec`, as the `email_address` crate reads
/// it) and a domain with a dot, not ending in one, and not a bracketed IP literal, as the
/// earlier service's validator (`email-validator`) wanted. Kept as typed (after trimming);
/// comparisons use [`canonical_email`](super::canonical_email).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// The fewest characters, before trimming.
    pub const MIN_CHARS: usize = 1;
    /// The most characters, before trimming.
    pub const MAX_CHARS: usize = 255;

    /// `text`, trimmed, if it is an address, else the first rule it breaks.
    pub fn parse(text: impl Into<String>) -> Result<Self, InvalidValue> {
        let text = text.into();
        check_text(&text, Self::MIN_CHARS, Self::MAX_CHARS)?;
        let address = text.trim();
        let parsed: email_address::EmailAddress = address
            .parse()
            .map_err(|_| InvalidValue::NotAnEmailAddress)?;
        let domain = parsed.domain();
        if !domain.contains('.') || domain.starts_with('[') || domain.ends_with('.') {
            return Err(InvalidValue::NotAnEmailAddress);
        }
        Ok(Email(address.to_owned()))
    }

    fn schema_object() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
            .max_length(Some(Self::MAX_CHARS))
    }
}

text_value!(Email);
shown_value!(Email);

/// A color as `#rrggbb`, kept lowercase (`#A0B1C2` is `#a0b1c2`), the form settings store.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HexColor(String);

impl HexColor {
    /// What a color must match (the earlier service's pydantic pattern).
    pub const PATTERN: &'static str = "^#[0-9a-fA-F]{6}$";

    /// `text`, lowercased, if it is `#` and six hex digits.
    pub fn parse(text: impl Into<String>) -> Result<Self, InvalidValue> {
        let text = text.into();
        let is_hex = text.len() == 7
            && text.starts_with('#')
            && text[1..].bytes().all(|b| b.is_ascii_hexdigit());
        if !is_hex {
            return Err(InvalidValue::PatternMismatch {
                pattern: Self::PATTERN,
            });
        }
        Ok(HexColor(text.to_ascii_lowercase()))
    }

    fn schema_object() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(Self::PATTERN))
    }
}

text_value!(HexColor);
shown_value!(HexColor);

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(n: usize) -> String {
        "é".repeat(n)
    }

    #[test]
    fn lengths_count_characters_at_both_ends() {
        type Parse = fn(String) -> Result<(), InvalidValue>;
        // A minimum of 0: the text may be blank (which clears it), bounded above only.
        let cases: [(Parse, usize, usize); 15] = [
            (|t| Username::parse(t).map(drop), 3, 80),
            (|t| Password::parse(t).map(drop), 8, 128),
            (|t| LoginPassword::parse(t).map(drop), 1, 1024),
            (|t| LoginIdentifier::parse(t).map(drop), 1, 255),
            (|t| LoginTicket::parse(t).map(drop), 1, 64),
            (|t| TotpCode::parse(t).map(drop), 1, 16),
            (|t| MailedToken::parse(t).map(drop), 1, 256),
            (|t| OverlayName::parse(t).map(drop), 1, 120),
            (|t| OverlayTemplate::parse(t).map(drop), 1, 64),
            (|t| SettingValue::parse(t).map(drop), 1, 32),
            (|t| ModerationReason::parse(t).map(drop), 3, 500),
            (|t| RefreshToken::parse(t).map(drop), 0, 4096),
            (|t| SpotifyClientId::parse(t).map(drop), 0, 255),
            (|t| SpotifyClientSecret::parse(t).map(drop), 0, 255),
            (|t| SpotifyRefreshToken::parse(t).map(drop), 0, 1024),
        ];
        for (parse, min, max) in cases {
            // Two bytes per character: a byte count would refuse the maximum.
            assert_eq!(parse(chars(min)), Ok(()), "{min}");
            assert_eq!(parse(chars(max)), Ok(()), "{max}");
            if min > 0 {
                assert_eq!(
                    parse(chars(min - 1)),
                    Err(InvalidValue::TooShort { min_chars: min })
                );
            }
            assert_eq!(
                parse(chars(max + 1)),
                Err(InvalidValue::TooLong { max_chars: max })
            );
            assert_eq!(
                parse(format!("{}\0", chars(min))),
                Err(InvalidValue::ContainsNul)
            );
        }
    }

    #[test]
    fn the_constants_are_the_rules() {
        assert_eq!((Username::MIN_CHARS, Username::MAX_CHARS), (3, 80));
        assert_eq!((Password::MIN_CHARS, Password::MAX_CHARS), (8, 128));
        assert_eq!(Email::MAX_CHARS, 255);
        assert!(Username::parse("   ").is_ok(), "usernames are not trimmed");
        assert_eq!(Username::parse("ab\u{301}").unwrap().as_str(), "ab\u{301}");
    }

    #[test]
    fn emails_are_trimmed_and_need_a_dotted_domain() {
        assert_eq!(
            Email::parse(" x@example.com ").unwrap().as_str(),
            "x@example.com"
        );
        assert_eq!(
            Email::parse("zoë@exämple.de").unwrap().as_str(),
            "zoë@exämple.de"
        );
        for bad in [
            "x@localhost",
            "x@[127.0.0.1]",
            "x@example.com.",
            "nope",
            "@example.com",
        ] {
            assert_eq!(
                Email::parse(bad),
                Err(InvalidValue::NotAnEmailAddress),
                "{bad}"
            );
        }
        assert_eq!(
            Email::parse(""),
            Err(InvalidValue::TooShort { min_chars: 1 })
        );
        assert_eq!(
            Email::parse("x\0@example.com"),
            Err(InvalidValue::ContainsNul)
        );
        // The limit counts the text as sent, blanks included.
        let local = "a".repeat(64);
        // DNS labels have at most 63 octets.
        let domain = format!("{0}.{0}.{1}.com", "b".repeat(60), "c".repeat(62));
        let longest = format!("{local}@{domain}");
        assert_eq!(longest.chars().count(), 253);
        assert!(Email::parse(format!(" {longest} ")).is_ok());
        assert_eq!(
            Email::parse(format!("  {longest} ")),
            Err(InvalidValue::TooLong { max_chars: 255 })
        );
    }

    #[test]
    fn colors_are_hex_and_lowercased() {
        assert_eq!(HexColor::parse("#A0b1C2").unwrap().as_str(), "#a0b1c2");
        let mismatch = Err(InvalidValue::PatternMismatch {
            pattern: HexColor::PATTERN,
        });
        for bad in [
            "red", "#a0b1c", "#a0b1c2f", "a0b1c2f", "#g0b1c2", "#é0b1c", "",
        ] {
            assert_eq!(HexColor::parse(bad), mismatch, "{bad}");
        }
    }

    #[test]
    fn secrets_are_not_shown() {
        let password = Password::parse("correct-horse-42").unwrap();
        assert_eq!(format!("{password:?}"), "Password(\"***\")");
        let login = LoginPassword::parse("hunter2").unwrap();
        assert!(!format!("{login:?}").contains("hunter2"));
    }

    #[test]
    fn serde_checks_the_rules() {
        let name: Username = serde_json::from_str("\"alice\"").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"alice\"");
        let err = serde_json::from_str::<Username>("\"al\"").unwrap_err();
        assert!(err.to_string().contains("at least 3 characters"), "{err}");
    }

    #[test]
    fn schemas_carry_the_limits() {
        let schema = |s: RefOr<Schema>| serde_json::to_value(s).unwrap();
        use utoipa::PartialSchema;
        assert_eq!(
            schema(Username::schema()),
            serde_json::json!({"type": "string", "minLength": 3, "maxLength": 80})
        );
        assert_eq!(
            schema(Email::schema()),
            serde_json::json!({"type": "string", "format": "email", "maxLength": 255})
        );
        assert_eq!(
            schema(HexColor::schema()),
            serde_json::json!({"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"})
        );
    }
}
