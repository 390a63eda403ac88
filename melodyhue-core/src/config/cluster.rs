//! The cluster section: `REDIS_URL`, `REDIS_KEY_PREFIX`, and this node's `NODE_ID`.

use super::vars::{Vars, invalid};
use super::{ConfigError, SecretString};
use crate::cluster::ClusterConfig;

/// `REDIS_URL` (a cluster), which needs a database every node reaches: not SQLite.
pub(super) fn cluster(
    vars: &Vars,
    database_url: &SecretString,
) -> Result<Option<ClusterConfig>, ConfigError> {
    let Some(redis_url) = vars.get("REDIS_URL") else {
        return Ok(None);
    };
    if !(redis_url.starts_with("redis://") || redis_url.starts_with("redis+unix://")) {
        return Err(invalid(
            "REDIS_URL",
            "expected redis://[:password@]host[:port][/db]".to_owned(),
        ));
    }
    if database_url.expose().starts_with("sqlite:") {
        return Err(invalid(
            "REDIS_URL",
            "several nodes need one shared PostgreSQL or MariaDB database, and the database is SQLite \
             (a file of this node): set DATABASE_URL to postgres://… or mysql://…, or unset REDIS_URL \
             to run a single node"
                .to_owned(),
        ));
    }
    Ok(Some(ClusterConfig {
        redis_url: SecretString::new(redis_url),
        key_prefix: vars.string("REDIS_KEY_PREFIX", "melodyhue:"),
    }))
}

/// The host name and process id: unique among the nodes of a cluster.
pub(super) fn default_node_id() -> String {
    let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .into_iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "melodyhue".to_owned());
    format!("{host}-{}", std::process::id())
}
