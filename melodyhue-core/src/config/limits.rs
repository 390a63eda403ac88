//! The limits section: login throttling (`LOGIN_*`), client connections (`HTTP_*`), the `/ws`
//! channel (`WS_*`), the event streams (`SSE_*`) and password hashing (`PASSWORD_HASH_*`).

use std::time::Duration;

use super::ConfigError;
use super::vars::Vars;
use crate::auth::admission::AdmissionLimits;
use crate::auth::password::default_workers;

/// Login throttling.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThrottleConfig {
    /// `LOGIN_MAX_FAILURES_PER_IDENTIFIER` (5).
    pub max_failures_per_identifier: u32,
    /// `LOGIN_MAX_FAILURES_PER_IP` (20): failures per client network; `0` turns this budget
    /// off, for a deployment behind a proxy that does not say whose request it forwards (every
    /// client would share the proxy's budget).
    pub max_failures_per_ip: u32,
    /// `LOGIN_THROTTLE_WINDOW_SECONDS` (900).
    pub window: Duration,
}

/// What one client connection may hold, on both frontends (see `melodyhue_core::server`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionLimits {
    /// `HTTP_HEADER_TIMEOUT` seconds (10): a new connection must deliver its first request's
    /// headers (for HTTP/2, its preface and first request) within this time of being accepted;
    /// on a kept-alive HTTP/1.1 connection, each later request's headers within this time of
    /// their first byte.
    pub header_timeout: Duration,
    /// `HTTP_BODY_TIMEOUT` seconds (30): a request's body must arrive whole within this time of
    /// its headers (`408` otherwise).
    pub body_timeout: Duration,
    /// `HTTP_KEEP_ALIVE_TIMEOUT` seconds (60): a connection with no request in flight is closed
    /// after this long.
    pub keep_alive_timeout: Duration,
    /// `HTTP_WRITE_TIMEOUT` seconds (10): a connection whose writes make no progress for this
    /// long (a client that stopped reading, e.g. an event stream's) is closed.
    pub write_timeout: Duration,
    /// `HTTP_MAX_CONNECTIONS`: open connections (WebSockets included) at most; `None` derives
    /// it from the process's file-descriptor limit.
    pub max_connections: Option<usize>,
}

/// Limits of the `/ws` channel (see [`crate::api::ws`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebSocketLimits {
    /// `WS_PING_INTERVAL` seconds (30): how often a socket is pinged. A socket that has sent
    /// nothing (not even the pong) since the previous ping is closed.
    pub ping_interval: Duration,
    /// `WS_MAX_SOCKETS_PER_USER` (20): open sockets per user; one more is closed at once with
    /// code 4429.
    pub max_sockets_per_user: usize,
}

/// Limits of the `/infos/{user_id}/events` streams (see `melodyhue_core::api::events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventStreamLimits {
    /// `SSE_MAX_STREAMS_PER_IP` (20): open streams per client IP (see `TRUST_PROXY`); one
    /// more is answered `429`.
    pub max_streams_per_ip: usize,
    /// `SSE_MAX_STREAMS` (1000): open streams in all; one more is answered `503`.
    pub max_streams: usize,
    /// `SSE_KEEP_ALIVE_INTERVAL` seconds (15): how often an idle stream sends a comment line,
    /// so that proxies keep it open.
    pub keep_alive_interval: Duration,
}

impl ThrottleConfig {
    /// The `LOGIN_*` variables.
    pub(super) fn read(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(ThrottleConfig {
            max_failures_per_identifier: vars
                .positive("LOGIN_MAX_FAILURES_PER_IDENTIFIER", 5)?
                .try_into()
                .unwrap_or(u32::MAX),
            max_failures_per_ip: vars.number("LOGIN_MAX_FAILURES_PER_IP", 20)?,
            window: Duration::from_secs(vars.positive("LOGIN_THROTTLE_WINDOW_SECONDS", 900)?),
        })
    }
}

impl ConnectionLimits {
    /// The `HTTP_*` variables.
    pub(super) fn read(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(ConnectionLimits {
            header_timeout: vars.seconds("HTTP_HEADER_TIMEOUT", 10.0)?,
            body_timeout: vars.seconds("HTTP_BODY_TIMEOUT", 30.0)?,
            keep_alive_timeout: vars.seconds("HTTP_KEEP_ALIVE_TIMEOUT", 60.0)?,
            write_timeout: vars.seconds("HTTP_WRITE_TIMEOUT", 10.0)?,
            max_connections: match vars.get("HTTP_MAX_CONNECTIONS") {
                None => None,
                Some(_) => Some(
                    usize::try_from(vars.positive("HTTP_MAX_CONNECTIONS", 1)?)
                        .unwrap_or(usize::MAX),
                ),
            },
        })
    }
}

impl WebSocketLimits {
    /// The `WS_*` variables.
    pub(super) fn read(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(WebSocketLimits {
            ping_interval: vars.seconds("WS_PING_INTERVAL", 30.0)?,
            max_sockets_per_user: usize::try_from(vars.positive("WS_MAX_SOCKETS_PER_USER", 20)?)
                .unwrap_or(usize::MAX),
        })
    }
}

impl EventStreamLimits {
    /// The `SSE_*` variables.
    pub(super) fn read(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(EventStreamLimits {
            max_streams_per_ip: usize::try_from(vars.positive("SSE_MAX_STREAMS_PER_IP", 20)?)
                .unwrap_or(usize::MAX),
            max_streams: usize::try_from(vars.positive("SSE_MAX_STREAMS", 1000)?)
                .unwrap_or(usize::MAX),
            keep_alive_interval: vars.seconds("SSE_KEEP_ALIVE_INTERVAL", 15.0)?,
        })
    }
}

/// `PASSWORD_HASH_WORKERS`, `PASSWORD_HASH_QUEUE` and `PASSWORD_HASH_PER_CLIENT`.
pub(super) fn password_admission(vars: &Vars) -> Result<AdmissionLimits, ConfigError> {
    Ok(AdmissionLimits {
        workers: vars
            .positive("PASSWORD_HASH_WORKERS", default_workers() as u64)?
            .try_into()
            .unwrap_or(usize::MAX),
        queue: vars
            .positive("PASSWORD_HASH_QUEUE", 8)?
            .try_into()
            .unwrap_or(usize::MAX),
        per_client: vars
            .positive("PASSWORD_HASH_PER_CLIENT", 4)?
            .try_into()
            .unwrap_or(u32::MAX),
    })
}
