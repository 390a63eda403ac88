//! Lanczos-3 resampling with Pillow's exact arithmetic.
//!
//! The classic colour is decided, on some covers, by a couple of pixels that ring past 0 or
//! 255 next to a sharp edge; general resizers (`fast_image_resize`, `image`) round and order
//! their passes differently and flip those decisions. This follows Pillow's published
//! algorithm: weights in `f64` normalised per output pixel, then fixed point with 22
//! fractional bits; the horizontal pass first, clamped to 8 bits, then the vertical pass.
//! Images with transparency, which the earlier service flattened, are resized premultiplied
//! in floating point instead (see [`lanczos`]).

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

/// The taps of one output sample: first input index and weights.
struct Taps<W> {
    first: usize,
    weights: Vec<W>,
}

/// Pillow's Lanczos weights, normalised per output sample.
fn taps(in_size: usize, out_size: usize) -> Vec<Taps<f64>> {
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
            let weights = raw
                .iter()
                .map(|w| if total == 0.0 { *w } else { w / total })
                .collect();
            Taps { first, weights }
        })
        .collect()
}

/// The weights in Pillow's fixed point.
fn fixed_point(taps: Vec<Taps<f64>>) -> Vec<Taps<i32>> {
    let one = f64::from(1u32 << PRECISION_BITS);
    taps.into_iter()
        .map(|tap| Taps {
            first: tap.first,
            weights: tap
                .weights
                .iter()
                // Round half away from zero, then truncate, as Pillow does.
                .map(|&w| {
                    (if w < 0.0 {
                        -0.5 + w * one
                    } else {
                        0.5 + w * one
                    }) as i32
                })
                .collect(),
        })
        .collect()
}

fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Rounding term added to every sum before the shift.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Resizes a raster to `width` x `height` with Lanczos-3.
///
/// An opaque raster is resized with Pillow's `Image.resize(LANCZOS)` arithmetic, exactly.
/// One with transparency is resized premultiplied, as Pillow resizes RGBA (a transparent
/// pixel's hidden colour does not bleed into its neighbours), but in floating point: divided
/// by a small resized opacity, the 8-bit rounding of Pillow's passes would turn the faint
/// pixels along an edge into colours of their own.
pub(crate) fn lanczos(src: &Raster, width: u32, height: u32) -> Raster {
    let (in_w, in_h) = (src.width as usize, src.height as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    let Some(alpha) = &src.alpha else {
        return Raster {
            width,
            height,
            rgb: resize_rgb(&src.rgb, (in_w, in_h), (out_w, out_h)),
            alpha: None,
        };
    };
    let premultiplied: Vec<f32> = src
        .rgb
        .chunks_exact(3)
        .zip(alpha)
        .flat_map(|(p, &a)| {
            let a = f32::from(a);
            [p[0], p[1], p[2]]
                .map(|v| f32::from(v) * a / 255.0)
                .into_iter()
                .chain([a])
        })
        .collect();
    let resized = resize_float::<4>(&premultiplied, (in_w, in_h), (out_w, out_h));
    let mut rgb = Vec::with_capacity(out_w * out_h * 3);
    let mut alpha = Vec::with_capacity(out_w * out_h);
    for p in resized.chunks_exact(4) {
        let a = p[3].clamp(0.0, 255.0);
        let opacity = a.round() as u8;
        let divided = |v: f32| match opacity {
            0 => 0,
            _ => (v * 255.0 / a).round().clamp(0.0, 255.0) as u8,
        };
        rgb.extend([divided(p[0]), divided(p[1]), divided(p[2])]);
        alpha.push(opacity);
    }
    Raster {
        width,
        height,
        rgb,
        alpha: Some(alpha),
    }
}

/// Resizes packed RGB8 pixels from `(width, height)` to `to` with Pillow's arithmetic.
///
/// Sums are `i32`, as in Pillow: 255 times the sum of the positive weights stays below 2^31.
fn resize_rgb(src: &[u8], (in_w, in_h): (usize, usize), (out_w, out_h): (usize, usize)) -> Vec<u8> {
    let columns = (in_w != out_w).then(|| fixed_point(taps(in_w, out_w)));
    let rows = (in_h != out_h).then(|| {
        if (in_h, out_h) == (in_w, out_w) {
            None
        } else {
            Some(fixed_point(taps(in_h, out_h)))
        }
    });

    let horizontal = match &columns {
        None => src.to_vec(),
        Some(columns) => {
            let mut out = Vec::with_capacity(out_w * in_h * 3);
            for row in src.chunks_exact(in_w * 3).take(in_h) {
                for tap in columns {
                    let (mut r, mut g, mut b) = (HALF, HALF, HALF);
                    let pixels = row.get(tap.first * 3..).unwrap_or_default();
                    for (p, &w) in pixels.chunks_exact(3).zip(&tap.weights) {
                        r += i32::from(p[0]) * w;
                        g += i32::from(p[1]) * w;
                        b += i32::from(p[2]) * w;
                    }
                    out.extend([clip8(r), clip8(g), clip8(b)]);
                }
            }
            out
        }
    };

    let Some(own) = rows else {
        return horizontal;
    };
    // Square images share the horizontal taps.
    let rows = match (&own, &columns) {
        (Some(own), _) => own,
        (None, Some(columns)) => columns,
        (None, None) => return horizontal,
    };
    let stride = out_w * 3;
    let mut out = Vec::with_capacity(stride * out_h);
    let mut acc = vec![HALF; stride];
    for tap in rows {
        acc.fill(HALF);
        let lines = horizontal.get(tap.first * stride..).unwrap_or_default();
        for (line, &w) in lines.chunks_exact(stride).zip(&tap.weights) {
            for (a, &v) in acc.iter_mut().zip(line) {
                *a += i32::from(v) * w;
            }
        }
        out.extend(acc.iter().map(|&a| clip8(a)));
    }
    out
}

/// Resizes packed pixels of `C` channels in floating point, without rounding between the
/// passes.
fn resize_float<const C: usize>(
    src: &[f32],
    (in_w, in_h): (usize, usize),
    (out_w, out_h): (usize, usize),
) -> Vec<f32> {
    let columns = taps(in_w, out_w);
    let rows = taps(in_h, out_h);
    let mut horizontal = Vec::with_capacity(out_w * in_h * C);
    for row in src.chunks_exact(in_w * C).take(in_h) {
        for tap in &columns {
            let mut acc = [0.0f64; C];
            let pixels = row.get(tap.first * C..).unwrap_or_default();
            for (p, &w) in pixels.chunks_exact(C).zip(&tap.weights) {
                for (a, &v) in acc.iter_mut().zip(p) {
                    *a += f64::from(v) * w;
                }
            }
            horizontal.extend(acc.map(|a| a as f32));
        }
    }
    let stride = out_w * C;
    let mut out = Vec::with_capacity(stride * out_h);
    let mut acc = vec![0.0f64; stride];
    for tap in &rows {
        acc.fill(0.0);
        let lines = horizontal.get(tap.first * stride..).unwrap_or_default();
        for (line, &w) in lines.chunks_exact(stride).zip(&tap.weights) {
            for (a, &v) in acc.iter_mut().zip(line) {
                *a += f64::from(v) * w;
            }
        }
        out.extend(acc.iter().map(|&a| a as f32));
    }
    out
}
