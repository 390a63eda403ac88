//! Android-style palette: vibrant, muted and their dark and light variants.
//!
//! Built as Android's `Palette` builds it (its `ColorCutQuantizer`): the image's colours are
//! reduced to a histogram, then split by median cut into at most 16 boxes: the box of largest
//! volume is split across its longest side at the median of its pixels, until there are 16
//! boxes or none can be split. The histogram is the one the classic colour's pass fills
//! anyway ([`Histogram`]: cubes of 20 levels a side, where Android uses 8), so the palette
//! never looks at the pixels again. Each box becomes a swatch whose colour is the mean of its
//! own pixels (each counted by its opacity), so every swatch is a colour of the image.
//!
//! Targets and weights are those of Android's `Palette`: a swatch is scored on how close its
//! HSL saturation and lightness are to the target's, and on its population; near-black and
//! near-white swatches are not candidates; a swatch serves one target only. Android leaves a
//! target no swatch fits empty; here it gets the swatch that scores best on it regardless of
//! the target's ranges (even one serving another target), so it too is a colour of the image.

use palette::{Hsl, IntoColor, Srgb};

use super::classic::{CUBES, Histogram};
use super::{Palette, Rgb};

/// Android's default `maximumColorCount`.
const MAX_SWATCHES: usize = 16;

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
    population: u64,
}

impl Swatch {
    /// Near-black and near-white say nothing about the image's colours.
    fn is_candidate(&self) -> bool {
        self.hsl.lightness > 0.05 && self.hsl.lightness < 0.95
    }

    fn fits(&self, target: &Target) -> bool {
        self.is_candidate()
            && target.saturation.contains(self.hsl.saturation)
            && target.lightness.contains(self.hsl.lightness)
    }

    fn score(&self, target: &Target, max_population: u64) -> f32 {
        let closeness = |v: f32, range: Range| 1.0 - (v - range.target).abs();
        WEIGHT_SATURATION * closeness(self.hsl.saturation, target.saturation)
            + WEIGHT_LIGHTNESS * closeness(self.hsl.lightness, target.lightness)
            + WEIGHT_POPULATION * self.population as f32 / max_population.max(1) as f32
    }
}

/// The pixels of one cube of the histogram.
#[derive(Clone, Copy)]
struct Cell {
    cube: [u8; 3],
    weight: u64,
    sum: [u64; 3],
}

/// A box of the median cut: a run of cells and the cube coordinates they span.
struct ColorBox {
    first: usize,
    end: usize,
    min: [u8; 3],
    max: [u8; 3],
}

impl ColorBox {
    fn around(cells: &[Cell], first: usize, end: usize) -> Self {
        let mut min = [u8::MAX; 3];
        let mut max = [0; 3];
        for cell in cells.get(first..end).unwrap_or_default() {
            for side in 0..3 {
                min[side] = min[side].min(cell.cube[side]);
                max[side] = max[side].max(cell.cube[side]);
            }
        }
        Self {
            first,
            end,
            min,
            max,
        }
    }

    fn volume(&self) -> u32 {
        (0..3)
            .map(|side| u32::from(self.max[side] - self.min[side]) + 1)
            .product()
    }

    /// Splits the box across its longest side (red first on ties, as Android) after the cell
    /// where half its weight is reached, keeping at least one cell on each side; `None` for a
    /// box of one cell.
    fn split(&self, cells: &mut [Cell]) -> Option<(Self, Self)> {
        let run = cells
            .get_mut(self.first..self.end)
            .filter(|run| run.len() > 1)?;
        let lengths = [0, 1, 2].map(|side| self.max[side] - self.min[side]);
        let side = if lengths[0] >= lengths[1] && lengths[0] >= lengths[2] {
            0
        } else if lengths[1] >= lengths[2] {
            1
        } else {
            2
        };
        run.sort_unstable_by_key(|cell| {
            let c = cell.cube;
            [c[side], c[(side + 1) % 3], c[(side + 2) % 3]]
        });
        let half = run.iter().map(|cell| cell.weight).sum::<u64>().div_ceil(2);
        let mut reached = 0;
        let crossing = run
            .iter()
            .position(|cell| {
                reached += cell.weight;
                reached >= half
            })
            .unwrap_or(0);
        let split = self.first + crossing.min(run.len() - 2) + 1;
        Some((
            ColorBox::around(cells, self.first, split),
            ColorBox::around(cells, split, self.end),
        ))
    }

    fn swatch(&self, cells: &[Cell]) -> Option<Swatch> {
        let cells = cells.get(self.first..self.end)?;
        let population: u64 = cells.iter().map(|cell| cell.weight).sum();
        if population == 0 {
            return None;
        }
        let mean = |side: usize| {
            let sum: u64 = cells.iter().map(|cell| cell.sum[side]).sum();
            // A mean of bytes is a byte.
            (sum as f64 / population as f64).round() as u8
        };
        let rgb = Rgb::new(mean(0), mean(1), mean(2));
        Some(Swatch {
            rgb,
            hsl: hsl_of(rgb),
            population,
        })
    }
}

fn hsl_of(c: Rgb) -> Hsl<palette::encoding::Srgb, f32> {
    Srgb::new(c.r, c.g, c.b).into_format::<f32>().into_color()
}

/// The swatches of a histogram: its cubes merged (a cube may hold pixels the classic
/// statistics kept and others they skipped), cut into at most [`MAX_SWATCHES`] boxes.
fn swatches(histogram: &Histogram) -> Vec<Swatch> {
    let mut places = [u16::MAX; CUBES];
    let mut cells: Vec<Cell> = Vec::new();
    for group in histogram.groups() {
        let Some(place) = places.get_mut(group.cube_index()) else {
            continue;
        };
        match cells.get_mut(usize::from(*place)) {
            Some(cell) => {
                cell.weight += group.weight();
                for (sum, more) in cell.sum.iter_mut().zip(group.sum()) {
                    *sum += more;
                }
            }
            None => {
                // At most CUBES cells, so the place fits a u16 below u16::MAX.
                *place = cells.len() as u16;
                cells.push(Cell {
                    cube: group.cube(),
                    weight: group.weight(),
                    sum: group.sum(),
                });
            }
        }
    }
    if cells.is_empty() {
        return Vec::new();
    }
    let mut boxes = vec![ColorBox::around(&cells, 0, cells.len())];
    while boxes.len() < MAX_SWATCHES {
        // The box of largest volume; when it cannot be split (one cell), no box can.
        let Some(largest) = (0..boxes.len()).max_by_key(|&i| boxes[i].volume()) else {
            break;
        };
        let Some((low, high)) = boxes[largest].split(&mut cells) else {
            break;
        };
        boxes[largest] = low;
        boxes.push(high);
    }
    boxes.iter().filter_map(|b| b.swatch(&cells)).collect()
}

/// The palette of an image's histogram; `None` when it holds no visible pixel.
pub(crate) fn palette_of(histogram: &Histogram) -> Option<Palette> {
    let swatches = swatches(histogram);
    let max_population = swatches.iter().map(|s| s.population).max()?;
    let mut used = vec![false; swatches.len()];
    let best = |target: &Target, eligible: &dyn Fn(usize, &Swatch) -> bool| {
        swatches
            .iter()
            .enumerate()
            .filter(|&(i, s)| eligible(i, s))
            .max_by(|a, b| {
                a.1.score(target, max_population)
                    .total_cmp(&b.1.score(target, max_population))
            })
            .map(|(i, _)| i)
    };
    let chosen = TARGETS.map(|target| {
        let fitting = best(&target, &|i, s| {
            !used.get(i).copied().unwrap_or(true) && s.fits(&target)
        });
        if let Some(i) = fitting {
            if let Some(u) = used.get_mut(i) {
                *u = true;
            }
            return fitting;
        }
        best(&target, &|_, s| s.is_candidate()).or_else(|| best(&target, &|_, _| true))
    });
    let rgb = |choice: Option<usize>| choice.and_then(|i| swatches.get(i)).map(|s| s.rgb);
    let [
        light_vibrant,
        vibrant,
        dark_vibrant,
        light_muted,
        muted,
        dark_muted,
    ] = chosen.map(rgb);
    Some(Palette {
        vibrant: vibrant?,
        muted: muted?,
        dark_vibrant: dark_vibrant?,
        dark_muted: dark_muted?,
        light_vibrant: light_vibrant?,
        light_muted: light_muted?,
    })
}
