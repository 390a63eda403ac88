//! The browser-facing section: the auth cookies (`COOKIE_*`, `*_COOKIE_MAX_AGE`) and CORS
//! (`ENABLE_CORS`, `CORS_*`).

use super::ConfigError;
use super::vars::{Vars, invalid};

/// The `SameSite` attribute of the auth cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SameSite {
    /// `Lax` (default).
    #[default]
    Lax,
    /// `Strict`.
    Strict,
    /// `None` (needs `COOKIE_SECURE=true` in browsers).
    None,
}

/// How the auth cookies are set.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CookieConfig {
    /// `ACCESS_COOKIE_MAX_AGE` seconds (900).
    pub access_max_age: u64,
    /// `REFRESH_COOKIE_MAX_AGE` seconds (2592000).
    pub refresh_max_age: u64,
    /// `COOKIE_SAMESITE` (lax).
    pub same_site: SameSite,
    /// `COOKIE_SECURE` (false).
    pub secure: bool,
    /// `COOKIE_DOMAIN` (unset).
    pub domain: Option<String>,
}

/// Which origins may call the API from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CorsConfig {
    /// `CORS_ALLOW_ORIGINS`: `None` means `*` (any origin).
    pub origins: Option<Vec<String>>,
    /// `CORS_ALLOW_CREDENTIALS`, forced off with `*`.
    pub allow_credentials: bool,
}

impl CookieConfig {
    /// `COOKIE_SAMESITE`, `ACCESS_COOKIE_MAX_AGE`, `REFRESH_COOKIE_MAX_AGE`, `COOKIE_SECURE`
    /// and `COOKIE_DOMAIN`.
    pub(super) fn read(vars: &Vars) -> Result<Self, ConfigError> {
        let same_site = match vars
            .get("COOKIE_SAMESITE")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("lax") => SameSite::Lax,
            Some("strict") => SameSite::Strict,
            Some("none") => SameSite::None,
            Some(other) => {
                return Err(invalid(
                    "COOKIE_SAMESITE",
                    format!("expected lax, strict or none, got {other:?}"),
                ));
            }
        };
        Ok(CookieConfig {
            access_max_age: vars.number("ACCESS_COOKIE_MAX_AGE", 900)?,
            refresh_max_age: vars.number("REFRESH_COOKIE_MAX_AGE", 2_592_000)?,
            same_site,
            secure: vars.flag("COOKIE_SECURE", false)?,
            domain: vars.get("COOKIE_DOMAIN").map(str::to_owned),
        })
    }
}

impl CorsConfig {
    /// `CORS_ALLOW_ORIGINS` and `CORS_ALLOW_CREDENTIALS` when `ENABLE_CORS=true`, else `None`.
    pub(super) fn read(vars: &Vars) -> Result<Option<Self>, ConfigError> {
        if !vars.flag("ENABLE_CORS", false)? {
            return Ok(None);
        }
        let list: Vec<String> = vars
            .string("CORS_ALLOW_ORIGINS", "*")
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        let any = list.is_empty() || list.iter().any(|o| o == "*");
        Ok(Some(CorsConfig {
            origins: (!any).then_some(list),
            allow_credentials: !any && vars.flag("CORS_ALLOW_CREDENTIALS", false)?,
        }))
    }
}
