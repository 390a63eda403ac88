//! The classic color of the earlier (Pillow) service, computed on a small RGB image.
//!
//! Steps, as the earlier service did them: keep pixels whose mean of r, g, b is above 30 (all
//! of them if none is); drop pixels whose HSV saturation is below 0.2; group the rest by
//! `(r / 20, g / 20, b / 20)`; score each group `0.7 * size / kept + 0.3 * mean saturation`;
//! average the best group, push it away from grey, lift it if dark. Ties go to the group met
//! first in raster order, as with the insertion-ordered dict of the original.

use super::Rgb;

/// Channel values per group side: 256 / 20 rounded up.
const BINS: usize = 13;
const MIN_SATURATION: f64 = 0.2;

/// One colour group of the histogram.
#[derive(Clone, Copy)]
struct Group {
    key: u16,
    count: u32,
    saturation_sum: f64,
    sum: [u32; 3],
}

/// Outcome of the group statistics, before the colour is amplified.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Winner {
    /// Mean colour of the best group, or the brightest pixel when no group exists.
    pub(crate) mean: [f64; 3],
    /// Best score minus the second best, relative to the best: how safe the choice is.
    /// `None` when fewer than two groups competed.
    pub(crate) margin: Option<f64>,
    /// Index of the winning group, `None` for the brightest-pixel fallback.
    pub(crate) key: Option<u16>,
}

/// HSV saturation `(max - min) / max`, 0 for black.
pub(crate) fn saturation(p: [u8; 3]) -> f64 {
    let max = p[0].max(p[1]).max(p[2]);
    let min = p[0].min(p[1]).min(p[2]);
    if max == 0 {
        0.0
    } else {
        f64::from(max - min) / f64::from(max)
    }
}

fn is_bright(p: [u8; 3]) -> bool {
    // mean > 30 exactly as (r + g + b) / 3 > 30 in floating point.
    u16::from(p[0]) + u16::from(p[1]) + u16::from(p[2]) > 90
}

fn pixels(rgb: &[u8]) -> impl Iterator<Item = [u8; 3]> + '_ {
    rgb.chunks_exact(3).map(|c| [c[0], c[1], c[2]])
}

/// Runs the group statistics over packed RGB8 pixels; `None` for an empty image.
pub(crate) fn winner(rgb: &[u8]) -> Option<Winner> {
    let bright_count = pixels(rgb).filter(|&p| is_bright(p)).count();
    let keep_all = bright_count == 0;
    let kept_count = if keep_all {
        rgb.len() / 3
    } else {
        bright_count
    };
    if kept_count == 0 {
        return None;
    }
    let kept = || pixels(rgb).filter(move |&p| keep_all || is_bright(p));

    // Groups in order of first appearance, as the original's insertion-ordered dict; `slots`
    // maps a group key to its place there.
    let mut slots = [u16::MAX; BINS * BINS * BINS];
    let mut groups: Vec<Group> = Vec::with_capacity(64);
    for p in kept() {
        let saturation = saturation(p);
        if saturation < MIN_SATURATION {
            continue;
        }
        let key = (u16::from(p[0] / 20) * BINS as u16 + u16::from(p[1] / 20)) * BINS as u16
            + u16::from(p[2] / 20);
        let Some(slot) = slots.get_mut(usize::from(key)) else {
            continue;
        };
        if *slot == u16::MAX {
            // At most 13^3 groups, so the place fits a u16 below u16::MAX.
            *slot = groups.len() as u16;
            groups.push(Group {
                key,
                count: 0,
                saturation_sum: 0.0,
                sum: [0; 3],
            });
        }
        let Some(group) = groups.get_mut(usize::from(*slot)) else {
            continue;
        };
        group.count += 1;
        group.saturation_sum += saturation;
        for (sum, &v) in group.sum.iter_mut().zip(&p) {
            *sum += u32::from(v);
        }
    }
    let any_group = !groups.is_empty();

    if !any_group {
        // No saturated pixel: the brightest kept pixel, the first one on ties.
        let brightest = kept().fold(None::<[u8; 3]>, |best, p| match best {
            Some(b) if sum(b) >= sum(p) => Some(b),
            _ => Some(p),
        })?;
        return Some(Winner {
            mean: brightest.map(f64::from),
            margin: None,
            key: None,
        });
    }

    let kept_count = kept_count as f64;
    let mut scored: Vec<(f64, &Group)> = groups
        .iter()
        .map(|g| {
            let count = f64::from(g.count);
            (count / kept_count * 0.7 + g.saturation_sum / count * 0.3, g)
        })
        .collect();
    // Highest score first; the sort is stable, so on equal scores the group seen first wins.
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let &(best_score, best) = scored.first()?;
    let margin = scored
        .get(1)
        .map(|&(second, _)| (best_score - second) / best_score);
    let count = f64::from(best.count);
    Some(Winner {
        mean: best.sum.map(|s| f64::from(s) / count),
        margin,
        key: Some(best.key),
    })
}

fn sum(p: [u8; 3]) -> u16 {
    p.iter().map(|&v| u16::from(v)).sum()
}

/// Pushes a colour away from its grey by a factor that depends on its saturation, then lifts
/// dark results, and truncates to integers.
pub(crate) fn amplify(mean: [f64; 3]) -> Rgb {
    let [r, g, b] = mean;
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let saturation = if max == 0.0 { 0.0 } else { (max - min) / max };
    let boost = if saturation > 0.7 {
        1.1
    } else if saturation > 0.4 {
        1.2
    } else {
        1.4
    };
    let center = (r + g + b) / 3.0;
    let mut out = mean.map(|v| (center + (v - center) * boost).clamp(0.0, 255.0));
    let brightness = (out[0] + out[1] + out[2]) / 3.0;
    if brightness < 120.0 {
        let lift = (120.0 - brightness) * 0.8;
        out = out.map(|v| (v + lift).min(255.0));
    }
    // Values are within 0..=255 here, so the casts only truncate the fraction.
    Rgb::new(out[0] as u8, out[1] as u8, out[2] as u8)
}
