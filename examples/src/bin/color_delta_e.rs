//! Compares the classic colour of a folder of covers with reference colours.
//!
//! ```text
//! cargo run --release -p melodyhue-examples --bin color_delta_e -- ../shared/covers [reference.json]
//! ```
//!
//! The reference JSON maps file names to `#rrggbb` (default: `reference-colors.json` in the
//! folder). Prints one line per cover (file, reference, ours, CIEDE2000 ΔE) and a summary:
//! how many are within 2.0, the median and the maximum.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use melodyhue_core::color::{Rgb, classic_color, delta_e_2000};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: color_delta_e COVERS_DIR [REFERENCE_JSON]");
        return ExitCode::from(2);
    };
    let reference_path = args
        .next()
        .map_or_else(|| dir.join("reference-colors.json"), PathBuf::from);
    let references: BTreeMap<String, String> = match std::fs::read_to_string(&reference_path)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
    {
        Ok(references) => references,
        Err(e) => {
            eprintln!("{}: {e}", reference_path.display());
            return ExitCode::FAILURE;
        }
    };

    let mut deltas = Vec::new();
    let mut failed = false;
    println!("file\treference\tours\tdelta_e");
    for (file, hex) in &references {
        let Some(reference) = Rgb::from_hex(hex) else {
            eprintln!("{file}: reference {hex:?} is not #rrggbb");
            failed = true;
            continue;
        };
        let ours = std::fs::read(dir.join(file))
            .map_err(|e| e.to_string())
            .and_then(|bytes| classic_color(&bytes).map_err(|e| e.to_string()));
        match ours {
            Ok(ours) => {
                let delta = delta_e_2000(reference, ours);
                println!("{file}\t{}\t{}\t{delta:.2}", reference.hex(), ours.hex());
                deltas.push(delta);
            }
            Err(reason) => {
                eprintln!("{file}: {reason}");
                failed = true;
            }
        }
    }

    deltas.sort_by(f64::total_cmp);
    if let (Some(max), Some(median)) = (deltas.last(), median(&deltas)) {
        let within = deltas.iter().filter(|&&d| d <= 2.0).count();
        println!(
            "covers: {}  within 2.0: {within} ({:.0}%)  median: {median:.2}  max: {max:.2}",
            deltas.len(),
            100.0 * within as f64 / deltas.len() as f64
        );
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn median(sorted: &[f64]) -> Option<f64> {
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted.get(mid).copied()
    } else {
        Some((sorted.get(mid.checked_sub(1)?)? + sorted.get(mid)?) / 2.0)
    }
}
