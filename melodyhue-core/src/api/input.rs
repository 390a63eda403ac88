//! Reading and validating request bodies and query strings, collecting every bad field into
//! one `422` the way FastAPI clients expect.
//!
//! Readers return `None` (or a neutral value) for a bad field and remember the error;
//! [`Input::finish`] or [`Input::build`] then fails with all of them. After either succeeds
//! every value read is valid. The values of the model's types ([`Input::value`]) are checked
//! by the types themselves; `field_error` words their refusals as pydantic does.

use std::ops::RangeInclusive;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::error::{ApiError, FieldError};
use crate::model::InvalidValue;
use crate::model::fields::check_text;
use crate::store::ListQuery;

pub(crate) use crate::model::fields::NUL;
const NUL_MESSAGE: &str = "Value error, must not contain the NUL character";

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

    /// A required value of a model type ([`Username`](crate::model::Username),
    /// [`Email`](crate::model::Email)...), checked by its own rules.
    pub fn value<T: TryFrom<String, Error = InvalidValue>>(&mut self, field: &str) -> Option<T> {
        let value = self.optional_value(field);
        self.required(field, value)
    }

    /// An optional value of a model type (absent or `null` is `None`), like [`Input::value`].
    pub fn optional_value<T: TryFrom<String, Error = InvalidValue>>(
        &mut self,
        field: &str,
    ) -> Option<T> {
        self.optional(field, T::try_from)
    }

    /// The string of `field` made into a value by `parse`; a refusal is this field's error.
    fn optional<T>(
        &mut self,
        field: &str,
        parse: impl FnOnce(String) -> Result<T, InvalidValue>,
    ) -> Option<T> {
        let text = match self.fields.get(field) {
            None | Some(Value::Null) => return None,
            Some(Value::String(text)) => text.clone(),
            Some(_) => {
                self.fail(field, "string_type", "Input should be a valid string");
                return None;
            }
        };
        match parse(text) {
            Ok(value) => Some(value),
            Err(invalid) => {
                let (kind, msg) = field_error(invalid);
                self.fail(field, kind, msg);
                None
            }
        }
    }

    /// `value`, or the `missing` error of `field` when it is absent and has no other error.
    fn required<T>(&mut self, field: &str, value: Option<T>) -> Option<T> {
        if value.is_none() && !self.has_error(field) {
            self.fail(field, "missing", "Field required");
        }
        value
    }

    /// A required string that must be one of the names of `choices` (pydantic's `Literal`); the
    /// value paired with it, or `T::default()` (and an error) when it is none of them.
    pub fn choice<T: Copy + Default>(&mut self, field: &str, choices: &[(&str, T)]) -> T {
        let value = match self.fields.get(field) {
            None | Some(Value::Null) => {
                self.fail(field, "missing", "Field required");
                return T::default();
            }
            Some(value) => value,
        };
        if let Some((_, found)) = choices
            .iter()
            .find(|(name, _)| value.as_str() == Some(name))
        {
            return *found;
        }
        let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
        self.fail(
            field,
            "literal_error",
            format!("Input should be {}", quoted_alternatives(&names)),
        );
        T::default()
    }

    /// An optional datetime (absent or `null` is `None`), read as pydantic's `datetime` reads
    /// it (see [`parse_datetime`]). It must be later than `after`.
    pub fn optional_timestamp_after(
        &mut self,
        field: &str,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let value = self.fields.get(field)?;
        if value.is_null() {
            return None;
        }
        let time = match parse_datetime(value) {
            Ok(time) => time,
            Err(DatetimeError::Type) => {
                self.fail(field, "datetime_type", "Input should be a valid datetime");
                return None;
            }
            Err(DatetimeError::Parsing(why)) => {
                self.fail(
                    field,
                    "datetime_from_date_parsing",
                    format!("Input should be a valid datetime or date, {why}"),
                );
                return None;
            }
        };
        if time <= after {
            self.fail(
                field,
                "value_error",
                "Value error, the date must be in the future",
            );
            return None;
        }
        Some(time)
    }

    fn has_error(&self, field: &str) -> bool {
        self.errors
            .iter()
            .any(|e| e.loc.last().is_some_and(|l| l == field))
    }

    /// Fails with every error found, or succeeds when there was none.
    pub fn finish(self) -> Result<(), ApiError> {
        self.build(|| Some(()))
    }

    /// The body `make` builds from the values read, or every error found. `make` sees every
    /// value that was read without error, so it returns `Some` whenever there was none.
    pub fn build<T>(self, make: impl FnOnce() -> Option<T>) -> Result<T, ApiError> {
        match make() {
            Some(body) if self.errors.is_empty() => Ok(body),
            _ => Err(ApiError::Validation(self.errors)),
        }
    }
}

/// The `type` and `msg` of FastAPI's `422` entry for a value its type refused: the one
/// place where the model's rules meet pydantic's wording.
fn field_error(invalid: InvalidValue) -> (&'static str, String) {
    match invalid {
        InvalidValue::ContainsNul => ("value_error", NUL_MESSAGE.to_owned()),
        InvalidValue::TooShort { min_chars } => {
            let unit = if min_chars == 1 {
                "character"
            } else {
                "characters"
            };
            (
                "string_too_short",
                format!("String should have at least {min_chars} {unit}"),
            )
        }
        InvalidValue::TooLong { max_chars } => (
            "string_too_long",
            format!("String should have at most {max_chars} characters"),
        ),
        InvalidValue::NotAnEmailAddress => (
            "value_error",
            "value is not a valid email address".to_owned(),
        ),
        InvalidValue::PatternMismatch { pattern } => (
            "string_pattern_mismatch",
            format!("String should match pattern '{pattern}'"),
        ),
    }
}

/// The parameters of a query string, read and validated like a body: every bad parameter
/// becomes one entry of a `422` with `loc: ["query", "<name>"]`.
#[derive(Debug)]
pub struct QueryInput<'a> {
    pairs: &'a [(String, String)],
    errors: Vec<FieldError>,
}

/// Largest `page_size` of a list.
pub const MAX_PAGE_SIZE: u32 = 100;
/// `page_size` when not given.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Longest `search` term, in characters.
pub const MAX_SEARCH_CHARS: usize = 255;

impl<'a> QueryInput<'a> {
    /// Reads `pairs` (decoded, in order).
    pub fn new(pairs: &'a [(String, String)]) -> Self {
        QueryInput {
            pairs,
            errors: Vec::new(),
        }
    }

    /// The value of `name`; the last one when repeated, like FastAPI.
    fn value(&self, name: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn fail(&mut self, name: &str, kind: &'static str, msg: impl Into<String>) {
        self.errors
            .push(FieldError::new(&["query", name], kind, msg));
    }

    /// An integer within `range`, `default` when absent.
    pub fn integer(&mut self, name: &str, default: u32, range: RangeInclusive<u32>) -> u32 {
        let Some(text) = self.value(name) else {
            return default;
        };
        let Ok(value) = text.trim().parse::<i64>() else {
            self.fail(
                name,
                "int_parsing",
                "Input should be a valid integer, unable to parse string as an integer",
            );
            return default;
        };
        if value < i64::from(*range.start()) {
            self.fail(
                name,
                "greater_than_equal",
                format!("Input should be greater than or equal to {}", range.start()),
            );
            return default;
        }
        if value > i64::from(*range.end()) {
            self.fail(
                name,
                "less_than_equal",
                format!("Input should be less than or equal to {}", range.end()),
            );
            return default;
        }
        u32::try_from(value).unwrap_or(default)
    }

    /// An optional boolean, spelled as pydantic accepts it (`true`/`false`, `1`/`0`, `yes`/`no`,
    /// `on`/`off`, `t`/`f`, `y`/`n`, any case).
    pub fn optional_bool(&mut self, name: &str) -> Option<bool> {
        let text = self.value(name)?;
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
            "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
            _ => {
                self.fail(
                    name,
                    "bool_parsing",
                    "Input should be a valid boolean, unable to interpret input",
                );
                None
            }
        }
    }

    /// An optional string of at most `max_chars` characters; empty counts as absent.
    pub fn optional_string(&mut self, name: &str, max_chars: usize) -> Option<String> {
        let text = self.value(name).filter(|text| !text.is_empty())?;
        if let Err(invalid) = check_text(text, 0, max_chars) {
            let (kind, msg) = field_error(invalid);
            self.fail(name, kind, msg);
            return None;
        }
        Some(text.to_owned())
    }

    /// An optional absolute URL (`scheme:…`, RFC 3986) of at most `max_chars` characters,
    /// kept exactly as given; empty counts as absent. Control characters are refused.
    pub fn optional_url(&mut self, name: &str, max_chars: usize) -> Option<String> {
        let text = self.optional_string(name, max_chars)?;
        // The URL parser would quietly strip or encode control characters and blanks; a URL
        // that another system must see byte for byte may not have them at all.
        let clean = !text.chars().any(|c| c.is_control() || c.is_whitespace());
        if clean && url::Url::parse(&text).is_ok() {
            return Some(text);
        }
        self.fail(
            name,
            "url_parsing",
            "Input should be a valid URL, relative URL without a base",
        );
        None
    }

    /// The paging and search of a list: `page` (≥ 1, default 1), `page_size` (1..=100,
    /// default 20) and `search`.
    pub fn list_query(&mut self) -> ListQuery {
        ListQuery {
            page: self.integer("page", 1, 1..=u32::MAX),
            page_size: self.integer("page_size", DEFAULT_PAGE_SIZE, 1..=MAX_PAGE_SIZE),
            search: self.optional_string("search", MAX_SEARCH_CHARS),
        }
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

/// `'a', 'b' or 'c'`, as pydantic lists the values of a `Literal`.
fn quoted_alternatives(choices: &[&str]) -> String {
    let quoted: Vec<String> = choices.iter().map(|c| format!("'{c}'")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.concat(),
    }
}

/// Why a JSON value is not a datetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatetimeError {
    /// Not a string or a number (pydantic's `datetime_type`).
    Type,
    /// A string or number that does not parse, and why (pydantic's
    /// `datetime_from_date_parsing`).
    Parsing(String),
}

/// A datetime in a JSON body, read the way pydantic v2 reads a `datetime` field (with
/// `speedate`, the parser pydantic itself uses):
/// - `YYYY-MM-DD[T| |t|_]HH:MM[:SS[.ffffff]]` followed by `Z`, `±HH:MM`, `±HHMM`, `±HH` or no
///   zone, which is taken as UTC (so an HTML `datetime-local` value such as
///   `2026-12-01T20:25` is UTC, as the earlier service read it);
/// - a date alone, `YYYY-MM-DD`: its midnight, UTC;
/// - a unix timestamp, as a JSON number or a string of one: seconds, or milliseconds when
///   its absolute value is above 2×10¹⁰.
pub fn parse_datetime(value: &Value) -> Result<DateTime<Utc>, DatetimeError> {
    let config = speedate::DateTimeConfig::default();
    let parsed = match value {
        Value::String(text) => {
            let text = text.trim().as_bytes();
            speedate::DateTime::parse_bytes_with_config(text, &config).or_else(|err| {
                // pydantic takes a bare date as its midnight.
                speedate::Date::parse_bytes_rfc3339(text)
                    .map(|date| speedate::DateTime {
                        date,
                        time: speedate::Time {
                            hour: 0,
                            minute: 0,
                            second: 0,
                            microsecond: 0,
                            tz_offset: None,
                        },
                    })
                    .map_err(|_| err)
            })
        }
        Value::Number(number) => match (number.as_i64(), number.as_f64()) {
            (Some(seconds), _) => {
                speedate::DateTime::from_timestamp_with_config(seconds, 0, &config)
            }
            (None, Some(float)) => speedate::DateTime::from_float_with_config(float, &config),
            (None, None) => return Err(DatetimeError::Parsing("number too large".into())),
        },
        _ => return Err(DatetimeError::Type),
    };
    let parsed = parsed.map_err(|err| DatetimeError::Parsing(err.to_string().replace('_', " ")))?;
    let nanos = parsed.time.microsecond.saturating_mul(1000);
    DateTime::from_timestamp(parsed.timestamp_tz(), nanos)
        .ok_or_else(|| DatetimeError::Parsing("out of range".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    use crate::model::{Email, HexColor, OverlayName, Password, TotpCode, Username};

    fn input(json: &str) -> Input {
        Input::parse(&Bytes::copy_from_slice(json.as_bytes()), false).unwrap()
    }

    /// The errors of a body that must have failed its validation.
    fn field_errors(body: Input) -> Vec<FieldError> {
        let Err(ApiError::Validation(errors)) = body.finish() else {
            panic!("expected a validation error");
        };
        errors
    }

    #[test]
    fn collects_one_error_per_bad_field() {
        let mut body = input(r#"{"username": "ab", "email": 5}"#);
        let _ = body.value::<Username>("username");
        let _ = body.value::<Email>("email");
        let _ = body.value::<Password>("password");
        let errors = field_errors(body);
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
    fn choices_and_timestamps() {
        let now = "2030-01-01T00:00:00Z".parse().unwrap();
        let mut body = input(
            r#"{"role": "admin", "bad": "root", "until": "2030-02-01T10:00:00+02:00",
                "naive": "2030-03-01T00:00:00", "past": "2029-12-31T23:59:59Z", "junk": "soon"}"#,
        );
        let roles = [("user", 1), ("moderator", 2), ("admin", 3)];
        assert_eq!(body.choice("role", &roles), 3);
        assert_eq!(body.choice("bad", &roles), 0);
        assert_eq!(
            body.optional_timestamp_after("until", now),
            Some("2030-02-01T08:00:00Z".parse().unwrap())
        );
        assert_eq!(
            body.optional_timestamp_after("naive", now),
            Some("2030-03-01T00:00:00Z".parse().unwrap())
        );
        assert_eq!(body.optional_timestamp_after("absent", now), None);
        assert_eq!(body.optional_timestamp_after("past", now), None);
        assert_eq!(body.optional_timestamp_after("junk", now), None);
        let errors = field_errors(body);
        let found: Vec<_> = errors.iter().map(|e| (e.loc[1].as_str(), e.kind)).collect();
        assert_eq!(
            found,
            [
                ("bad", "literal_error"),
                ("past", "value_error"),
                ("junk", "datetime_from_date_parsing")
            ]
        );
        assert_eq!(
            errors[0].msg,
            "Input should be 'user', 'moderator' or 'admin'"
        );
    }

    fn pairs(query: &str) -> Vec<(String, String)> {
        url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    }

    #[test]
    fn datetimes_as_pydantic_reads_them() {
        let utc = |text: &str| -> DateTime<Utc> { text.parse().unwrap() };
        let cases = [
            // The frontend's datetime-local value: no seconds, no zone (UTC).
            (json!("2026-12-01T20:25"), utc("2026-12-01T20:25:00Z")),
            (json!("2026-12-01T20:25:30"), utc("2026-12-01T20:25:30Z")),
            (
                json!("2026-12-01T20:25:30.123456"),
                utc("2026-12-01T20:25:30.123456Z"),
            ),
            (
                json!("2026-12-01T20:25:30.5Z"),
                utc("2026-12-01T20:25:30.5Z"),
            ),
            (json!("2026-12-01T20:25Z"), utc("2026-12-01T20:25:00Z")),
            (json!("2026-12-01T20:25+02:00"), utc("2026-12-01T18:25:00Z")),
            (
                json!("2026-12-01T20:25:00-0130"),
                utc("2026-12-01T21:55:00Z"),
            ),
            (json!("2026-12-01 20:25"), utc("2026-12-01T20:25:00Z")),
            (json!("2026-12-01t20:25:00z"), utc("2026-12-01T20:25:00Z")),
            (json!("  2026-12-01T20:25  "), utc("2026-12-01T20:25:00Z")),
            (json!("2026-12-01"), utc("2026-12-01T00:00:00Z")),
            (json!(1_796_156_700), utc("2026-12-01T20:25:00Z")),
            (json!("1796156700"), utc("2026-12-01T20:25:00Z")),
            (json!(1_796_156_700_500_i64), utc("2026-12-01T20:25:00.5Z")),
            (json!(1_796_156_700.25), utc("2026-12-01T20:25:00.25Z")),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_datetime(&value), Ok(expected), "{value}");
        }
        for junk in [
            json!("soon"),
            json!("2026-13-01T00:00"),
            json!("2026-12-01T25:00"),
            json!(""),
        ] {
            assert!(
                matches!(parse_datetime(&junk), Err(DatetimeError::Parsing(_))),
                "{junk}"
            );
        }
        for wrong in [json!(true), json!([1]), json!({"a": 1})] {
            assert_eq!(parse_datetime(&wrong), Err(DatetimeError::Type), "{wrong}");
        }
    }

    #[test]
    fn list_queries() {
        let pairs = pairs("page=3&page_size=50&search=50%25_off&banned=no");
        let mut query = QueryInput::new(&pairs);
        let list = query.list_query();
        assert_eq!((list.page, list.page_size), (3, 50));
        assert_eq!(list.search.as_deref(), Some("50%_off"));
        assert_eq!(query.optional_bool("banned"), Some(false));
        assert!(query.finish().is_ok());

        let empty = Vec::new();
        let mut query = QueryInput::new(&empty);
        assert_eq!(query.list_query(), ListQuery::default());
        assert_eq!(query.optional_bool("banned"), None);
    }

    #[test]
    fn bad_list_queries_name_each_parameter() {
        let pairs = pairs("page=0&page_size=101&banned=maybe&page=abc");
        let mut query = QueryInput::new(&pairs);
        let _ = query.list_query();
        let _ = query.optional_bool("banned");
        let Err(ApiError::Validation(errors)) = query.finish() else {
            panic!("expected a validation error");
        };
        let found: Vec<_> = errors
            .iter()
            .map(|e| (e.loc[0].as_str(), e.loc[1].as_str(), e.kind))
            .collect();
        assert_eq!(
            found,
            [
                ("query", "page", "int_parsing"),
                ("query", "page_size", "less_than_equal"),
                ("query", "banned", "bool_parsing")
            ]
        );
        let zero = self::pairs("page_size=0&page=-1");
        let mut query = QueryInput::new(&zero);
        let _ = query.list_query();
        let Err(ApiError::Validation(errors)) = query.finish() else {
            panic!("expected a validation error");
        };
        assert!(errors.iter().all(|e| e.kind == "greater_than_equal"));
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn nul_characters_are_refused_in_bodies_and_queries() {
        let mut body = input(r#"{"name": "a\u0000b", "email": "x\u0000@example.com"}"#);
        assert_eq!(body.optional_value::<OverlayName>("name"), None);
        assert_eq!(body.value::<Email>("email"), None);
        let errors = field_errors(body);
        let found: Vec<_> = errors.iter().map(|e| (e.loc[1].as_str(), e.kind)).collect();
        assert_eq!(found, [("name", "value_error"), ("email", "value_error")]);

        let pairs = pairs("search=a%00b");
        let mut query = QueryInput::new(&pairs);
        assert_eq!(query.list_query().search, None);
        assert!(query.finish().is_err());
    }

    #[test]
    fn emails_and_colors() {
        let mut body =
            input(r##"{"a": " x@example.com ", "b": "x@localhost", "c": "#A0b1C2", "d": "red"}"##);
        assert_eq!(body.value::<Email>("a").as_deref(), Some("x@example.com"));
        assert_eq!(body.value::<Email>("b"), None);
        assert_eq!(
            body.optional_value::<HexColor>("c").as_deref(),
            Some("#a0b1c2")
        );
        assert_eq!(body.optional_value::<HexColor>("d"), None);
        let errors = field_errors(body);
        let found: Vec<_> = errors
            .iter()
            .map(|e| (e.loc[1].as_str(), e.kind, e.msg.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("b", "value_error", "value is not a valid email address"),
                (
                    "d",
                    "string_pattern_mismatch",
                    "String should match pattern '^#[0-9a-fA-F]{6}$'"
                )
            ]
        );
    }

    #[test]
    fn model_errors_keep_pydantic_wording() {
        let mut body =
            input(r#"{"one": "", "two": "ab", "long": "12345678901234567", "nul": "a\u0000bc"}"#);
        let _ = body.value::<OverlayName>("one");
        let _ = body.value::<Username>("two");
        let _ = body.optional_value::<TotpCode>("long");
        let _ = body.value::<Username>("nul");
        let _ = body.optional_value::<Username>("absent");
        let errors = field_errors(body);
        let found: Vec<_> = errors
            .iter()
            .map(|e| (e.loc[1].as_str(), e.kind, e.msg.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "one",
                    "string_too_short",
                    "String should have at least 1 character"
                ),
                (
                    "two",
                    "string_too_short",
                    "String should have at least 3 characters"
                ),
                (
                    "long",
                    "string_too_long",
                    "String should have at most 16 characters"
                ),
                (
                    "nul",
                    "value_error",
                    "Value error, must not contain the NUL character"
                ),
            ]
        );
    }

    #[test]
    fn build_fails_with_every_error() {
        let mut body = input(r#"{"username": "alice"}"#);
        let username = body.value::<Username>("username");
        let password = body.value::<Password>("password");
        let built = body.build(|| Some((username?, password?)));
        let Err(ApiError::Validation(errors)) = built else {
            panic!("expected a validation error");
        };
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].kind, "missing");
    }
}
