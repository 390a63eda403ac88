//! Android-style palette: vibrant, muted and their dark and light variants.
//!
//! The thumbnail is clustered with k-means in CIELAB (`kmeans_colors`); each cluster becomes a
//! swatch whose colour is the mean of its own pixels, so every swatch is a colour of the
//! image. Targets and weights are those of Android's `Palette`: a swatch is scored on how close
//! its HSL saturation and lightness are to the target's, and on its population; near-black and
//! near-white clusters are not candidates; a swatch serves one target only.

use kmeans_colors::get_kmeans_hamerly;
use palette::{Hsl, IntoColor, Lab, Srgb};

use super::{Palette, Rgb};

const CLUSTERS: usize = 12;
const MAX_ITERATIONS: usize = 20;
/// Convergence threshold of k-means, in squared CIELAB units.
const CONVERGENCE: f32 = 1.0;
/// Fixed so that the same image always gives the same palette.
const SEED: u64 = 0x6d65_6c6f_6479;

const WEIGHT_SATURATION: f32 = 0.24;
const WEIGHT_LIGHTNESS: f32 = 0.52;
const WEIGHT_POPULATION: f32 = 0.24;

/// A range with its ideal value, as Android's `Target`.
#[derive(Clone, Copy)]
struct Range {
    min: f32,
    target: f32,
    max: f32,
}

impl Range {
    const fn new(min: f32, target: f32, max: f32) -> Self {
        Self { min, target, max }
    }

    fn contains(&self, v: f32) -> bool {
        (self.min..=self.max).contains(&v)
    }
}

const LIGHT: Range = Range::new(0.55, 0.74, 1.0);
const NORMAL: Range = Range::new(0.3, 0.5, 0.7);
const DARK: Range = Range::new(0.0, 0.26, 0.45);
const VIBRANT: Range = Range::new(0.35, 1.0, 1.0);
const MUTED: Range = Range::new(0.0, 0.3, 0.4);

struct Target {
    saturation: Range,
    lightness: Range,
}

/// In Android's order of selection, which decides who gets a swatch first.
const TARGETS: [Target; 6] = [
    Target {
        saturation: VIBRANT,
        lightness: LIGHT,
    },
    Target {
        saturation: VIBRANT,
        lightness: NORMAL,
    },
    Target {
        saturation: VIBRANT,
        lightness: DARK,
    },
    Target {
        saturation: MUTED,
        lightness: LIGHT,
    },
    Target {
        saturation: MUTED,
        lightness: NORMAL,
    },
    Target {
        saturation: MUTED,
        lightness: DARK,
    },
];

struct Swatch {
    rgb: Rgb,
    hsl: Hsl<palette::encoding::Srgb, f32>,
    population: usize,
}

impl Swatch {
    /// Near-black and near-white say nothing about the image's colours.
    fn is_candidate(&self) -> bool {
        self.hsl.lightness > 0.05 && self.hsl.lightness < 0.95
    }

    fn score(&self, target: &Target, max_population: usize) -> f32 {
        let closeness = |v: f32, range: Range| 1.0 - (v - range.target).abs();
        WEIGHT_SATURATION * closeness(self.hsl.saturation, target.saturation)
            + WEIGHT_LIGHTNESS * closeness(self.hsl.lightness, target.lightness)
            + WEIGHT_POPULATION * self.population as f32 / max_population.max(1) as f32
    }
}

fn hsl_of(c: Rgb) -> Hsl<palette::encoding::Srgb, f32> {
    Srgb::new(c.r, c.g, c.b).into_format::<f32>().into_color()
}

fn rgb_of(hsl: Hsl<palette::encoding::Srgb, f32>) -> Rgb {
    let srgb: Srgb<f32> = hsl.into_color();
    let c: Srgb<u8> = srgb.into_format();
    Rgb::new(c.red, c.green, c.blue)
}

fn swatches(rgb: &[u8]) -> Vec<Swatch> {
    let pixels: Vec<[u8; 3]> = rgb.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
    if pixels.is_empty() {
        return Vec::new();
    }
    let lab: Vec<Lab<palette::white_point::D65, f32>> = pixels
        .iter()
        .map(|p| {
            Srgb::new(p[0], p[1], p[2])
                .into_format::<f32>()
                .into_color()
        })
        .collect();
    let clusters = get_kmeans_hamerly(CLUSTERS, MAX_ITERATIONS, CONVERGENCE, false, &lab, SEED);
    let mut sums = vec![([0u64; 3], 0usize); clusters.centroids.len()];
    for (p, &index) in pixels.iter().zip(&clusters.indices) {
        if let Some((sum, count)) = sums.get_mut(usize::from(index)) {
            for (s, &v) in sum.iter_mut().zip(p) {
                *s += u64::from(v);
            }
            *count += 1;
        }
    }
    sums.into_iter()
        .filter(|&(_, count)| count > 0)
        .map(|(sum, count)| {
            // A mean of bytes is a byte.
            let mean = sum.map(|s| (s as f64 / count as f64).round() as u8);
            let rgb = Rgb::new(mean[0], mean[1], mean[2]);
            Swatch {
                rgb,
                hsl: hsl_of(rgb),
                population: count,
            }
        })
        .collect()
}

/// The palette of packed RGB8 pixels. Never fails: an empty input gives a grey palette.
pub(crate) fn palette_of(rgb: &[u8]) -> Palette {
    let swatches = swatches(rgb);
    let max_population = swatches.iter().map(|s| s.population).max().unwrap_or(1);
    let mut used = vec![false; swatches.len()];
    let chosen = TARGETS.map(|target| {
        let best = swatches
            .iter()
            .enumerate()
            .filter(|(i, s)| {
                !used.get(*i).copied().unwrap_or(true)
                    && s.is_candidate()
                    && target.saturation.contains(s.hsl.saturation)
                    && target.lightness.contains(s.hsl.lightness)
            })
            .max_by(|a, b| {
                a.1.score(&target, max_population)
                    .total_cmp(&b.1.score(&target, max_population))
            });
        match best {
            Some((i, swatch)) => {
                if let Some(u) = used.get_mut(i) {
                    *u = true;
                }
                swatch.rgb
            }
            None => derived(&swatches, &target, max_population),
        }
    });
    let [
        light_vibrant,
        vibrant,
        dark_vibrant,
        light_muted,
        muted,
        dark_muted,
    ] = chosen;
    Palette {
        vibrant,
        muted,
        dark_vibrant,
        dark_muted,
        light_vibrant,
        light_muted,
    }
}

/// A swatch for a target no cluster fits: the closest cluster, moved to the target lightness,
/// its saturation capped at the target's maximum. Saturation is never raised, so a grey image
/// keeps grey swatches.
fn derived(swatches: &[Swatch], target: &Target, max_population: usize) -> Rgb {
    let base = swatches
        .iter()
        .max_by(|a, b| {
            a.score(target, max_population)
                .total_cmp(&b.score(target, max_population))
        })
        .map_or(Hsl::new(0.0, 0.0, 0.5), |s| s.hsl);
    rgb_of(Hsl::new(
        base.hue,
        base.saturation.min(target.saturation.max),
        target.lightness.target,
    ))
}
