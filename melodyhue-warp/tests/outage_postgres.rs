//! The database goes away and comes back: MelodyHue answers 503 at once meanwhile, and recovers
//! without a restart. The test runs its own PostgreSQL cluster (initdb + pg_ctl, on a free port
//! and a temporary data directory), never the machine's shared server. Skipped when the
//! PostgreSQL server binaries are not installed, except under `CI=true`.

#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use melodyhue_core::App;
use melodyhue_core::api::suite::{Backend, Harness, Reply, ServeFuture, TestServer};
use melodyhue_core::testing::is_ci;
use serde_json::json;

fn serve(app: App, listener: tokio::net::TcpListener) -> ServeFuture {
    Box::pin(melodyhue_warp::serve(app, listener, std::future::pending()))
}

/// Every request must be answered within this time, database or not (the pool gives up on a
/// connection after a few seconds).
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// A PostgreSQL cluster of this test's own, stopped (immediately) when dropped.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    /// Run the server binaries as this user (PostgreSQL refuses to run as root).
    run_as: Option<&'static str>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Creates and starts a cluster; `None` (after saying why) when PostgreSQL is not installed.
    fn start() -> Option<Cluster> {
        let Some(bin) = postgres_bin() else {
            assert!(
                !is_ci(),
                "the outage test needs PostgreSQL's server binaries (initdb, pg_ctl) under \
                 /usr/lib/postgresql/*/bin, and CI=true"
            );
            eprintln!("skipped: PostgreSQL's initdb/pg_ctl are not installed");
            return None;
        };
        let dir = tempfile::tempdir().expect("temporary directory");
        let run_as = running_as_root().then_some("postgres");
        if run_as.is_some() {
            // The server's user must own its data directory.
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown the data directory to postgres");
        }
        let data = dir.path().join("data");
        let cluster = Cluster {
            bin,
            data,
            port: free_port(),
            run_as,
            _dir: dir,
        };
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data.display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        cluster.pg_ctl_start();
        Some(cluster)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server and waits until it accepts connections (`pg_ctl -w`).
    fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.socket_dir().display()
        );
        let log = self.data.join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data.display().to_string(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server, ending every connection (`-m fast`), and waits until it is down.
    fn pg_ctl_stop(&self, mode: &str) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data.display().to_string(),
                "-m",
                mode,
                "-w",
                "stop",
            ],
        );
    }

    fn socket_dir(&self) -> &Path {
        self.data.parent().unwrap_or(&self.data)
    }

    /// A command running `program` of the server binaries, as the server's user.
    fn command(&self, program: &str) -> Command {
        let binary = self.bin.join(program);
        match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(binary);
                command
            }
            None => Command::new(binary),
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program)
            .args(args)
            .output()
            .expect("run a PostgreSQL binary");
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Best effort: a failed test must not leave a server behind.
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb` and `pg_ctl`.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

async fn within_bound(request: impl Future<Output = Reply>) -> Reply {
    tokio::time::timeout(ANSWER_WITHIN, request)
        .await
        .expect("the server answers within the bound, database or not")
}

fn assert_unavailable(reply: &Reply) {
    reply.assert_status(503);
    assert_eq!(reply.body, json!({"detail": "Service unavailable"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_answers_503_and_recovers_without_restart() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let harness = Harness {
        serve,
        backend: Backend::Postgres,
    };
    let server = TestServer::start_with(&harness, &[("DATABASE_URL", &cluster.url())]).await;
    let user = server.register("outage").await;
    let created = server
        .post(
            "/overlays",
            Some(&user.access_token),
            json!({"name": "Main"}),
        )
        .await;
    created.assert_status(200);
    let overlay = format!("/overlay/{}", created.body["id"].as_str().expect("id"));
    server.get(&overlay, None).await.assert_status(200);

    cluster.pg_ctl_stop("fast");

    let health = within_bound(server.get("/health", None)).await;
    health.assert_status(503);
    assert_eq!(health.body["status"], "unavailable");
    assert_unavailable(&within_bound(server.get(&overlay, None)).await);
    assert_unavailable(&within_bound(server.get(&format!("/color/{}", user.id), None)).await);
    assert_unavailable(&within_bound(server.get("/users/me", Some(&user.access_token))).await);
    assert_unavailable(&within_bound(server.login(&user.email, &user.password)).await);
    assert_unavailable(
        &within_bound(server.post(
            "/auth/register",
            None,
            json!({"username": "later", "email": "later@example.com", "password": "long-enough-1"}),
        ))
        .await,
    );

    cluster.pg_ctl_start();

    within_bound(server.get("/health", None))
        .await
        .assert_status(200);
    within_bound(server.get(&overlay, None))
        .await
        .assert_status(200);
    within_bound(server.login(&user.email, &user.password))
        .await
        .assert_status(200);
    within_bound(server.get("/users/me", Some(&user.access_token)))
        .await
        .assert_status(200);
}
