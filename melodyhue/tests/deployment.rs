//! The deployment files agree with the workspace: no Docker engine runs where the tests run,
//! so this checks what a build would rely on. The Dockerfile builds and runs the `melodyhue`
//! binary of this package on port 8494 with its data in `/data`, its HEALTHCHECK is a real
//! subcommand, and every variable the configuration reads is in `.env.example` (with a
//! comment), in `docker-compose.yml` and in the README.
// A test binary: a failed expect is a failed test.
#![allow(clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn workspace_file(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// Every variable the configuration parser reads: the upper-case string literals of the
/// files of `config/` outside their tests (JWT algorithm names aside), plus the frontend switch
/// that the command line reads.
fn configuration_variables() -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../melodyhue-core/src/config");
    let code: String = std::fs::read_dir(&dir)
        .expect("the config folder")
        .map(|entry| {
            let source = std::fs::read_to_string(entry.expect("a config file").path())
                .expect("a readable config file");
            let code = source.split("#[cfg(test)]").next().map(str::to_owned);
            code.expect("code before the tests")
        })
        .collect();
    let mut variables: BTreeSet<String> = code
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|literal| {
            literal.len() >= 4
                && literal.starts_with(|c: char| c.is_ascii_uppercase())
                && literal
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                && !["HS256", "HS384", "HS512", "RS256"].contains(literal)
        })
        .map(str::to_owned)
        .collect();
    variables.insert("MELODYHUE_FRONTEND".to_owned());
    assert!(
        variables.len() > 40,
        "the scan found too little: {variables:?}"
    );
    variables
}

#[test]
fn dockerfile_builds_and_runs_this_workspaces_binary() {
    let dockerfile = workspace_file("Dockerfile");
    let manifest = workspace_file("melodyhue/Cargo.toml");
    assert!(manifest.contains("[[bin]]\nname = \"melodyhue\""));
    assert!(manifest.contains("name = \"melodyhue\"\n"));
    for expected in [
        "RUN cargo build --release --locked -p melodyhue --bin melodyhue",
        "COPY --from=build /src/target/release/melodyhue /usr/local/bin/melodyhue",
        "EXPOSE 8494",
        "PORT=8494",
        "HOST=0.0.0.0",
        "MELODYHUE_DATA_DIR=/data",
        "VOLUME [\"/data\"]",
        "WORKDIR /data",
        "USER melodyhue",
        "CMD [\"melodyhue\", \"health-check\"]",
        "ENTRYPOINT [\"melodyhue\"]",
        "CMD [\"serve\"]",
    ] {
        assert!(
            dockerfile.contains(expected),
            "Dockerfile lacks {expected:?}"
        );
    }
    // The build stage has nasm, so that libjpeg-turbo's SIMD code is built.
    let build = dockerfile
        .split("FROM ")
        .find(|stage| stage.starts_with("rust:"))
        .expect("a build stage");
    assert!(
        build.contains("apt-get install -y --no-install-recommends nasm"),
        "{build}"
    );
    // A slim runtime image, not the build image.
    let runtime = dockerfile.rsplit("FROM ").next().expect("a runtime stage");
    assert!(runtime.starts_with("debian:bookworm-slim"), "{runtime}");
    // The build image's toolchain is at least the workspace's rust-version.
    let root = workspace_file("Cargo.toml");
    let wanted = root
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("rust-version");
    let image = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("FROM rust:"))
        .and_then(|l| l.split('-').next())
        .expect("a rust build image");
    let minor = |v: &str| v.split('.').nth(1).and_then(|m| m.parse::<u32>().ok());
    assert!(
        minor(image) >= minor(wanted),
        "rust:{image} is older than {wanted}"
    );
}

#[test]
fn the_health_check_and_gen_keys_are_real_subcommands() {
    for subcommand in ["health-check", "gen-keys", "serve"] {
        let status = Command::new(env!("CARGO_BIN_EXE_melodyhue"))
            .args([subcommand, "--help"])
            .env_clear()
            .output()
            .expect("melodyhue runs")
            .status;
        assert!(status.success(), "melodyhue {subcommand} --help failed");
    }
}

#[test]
fn env_example_lists_every_variable_with_a_comment() {
    let example = workspace_file(".env.example");
    let lines: Vec<&str> = example.lines().collect();
    for variable in configuration_variables() {
        let at = lines
            .iter()
            .position(|l| l.starts_with(&format!("{variable}=")))
            .unwrap_or_else(|| panic!(".env.example lacks {variable}"));
        assert!(
            at > 0 && lines[at - 1].starts_with("# "),
            "{variable} in .env.example has no comment above it"
        );
    }
    assert!(example.contains("gen-keys"), "the key generation command");
}

#[test]
fn compose_passes_every_variable_to_the_backend() {
    let compose = workspace_file("docker-compose.yml");
    let backend = compose
        .split("\n  postgres:")
        .next()
        .expect("the backend service");
    for variable in configuration_variables() {
        assert!(
            backend.contains(&format!("      {variable}: ")),
            "docker-compose.yml does not pass {variable}"
        );
    }
    assert!(backend.contains("\"${BACKEND_PORT:-8494}:8494\""));
    assert!(backend.contains("melodyhue-data:/data"));
    assert!(compose.contains("\n  postgres:\n"));
}

#[test]
fn readme_documents_every_variable() {
    let readme = workspace_file("README.md");
    for variable in configuration_variables() {
        assert!(
            readme.contains(&format!("`{variable}`")),
            "README.md does not document {variable}"
        );
    }
}
