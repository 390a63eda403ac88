//! Reading the variables: typed getters that name the variable in their errors.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::{ConfigError, SecretString};

pub(super) struct Vars(pub(super) HashMap<String, String>);

impl Vars {
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    pub(super) fn string(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_owned()
    }

    pub(super) fn secret(&self, name: &str) -> Option<SecretString> {
        self.get(name).map(SecretString::new)
    }

    pub(super) fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(other) => Err(invalid(
                name,
                format!("expected true or false, got {other:?}"),
            )),
        }
    }

    pub(super) fn number<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|_| invalid(name, format!("expected a whole number, got {raw:?}"))),
        }
    }

    pub(super) fn positive(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        match self.number(name, default)? {
            0 => Err(invalid(name, "must be greater than 0".into())),
            n => Ok(n),
        }
    }

    pub(super) fn seconds(
        &self,
        name: &'static str,
        default: f64,
    ) -> Result<Duration, ConfigError> {
        let raw = self.get(name);
        let value = match raw {
            None => default,
            Some(raw) => raw
                .parse::<f64>()
                .map_err(|_| invalid(name, format!("expected a number of seconds, got {raw:?}")))?,
        };
        if !(value > 0.0 && value <= 86_400.0) {
            return Err(invalid(name, "must be between 0 and 86400 seconds".into()));
        }
        Ok(Duration::from_secs_f64(value))
    }

    pub(super) fn url(&self, name: &'static str, default: &str) -> Result<String, ConfigError> {
        let value = self.string(name, default);
        url::Url::parse(&value).map_err(|err| invalid(name, format!("not a URL ({err})")))?;
        Ok(value.trim_end_matches('/').to_owned())
    }
}

/// The longest `REFRESH_TOKEN_REUSE_INTERVAL`: a rotated token stays good for this long, so
/// reuse detection is blind for it; minutes would already be generous for two tabs.
pub(super) const MAX_REUSE_INTERVAL_SECONDS: u64 = 3600;

pub(super) fn reuse_interval(vars: &Vars) -> Result<Duration, ConfigError> {
    let seconds = vars.number("REFRESH_TOKEN_REUSE_INTERVAL", 10)?;
    if seconds > MAX_REUSE_INTERVAL_SECONDS {
        return Err(invalid(
            "REFRESH_TOKEN_REUSE_INTERVAL",
            format!("at most {MAX_REUSE_INTERVAL_SECONDS} seconds"),
        ));
    }
    Ok(Duration::from_secs(seconds))
}

pub(super) fn invalid(variable: &'static str, reason: String) -> ConfigError {
    ConfigError::Invalid { variable, reason }
}

/// A positive count that fits a `u32`.
pub(super) fn count(vars: &Vars, name: &'static str, default: u32) -> Result<u32, ConfigError> {
    u32::try_from(vars.positive(name, u64::from(default))?)
        .map_err(|_| invalid(name, "too large".into()))
}

pub(super) fn database_url(vars: &Vars, data_dir: &Path) -> Result<SecretString, ConfigError> {
    if let Some(url) = vars.get("DATABASE_URL") {
        let known = [
            "sqlite:",
            "postgres://",
            "postgresql://",
            "mysql://",
            "mariadb://",
        ];
        if !known.iter().any(|scheme| url.starts_with(scheme)) {
            return Err(invalid(
                "DATABASE_URL",
                "expected a sqlite:, postgres:// or mysql:// URL".into(),
            ));
        }
        return Ok(SecretString::new(url.replacen("mariadb://", "mysql://", 1)));
    }
    let Some(host) = vars.get("DB_HOST") else {
        let file = data_dir.join("melodyhue.db");
        return Ok(SecretString::new(format!("sqlite:{}", file.display())));
    };
    let (scheme, default_port) = match vars
        .get("DB_DRIVER")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("mysql" | "mariadb") => ("mysql", 3306),
        Some("postgres" | "postgresql") => ("postgres", 5432),
        Some(other) => {
            return Err(invalid(
                "DB_DRIVER",
                format!("expected mysql or postgres, got {other:?}"),
            ));
        }
    };
    let mut url = url::Url::parse(&format!("{scheme}://localhost"))
        .map_err(|err| invalid("DB_HOST", err.to_string()))?;
    url.set_host(Some(host))
        .map_err(|err| invalid("DB_HOST", err.to_string()))?;
    let port: u16 = vars.number("DB_PORT", default_port)?;
    // Setting parts of a URL with a host never fails; the results are ignored on purpose.
    let _ = url.set_port(Some(port));
    let _ = url.set_username(vars.get("DB_USER").unwrap_or("root"));
    let _ = url.set_password(vars.get("DB_PASSWORD"));
    url.set_path(vars.get("DB_DATABASE").unwrap_or("melodyhue"));
    Ok(SecretString::new(url.to_string()))
}
