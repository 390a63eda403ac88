//! `REDIS_URL`, `REDIS_KEY_PREFIX` and `NODE_ID`: a single node without them, and several nodes
//! only on a database they all reach.

use melodyhue_core::config::{Config, ConfigError};

fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_vars(vars.iter().copied())
}

#[test]
fn without_redis_a_node_is_alone_and_sqlite_is_fine() {
    let config = config(&[]).unwrap();
    assert!(config.cluster.is_none());
    assert!(config.database_url.expose().starts_with("sqlite:"));
    // Host name and process id.
    assert!(
        config
            .node_id
            .ends_with(&format!("-{}", std::process::id())),
        "{}",
        config.node_id
    );
}

#[test]
fn redis_with_sqlite_is_refused_naming_both_ways_out() {
    let err = config(&[("REDIS_URL", "redis://127.0.0.1:6379")]).unwrap_err();
    let message = err.to_string();
    assert!(message.starts_with("invalid REDIS_URL"), "{message}");
    assert!(message.contains("PostgreSQL or MariaDB"), "{message}");
    assert!(message.contains("unset REDIS_URL"), "{message}");
}

#[test]
fn redis_with_a_shared_database_makes_a_cluster() {
    let config = config(&[
        ("REDIS_URL", "redis://:secret@redis:6379/2"),
        ("DATABASE_URL", "postgres://melodyhue@db/melodyhue"),
        ("NODE_ID", "node-a"),
    ])
    .unwrap();
    let cluster = config.cluster.expect("a cluster");
    assert_eq!(cluster.redis_url.expose(), "redis://:secret@redis:6379/2");
    assert_eq!(cluster.key_prefix, "melodyhue:");
    assert_eq!(config.node_id, "node-a");
    // The password never shows in debug output.
    assert!(!format!("{cluster:?}").contains("secret"));
    let prefixed = Config::from_vars([
        ("REDIS_URL", "redis://redis"),
        ("DATABASE_URL", "mysql://root@db/melodyhue"),
        ("REDIS_KEY_PREFIX", "staging:"),
    ])
    .unwrap();
    assert_eq!(prefixed.cluster.unwrap().key_prefix, "staging:");
}

#[test]
fn a_redis_url_of_another_scheme_is_refused() {
    let err = config(&[
        ("REDIS_URL", "http://redis:6379"),
        ("DATABASE_URL", "postgres://melodyhue@db/melodyhue"),
    ])
    .unwrap_err();
    assert!(err.to_string().starts_with("invalid REDIS_URL"), "{err}");
}
