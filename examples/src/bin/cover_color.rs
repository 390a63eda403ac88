//! Prints the colours of image files through the library API, one line per file:
//! `path<TAB>#rrggbb<TAB>vibrant=#..<TAB>...<TAB>text=#..`.
//!
//! ```text
//! cargo run -p melodyhue-examples --bin cover_color -- cover.jpg other.png
//! ```
//!
//! Exits with status 1 if any file could not be read or analysed (the reason goes to stderr).

use std::path::Path;
use std::process::ExitCode;

use melodyhue_core::color::{Limits, analyze_file};

fn main() -> ExitCode {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: cover_color FILE...");
        return ExitCode::from(2);
    }
    let mut failed = false;
    for path in &paths {
        match analyze_file(Path::new(path), &Limits::default()) {
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
