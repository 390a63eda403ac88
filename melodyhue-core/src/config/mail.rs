//! The mail section: the SMTP server (`SMTP_*`) and the mail budgets (`MAIL_*`).

use std::time::Duration;

use super::vars::{Vars, count, invalid};
use super::{ConfigError, SecretString};
use crate::mail::MailLimits;

/// Outgoing mail server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SmtpConfig {
    /// `SMTP_HOST`.
    pub host: String,
    /// `SMTP_PORT` (587).
    pub port: u16,
    /// `SMTP_USER`.
    pub username: Option<String>,
    /// `SMTP_PASSWORD`.
    pub password: Option<SecretString>,
    /// `SMTP_STARTTLS` (true unless `SMTP_SSL`).
    pub starttls: bool,
    /// `SMTP_SSL`: implicit TLS (false).
    pub implicit_tls: bool,
    /// `SMTP_FROM` (no-reply@localhost).
    pub from: String,
    /// `SMTP_FROM_NAME` (MelodyHue).
    pub from_name: Option<String>,
}

impl SmtpConfig {
    /// The `SMTP_*` variables; `None` when `SMTP_HOST` is unset.
    pub(super) fn read(vars: &Vars) -> Result<Option<Self>, ConfigError> {
        let Some(host) = vars.get("SMTP_HOST") else {
            return Ok(None);
        };
        let implicit_tls = vars.flag("SMTP_SSL", false)?;
        let smtp = SmtpConfig {
            host: host.to_owned(),
            port: vars.number("SMTP_PORT", if implicit_tls { 465 } else { 587 })?,
            username: vars.get("SMTP_USER").map(str::to_owned),
            password: vars.secret("SMTP_PASSWORD"),
            starttls: vars.flag("SMTP_STARTTLS", !implicit_tls)?,
            implicit_tls,
            from: vars.string("SMTP_FROM", "no-reply@localhost"),
            from_name: Some(vars.string("SMTP_FROM_NAME", "MelodyHue")),
        };
        if smtp.starttls && smtp.implicit_tls {
            return Err(invalid(
                "SMTP_STARTTLS",
                "cannot be combined with SMTP_SSL (implicit TLS)".into(),
            ));
        }
        Ok(Some(smtp))
    }
}

/// `MAIL_MAX_PER_ADDRESS`, `MAIL_MAX_PER_IP` and `MAIL_LIMIT_WINDOW_SECONDS`.
pub(super) fn mail_limits(vars: &Vars) -> Result<MailLimits, ConfigError> {
    Ok(MailLimits {
        per_address: count(vars, "MAIL_MAX_PER_ADDRESS", 5)?,
        per_ip: vars.number("MAIL_MAX_PER_IP", 20)?,
        window: Duration::from_secs(vars.positive("MAIL_LIMIT_WINDOW_SECONDS", 3600)?),
    })
}
