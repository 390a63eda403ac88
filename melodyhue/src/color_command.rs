//! `melodyhue color`: the colour extractor of `melodyhue_core::color` from the command line.
//!
//! Self-contained (arguments, walking folders, output), so that it moves as one piece with the
//! binary. Needs no configuration.
//!
//! - Plain output: one tab-separated line per image, `PATH<TAB>` then the report's `Display`
//!   (`#rrggbb`, the six swatches, the text colour); a failure is `PATH: reason` on stderr.
//! - `--json`: one JSON object per image and line, on stdout, failures included:
//!   `{"path", "color", "palette": {"vibrant", ...}, "text_color"}` (colours as `#rrggbb`), or
//!   `{"path", "error"}`.
//! - A folder is searched recursively for `.jpg`, `.jpeg`, `.png` and `.webp` files
//!   (any case), in name order; a file named on the command line is read whatever its name.
//! - The exit status is 1 if any image failed, else 0. When the reader of the output goes away
//!   (`melodyhue color *.jpg | head -1`), the command stops at once and quietly, with the status
//!   of the images it did analyse: the reader asked for no more, so that is no failure
//!   (ripgrep does the same); a script under `set -o pipefail` is not failed by it.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use melodyhue_core::color::{self, ColorReport, FileError};
use serde::Serialize;

/// `melodyhue color`'s arguments.
#[derive(Args)]
pub(crate) struct ColorArgs {
    /// Image files (JPEG, PNG, WebP), or folders to search for them.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Print one JSON object per image and line, failures included, instead of text.
    #[arg(long)]
    json: bool,
}

/// Extensions of the files taken from folders.
const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

/// Why an image has no report.
enum Failure {
    /// Walking a folder failed here.
    Walk(walkdir::Error),
    File(FileError),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Walk(error) => match error.io_error() {
                Some(io) => write!(f, "cannot read the folder: {io}"),
                None => write!(f, "{error}"),
            },
            Failure::File(error) => write!(f, "{error}"),
        }
    }
}

/// Runs the command; see the module documentation for the output and the status.
pub(crate) fn run(args: &ColorArgs) -> ExitCode {
    let mut failed = false;
    let mut out = io::stdout().lock();
    for path in &args.paths {
        let mut stopped = false;
        for_each_image(path, &mut |image, result| {
            failed |= result.is_err();
            match print(&mut out, args.json, image, &result) {
                Ok(()) => true,
                Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {
                    stopped = true;
                    false
                }
                Err(error) => {
                    let _ = writeln!(io::stderr(), "melodyhue: cannot write the output: {error}");
                    failed = true;
                    stopped = true;
                    false
                }
            }
        });
        if stopped {
            break;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Calls `visit` with each image `path` names (itself, or the images of a folder) and its
/// report, until `visit` returns false.
fn for_each_image(path: &Path, visit: &mut dyn FnMut(&Path, Result<ColorReport, Failure>) -> bool) {
    let analyze =
        |image: &Path| color::analyze_file(image, &color::Limits::default()).map_err(Failure::File);
    if !path.is_dir() {
        visit(path, analyze(path));
        return;
    }
    let entries = walkdir::WalkDir::new(path)
        .follow_links(true)
        .sort_by_file_name();
    for entry in entries {
        let keep_going = match entry {
            Ok(entry) if entry.file_type().is_file() && is_image_name(entry.path()) => {
                visit(entry.path(), analyze(entry.path()))
            }
            Ok(_) => true,
            Err(error) => {
                let at = error.path().unwrap_or(path).to_path_buf();
                visit(&at, Err(Failure::Walk(error)))
            }
        };
        if !keep_going {
            return;
        }
    }
}

fn is_image_name(path: &Path) -> bool {
    path.extension().is_some_and(|extension| {
        let extension = extension.to_string_lossy().to_ascii_lowercase();
        IMAGE_EXTENSIONS.contains(&extension.as_str())
    })
}

/// Writes one image's line: a report to `out`, a plain failure to stderr.
fn print(
    out: &mut impl Write,
    json: bool,
    path: &Path,
    result: &Result<ColorReport, Failure>,
) -> io::Result<()> {
    let shown = path.display();
    if json {
        let path = shown.to_string();
        let line = match result {
            Ok(report) => serde_json::to_string(&JsonReport::new(&path, report)),
            Err(failure) => serde_json::to_string(&JsonFailure {
                path: &path,
                error: failure.to_string(),
            }),
        };
        return writeln!(out, "{}", line.map_err(io::Error::other)?);
    }
    match result {
        Ok(report) => writeln!(out, "{shown}\t{report}"),
        Err(failure) => {
            // A closed stderr is no reason to stop.
            let _ = writeln!(io::stderr(), "{shown}: {failure}");
            Ok(())
        }
    }
}

/// A `--json` line for an image; fields in this order, colours as `#rrggbb`.
#[derive(Serialize)]
struct JsonReport<'a> {
    path: &'a str,
    color: String,
    palette: JsonPalette,
    text_color: String,
}

/// The swatches, named as in `ColorReport`'s text and the HTTP API.
#[derive(Serialize)]
struct JsonPalette {
    vibrant: String,
    muted: String,
    dark_vibrant: String,
    dark_muted: String,
    light_vibrant: String,
    light_muted: String,
}

impl<'a> JsonReport<'a> {
    fn new(path: &'a str, report: &ColorReport) -> Self {
        let palette = &report.palette;
        Self {
            path,
            color: report.color.hex(),
            palette: JsonPalette {
                vibrant: palette.vibrant.hex(),
                muted: palette.muted.hex(),
                dark_vibrant: palette.dark_vibrant.hex(),
                dark_muted: palette.dark_muted.hex(),
                light_vibrant: palette.light_vibrant.hex(),
                light_muted: palette.light_muted.hex(),
            },
            text_color: report.text_color.hex(),
        }
    }
}

/// A `--json` line for a path that gave no report.
#[derive(Serialize)]
struct JsonFailure<'a> {
    path: &'a str,
    error: String,
}
