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

/// One colour group of the histogram.
#[derive(Clone, Copy)]
struct Group {
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
    /// Pixels the statistics kept (the bright ones, or all when none is bright).
    pub(crate) kept: usize,
}

fn pixels(rgb: &[u8]) -> impl Iterator<Item = [u8; 3]> + '_ {
    rgb.chunks_exact(3).map(|c| [c[0], c[1], c[2]])
}

fn is_bright(p: [u8; 3]) -> bool {
    // mean > 30 exactly as (r + g + b) / 3 > 30 in floating point.
    sum(p) > 90
}

/// Key of the pseudo-group that collects the pixels the statistics skip. Sending them there
/// instead of branching keeps the per-pixel loop free of unpredictable branches.
const SKIPPED: usize = BINS * BINS * BINS;

/// `1 / max` for every channel maximum, so that a pixel's saturation costs a multiplication.
const RECIPROCALS: [f64; 256] = {
    let mut table = [0.0; 256];
    let mut max = 1;
    while max < 256 {
        table[max] = 1.0 / max as f64;
        max += 1;
    }
    table
};

/// The groups of the kept pixels, in order of first appearance as in the original's
/// insertion-ordered dict.
struct Histogram {
    /// Maps a group key (or [`SKIPPED`]) to its place in `groups`.
    slots: [u16; SKIPPED + 1],
    groups: Vec<Group>,
    kept: usize,
}

impl Histogram {
    /// The statistics of the pixels of `rgb` that `keep` selects.
    fn of(rgb: &[u8], keep: impl Fn([u8; 3]) -> bool) -> Self {
        let mut histogram = Self {
            slots: [u16::MAX; SKIPPED + 1],
            groups: Vec::with_capacity(64),
            kept: 0,
        };
        for p in pixels(rgb) {
            histogram.add(p, keep(p));
        }
        histogram
    }

    // Inlined into the per-pixel loop; the rare first sight of a group is `open_group`.
    #[inline(always)]
    fn add(&mut self, p: [u8; 3], kept: bool) {
        self.kept += usize::from(kept);
        let max = p[0].max(p[1]).max(p[2]);
        let min = p[0].min(p[1]).min(p[2]);
        // (max - min) / max >= 0.2 in integers; with max <= 255 no quotient lies close
        // enough to 0.2 for the floating-point comparison to differ.
        let saturated = max > 0 && 5 * u16::from(max - min) >= u16::from(max);
        let key = if kept && saturated {
            usize::from(p[0] / 20) * BINS * BINS
                + usize::from(p[1] / 20) * BINS
                + usize::from(p[2] / 20)
        } else {
            SKIPPED
        };
        let place = match self.slots.get(key) {
            Some(&u16::MAX) => self.open_group(key),
            Some(&place) => place,
            None => return,
        };
        let Some(group) = self.groups.get_mut(usize::from(place)) else {
            return;
        };
        group.count += 1;
        group.saturation_sum += f64::from(max - min) * RECIPROCALS[usize::from(max)];
        for (sum, &v) in group.sum.iter_mut().zip(&p) {
            *sum += u32::from(v);
        }
    }

    /// Gives the group of `key` the next place, on its first pixel.
    #[cold]
    fn open_group(&mut self, key: usize) -> u16 {
        // At most 13^3 + 1 groups, so the place fits a u16 below u16::MAX.
        let place = self.groups.len() as u16;
        if let Some(slot) = self.slots.get_mut(key) {
            *slot = place;
        }
        self.groups.push(Group {
            count: 0,
            saturation_sum: 0.0,
            sum: [0; 3],
        });
        place
    }

    /// The real groups, in order of first appearance.
    fn groups(&self) -> impl Iterator<Item = &Group> {
        let skipped = self.slots[SKIPPED];
        self.groups
            .iter()
            .enumerate()
            .filter(move |&(place, _)| place != usize::from(skipped))
            .map(|(_, group)| group)
    }
}

/// Runs the group statistics over packed RGB8 pixels; `None` for an empty image.
pub(crate) fn winner(rgb: &[u8]) -> Option<Winner> {
    let mut histogram = Histogram::of(rgb, is_bright);
    let keep_all = histogram.kept == 0;
    if keep_all {
        histogram = Histogram::of(rgb, |_| true);
    }
    let kept = histogram.kept;
    let kept_count = kept as f64;
    let score = |g: &Group| {
        let count = f64::from(g.count);
        count / kept_count * 0.7 + g.saturation_sum / count * 0.3
    };
    // The best group, the first one seen on equal scores, and the best score of the others.
    let mut best: Option<(f64, &Group)> = None;
    let mut second: Option<f64> = None;
    for group in histogram.groups() {
        let s = score(group);
        match best {
            Some((best_score, _)) if s <= best_score => {
                second = Some(second.map_or(s, |t: f64| t.max(s)));
            }
            _ => {
                // The old best scored at least as much as every other group so far.
                second = best.map(|(b, _)| b);
                best = Some((s, group));
            }
        }
    }

    let Some((best_score, best)) = best else {
        // No saturated pixel: the brightest kept pixel, the first one on ties.
        let brightest = pixels(rgb)
            .filter(|&p| keep_all || is_bright(p))
            .reduce(|best, p| if sum(p) > sum(best) { p } else { best })?;
        return Some(Winner {
            mean: brightest.map(f64::from),
            margin: None,
            kept,
        });
    };
    let margin = second.map(|second| (best_score - second) / best_score);
    let count = f64::from(best.count);
    Some(Winner {
        mean: best.sum.map(|s| f64::from(s) / count),
        margin,
        kept,
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

#[cfg(test)]
mod tests {
    use super::*;

    const RED: [u8; 3] = [200, 20, 20];
    const BLUE: [u8; 3] = [20, 20, 200];

    fn image(pixels: &[[u8; 3]]) -> Vec<u8> {
        pixels.concat()
    }

    #[test]
    fn on_equal_scores_the_group_seen_first_wins() {
        let winner = winner(&image(&[BLUE, RED, RED, BLUE])).unwrap();
        assert_eq!(winner.mean, [20.0, 20.0, 200.0]);
        assert_eq!(winner.margin, Some(0.0));
        assert_eq!(winner.kept, 4);
    }

    #[test]
    fn the_larger_group_wins_with_its_lead_as_margin() {
        let winner = winner(&image(&[BLUE, RED, RED, RED])).unwrap();
        assert_eq!(winner.mean, [200.0, 20.0, 20.0]);
        // Scores: red 0.7 * 3/4 + 0.3 * 0.9, blue 0.7 * 1/4 + 0.3 * 0.9.
        let (red_score, blue_score) = (0.525 + 0.27, 0.175 + 0.27);
        let margin = winner.margin.unwrap();
        assert!((margin - (red_score - blue_score) / red_score).abs() < 1e-12);
    }

    #[test]
    fn without_saturated_pixels_the_first_brightest_kept_pixel_is_used() {
        let winner = winner(&image(&[
            [100, 100, 100],
            [180, 180, 180],
            [200, 170, 170],
            [5, 5, 5],
        ]))
        .unwrap();
        // [180; 3] and [200, 170, 170] (saturation 0.15) are equally bright: the first wins.
        assert_eq!(winner.mean, [180.0, 180.0, 180.0]);
        assert_eq!(winner.margin, None);
        assert_eq!(winner.kept, 3);
    }

    #[test]
    fn dark_pixels_are_skipped_unless_all_are_dark() {
        let dark_red = [60, 10, 10]; // mean 26.7: dark
        let mixed = winner(&image(&[dark_red, dark_red, BLUE])).unwrap();
        assert_eq!((mixed.mean, mixed.kept), ([20.0, 20.0, 200.0], 1));

        let all_dark = winner(&image(&[dark_red, [10, 10, 60], dark_red])).unwrap();
        assert_eq!((all_dark.mean, all_dark.kept), ([60.0, 10.0, 10.0], 3));
    }

    #[test]
    fn saturation_threshold_is_inclusive_at_one_fifth() {
        // (250 - 200) / 250 = 0.2 exactly: kept; (249 - 200) / 249 < 0.2: skipped.
        let on_threshold = winner(&image(&[[250, 200, 200]])).unwrap();
        assert!(on_threshold.margin.is_none() && on_threshold.mean == [250.0, 200.0, 200.0]);
        let grey_enough = winner(&image(&[[249, 200, 200], [250, 250, 250]])).unwrap();
        assert_eq!(grey_enough.mean, [250.0, 250.0, 250.0]);
    }

    #[test]
    fn an_empty_image_has_no_winner() {
        assert_eq!(winner(&[]), None);
    }
}
