//! Configuration: every environment variable of the HTTP contract, validated once, at start.
//!
//! [`Config::from_env`] reads the process environment (and a `.env` file when present), checks
//! every value, and reports the first bad one as a [`ConfigError`] naming the variable.
//! [`Config::from_vars`] does the same from any list of pairs, without touching files, and
//! [`Config::builder`] from setters in code.
//!
//! Each section's settings and the reading of its variables live in a file of their own:
//! `browser` (cookies, CORS), `mail`, `spotify`, `limits` (throttling, connections, `/ws`,
//! event streams, password hashing) and `cluster`; `secrets` keeps the secrets' checks and
//! `vars` the typed getters.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::admission::AdmissionLimits;
use crate::auth::password::HashParams;
use crate::cluster::ClusterConfig;
use crate::mail::MailLimits;

/// A bad or missing setting, naming the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The variable holds a value that cannot be used.
    #[error("invalid {variable}: {reason}")]
    Invalid {
        /// The environment variable.
        variable: &'static str,
        /// What is wrong with it (never the value of a secret).
        reason: String,
    },
    /// A production run lacks a required secret.
    #[error("{variable} must be set when MELODYHUE_ENV=production")]
    MissingSecret {
        /// The environment variable.
        variable: &'static str,
    },
    /// A production run was given a secret that is too short or a published example.
    #[error("{variable} is refused when MELODYHUE_ENV=production: {reason}")]
    WeakSecret {
        /// The environment variable.
        variable: &'static str,
        /// Why (never the value).
        reason: String,
    },
    /// Generated development secrets could not be kept on disk.
    #[error("cannot keep generated secrets in {path}: {source}")]
    SecretsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A secret value whose `Debug` output does not reveal it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(***)")
    }
}

/// Development (secrets may be generated) or production (they must be given).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Environment {
    /// The default: friendly to a first run.
    #[default]
    Development,
    /// `MELODYHUE_ENV=production`: refuses to start without explicit secrets.
    Production,
}

/// The JWT signing algorithms MelodyHue accepts (HMAC only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 (default).
    #[default]
    HS256,
    /// HMAC-SHA384.
    HS384,
    /// HMAC-SHA512.
    HS512,
}

/// Log output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines (default).
    #[default]
    Text,
    /// One JSON object per line (`LOG_FORMAT=json`).
    Json,
}

/// Every setting of a MelodyHue server.
///
/// Built by [`Config::from_env`], [`Config::from_vars`] (the variables of the README) or
/// [`Config::builder`], never as a literal: it is `#[non_exhaustive]`, so a setting added later
/// breaks no embedder. A field may still be changed after it is built.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// `MELODYHUE_ENV`.
    pub environment: Environment,
    /// `HOST` (127.0.0.1).
    pub host: String,
    /// `PORT` (8765).
    pub port: u16,
    /// `MELODYHUE_DATA_DIR` (`./data`): the embedded database and generated secrets.
    pub data_dir: PathBuf,
    /// The database URL (`sqlite:`, `postgres://`, `mysql://`), from `DATABASE_URL`, the
    /// `DB_*` variables, or the embedded default `sqlite:<data_dir>/melodyhue.db`.
    pub database_url: SecretString,
    /// `SECRET_KEY`.
    pub secret_key: Option<SecretString>,
    /// `JWT_SECRET` (falls back to `SECRET_KEY`).
    pub jwt_secret: Option<SecretString>,
    /// `JWT_ALG` (HS256).
    pub jwt_algorithm: JwtAlgorithm,
    /// `ENCRYPTION_KEY`: Fernet key for secrets at rest.
    pub encryption_key: Option<SecretString>,
    /// `ACCESS_TOKEN_EXPIRE_MIN` (15) as a duration.
    pub access_token_ttl: Duration,
    /// `REFRESH_TOKEN_EXPIRE_DAYS` (30) as a duration.
    pub refresh_token_ttl: Duration,
    /// `REFRESH_TOKEN_REUSE_INTERVAL` seconds (10; `0` turns it off): for this long after a
    /// refresh token was rotated, presenting it again answers the login's current pair instead
    /// of revoking the login as reuse.
    pub refresh_token_reuse_interval: Duration,
    /// Cookies.
    pub cookies: CookieConfig,
    /// CORS, when `ENABLE_CORS=true`.
    pub cors: Option<CorsConfig>,
    /// `FRONTEND_URL` (<http://localhost:4200>), base of links in e-mails.
    pub frontend_url: String,
    /// `PASSWORD_RESET_URL_BASE`: the reset link is this + token.
    pub password_reset_url_base: Option<String>,
    /// `TWOFA_DISABLE_URL_BASE`: the 2FA-disable link is this + token.
    pub twofa_disable_url_base: Option<String>,
    /// `EMAIL_REVERT_URL_BASE`: the link that undoes an e-mail change is this + token. It
    /// points at this server's own page (`GET /auth/email/revert`), as the frontend has none:
    /// by default `http://localhost:PORT/auth/email/revert?token=`, so set it to the public
    /// address of the API.
    pub email_revert_url_base: Option<String>,
    /// `MAIL_MAX_PER_ADDRESS`, `MAIL_MAX_PER_IP`, `MAIL_LIMIT_WINDOW_SECONDS`: the mail budgets.
    pub mail_limits: MailLimits,
    /// Mail server; `None` when `SMTP_HOST` is unset (nothing is sent).
    pub smtp: Option<SmtpConfig>,
    /// `EMAIL_DEBUG`: return raw e-mailed tokens in responses (never in production).
    pub email_debug: bool,
    /// Spotify.
    pub spotify: SpotifyConfig,
    /// Login throttling.
    pub throttle: ThrottleConfig,
    /// `TRUST_PROXY`: take the client IP from `X-Forwarded-For`.
    pub trust_proxy: bool,
    /// Client connections.
    pub connections: ConnectionLimits,
    /// The `/ws` channel.
    pub websocket: WebSocketLimits,
    /// The `/infos/{user_id}/events` streams.
    pub events: EventStreamLimits,
    /// `TRUSTED_PROXY_HOPS` (1): how many proxies of ours each append an `X-Forwarded-For`
    /// entry; the client IP is the entry this many from the right.
    pub trusted_proxy_hops: usize,
    /// `METRICS`: serve `/metrics`.
    pub metrics: bool,
    /// `METRICS_TOKEN`: `/metrics` wants `Authorization: Bearer <token>`; without it, only
    /// clients on the loopback interface may read it.
    pub metrics_token: Option<SecretString>,
    /// `NODE_ID` (host name and process id): this node's name in logs, `/metrics`, `/health`
    /// and the cluster's leases.
    pub node_id: String,
    /// `REDIS_URL` and `REDIS_KEY_PREFIX`: set, this node is one of several sharing that Redis
    /// and one PostgreSQL or MariaDB database (see [`crate::cluster`]); unset, a single node.
    pub cluster: Option<ClusterConfig>,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `LOG_LEVEL` (info), an `EnvFilter` directive.
    pub log_level: String,
    /// Cost of new password hashes (argon2-cffi's defaults; not an environment variable).
    pub password_hashing: HashParams,
    /// Admission control of password hashing: `PASSWORD_HASH_WORKERS` (one per core but one),
    /// `PASSWORD_HASH_QUEUE` (8), `PASSWORD_HASH_PER_CLIENT` (4).
    pub password_admission: AdmissionLimits,
}

mod browser;
mod builder;
mod cluster;
mod limits;
mod mail;
mod secrets;
mod spotify;
mod vars;

pub use browser::{CookieConfig, CorsConfig, SameSite};
pub use builder::ConfigBuilder;
use cluster::{cluster, default_node_id};
use limits::password_admission;
pub use limits::{ConnectionLimits, EventStreamLimits, ThrottleConfig, WebSocketLimits};
pub use mail::SmtpConfig;
use mail::mail_limits;
pub use secrets::{MIN_SECRET_BYTES, generate_secret_key};
use secrets::{SECRETS_FILE, check_production_secrets, read_secrets_file, write_secrets_file};
pub use spotify::SpotifyConfig;
use vars::{Vars, database_url, invalid, reuse_interval};

impl Config {
    /// Reads `.env` (when present, without overriding the real environment), then the process
    /// environment, and validates everything. Secrets may still be missing: call
    /// [`Config::ensure_secrets`] once logging is set up (it warns loudly when it generates them).
    pub fn from_env() -> Result<Config, ConfigError> {
        // A missing .env is the normal case; a malformed one is reported.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(err) if err.not_found() => {}
            Err(err) => return Err(invalid(".env", err.to_string())),
        }
        Config::from_vars(std::env::vars())
    }

    /// Builds a configuration from variable/value pairs only (no files, no generated secrets).
    pub fn from_vars<I, K, V>(vars: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars = Vars(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        let environment = match vars
            .get("MELODYHUE_ENV")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("development" | "dev") => Environment::Development,
            Some("production" | "prod") => Environment::Production,
            Some(other) => {
                return Err(invalid(
                    "MELODYHUE_ENV",
                    format!("expected development or production, got {other:?}"),
                ));
            }
        };
        let data_dir = PathBuf::from(vars.string("MELODYHUE_DATA_DIR", "./data"));
        let database_url = database_url(&vars, &data_dir)?;
        let jwt_algorithm = match vars.get("JWT_ALG").unwrap_or("HS256") {
            "HS256" => JwtAlgorithm::HS256,
            "HS384" => JwtAlgorithm::HS384,
            "HS512" => JwtAlgorithm::HS512,
            other => {
                return Err(invalid(
                    "JWT_ALG",
                    format!("only HS256, HS384 and HS512 are supported, got {other:?}"),
                ));
            }
        };
        let cookies = CookieConfig::read(&vars)?;
        let cors = CorsConfig::read(&vars)?;
        let frontend_url = vars.url("FRONTEND_URL", "http://localhost:4200")?;
        let smtp = SmtpConfig::read(&vars)?;
        let email_debug = vars.flag("EMAIL_DEBUG", false)?;
        if email_debug && environment == Environment::Production {
            return Err(invalid(
                "EMAIL_DEBUG",
                "returns secret tokens in responses and is refused in production".into(),
            ));
        }
        let spotify = SpotifyConfig::read(&vars, &frontend_url)?;
        let log_format = match vars
            .get("LOG_FORMAT")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("text" | "pretty" | "plain") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "LOG_FORMAT",
                    format!("expected text or json, got {other:?}"),
                ));
            }
        };
        let encryption_key = vars.secret("ENCRYPTION_KEY");
        if environment == Environment::Production {
            check_production_secrets(&vars, &database_url)?;
        }
        let cluster = cluster(&vars, &database_url)?;
        Ok(Config {
            environment,
            host: vars.string("HOST", "127.0.0.1"),
            port: vars.number("PORT", 8765)?,
            data_dir,
            database_url,
            secret_key: vars.secret("SECRET_KEY"),
            jwt_secret: vars.secret("JWT_SECRET"),
            jwt_algorithm,
            encryption_key,
            access_token_ttl: Duration::from_secs(
                60 * vars.positive("ACCESS_TOKEN_EXPIRE_MIN", 15)?,
            ),
            refresh_token_ttl: Duration::from_secs(
                86_400 * vars.positive("REFRESH_TOKEN_EXPIRE_DAYS", 30)?,
            ),
            refresh_token_reuse_interval: reuse_interval(&vars)?,
            cookies,
            cors,
            frontend_url,
            password_reset_url_base: vars.get("PASSWORD_RESET_URL_BASE").map(str::to_owned),
            twofa_disable_url_base: vars.get("TWOFA_DISABLE_URL_BASE").map(str::to_owned),
            email_revert_url_base: vars.get("EMAIL_REVERT_URL_BASE").map(str::to_owned),
            mail_limits: mail_limits(&vars)?,
            smtp,
            email_debug,
            spotify,
            throttle: ThrottleConfig::read(&vars)?,
            trust_proxy: vars.flag("TRUST_PROXY", false)?,
            connections: ConnectionLimits::read(&vars)?,
            websocket: WebSocketLimits::read(&vars)?,
            events: EventStreamLimits::read(&vars)?,
            trusted_proxy_hops: vars
                .positive("TRUSTED_PROXY_HOPS", 1)?
                .try_into()
                .unwrap_or(usize::MAX),
            metrics: vars.flag("METRICS", false)?,
            metrics_token: vars.secret("METRICS_TOKEN"),
            node_id: vars
                .get("NODE_ID")
                .map_or_else(default_node_id, str::to_owned),
            cluster,
            log_format,
            log_level: vars.string("LOG_LEVEL", "info"),
            password_hashing: HashParams::default(),
            password_admission: password_admission(&vars)?,
        })
    }

    /// Makes sure the JWT and encryption secrets exist. In production a missing one is an
    /// error. In development the missing ones are read from, or generated into,
    /// `<data_dir>/secrets.env` (mode 0600), with a loud warning: fine for a first run, never
    /// for real users. Returns the names of the variables that were generated.
    pub fn ensure_secrets(&mut self) -> Result<Vec<&'static str>, ConfigError> {
        let need_jwt = self.secret_key.is_none() && self.jwt_secret.is_none();
        let need_encryption = self.encryption_key.is_none();
        if !need_jwt && !need_encryption {
            return Ok(Vec::new());
        }
        if self.environment == Environment::Production {
            let variable = if need_jwt {
                "SECRET_KEY"
            } else {
                "ENCRYPTION_KEY"
            };
            return Err(ConfigError::MissingSecret { variable });
        }
        let path = self.data_dir.join(SECRETS_FILE);
        let mut kept = read_secrets_file(&path)?;
        let mut generated = Vec::new();
        if need_jwt && !kept.contains_key("SECRET_KEY") {
            kept.insert("SECRET_KEY".into(), generate_secret_key());
            generated.push("SECRET_KEY");
        }
        if need_encryption && !kept.contains_key("ENCRYPTION_KEY") {
            kept.insert(
                "ENCRYPTION_KEY".into(),
                crate::secrets::SecretBox::generate_key(),
            );
            generated.push("ENCRYPTION_KEY");
        }
        if !generated.is_empty() {
            write_secrets_file(&path, &kept)?;
        }
        if need_jwt {
            self.secret_key = kept.get("SECRET_KEY").map(SecretString::new);
        }
        if need_encryption {
            self.encryption_key = kept.get("ENCRYPTION_KEY").map(SecretString::new);
        }
        tracing::warn!(
            file = %path.display(),
            generated = ?generated,
            "DEVELOPMENT SECRETS IN USE: SECRET_KEY/ENCRYPTION_KEY were not set, so MelodyHue uses \
             secrets kept in this file. Set them explicitly (and MELODYHUE_ENV=production) before \
             real users sign up; `melodyhue gen-keys` prints fresh ones."
        );
        Ok(generated)
    }

    /// The key that signs JWTs: `JWT_SECRET`, else `SECRET_KEY`.
    pub fn jwt_key(&self) -> Option<&SecretString> {
        self.jwt_secret.as_ref().or(self.secret_key.as_ref())
    }

    /// The address to listen on.
    pub fn listen_address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The link mailed for a password reset.
    pub fn password_reset_link(&self, token: &str) -> String {
        match &self.password_reset_url_base {
            Some(base) => format!("{base}{token}"),
            None => format!("{}/auth/reset?token={token}", self.frontend_url),
        }
    }

    /// The link mailed to the replaced address after an e-mail change, which undoes it.
    pub fn email_revert_link(&self, token: &str) -> String {
        match &self.email_revert_url_base {
            Some(base) => format!("{base}{token}"),
            None => format!(
                "http://localhost:{}/auth/email/revert?token={token}",
                self.port
            ),
        }
    }

    /// The link mailed to disable 2FA.
    pub fn twofa_disable_link(&self, token: &str) -> String {
        match &self.twofa_disable_url_base {
            Some(base) => format!("{base}{token}"),
            None => format!("{}/auth/2fa/disable?token={token}", self.frontend_url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration from `vars` only (the secrets' tests use it too).
    pub(super) fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(vars.iter().copied())
    }

    #[test]
    fn defaults_need_nothing() {
        let config = config(&[]).unwrap();
        assert_eq!(config.listen_address(), "127.0.0.1:8765");
        assert_eq!(config.database_url.expose(), "sqlite:./data/melodyhue.db");
        assert_eq!(config.access_token_ttl, Duration::from_secs(900));
        assert_eq!(config.cookies.refresh_max_age, 2_592_000);
        assert!(config.cors.is_none());
        assert!(config.smtp.is_none());
        assert_eq!(config.refresh_token_reuse_interval, Duration::from_secs(10));
        assert_eq!(config.trusted_proxy_hops, 1);
        assert_eq!(config.password_admission.queue, 8);
        assert_eq!(config.password_admission.per_client, 4);
        assert!(config.password_admission.workers >= 1);
    }

    #[test]
    fn limits_of_sessions_proxies_and_hashing() {
        let config = config(&[
            ("REFRESH_TOKEN_REUSE_INTERVAL", "0"),
            ("TRUSTED_PROXY_HOPS", "2"),
            ("PASSWORD_HASH_WORKERS", "3"),
            ("PASSWORD_HASH_QUEUE", "16"),
            ("PASSWORD_HASH_PER_CLIENT", "3"),
        ])
        .unwrap();
        assert_eq!(config.refresh_token_reuse_interval, Duration::ZERO);
        assert_eq!(config.trusted_proxy_hops, 2);
        assert_eq!(
            config.password_admission,
            AdmissionLimits {
                workers: 3,
                queue: 16,
                per_client: 3
            }
        );
        for variable in [
            "TRUSTED_PROXY_HOPS",
            "PASSWORD_HASH_WORKERS",
            "PASSWORD_HASH_QUEUE",
            "PASSWORD_HASH_PER_CLIENT",
        ] {
            let err = Config::from_vars([(variable, "0")]).unwrap_err();
            assert!(err.to_string().contains(variable), "{err}");
        }
        for bad in ["-1", "3601", "ten"] {
            let err = Config::from_vars([("REFRESH_TOKEN_REUSE_INTERVAL", bad)]).unwrap_err();
            assert!(
                err.to_string().contains("REFRESH_TOKEN_REUSE_INTERVAL"),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_values_name_their_variable() {
        let err = config(&[("PORT", "eighty")]).unwrap_err();
        assert!(err.to_string().starts_with("invalid PORT:"), "{err}");
        let err = config(&[("JWT_ALG", "RS256")]).unwrap_err();
        assert!(err.to_string().contains("JWT_ALG"), "{err}");
        let err = config(&[("ENABLE_CORS", "maybe")]).unwrap_err();
        assert!(err.to_string().contains("ENABLE_CORS"), "{err}");
    }

    #[test]
    fn db_variables_build_a_url_with_escaped_password() {
        let config = config(&[
            ("DB_HOST", "db.internal"),
            ("DB_USER", "mh"),
            ("DB_PASSWORD", "p@ss/word"),
            ("DB_DATABASE", "melody"),
        ])
        .unwrap();
        assert_eq!(
            config.database_url.expose(),
            "mysql://mh:p%40ss%2Fword@db.internal:3306/melody"
        );
        let pg = Config::from_vars([("DB_HOST", "h"), ("DB_DRIVER", "postgres")]).unwrap();
        assert!(
            pg.database_url
                .expose()
                .starts_with("postgres://root@h:5432/")
        );
    }

    #[test]
    fn cors_star_forces_credentials_off() {
        let config = config(&[
            ("ENABLE_CORS", "true"),
            ("CORS_ALLOW_ORIGINS", "*"),
            ("CORS_ALLOW_CREDENTIALS", "true"),
        ])
        .unwrap();
        let cors = config.cors.unwrap();
        assert_eq!(cors.origins, None);
        assert!(!cors.allow_credentials);
    }

    #[test]
    fn links_follow_their_bases() {
        let frontend = config(&[("FRONTEND_URL", "https://app.example/")]).unwrap();
        assert_eq!(
            frontend.password_reset_link("T"),
            "https://app.example/auth/reset?token=T"
        );
        assert_eq!(
            frontend.twofa_disable_link("T"),
            "https://app.example/auth/2fa/disable?token=T"
        );
        let based = config(&[("PASSWORD_RESET_URL_BASE", "https://x/r/")]).unwrap();
        assert_eq!(based.password_reset_link("T"), "https://x/r/T");
    }
}
