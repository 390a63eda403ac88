//! Arbitrary bytes into the colour extractor: a colour or a clear error, never a panic, and
//! readable text whenever a colour comes out.

#![no_main]

use libfuzzer_sys::fuzz_target;
use melodyhue_core::color::{Limits, analyze_with, contrast_ratio};

// Smaller than the defaults so that each run stays fast and far below libFuzzer's memory cap.
const LIMITS: Limits = Limits {
    max_input_bytes: 1 << 20,
    max_pixels: 4_000_000,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = analyze_with(data, &LIMITS) {
        assert!(contrast_ratio(report.color, report.text_color) >= 4.5);
    }
});
