//! Lanczos-3 resampling with Pillow's exact arithmetic.
//!
//! The classic colour is decided, on some covers, by a couple of pixels that ring past 0 or
//! 255 next to a sharp edge; general resizers (`fast_image_resize`, `image`) round and order
//! their passes differently and flip those decisions. This follows Pillow's published
//! algorithm: weights in `f64` normalised per output pixel, then fixed point with 22
//! fractional bits; the horizontal pass first, clamped to 8 bits, then the vertical pass.

use super::decode::Raster;

const PRECISION_BITS: u32 = 32 - 8 - 2;
const LANCZOS_SUPPORT: f64 = 3.0;

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

fn lanczos3(x: f64) -> f64 {
    if -LANCZOS_SUPPORT < x && x < LANCZOS_SUPPORT {
        sinc(x) * sinc(x / LANCZOS_SUPPORT)
    } else {
        0.0
    }
}

/// The taps of one output sample: first input index and fixed-point weights.
struct Taps {
    first: usize,
    weights: Vec<i32>,
}

fn taps(in_size: usize, out_size: usize) -> Vec<Taps> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = LANCZOS_SUPPORT * filter_scale;
    let inverse_scale = 1.0 / filter_scale;
    (0..out_size)
        .map(|out| {
            let center = (out as f64 + 0.5) * scale;
            // Truncation toward zero, as C's int cast, then clamped to the image.
            let first = ((center - support + 0.5) as i64).max(0) as usize;
            let last = ((center + support + 0.5) as i64).clamp(0, in_size as i64) as usize;
            let raw: Vec<f64> = (first..last.max(first))
                .map(|x| lanczos3((x as f64 - center + 0.5) * inverse_scale))
                .collect();
            let total: f64 = raw.iter().sum();
            let one = f64::from(1u32 << PRECISION_BITS);
            let weights = raw
                .iter()
                .map(|w| {
                    let w = if total == 0.0 { *w } else { w / total };
                    // Round half away from zero, then truncate, as Pillow does.
                    (if w < 0.0 {
                        -0.5 + w * one
                    } else {
                        0.5 + w * one
                    }) as i32
                })
                .collect();
            Taps { first, weights }
        })
        .collect()
}

fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes packed RGB8 pixels to `width` x `height` with Pillow's `Image.resize(LANCZOS)`.
pub(crate) fn lanczos(src: &Raster, width: u32, height: u32) -> Raster {
    let (in_w, in_h) = (src.width as usize, src.height as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    let half = 1i64 << (PRECISION_BITS - 1);

    let horizontal = if in_w == out_w {
        src.rgb.clone()
    } else {
        let columns = taps(in_w, out_w);
        let mut out = Vec::with_capacity(out_w * in_h * 3);
        for row in src.rgb.chunks_exact(in_w * 3).take(in_h) {
            for tap in &columns {
                let mut acc = [half; 3];
                let pixels = row.get(tap.first * 3..).unwrap_or_default().chunks_exact(3);
                for (p, &w) in pixels.zip(&tap.weights) {
                    for (a, &v) in acc.iter_mut().zip(p) {
                        *a += i64::from(v) * i64::from(w);
                    }
                }
                out.extend(acc.map(clip8));
            }
        }
        out
    };

    let rgb = if in_h == out_h {
        horizontal
    } else {
        let rows = taps(in_h, out_h);
        let stride = out_w * 3;
        let mut out = Vec::with_capacity(out_w * out_h * 3);
        for tap in &rows {
            let mut acc = vec![half; stride];
            let lines = horizontal
                .get(tap.first * stride..)
                .unwrap_or_default()
                .chunks_exact(stride);
            for (line, &w) in lines.zip(&tap.weights) {
                for (a, &v) in acc.iter_mut().zip(line) {
                    *a += i64::from(v) * i64::from(w);
                }
            }
            out.extend(acc.into_iter().map(clip8));
        }
        out
    };
    Raster { width, height, rgb }
}
