//! Time per cover of the colour extractor, against the speed of the machine.
//!
//! ```text
//! cargo bench -p melodyhue-benches --bench color
//! ```
//!
//! Covers come from `$MELODYHUE_COVERS_DIR`, else `../shared/covers` beside the workspace,
//! else 12 generated 640x640 JPEGs. Four criterion groups, one benchmark per cover:
//! `color_analyze` (classic colour, palette and text colour: what the server and
//! `melodyhue color` compute), `color_classic` (the classic colour alone), `color_eighth`
//! (libjpeg-turbo's 1/8-scaled decode alone, JPEGs only: the floor of the fast path, which
//! tells how fast the machine of the run is) and `color_baseline` (full decode with the `image`
//! crate and a 100x100 Lanczos3 resize, no statistics). The run ends with a table: for each
//! group the median over covers of criterion's median per cover, and its ratio to
//! `color_eighth` over the same (JPEG) covers.
//!
//! Timings move with the machine's load; instruction counts do not. With
//! `MELODYHUE_BENCH_ONCE=GROUP:COVER` the binary runs one group's work once on one cover, in
//! a function named `measure_once`, and exits; `benches/color_instructions.sh` runs that under
//! callgrind for every cover and prints the same table in instructions.

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use image::imageops::FilterType;

struct Cover {
    name: String,
    bytes: Vec<u8>,
}

fn covers() -> (Vec<Cover>, String) {
    let dir = std::env::var_os("MELODYHUE_COVERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/covers"));
    let mut covers: Vec<Cover> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension().is_some_and(|e| {
                ["jpg", "jpeg", "png", "webp"]
                    .contains(&e.to_string_lossy().to_lowercase().as_str())
            })
        })
        .filter_map(|path| {
            Some(Cover {
                name: path.file_name()?.to_string_lossy().into_owned(),
                bytes: std::fs::read(&path).ok()?,
            })
        })
        .collect();
    if covers.is_empty() {
        return (generated(), "12 generated 640x640 JPEGs".to_owned());
    }
    covers.sort_by(|a, b| a.name.cmp(&b.name));
    let source = format!("{} covers from {}", covers.len(), dir.display());
    (covers, source)
}

/// Gradients, stripes and noise, encoded as the covers are (JPEG, quality 80).
fn generated() -> Vec<Cover> {
    (0u32..12)
        .filter_map(|seed| {
            let image = image::RgbImage::from_fn(640, 640, |x, y| {
                let noise =
                    (x.wrapping_mul(7919) ^ y.wrapping_mul(104_729) ^ seed.wrapping_mul(31)) % 23;
                let stripe = if (x / (16 + seed * 8)) % 2 == 0 {
                    40
                } else {
                    0
                };
                image::Rgb([
                    ((x * (seed + 1) / 5 + noise) % 256) as u8,
                    ((y / 3 + stripe + seed * 20) % 256) as u8,
                    (((x + y) / 5 + seed * 37) % 256) as u8,
                ])
            });
            let mut bytes = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 80)
                .encode_image(&image)
                .ok()?;
            Some(Cover {
                name: format!("generated-{seed:02}.jpg"),
                bytes,
            })
        })
        .collect()
}

fn baseline(bytes: &[u8]) -> image::ImageResult<image::RgbImage> {
    let decoded = image::load_from_memory(bytes)?.into_rgb8();
    Ok(image::imageops::resize(
        &decoded,
        100,
        100,
        FilterType::Lanczos3,
    ))
}

/// libjpeg-turbo's decode with the inverse DCT scaled to 1/8, and nothing else.
fn eighth_decode(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut decoder = mozjpeg::Decompress::new_mem(bytes)?;
    decoder.scale(1);
    let mut started = decoder.rgb()?;
    let pixels = started.read_scanlines()?;
    started.finish()?;
    Ok(pixels)
}

fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8])
}

/// One criterion group: a benchmark per cover it takes.
struct Group {
    name: &'static str,
    /// Whether the group measures only JPEG covers.
    jpeg_only: bool,
    /// The work measured; whether it succeeded, so that nothing is optimised away.
    run: fn(&[u8]) -> bool,
}

impl Group {
    fn covers<'a>(&self, covers: &'a [Cover]) -> impl Iterator<Item = &'a Cover> {
        let jpeg_only = self.jpeg_only;
        covers
            .iter()
            .filter(move |cover| !jpeg_only || is_jpeg(&cover.bytes))
    }
}

/// The groups, in the order of the summary; the ratios are to [`EIGHTH`].
const GROUPS: [Group; 4] = [
    Group {
        name: "color_analyze",
        jpeg_only: false,
        run: |bytes| melodyhue_core::color::analyze(bytes).is_ok(),
    },
    Group {
        name: "color_classic",
        jpeg_only: false,
        run: |bytes| melodyhue_core::color::classic_color(bytes).is_ok(),
    },
    Group {
        name: EIGHTH,
        jpeg_only: true,
        run: |bytes| eighth_decode(bytes).is_ok(),
    },
    Group {
        name: "color_baseline",
        jpeg_only: false,
        run: |bytes| baseline(bytes).is_ok(),
    },
];

/// The group every other is measured against.
const EIGHTH: &str = "color_eighth";

/// One group's work, once, on one cover: what callgrind counts (`--toggle-collect`).
#[inline(never)]
fn measure_once(group: &Group, bytes: &[u8]) -> bool {
    (group.run)(bytes)
}

/// `MELODYHUE_BENCH_ONCE=GROUP:COVER`: runs [`measure_once`] and says whether it succeeded.
fn run_once(spec: &str, covers: &[Cover]) -> std::process::ExitCode {
    let found = spec.split_once(':').and_then(|(group, cover)| {
        let group = GROUPS.iter().find(|g| g.name == group)?;
        let cover = covers.iter().find(|c| c.name == cover)?;
        Some((group, cover))
    });
    match found {
        Some((group, cover)) if measure_once(group, std::hint::black_box(&cover.bytes)) => {
            std::process::ExitCode::SUCCESS
        }
        Some(_) => std::process::ExitCode::FAILURE,
        None => {
            eprintln!("MELODYHUE_BENCH_ONCE={spec}: no such GROUP:COVER");
            std::process::ExitCode::from(2)
        }
    }
}

fn main() -> std::process::ExitCode {
    let (covers, source) = covers();
    if let Ok(spec) = std::env::var("MELODYHUE_BENCH_ONCE") {
        return run_once(&spec, &covers);
    }
    let output = std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion"));
    let mut criterion = Criterion::default()
        .output_directory(&output)
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();

    for spec in &GROUPS {
        let mut group = criterion.benchmark_group(spec.name);
        for cover in spec.covers(&covers) {
            group.bench_with_input(
                BenchmarkId::from_parameter(&cover.name),
                &cover.bytes,
                |b, bytes| {
                    b.iter(|| (spec.run)(bytes));
                },
            );
        }
        group.finish();
    }
    criterion.final_summary();

    summary(&output, &covers, &source);
    std::process::ExitCode::SUCCESS
}

/// The table: for each group, the median over its covers of criterion's median estimate of
/// each cover (read back from criterion's output), and its ratio to the 1/8 decode, both
/// medians taken over the covers the 1/8 decode measured.
fn summary(output: &Path, covers: &[Cover], source: &str) {
    let median = |group: &Group, covers: &mut dyn Iterator<Item = &Cover>| {
        let mut times = Vec::new();
        for cover in covers {
            // Every cover or none: a partial run (a filter) has no median.
            times.push(median_estimate(&output.join(group.name).join(&cover.name))?);
        }
        times.sort_by(f64::total_cmp);
        times.get(times.len() / 2).copied()
    };
    let eighth_group = GROUPS.iter().find(|g| g.name == EIGHTH);
    let jpegs = || covers.iter().filter(|cover| is_jpeg(&cover.bytes));
    let eighth = eighth_group.and_then(|group| median(group, &mut jpegs()));
    println!("\nper-cover median times over {source}:");
    println!(
        "  {:15} {:>11}   {:>15}",
        "group", "median", "x color_eighth"
    );
    for group in &GROUPS {
        let Some(ns) = median(group, &mut group.covers(covers)) else {
            println!(
                "  {:15} not measured in this run (filtered out, or no JPEG cover)",
                group.name
            );
            continue;
        };
        let ratio = eighth.zip(median(group, &mut jpegs())).map_or_else(
            || "-".to_owned(),
            |(eighth, ns)| format!("{:.2}x", ns / eighth),
        );
        println!("  {:15} {:8.3} ms   {ratio:>15}", group.name, ns / 1e6);
    }
    let jpeg_count = jpegs().count();
    if jpeg_count < covers.len() {
        println!("  (ratios over the {jpeg_count} JPEG covers, which the 1/8 decode takes)");
    }
}

fn median_estimate(dir: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join("new/estimates.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("median")?.get("point_estimate")?.as_f64()
}
