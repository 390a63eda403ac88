//! Prints the colours of image files through the library API, one line per file:
//! `path<TAB>#rrggbb<TAB>vibrant=#..<TAB>...<TAB>text=#..`.
//!
//! ```text
//! cargo run -p melodyhue-examples --bin cover_color -- cover.jpg other.png
//! ```
//!
//! Exits with status 1 if any file could not be read or analysed (the reason goes to stderr).

use std::process::ExitCode;

fn main() -> ExitCode {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: cover_color FILE...");
        return ExitCode::from(2);
    }
    let mut failed = false;
    for path in &paths {
        let report = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| melodyhue_core::color::analyze(&bytes).map_err(|e| e.to_string()));
        match report {
            Ok(report) => println!("{path}\t{report}"),
            Err(reason) => {
                eprintln!("{path}: {reason}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
