//! The classic color of the earlier (Pillow) service, computed on a small image.
//!
//! Steps, as the earlier service did them: keep pixels whose mean of r, g, b is above 30 (all
//! of them if none is); drop pixels whose HSV saturation is below 0.2; group the rest by
//! `(r / 20, g / 20, b / 20)`; score each group `0.7 * size / kept + 0.3 * mean saturation`;
//! average the best group, push it away from grey, lift it if dark. Ties go to the group met
//! first in raster order, as with the insertion-ordered dict of the original.
//!
//! A pixel counts in proportion to its opacity (the earlier service dropped the alpha channel;
//! for an opaque image nothing changes). The same pass also sorts the pixels the statistics
//! skip (dark or greyish ones) into cubes of their own, so that the palette is built from the
//! [`Histogram`] without another look at the pixels.

use super::Rgb;
use super::decode::Raster;

/// Channel values per group side: 256 / 20 rounded up.
const BINS: usize = 13;
/// Cubes of 20 levels: `(r / 20) * 169 + (g / 20) * 13 + b / 20`.
pub(crate) const CUBES: usize = BINS * BINS * BINS;
/// Keys `CUBES..2 * CUBES` hold the skipped pixels cube by cube, for the palette.
const SKIPPED_BY_CUBE: usize = CUBES;
/// Key of the single group that collects the skipped pixels when no palette is wanted.
/// Sending them there instead of branching keeps the per-pixel loop free of unpredictable
/// branches.
const SKIPPED: usize = 2 * CUBES;

/// One colour group of the histogram.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Group {
    key: u16,
    /// The pixels' weight (each pixel counts by its opacity: 1 in an opaque image, up to 255
    /// in an image with transparency), then the sums of their r, g, b times their weights.
    /// Side by side so that a pixel adds to them in one vector addition. They fit: the
    /// largest image has 390,625 pixels at 1/8 scale, an image with transparency is
    /// reduced to 100x100 (10,000 * 255 * 255 < 2^32).
    weight_and_sums: [u32; 4],
    /// Sum of the pixels' HSV saturations times their weights, in units of 2^-32.
    saturation_sum: u64,
}

impl Group {
    /// Whether the group competes for the classic colour (its pixels are bright and
    /// saturated); the others serve the palette only.
    fn competes(&self) -> bool {
        usize::from(self.key) < CUBES
    }

    /// The pixels, each counted by its opacity.
    pub(crate) fn weight(&self) -> u64 {
        u64::from(self.weight_and_sums[0])
    }

    /// Sums of the pixels' r, g, b, each times its weight.
    pub(crate) fn sum(&self) -> [u64; 3] {
        let [_, r, g, b] = self.weight_and_sums;
        [r, g, b].map(u64::from)
    }

    /// The cube's index, `(r / 20) * 169 + (g / 20) * 13 + b / 20`, below [`CUBES`].
    pub(crate) fn cube_index(&self) -> usize {
        usize::from(self.key) % CUBES
    }

    /// The cube's position, `(r / 20, g / 20, b / 20)`.
    pub(crate) fn cube(&self) -> [u8; 3] {
        let cube = self.cube_index();
        [cube / (BINS * BINS), cube / BINS % BINS, cube % BINS].map(|v| v as u8)
    }
}

/// Outcome of the group statistics, before the colour is amplified.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Winner {
    /// Mean colour of the best group, or the brightest pixel when no group exists.
    pub(crate) mean: [f64; 3],
    /// Best score minus the second best, relative to the best: how safe the choice is.
    /// `None` when fewer than two groups competed.
    pub(crate) margin: Option<f64>,
    /// Weight of the pixels the statistics kept (the bright ones, or all when none is
    /// bright); in pixels for an opaque image.
    pub(crate) kept: u64,
}

fn is_bright(p: [u8; 3]) -> bool {
    // mean > 30 exactly as (r + g + b) / 3 > 30 in floating point.
    sum(p) > 90
}

/// `2^32 / max` for every channel maximum, so that a pixel's HSV saturation
/// `(max - min) / max` costs a multiplication, in fixed point with 32 fractional bits: each
/// term is within 2^-24 of the exact quotient, far below any difference of scores that decides
/// a colour (the earlier service summed `f64` quotients), and an integer sum does not depend
/// on the order of the pixels.
const SATURATION_SCALE: [u64; 256] = {
    let mut table = [0; 256];
    let mut max = 1;
    while max < 256 {
        table[max] = (1 << 32) / max as u64;
        max += 1;
    }
    table
};

/// One unit of [`Group::saturation_sum`].
const SATURATION_UNIT: f64 = 1.0 / (1u64 << 32) as f64;

/// The groups of an image's pixels, in order of first appearance as in the original's
/// insertion-ordered dict.
pub(crate) struct Histogram {
    /// Maps a group key to its place in `groups`.
    slots: [u16; SKIPPED + 1],
    groups: Vec<Group>,
    /// Weight of the kept pixels.
    kept: u64,
}

/// How a pass over the pixels sees them.
trait Pass {
    /// Added to every channel (clamped) before anything else: the stability check of the
    /// fast path looks at the image shifted by a few levels.
    const SHIFT: i16;
    /// Whether skipped pixels are sorted by cube for the palette.
    const PALETTE: bool;
    /// For each channel, the part of the cube index of every (unshifted) value.
    const CUBE: [[u16; 256]; 3] = [
        cube_table(Self::SHIFT, (BINS * BINS) as u16),
        cube_table(Self::SHIFT, BINS as u16),
        cube_table(Self::SHIFT, 1),
    ];
}

/// `(clamp(v + shift) / 20) * stride` for every channel value `v`: a table lookup is
/// cheaper than the division.
const fn cube_table(shift: i16, stride: u16) -> [u16; 256] {
    let mut table = [0; 256];
    let mut v = 0;
    while v < 256 {
        let moved = v as i16 + shift;
        let moved = if moved < 0 {
            0
        } else if moved > 255 {
            255
        } else {
            moved
        };
        table[v] = (moved as u16 / 20) * stride;
        v += 1;
    }
    table
}

/// The image as it is, with the palette's groups.
struct AsIs;
impl Pass for AsIs {
    const SHIFT: i16 = 0;
    const PALETTE: bool = true;
}

/// Every channel shifted by `S` levels, classic groups only.
struct Shifted<const S: i16>;
impl<const S: i16> Pass for Shifted<S> {
    const SHIFT: i16 = S;
    const PALETTE: bool = false;
}

/// Moves a channel value `shift` levels, clamped to 0..=255.
#[inline(always)]
fn shifted(v: u8, shift: i16) -> u8 {
    if shift >= 0 {
        v.saturating_add(shift as u8)
    } else {
        v.saturating_sub(shift.unsigned_abs() as u8)
    }
}

/// The weight of each pixel: 1 in an opaque raster, else its opacity (0 to 255). Generic
/// code over it is compiled once for each: for an opaque raster the weight is a constant,
/// and every multiplication by it is folded away.
trait Weights: Copy {
    fn at(self, pixel: usize) -> u32;
}

#[derive(Clone, Copy)]
struct Opaque;

impl Weights for Opaque {
    #[inline(always)]
    fn at(self, _: usize) -> u32 {
        1
    }
}

impl Weights for &[u8] {
    #[inline(always)]
    fn at(self, pixel: usize) -> u32 {
        self.get(pixel).map_or(0, |&alpha| u32::from(alpha))
    }
}

impl Histogram {
    fn new<P: Pass>() -> Self {
        Self {
            slots: [u16::MAX; SKIPPED + 1],
            groups: Vec::with_capacity(if P::PALETTE { 256 } else { 64 }),
            kept: 0,
        }
    }

    /// The statistics of the visible pixels of `raster` (those kept by `keep_all` or their
    /// brightness), as `P` sees them.
    fn of<P: Pass>(raster: &Raster, keep_all: bool) -> Self {
        match &raster.alpha {
            None => Self::of_weighted::<P, _>(&raster.rgb, Opaque, keep_all),
            Some(alpha) => Self::of_weighted::<P, _>(&raster.rgb, alpha.as_slice(), keep_all),
        }
    }

    fn of_weighted<P: Pass, W: Weights>(rgb: &[u8], weights: W, keep_all: bool) -> Self {
        let mut histogram = Self::new::<P>();
        let mut kept = 0;
        for (i, p) in rgb.chunks_exact(3).enumerate() {
            let weight = weights.at(i);
            if weight > 0 {
                kept += histogram.add::<P>([p[0], p[1], p[2]], weight, keep_all);
            }
        }
        histogram.kept = kept;
        histogram
    }

    /// Adds a pixel; returns its weight if the statistics keep it, else 0.
    // Inlined into the per-pixel loop, which has no unpredictable branch: the rare first
    // sight of a group is `open_group`.
    #[inline(always)]
    fn add<P: Pass>(&mut self, unshifted: [u8; 3], weight: u32, keep_all: bool) -> u64 {
        let p = unshifted.map(|v| shifted(v, P::SHIFT));
        let kept = keep_all | is_bright(p);
        let max = p[0].max(p[1]).max(p[2]);
        let min = p[0].min(p[1]).min(p[2]);
        // (max - min) / max >= 0.2 in integers; with max <= 255 no quotient lies close
        // enough to 0.2 for the floating-point comparison to differ.
        let saturated = (max > 0) & (5 * u16::from(max - min) >= u16::from(max));
        let [r, g, b] = unshifted.map(usize::from);
        let cube = usize::from(P::CUBE[0][r] + P::CUBE[1][g] + P::CUBE[2][b]);
        let key = if kept & saturated {
            cube
        } else if P::PALETTE {
            SKIPPED_BY_CUBE + cube
        } else {
            SKIPPED
        };
        let place = match self.slots.get(key) {
            Some(&u16::MAX) => self.open_group(key),
            Some(&place) => place,
            None => return 0,
        };
        if let Some(group) = self.groups.get_mut(usize::from(place)) {
            let added = [1, u32::from(p[0]), u32::from(p[1]), u32::from(p[2])];
            for (total, more) in group.weight_and_sums.iter_mut().zip(added) {
                *total += more * weight;
            }
            group.saturation_sum +=
                u64::from(max - min) * SATURATION_SCALE[usize::from(max)] * u64::from(weight);
        }
        u64::from(weight) * u64::from(kept)
    }

    /// Gives the group of `key` the next place, on its first pixel.
    #[cold]
    fn open_group(&mut self, key: usize) -> u16 {
        // At most 2 * 13^3 + 1 groups, so the place fits a u16 below u16::MAX.
        let place = self.groups.len() as u16;
        if let Some(slot) = self.slots.get_mut(key) {
            *slot = place;
        }
        self.groups.push(Group {
            key: key as u16,
            weight_and_sums: [0; 4],
            saturation_sum: 0,
        });
        place
    }

    /// Every group of visible pixels, competing or not, in order of first appearance.
    pub(crate) fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups
            .iter()
            .filter(|group| usize::from(group.key) != SKIPPED)
    }
}

/// The classic statistics of `raster`, and its histogram for the palette; `None` when no
/// pixel is visible.
pub(crate) fn statistics(raster: &Raster) -> Option<(Winner, Histogram)> {
    winner::<AsIs>(raster, Histogram::of::<AsIs>(raster, false))
}

/// What the fast path needs to know of its image: the statistics and histogram of the image
/// as it is, and the statistics with every channel moved `UP` and `DOWN` levels (clamped).
pub(crate) struct FastStatistics {
    pub(crate) as_is: Option<(Winner, Histogram)>,
    pub(crate) up: Option<Winner>,
    pub(crate) down: Option<Winner>,
}

/// [`FastStatistics`] in one pass over the pixels: each is read once for the three
/// histograms.
pub(crate) fn fast_statistics<const UP: i16, const DOWN: i16>(raster: &Raster) -> FastStatistics {
    let [as_is, up, down] = match &raster.alpha {
        None => fast_histograms::<UP, DOWN, _>(&raster.rgb, Opaque),
        Some(alpha) => fast_histograms::<UP, DOWN, _>(&raster.rgb, alpha.as_slice()),
    };
    FastStatistics {
        as_is: winner::<AsIs>(raster, as_is),
        up: winner::<Shifted<UP>>(raster, up).map(|(winner, _)| winner),
        down: winner::<Shifted<DOWN>>(raster, down).map(|(winner, _)| winner),
    }
}

fn fast_histograms<const UP: i16, const DOWN: i16, W: Weights>(
    rgb: &[u8],
    weights: W,
) -> [Histogram; 3] {
    let mut as_is = Histogram::new::<AsIs>();
    let mut up = Histogram::new::<Shifted<UP>>();
    let mut down = Histogram::new::<Shifted<DOWN>>();
    let mut kept = [0; 3];
    for (i, p) in rgb.chunks_exact(3).enumerate() {
        let weight = weights.at(i);
        if weight > 0 {
            let p = [p[0], p[1], p[2]];
            kept[0] += as_is.add::<AsIs>(p, weight, false);
            kept[1] += up.add::<Shifted<UP>>(p, weight, false);
            kept[2] += down.add::<Shifted<DOWN>>(p, weight, false);
        }
    }
    [as_is.kept, up.kept, down.kept] = kept;
    [as_is, up, down]
}

/// The winner of a histogram made with `keep_all` false: when it kept no pixel, the
/// statistics are made again keeping all.
fn winner<P: Pass>(raster: &Raster, mut histogram: Histogram) -> Option<(Winner, Histogram)> {
    let keep_all = histogram.kept == 0;
    if keep_all {
        histogram = Histogram::of::<P>(raster, true);
    }
    let kept = histogram.kept;
    let kept_weight = kept as f64;
    let score = |g: &Group| {
        let weight = g.weight() as f64;
        weight / kept_weight * 0.7 + g.saturation_sum as f64 * SATURATION_UNIT / weight * 0.3
    };
    // The best group, the first one seen on equal scores, and the best score of the others.
    let mut best: Option<(f64, &Group)> = None;
    let mut second: Option<f64> = None;
    for group in histogram.groups.iter().filter(|g| g.competes()) {
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

    let winner = match best {
        Some((best_score, best)) => {
            let weight = best.weight() as f64;
            Winner {
                mean: best.sum().map(|s| s as f64 / weight),
                margin: second.map(|second| (best_score - second) / best_score),
                kept,
            }
        }
        None => {
            // No saturated pixel: the brightest kept pixel, the first one on ties.
            let visible = |i: usize| raster.alpha.as_ref().is_none_or(|a| a.get(i) != Some(&0));
            let brightest = raster
                .rgb
                .chunks_exact(3)
                .enumerate()
                .filter(|&(i, _)| visible(i))
                .map(|(_, p)| [p[0], p[1], p[2]].map(|v| shifted(v, P::SHIFT)))
                .filter(|&p| keep_all || is_bright(p))
                .reduce(|best, p| if sum(p) > sum(best) { p } else { best })?;
            Winner {
                mean: brightest.map(f64::from),
                margin: None,
                kept,
            }
        }
    };
    Some((winner, histogram))
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

    fn image(pixels: &[[u8; 3]]) -> Raster {
        Raster {
            width: pixels.len() as u32,
            height: 1,
            rgb: pixels.concat(),
            alpha: None,
        }
    }

    fn winner(raster: &Raster) -> Option<Winner> {
        statistics(raster).map(|(winner, _)| winner)
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
        assert!((margin - (red_score - blue_score) / red_score).abs() < 1e-6);
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
        assert_eq!(winner(&image(&[])), None);
    }

    #[test]
    fn pixels_count_by_their_opacity() {
        // Three faint red pixels against one opaque blue: blue outweighs them.
        let mut raster = image(&[RED, RED, RED, BLUE]);
        raster.alpha = Some(vec![40, 40, 40, 255]);
        let blue = winner(&raster).unwrap();
        assert_eq!(blue.mean, [20.0, 20.0, 200.0]);
        assert_eq!(blue.kept, 3 * 40 + 255);

        // Invisible pixels do not count at all, not even as the brightest.
        let mut hidden = image(&[[250, 250, 250], [100, 100, 100]]);
        hidden.alpha = Some(vec![0, 255]);
        assert_eq!(winner(&hidden).unwrap().mean, [100.0, 100.0, 100.0]);
        hidden.alpha = Some(vec![0, 0]);
        assert_eq!(winner(&hidden), None);
    }

    #[test]
    fn the_histogram_keeps_skipped_pixels_by_cube_for_the_palette() {
        let dark = [10, 10, 10];
        let (_, histogram) = statistics(&image(&[RED, dark, dark, [200, 200, 200]])).unwrap();
        let mut groups: Vec<([u8; 3], u64, bool)> = histogram
            .groups()
            .map(|g| (g.cube(), g.weight(), g.competes()))
            .collect();
        groups.sort();
        assert_eq!(
            groups,
            [
                ([0, 0, 0], 2, false),
                ([10, 1, 1], 1, true),
                ([10, 10, 10], 1, false)
            ]
        );
    }

    #[test]
    fn shifted_statistics_move_every_channel_within_0_to_255() {
        let mean = |p: [u8; 3], shift: i16| {
            let raster = image(&[p]);
            let fast = fast_statistics::<2, -2>(&raster);
            match shift {
                2 => fast.up,
                _ => fast.down,
            }
            .unwrap()
            .mean
        };
        assert_eq!(mean([199, 20, 20], 2), [201.0, 22.0, 22.0]);
        assert_eq!(mean([254, 20, 20], 2), [255.0, 22.0, 22.0]);
        assert_eq!(mean([1, 100, 200], -2), [0.0, 98.0, 198.0]);
    }
}
