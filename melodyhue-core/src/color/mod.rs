//! The fast cover-color extractor: image bytes in, colors out.
//!
//! Usable on its own: no network, no database, no async. Every function here is synchronous
//! and CPU-bound (the fast path below costs a fraction of a full-size decode; the exact path
//! costs a full-size decode and resample; `benches/benches/color.rs` measures both); callers
//! on an async executor run them on a blocking thread.
//!
//! ```
//! use melodyhue_core::color::{analyze, contrast_ratio, ColorError};
//!
//! // Any JPEG, PNG or WebP bytes; here a small blue PNG.
//! let mut png = Vec::new();
//! image::RgbImage::from_pixel(16, 16, image::Rgb([30, 60, 200]))
//!     .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
//!
//! let report = analyze(&png)?;
//! assert!(report.color.b > report.color.r && report.color.b > report.color.g);
//! assert!(contrast_ratio(report.color, report.text_color) >= 4.5);
//! println!("{report}"); // #rrggbb, then the swatches and the text colour, tab-separated
//!
//! assert_eq!(analyze(b""), Err(ColorError::Empty));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The classic color
//!
//! [`classic_color`] reproduces the colour of the earlier Python service: Pillow's
//! `resize((100, 100), LANCZOS)` of the decoded image, then a histogram of saturated colours
//! grouped in cubes of 20 levels, the best group scored on frequency and saturation.
//!
//! Covers are JPEGs, so the fast path decodes them with libjpeg-turbo's inverse DCT scaled to
//! 1/8 (80x80 for a 640x640 cover: the mean of each 8x8 block) and runs the statistics on that
//! directly. They then check whether they can be trusted: enough pixels behind the decision
//! (not a dark cover with a small bright detail), a clear lead of the winning group, and the
//! same colour (within ΔE 1) when every channel is moved by 2 levels, which catches images
//! whose pixels sit on a group boundary. Otherwise the cover is decoded again at full size,
//! with the decoder Pillow uses, and resampled with Pillow's exact Lanczos arithmetic, which
//! gives the earlier service's colour exactly. PNG and WebP have no reduced decode and always
//! take the full-size path. On the 50 covers of the reference corpus, 32 are decided on the
//! fast path; 49 are within CIEDE2000 ΔE 2 of the earlier service and all within 3.
//!
//! # The palette
//!
//! The six swatches of Android's `Palette` (see [`Palette`]), built as Android builds them: a
//! median cut of the image's colour histogram into at most 16 boxes, each box's swatch the
//! mean of its own pixels. The histogram is the one the classic colour's pass over the small
//! image fills anyway (cubes of 20 levels, the skipped dark and greyish pixels included), so the
//! palette adds no pass over the pixels: [`analyze`] costs what [`classic_color`] costs.
//!
//! # Transparency
//!
//! A pixel counts in proportion to its opacity, in the classic colour and in the palette: a
//! transparent pixel's hidden colour never shows, a half-transparent one counts half. (The
//! earlier service dropped the alpha channel; for an opaque image nothing changes.) An image
//! whose every pixel is fully transparent has no colour: [`ColorError::Transparent`].
//!
//! # Incomplete files
//!
//! A file that ends before its pixel data does, as after an interrupted download, is refused
//! with [`ColorError::Incomplete`] rather than coloured by whatever part survived: a JPEG cut
//! inside or between its scans (baseline or progressive; libjpeg-turbo would fill the rest
//! with grey and only warn), a PNG or WebP cut inside its image data. A JPEG whose scans are
//! complete but whose end-of-image marker is missing is accepted, as browsers and Pillow
//! accept it.
//!
//! # Limits
//!
//! [`Limits::default`] accepts inputs up to 32 MiB and images up to 25 megapixels (5000x5000).
//! The pixel count is read from the header before any pixel is decoded, so a small file that
//! declares 50000x50000 pixels is refused at once. Decoders may allocate at most 8 bytes per
//! allowed pixel (200 MB at the default), the size of a 16-bit RGBA image.

mod classic;
mod decode;
mod jpeg;
mod resample;
mod swatches;

use std::fmt;

use palette::color_difference::{Ciede2000, Wcag21RelativeContrast};
use palette::{IntoColor, Lab, Srgb};

use decode::{Format, Raster};
/// An sRGB colour with 8 bits per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rgb {
    /// Red.
    pub r: u8,
    /// Green.
    pub g: u8,
    /// Blue.
    pub b: u8,
}

impl Rgb {
    /// Builds a colour from its channels.
    pub const fn new(r: u8, g: u8, b: u8) -> Self {
        Self { r, g, b }
    }

    /// `#rrggbb`, lowercase.
    pub fn hex(&self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.r, self.g, self.b)
    }

    /// Parses `#rrggbb` (either case); `None` for anything else.
    pub fn from_hex(s: &str) -> Option<Rgb> {
        let digits = s.strip_prefix('#')?;
        if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let channel = |i: usize| u8::from_str_radix(digits.get(i..i + 2)?, 16).ok();
        Some(Rgb::new(channel(0)?, channel(2)?, channel(4)?))
    }
}

/// Errors of the colour extractor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ColorError {
    /// The input has no bytes.
    #[error("empty input")]
    Empty,
    /// The input has more bytes than [`Limits::max_input_bytes`].
    #[error("input of {bytes} bytes is over the limit of {limit} bytes")]
    InputTooLarge {
        /// Size of the input.
        bytes: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The image declares more pixels than [`Limits::max_pixels`].
    #[error("image of {width}x{height} pixels is over the limit of {limit} pixels")]
    TooManyPixels {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The limit in force.
        limit: u64,
    },
    /// The bytes are not a JPEG, PNG or WebP image.
    #[error("not a JPEG, PNG or WebP image")]
    UnsupportedFormat,
    /// The image is damaged or uses a feature the decoders lack.
    #[error("cannot decode image: {0}")]
    Decode(String),
    /// The file ends before its pixel data does, as after an interrupted download: a JPEG
    /// cut inside or between its scans, a PNG or WebP cut inside its image data. (A JPEG
    /// whose scans are complete but whose end-of-image marker is missing is accepted.)
    #[error("incomplete image: the file ends before its pixel data does")]
    Incomplete,
    /// Every pixel is fully transparent (or so nearly that nothing of it is left at the
    /// 100x100 scale the statistics run on): there is no colour to take.
    #[error("every pixel of the image is fully transparent")]
    Transparent,
}

/// Resource limits of one extraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted input, in bytes.
    pub max_input_bytes: usize,
    /// Largest accepted image, in pixels (width times height), checked on the header before
    /// any pixel is decoded.
    pub max_pixels: u64,
}

impl Default for Limits {
    /// 32 MiB of input, 25 megapixels.
    fn default() -> Self {
        Self {
            max_input_bytes: 32 << 20,
            max_pixels: 25_000_000,
        }
    }
}

/// The six swatches of a cover, in the sense of Android's `Palette`.
///
/// Each is the mean colour of a box of the image's colours (a median cut into at most 16
/// boxes, as Android's `ColorCutQuantizer`), chosen for the target as Android chooses it: the
/// box whose HSL saturation and lightness lie in the target's ranges and score best on
/// closeness to the target's values (weights 0.24 and 0.52) and on population (0.24), each box
/// serving one target. Android leaves a target no box fits empty; here it gets the box that
/// scores best on it regardless of the ranges. Every swatch is thus a colour of the image:
/// a grey image gets grey swatches, never an invented hue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Palette {
    /// Saturated, medium lightness.
    pub vibrant: Rgb,
    /// Desaturated, medium lightness.
    pub muted: Rgb,
    /// Saturated, dark.
    pub dark_vibrant: Rgb,
    /// Desaturated, dark.
    pub dark_muted: Rgb,
    /// Saturated, light.
    pub light_vibrant: Rgb,
    /// Desaturated, light.
    pub light_muted: Rgb,
}

impl Palette {
    /// The swatches with their names, in display order.
    pub fn named(&self) -> [(&'static str, Rgb); 6] {
        [
            ("vibrant", self.vibrant),
            ("muted", self.muted),
            ("dark_vibrant", self.dark_vibrant),
            ("dark_muted", self.dark_muted),
            ("light_vibrant", self.light_vibrant),
            ("light_muted", self.light_muted),
        ]
    }
}

/// Everything the extractor says about one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ColorReport {
    /// The classic colour of the earlier service.
    pub color: Rgb,
    /// The Android-style swatches.
    pub palette: Palette,
    /// A colour for text drawn on [`ColorReport::color`], with WCAG 2 contrast of at least 4.5.
    pub text_color: Rgb,
}

impl fmt::Display for ColorReport {
    /// `#rrggbb<TAB>vibrant=#..<TAB>...<TAB>light_muted=#..<TAB>text=#..`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.color.hex())?;
        for (name, swatch) in self.palette.named() {
            write!(f, "\t{name}={}", swatch.hex())?;
        }
        write!(f, "\ttext={}", self.text_color.hex())
    }
}

/// The classic colour of an encoded JPEG, PNG or WebP image, with the default [`Limits`].
/// Errors as [`analyze_with`]; it costs the same, the palette adding nothing measurable.
pub fn classic_color(bytes: &[u8]) -> Result<Rgb, ColorError> {
    classify(bytes, &Limits::default()).map(|(color, _)| color)
}

/// Why an image file could not be analysed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Read(#[from] std::io::Error),
    /// The file is not an image the extractor accepts.
    #[error(transparent)]
    Color(#[from] ColorError),
}

/// [`analyze_with`] on a file, refusing a file larger than the limit before reading it.
pub fn analyze_file(path: &std::path::Path, limits: &Limits) -> Result<ColorReport, FileError> {
    let bytes = std::fs::metadata(path)?.len();
    let limit = limits.max_input_bytes;
    if bytes > u64::try_from(limit).unwrap_or(u64::MAX) {
        return Err(ColorError::InputTooLarge {
            bytes: usize::try_from(bytes).unwrap_or(usize::MAX),
            limit,
        }
        .into());
    }
    Ok(analyze_with(&std::fs::read(path)?, limits)?)
}

/// Classic colour, palette and text colour of an image, with the default [`Limits`].
pub fn analyze(bytes: &[u8]) -> Result<ColorReport, ColorError> {
    analyze_with(bytes, &Limits::default())
}

/// Classic colour, palette and text colour of an image, within `limits`.
///
/// Errors: [`ColorError::Empty`], [`ColorError::InputTooLarge`] and
/// [`ColorError::TooManyPixels`] before decoding; [`ColorError::UnsupportedFormat`] for bytes
/// that are not JPEG, PNG or WebP; [`ColorError::Incomplete`] for a file cut short;
/// [`ColorError::Transparent`] for an image with no visible pixel; [`ColorError::Decode`] for
/// anything else the decoders refuse.
pub fn analyze_with(bytes: &[u8], limits: &Limits) -> Result<ColorReport, ColorError> {
    let (color, histogram) = classify(bytes, limits)?;
    let palette = swatches::palette_of(&histogram).ok_or(ColorError::Transparent)?;
    Ok(ColorReport {
        color,
        palette,
        text_color: text_color_for(color, &palette),
    })
}

/// Side of the image the statistics run on, as in the earlier service.
const THUMBNAIL_SIDE: u32 = 100;
/// The fast path decodes JPEGs to at least this many pixels on the longer side: 1/8 scale
/// (80x80) for a 640x640 cover, where every pixel is the mean of an 8x8 block.
const FAST_DECODE_SIDE: u32 = 64;
/// The exact path decodes at full size up to this side; larger images are reduced by the
/// DCT first, which changes nothing visible after a 10x Lanczos reduction.
const EXACT_DECODE_SIDE: u32 = 1024;
/// Share of the fast image's pixels below which its statistics rest on too few pixels (a
/// dark cover with a small bright detail) to stand for the full image's.
const MIN_KEPT_SHARE: f64 = 0.05;
/// Relative lead of the winning group below which the fast image is not trusted.
const MIN_MARGIN: f64 = 0.005;
/// Shift of every channel under which the fast image's colour must stay the same...
const STABILITY_SHIFT: i16 = 2;
/// ...within this CIEDE2000 difference.
const MAX_SHIFTED_DELTA_E: f64 = 1.0;

/// The classic colour and the histogram of the small image it was computed on, which the
/// palette is built from.
fn classify(bytes: &[u8], limits: &Limits) -> Result<(Rgb, classic::Histogram), ColorError> {
    decode::check_input(bytes, limits)?;
    let thumbnail = match decode::sniff(bytes)? {
        Format::Jpeg => {
            let fast = decode::jpeg_scaled(bytes, limits, FAST_DECODE_SIDE)?;
            let statistics =
                classic::fast_statistics::<STABILITY_SHIFT, { -STABILITY_SHIFT }>(&fast);
            if let Some(color) = trusted_color(&fast, &statistics) {
                if let Some((_, histogram)) = statistics.as_is {
                    return Ok((color, histogram));
                }
            }
            thumbnail(&decode::jpeg_scaled(bytes, limits, EXACT_DECODE_SIDE)?)
        }
        format => thumbnail(&decode::full(bytes, format, limits)?),
    };
    // Only transparency leaves a raster, never empty, without a visible pixel.
    let (winner, histogram) = classic::statistics(&thumbnail).ok_or(ColorError::Transparent)?;
    Ok((classic::amplify(winner.mean), histogram))
}

fn thumbnail(raster: &Raster) -> Raster {
    resample::lanczos(raster, THUMBNAIL_SIDE, THUMBNAIL_SIDE)
}

/// The colour found on the fast image, if it would survive the differences between its
/// block means and the full image's Lanczos reduction: enough pixels behind it, a clear
/// lead, and (for pixels sitting on a group boundary) the same colour when every channel is
/// moved a little either way.
fn trusted_color(fast: &Raster, statistics: &classic::FastStatistics) -> Option<Rgb> {
    let (winner, _) = statistics.as_is.as_ref()?;
    let pixels = fast.rgb.len() / 3;
    if (winner.kept as f64) < MIN_KEPT_SHARE * pixels as f64 {
        return None;
    }
    if winner.margin.is_some_and(|margin| margin < MIN_MARGIN) {
        return None;
    }
    let color = classic::amplify(winner.mean);
    let stays = |shift: i16, shifted: Option<classic::Winner>| {
        shifted.is_some_and(|w| {
            let unshifted = w.mean.map(|v| v - f64::from(shift));
            delta_e_2000(classic::amplify(unshifted), color) <= MAX_SHIFTED_DELTA_E
        })
    };
    (stays(STABILITY_SHIFT, statistics.up) && stays(-STABILITY_SHIFT, statistics.down))
        .then_some(color)
}

fn srgb(c: Rgb) -> Srgb<f64> {
    Srgb::new(c.r, c.g, c.b).into_format()
}

/// WCAG 2 contrast ratio of two colours, from 1 (same luminance) to 21 (black on white).
pub fn contrast_ratio(a: Rgb, b: Rgb) -> f64 {
    srgb(a).relative_contrast(srgb(b))
}

/// CIEDE2000 colour difference of two sRGB colours (D65 white); 1 is about the smallest
/// difference a person notices side by side.
pub fn delta_e_2000(a: Rgb, b: Rgb) -> f64 {
    let a: Lab<palette::white_point::D65, f64> = srgb(a).into_color();
    let b: Lab<palette::white_point::D65, f64> = srgb(b).into_color();
    a.difference(b)
}

/// Minimum WCAG 2 contrast of body text (level AA).
const MIN_TEXT_CONTRAST: f64 = 4.5;

/// A colour for text on `background`: the palette swatch of highest contrast if it reaches
/// 4.5:1, else black or white, whichever contrasts more (that one always reaches 4.5:1).
pub fn text_color_for(background: Rgb, palette: &Palette) -> Rgb {
    let best_swatch = palette
        .named()
        .map(|(_, swatch)| (contrast_ratio(background, swatch), swatch))
        .into_iter()
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best_swatch {
        Some((contrast, swatch)) if contrast >= MIN_TEXT_CONTRAST => swatch,
        _ => black_or_white_on(background),
    }
}

/// Black or white, whichever contrasts more with `background` (at least 4.58:1 for any colour).
pub fn black_or_white_on(background: Rgb) -> Rgb {
    let (black, white) = (Rgb::new(0, 0, 0), Rgb::new(255, 255, 255));
    if contrast_ratio(background, black) >= contrast_ratio(background, white) {
        black
    } else {
        white
    }
}
