//! The colour extractor: reference colours, palette properties and hostile inputs.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test helpers

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;

use melodyhue_core::color::{
    ColorError, Limits, Palette, Rgb, analyze, analyze_with, classic_color, contrast_ratio,
    delta_e_2000, text_color_for,
};

mod decoding;
mod incomplete;
mod palette;
mod reference;
mod transparency;

fn fixture(path: &str) -> Vec<u8> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn references() -> BTreeMap<String, String> {
    serde_json::from_slice(&fixture("covers/reference-colors.json"))
        .unwrap_or_else(|e| panic!("reference JSON: {e}"))
}

fn encode(image: impl Into<image::DynamicImage>, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .into()
        .write_to(&mut Cursor::new(&mut bytes), format)
        .unwrap_or_else(|e| panic!("encoding a test image: {e}"));
    bytes
}

fn png(width: u32, height: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb(pixel(x, y)));
    encode(image, image::ImageFormat::Png)
}

fn jpeg(width: u32, height: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb(pixel(x, y)));
    encode(image, image::ImageFormat::Jpeg)
}

/// Small deterministic noise, -range..=range.
fn noise(x: u32, y: u32, range: u32) -> i32 {
    let h = x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503).rotate_left(13);
    (h % (2 * range + 1)) as i32 - range as i32
}

fn add(v: u8, d: i32) -> u8 {
    (i32::from(v) + d).clamp(0, 255) as u8
}

fn hsl_saturation(c: Rgb) -> f64 {
    let max = f64::from(c.r.max(c.g).max(c.b)) / 255.0;
    let min = f64::from(c.r.min(c.g).min(c.b)) / 255.0;
    let lightness = (max + min) / 2.0;
    if max == min {
        0.0
    } else {
        (max - min) / (1.0 - (2.0 * lightness - 1.0).abs())
    }
}

fn assert_text_contrast(report: &melodyhue_core::color::ColorReport) {
    let contrast = contrast_ratio(report.color, report.text_color);
    assert!(
        contrast >= 4.5,
        "text {} on {} has contrast {contrast:.2}",
        report.text_color.hex(),
        report.color.hex()
    );
}
