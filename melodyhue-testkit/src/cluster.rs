//! Database servers of one's own, on a free port and a temporary data directory, for what must
//! stop a database server: the outage tests and the outage measurement. Never the machine's
//! shared servers. A PostgreSQL cluster (initdb + pg_ctl) and a MariaDB server
//! (mariadb-install-db + mariadbd).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use crate::Need;

/// What [`PostgresCluster::start`] needs installed.
const POSTGRES_BINARIES: &str = "PostgreSQL's initdb and pg_ctl (under /usr/lib/postgresql/*/bin)";
/// What [`MariaDbServer::start`] needs installed.
const MARIADB_BINARIES: &str = "MariaDB's mariadbd and mariadb-install-db";

/// A PostgreSQL cluster of one's own, stopped (immediately) when dropped.
pub struct PostgresCluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    /// Run the server binaries as this user (PostgreSQL refuses to run as root).
    run_as: Option<&'static str>,
    _dir: tempfile::TempDir,
}

impl PostgresCluster {
    /// What a test of a cluster of its own needs: PostgreSQL's server binaries.
    pub fn need() -> Need {
        Need::found(POSTGRES_BINARIES, postgres_bin().is_some())
    }

    /// Creates and starts a cluster.
    ///
    /// # Panics
    /// When PostgreSQL's server binaries are not installed (see [`PostgresCluster::need`]).
    pub fn start() -> PostgresCluster {
        let bin = postgres_bin().unwrap_or_else(|| panic!("not installed: {POSTGRES_BINARIES}"));
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
        let cluster = PostgresCluster {
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
        cluster
    }

    /// Its URL, as user `postgres` on database `postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server and waits until it accepts connections (`pg_ctl -w`).
    pub fn pg_ctl_start(&self) {
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

    /// Stops the server in `mode` (`fast` ends every connection) and waits until it is down.
    pub fn pg_ctl_stop(&self, mode: &str) {
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

impl Drop for PostgresCluster {
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

/// The installed MariaDB (or MySQL) server binary.
fn mariadb_server() -> Option<PathBuf> {
    ["/usr/sbin/mariadbd", "/usr/sbin/mysqld"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
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

/// A MariaDB server of one's own, killed when dropped.
pub struct MariaDbServer {
    server: PathBuf,
    data: PathBuf,
    port: u16,
    /// Run the server as this user (mariadbd refuses to run as root unless told to).
    run_as: Option<&'static str>,
    running: Mutex<Option<Child>>,
    _dir: tempfile::TempDir,
}

impl MariaDbServer {
    /// What a test of a server of its own needs: MariaDB's server binaries.
    pub fn need() -> Need {
        Need::found(MARIADB_BINARIES, mariadb_server().is_some())
    }

    /// Creates a data directory, starts the server and creates the database `melodyhue`.
    ///
    /// # Panics
    /// When MariaDB's server is not installed (see [`MariaDbServer::need`]).
    pub fn start() -> MariaDbServer {
        let server =
            mariadb_server().unwrap_or_else(|| panic!("not installed: {MARIADB_BINARIES}"));
        let dir = tempfile::tempdir().expect("temporary directory");
        let run_as = running_as_root().then_some("mysql");
        if let Some(user) = run_as {
            let status = Command::new("chown")
                .arg(format!("{user}:{user}"))
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown the data directory to {user}");
        }
        let data = dir.path().join("data");
        let mut install = Command::new("mariadb-install-db");
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if let Some(user) = run_as {
            install.arg(format!("--user={user}"));
        }
        let output = install.output().expect("run mariadb-install-db");
        assert!(
            output.status.success(),
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mariadb = MariaDbServer {
            server,
            data,
            port: free_port(),
            run_as,
            running: Mutex::new(None),
            _dir: dir,
        };
        mariadb.start_server();
        mariadb.client(&["-e", "CREATE DATABASE melodyhue"]);
        mariadb
    }

    /// Its URL, as `root` on database `melodyhue`.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/melodyhue", self.port)
    }

    /// Starts the server and waits until it answers.
    pub fn start_server(&self) {
        let mut command = Command::new(&self.server);
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.data.display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!(
                "--socket={}",
                self.data.join("mysqld.sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                self.data.join("mysqld.pid").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(user) = self.run_as {
            command.arg(format!("--user={user}"));
        }
        let child = command.spawn().expect("start mariadbd");
        *self.running.lock().unwrap() = Some(child);
        for _ in 0..150 {
            if self.admin("ping") {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("mariadbd did not answer within 15 s");
    }

    /// Shuts the server down (every client connection ends) and waits until it is gone.
    pub fn stop_server(&self) {
        assert!(self.admin("shutdown"), "mariadb-admin shutdown failed");
        if let Some(mut child) = self.running.lock().unwrap().take() {
            let _ = child.wait();
        }
    }

    fn admin(&self, command: &str) -> bool {
        Command::new("mariadb-admin")
            .args([
                "--no-defaults",
                "--protocol=tcp",
                "-h",
                "127.0.0.1",
                "-u",
                "root",
            ])
            .arg(format!("--port={}", self.port))
            .arg(command)
            .output()
            .is_ok_and(|out| out.status.success())
    }

    fn client(&self, args: &[&str]) {
        let output = Command::new("mariadb")
            .args([
                "--no-defaults",
                "--protocol=tcp",
                "-h",
                "127.0.0.1",
                "-u",
                "root",
            ])
            .arg(format!("--port={}", self.port))
            .args(args)
            .output()
            .expect("run the mariadb client");
        assert!(
            output.status.success(),
            "mariadb {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        // Best effort: a failed test must not leave a server behind.
        if let Some(mut child) = self.running.lock().map(|mut c| c.take()).ok().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A database server of one's own that may be stopped and started again.
pub enum Scratch {
    /// A PostgreSQL cluster.
    Postgres(PostgresCluster),
    /// A MariaDB server.
    MariaDb(MariaDbServer),
}

impl Scratch {
    /// A PostgreSQL cluster (see [`PostgresCluster::start`]).
    pub fn postgres() -> Scratch {
        Scratch::Postgres(PostgresCluster::start())
    }

    /// A MariaDB server (see [`MariaDbServer::start`]).
    pub fn mariadb() -> Scratch {
        Scratch::MariaDb(MariaDbServer::start())
    }

    /// Its URL.
    pub fn url(&self) -> String {
        match self {
            Scratch::Postgres(cluster) => cluster.url(),
            Scratch::MariaDb(server) => server.url(),
        }
    }

    /// Stops the server, ending every connection.
    pub fn stop(&self) {
        match self {
            Scratch::Postgres(cluster) => cluster.pg_ctl_stop("fast"),
            Scratch::MariaDb(server) => server.stop_server(),
        }
    }

    /// Starts it again and waits until it answers.
    pub fn start(&self) {
        match self {
            Scratch::Postgres(cluster) => cluster.pg_ctl_start(),
            Scratch::MariaDb(server) => server.start_server(),
        }
    }
}
