//! [`ConfigBuilder`]: a [`Config`] set up in code by an embedder, checked like the environment.

use std::fmt;
use std::path::Path;

use super::{Config, ConfigError};

/// Sets up a [`Config`] in code: `Config::builder()`, then setters, then [`ConfigBuilder::build`].
///
/// Every setter stands for one environment variable of the README and [`ConfigBuilder::var`]
/// sets any of them, so [`ConfigBuilder::build`] gives exactly what [`Config::from_vars`] gives
/// for the same variables: the same defaults, the same checks, the same [`ConfigError`] naming
/// the variable of a bad value. Nothing is read from the process environment or from files. A
/// variable set twice keeps the last value.
///
/// ```
/// use melodyhue_core::config::Config;
///
/// let config = Config::builder()
///     .database_url("sqlite::memory:")
///     .port(8080)
///     .var("ENABLE_CORS", "true")
///     .build()?;
/// assert_eq!(config.listen_address(), "127.0.0.1:8080");
/// assert!(config.cors.is_some());
///
/// let err = Config::builder().var("JWT_ALG", "RS256").build().unwrap_err();
/// assert!(err.to_string().contains("JWT_ALG"));
/// # Ok::<(), melodyhue_core::config::ConfigError>(())
/// ```
#[derive(Clone, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ConfigBuilder {
    vars: Vec<(String, String)>,
}

impl Config {
    /// A [`ConfigBuilder`] with nothing set (every setting at its default).
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }
}

impl ConfigBuilder {
    /// Sets the environment variable `name` (any of the README's table) to `value`.
    pub fn var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.push((name.into(), value.into()));
        self
    }

    /// `HOST`: the address to listen on.
    pub fn host(self, host: impl Into<String>) -> Self {
        self.var("HOST", host)
    }

    /// `PORT`: the port to listen on.
    pub fn port(self, port: u16) -> Self {
        self.var("PORT", port.to_string())
    }

    /// `DATABASE_URL`: `sqlite:...`, `postgres://...` or `mysql://...`.
    pub fn database_url(self, url: impl Into<String>) -> Self {
        self.var("DATABASE_URL", url)
    }

    /// `MELODYHUE_DATA_DIR`: the embedded database and generated development secrets.
    /// A path that is not UTF-8 is taken lossily.
    pub fn data_dir(self, dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref().to_string_lossy().into_owned();
        self.var("MELODYHUE_DATA_DIR", dir)
    }

    /// `SECRET_KEY`: signs JWTs unless `JWT_SECRET` is set.
    pub fn secret_key(self, key: impl Into<String>) -> Self {
        self.var("SECRET_KEY", key)
    }

    /// `ENCRYPTION_KEY`: the Fernet key of secrets at rest.
    pub fn encryption_key(self, key: impl Into<String>) -> Self {
        self.var("ENCRYPTION_KEY", key)
    }

    /// `FRONTEND_URL`: the base of the links in e-mails.
    pub fn frontend_url(self, url: impl Into<String>) -> Self {
        self.var("FRONTEND_URL", url)
    }

    /// `MELODYHUE_ENV=production`: secrets must be given and strong (see
    /// [`Config::ensure_secrets`]).
    pub fn production(self) -> Self {
        self.var("MELODYHUE_ENV", "production")
    }

    /// The configuration, checked as [`Config::from_vars`] checks it.
    ///
    /// # Errors
    ///
    /// The first bad value, as a [`ConfigError`] naming its variable.
    pub fn build(self) -> Result<Config, ConfigError> {
        Config::from_vars(self.vars)
    }
}

impl fmt::Debug for ConfigBuilder {
    /// The names of the variables set, never their values (some are secrets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigBuilder")
            .field(
                "vars",
                &self.vars.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_are_their_variables() {
        let built = Config::builder()
            .host("0.0.0.0")
            .port(9000)
            .database_url("postgres://u@db/melody")
            .data_dir("/srv/melodyhue")
            .secret_key("k".repeat(32))
            .encryption_key("e".repeat(32))
            .frontend_url("https://app.example")
            .build()
            .unwrap();
        assert_eq!(built.listen_address(), "0.0.0.0:9000");
        assert_eq!(built.database_url.expose(), "postgres://u@db/melody");
        assert_eq!(built.data_dir, Path::new("/srv/melodyhue"));
        assert_eq!(built.jwt_key().unwrap().expose(), "k".repeat(32));
        assert_eq!(built.encryption_key.unwrap().expose(), "e".repeat(32));
        assert_eq!(built.frontend_url, "https://app.example");
    }

    #[test]
    fn the_last_value_wins_and_bad_ones_are_named() {
        let built = Config::builder().port(1).port(2).build().unwrap();
        assert_eq!(built.port, 2);
        let err = Config::builder()
            .production()
            .var("EMAIL_DEBUG", "true")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("EMAIL_DEBUG"), "{err}");
    }

    #[test]
    fn debug_shows_names_not_values() {
        let builder = Config::builder().secret_key("very-secret-value");
        let shown = format!("{builder:?}");
        assert!(shown.contains("SECRET_KEY"), "{shown}");
        assert!(!shown.contains("very-secret-value"), "{shown}");
    }
}
