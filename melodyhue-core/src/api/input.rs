//! Reading and validating request bodies and query strings, collecting every bad field into
//! one `422` the way FastAPI clients expect.
//!
//! Readers return a neutral value (empty string, `None`) for a bad field and remember the
//! error; [`Input::finish`] then fails with all of them. After `finish` succeeds every value
//! read is valid.

use std::ops::RangeInclusive;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::error::{ApiError, FieldError};

/// The fields of a JSON object body, and the errors found so far.
#[derive(Debug)]
pub struct Input {
    fields: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl Input {
    /// Parses a body that must be a JSON object. An empty body counts as `{}` when
    /// `optional` (e.g. `/auth/refresh`), else as a missing body.
    pub fn parse(body: &Bytes, optional: bool) -> Result<Input, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            if optional {
                return Ok(Input::from_map(Map::new()));
            }
            return Err(ApiError::Validation(vec![FieldError::new(
                &["body"],
                "missing",
                "Field required",
            )]));
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(fields)) => Ok(Input::from_map(fields)),
            Ok(_) => Err(ApiError::Validation(vec![FieldError::new(
                &["body"],
                "model_attributes_type",
                "Input should be a valid dictionary or object to extract fields from",
            )])),
            Err(err) => Err(ApiError::Validation(vec![FieldError::new(
                &["body"],
                "json_invalid",
                format!("JSON decode error: {err}"),
            )])),
        }
    }

    fn from_map(fields: Map<String, Value>) -> Self {
        Input {
            fields,
            errors: Vec::new(),
        }
    }

    fn fail(&mut self, field: &str, kind: &'static str, msg: impl Into<String>) {
        self.errors
            .push(FieldError::new(&["body", field], kind, msg));
    }

    /// A required string whose length (in characters) is within `length`.
    pub fn string(&mut self, field: &str, length: RangeInclusive<usize>) -> String {
        match self.optional_string(field, length) {
            Some(value) => value,
            None => {
                if !self.has_error(field) {
                    self.fail(field, "missing", "Field required");
                }
                String::new()
            }
        }
    }

    /// An optional string (absent or `null` is `None`) whose length is within `length`.
    pub fn optional_string(
        &mut self,
        field: &str,
        length: RangeInclusive<usize>,
    ) -> Option<String> {
        let value = match self.fields.get(field) {
            None | Some(Value::Null) => return None,
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                self.fail(field, "string_type", "Input should be a valid string");
                return None;
            }
        };
        let chars = value.chars().count();
        if chars < *length.start() {
            let unit = if *length.start() == 1 {
                "character"
            } else {
                "characters"
            };
            self.fail(
                field,
                "string_too_short",
                format!("String should have at least {} {unit}", length.start()),
            );
            return None;
        }
        if chars > *length.end() {
            self.fail(
                field,
                "string_too_long",
                format!("String should have at most {} characters", length.end()),
            );
            return None;
        }
        Some(value)
    }

    /// A required e-mail address (trimmed; at most 255 characters).
    pub fn email(&mut self, field: &str) -> String {
        let value = self.string(field, 1..=255);
        if self.has_error(field) {
            return value;
        }
        match normalize_email(&value) {
            Some(email) => email,
            None => {
                self.fail(field, "value_error", "value is not a valid email address");
                String::new()
            }
        }
    }

    /// An optional `#rrggbb` color, returned lowercase.
    pub fn optional_color(&mut self, field: &str) -> Option<String> {
        match self.fields.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(color)) if is_hex_color(color) => Some(color.to_ascii_lowercase()),
            Some(Value::String(_)) => {
                self.fail(
                    field,
                    "string_pattern_mismatch",
                    "String should match pattern '^#[0-9a-fA-F]{6}$'",
                );
                None
            }
            Some(_) => {
                self.fail(field, "string_type", "Input should be a valid string");
                None
            }
        }
    }

    fn has_error(&self, field: &str) -> bool {
        self.errors
            .iter()
            .any(|e| e.loc.last().is_some_and(|l| l == field))
    }

    /// Fails with every error found, or succeeds when there was none.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

/// `#` and six hex digits.
pub fn is_hex_color(value: &str) -> bool {
    value.len() == 7 && value.starts_with('#') && value[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// A trimmed address with one `@`, a plausible local part and a dotted domain, or `None`.
fn normalize_email(value: &str) -> Option<String> {
    let value = value.trim();
    let parsed: email_address::EmailAddress = value.parse().ok()?;
    let domain = parsed.domain();
    // Like the earlier service's validator: a domain needs a dot and no bracketed IP literal.
    if !domain.contains('.') || domain.starts_with('[') || domain.ends_with('.') {
        return None;
    }
    Some(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: &str) -> Input {
        Input::parse(&Bytes::copy_from_slice(json.as_bytes()), false).unwrap()
    }

    #[test]
    fn collects_one_error_per_bad_field() {
        let mut body = input(r#"{"username": "ab", "email": 5}"#);
        let _ = body.string("username", 3..=80);
        let _ = body.email("email");
        let _ = body.string("password", 8..=128);
        let Err(ApiError::Validation(errors)) = body.finish() else {
            panic!("expected a validation error");
        };
        let kinds: Vec<_> = errors.iter().map(|e| (e.loc[1].as_str(), e.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("username", "string_too_short"),
                ("email", "string_type"),
                ("password", "missing")
            ]
        );
    }

    #[test]
    fn malformed_and_non_object_bodies() {
        assert!(Input::parse(&Bytes::from_static(b"{nope"), false).is_err());
        assert!(Input::parse(&Bytes::from_static(b"[1]"), false).is_err());
        assert!(Input::parse(&Bytes::from_static(b""), false).is_err());
        assert!(Input::parse(&Bytes::from_static(b""), true).is_ok());
    }

    #[test]
    fn emails_and_colors() {
        let mut body =
            input(r##"{"a": " x@example.com ", "b": "x@localhost", "c": "#A0b1C2", "d": "red"}"##);
        assert_eq!(body.email("a"), "x@example.com");
        assert_eq!(body.email("b"), "");
        assert_eq!(body.optional_color("c").as_deref(), Some("#a0b1c2"));
        assert_eq!(body.optional_color("d"), None);
        assert!(body.finish().is_err());
    }
}
