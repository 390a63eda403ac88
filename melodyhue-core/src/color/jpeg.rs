//! JPEG through libjpeg-turbo, refusing files whose pixel data is incomplete.
//!
//! libjpeg-turbo never fails on a JPEG that ends early: its input layer fakes an end-of-image
//! marker, warns, and the decoder fills every block it did not receive with mid-grey (for a
//! progressive JPEG, every coefficient it did not receive with zero). The pixels that survived
//! then decide the colour. So the decode is watched:
//!
//! - the input is handed over by a reader that notes when libjpeg asks for bytes past the end;
//! - libjpeg's warnings are counted. After the end was hit, any warning other than the one for
//!   the end itself means that the entropy decoder wanted bits that were not there (libjpeg's
//!   "premature end of data segment"): the scan is incomplete;
//! - when the end was hit without such a warning, every scan the file holds ended where it
//!   should, and [`scans_cover_the_frame`] checks from the markers that those scans carry
//!   every coefficient of every component (a progressive JPEG cut between two scans, or a
//!   sequential one cut before its last component's scan, fails here).
//!
//! A file whose only fault is a missing end-of-image marker after complete scans passes both.
//!
//! libjpeg's callbacks get no context of ours, so the counts live in a thread-local, reset
//! before each decode; decoding is synchronous, so one decode at a time runs on a thread.

use std::cell::Cell;
use std::io::{self, BufRead, Read};
use std::os::raw::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind};

use mozjpeg::{ColorSpace, Decompress};
use mozjpeg_sys::{jpeg_common_struct, jpeg_error_mgr};

use super::ColorError;
use super::Limits;
use super::decode::{Raster, check_pixels};

/// What libjpeg-turbo made of a JPEG.
pub(crate) enum Decoded {
    /// Its pixels, complete.
    Pixels(Raster),
    /// Complete, but in a colour space libjpeg gives only as ink values (CMYK, YCCK): the
    /// caller decodes it with the `image` crate.
    OtherColorSpace,
    /// libjpeg-turbo refused a complete file (a feature it lacks, such as 12-bit samples or
    /// arithmetic coding): the caller tries the `image` crate.
    Refused,
}

/// Decodes a JPEG with the inverse DCT scaled so that the result is at least `min_side`
/// pixels on its longer side (or the full image when it is smaller than that).
///
/// Errors: [`ColorError::Incomplete`] when the file ends before its pixel data does,
/// [`ColorError::TooManyPixels`] from the header.
pub(crate) fn decode_scaled(
    bytes: &[u8],
    limits: &Limits,
    min_side: u32,
) -> Result<Decoded, ColorError> {
    WATCH.set(Watch::default());
    // libjpeg reports fatal errors by unwinding (without the panic hook) out of the C code;
    // they end here. Nothing is shared with the failed decoder afterwards.
    let outcome = catch_unwind(AssertUnwindSafe(|| libjpeg_scaled(bytes, limits, min_side)));
    let watch = WATCH.take();
    if watch.hit_end
        && (watch.warnings_after_end > 0 || outcome.is_err() || !scans_cover_the_frame(bytes))
    {
        return Err(ColorError::Incomplete);
    }
    match outcome {
        Ok(Ok(Some(decoded))) => Ok(decoded),
        Ok(Ok(None)) | Err(_) => Ok(Decoded::Refused),
        Ok(Err(error)) => Err(error),
    }
}

/// libjpeg-turbo's scaled decode; `Ok(None)` when it refuses the file without unwinding.
fn libjpeg_scaled(
    bytes: &[u8],
    limits: &Limits,
    min_side: u32,
) -> Result<Option<Decoded>, ColorError> {
    let Ok(mut decoder) = Decompress::builder()
        .with_err(error_manager())
        .from_reader(WatchedInput { rest: bytes })
    else {
        return Ok(None);
    };
    let (width, height) = (decoder.width(), decoder.height());
    let (Ok(width), Ok(height)) = (u32::try_from(width), u32::try_from(height)) else {
        return Err(ColorError::Decode("JPEG dimensions out of range".into()));
    };
    check_pixels(width, height, limits)?;
    decoder.scale(scale_eighths(width.max(height), min_side));
    let output = match decoder.color_space() {
        ColorSpace::JCS_GRAYSCALE => ColorSpace::JCS_GRAYSCALE,
        ColorSpace::JCS_YCbCr | ColorSpace::JCS_RGB => ColorSpace::JCS_RGB,
        ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK => ColorSpace::JCS_CMYK,
        _ => return Ok(None),
    };
    let Ok(mut started) = decoder.to_colorspace(output) else {
        return Ok(None);
    };
    let (width, height) = (started.width(), started.height());
    let Ok(samples) = started.read_scanlines::<u8>() else {
        return Ok(None);
    };
    // Reads up to the end-of-image marker, where a file that ends early is noticed.
    if started.finish().is_err() {
        return Ok(None);
    }
    let rgb = match output {
        ColorSpace::JCS_CMYK => return Ok(Some(Decoded::OtherColorSpace)),
        ColorSpace::JCS_GRAYSCALE => samples.iter().flat_map(|&l| [l, l, l]).collect(),
        _ => samples,
    };
    if rgb.len() < width * height * 3 {
        return Err(ColorError::Decode(
            "JPEG decoder returned too few pixels".into(),
        ));
    }
    let (Ok(width), Ok(height)) = (u32::try_from(width), u32::try_from(height)) else {
        return Err(ColorError::Decode("JPEG dimensions out of range".into()));
    };
    Ok(Some(Decoded::Pixels(Raster {
        width,
        height,
        rgb,
        alpha: None,
    })))
}

/// The smallest DCT scale, in eighths, that keeps `side` at least `min_side` pixels long.
fn scale_eighths(side: u32, min_side: u32) -> u8 {
    [1u8, 2, 4]
        .into_iter()
        .find(|&eighths| (u64::from(side) * u64::from(eighths)).div_ceil(8) >= u64::from(min_side))
        .unwrap_or(8)
}

/// What libjpeg did at the end of the input during one decode.
#[derive(Debug, Default, Clone, Copy)]
struct Watch {
    /// libjpeg asked for bytes past the end of the input.
    hit_end: bool,
    /// The warning libjpeg gives for the latest end of input has not come yet.
    end_warning_due: bool,
    /// Warnings after the end was hit, other than the end's own.
    warnings_after_end: u32,
}

thread_local! {
    static WATCH: Cell<Watch> = const {
        Cell::new(Watch {
            hit_end: false,
            end_warning_due: false,
            warnings_after_end: 0,
        })
    };
}

/// The input as libjpeg reads it, noting when it asks for more than there is.
struct WatchedInput<'a> {
    rest: &'a [u8],
}

impl Read for WatchedInput<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.rest.read(buf)
    }
}

impl BufRead for WatchedInput<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.rest.is_empty() {
            // `mozjpeg` answers an empty buffer with a faked end-of-image marker and a warning.
            WATCH.set(Watch {
                hit_end: true,
                end_warning_due: true,
                ..WATCH.get()
            });
        }
        Ok(self.rest)
    }

    fn consume(&mut self, amount: usize) {
        self.rest = self.rest.get(amount..).unwrap_or_default();
    }
}

/// libjpeg's error manager: fatal errors unwind (as `mozjpeg`'s own manager does), warnings
/// are counted, nothing is printed.
fn error_manager() -> jpeg_error_mgr {
    jpeg_error_mgr {
        error_exit: Some(unwind),
        emit_message: Some(note_message),
        output_message: Some(ignore),
        format_message: None,
        reset_error_mgr: Some(ignore),
        msg_code: 0,
        msg_parm: Default::default(),
        trace_level: 0,
        num_warnings: 0,
        jpeg_message_table: std::ptr::null(),
        last_jpeg_message: 0,
        addon_message_table: std::ptr::null(),
        first_addon_message: 0,
        last_addon_message: 0,
    }
}

/// A fatal libjpeg error: unwinds to the `catch_unwind` in [`decode_scaled`].
extern "C-unwind" fn unwind(_: &mut jpeg_common_struct) {
    std::panic::resume_unwind(Box::new("libjpeg fatal error"));
}

/// Level -1 is a warning; levels 0 and up are trace messages.
extern "C-unwind" fn note_message(_: &mut jpeg_common_struct, level: c_int) {
    if level >= 0 {
        return;
    }
    let mut watch = WATCH.get();
    if watch.end_warning_due {
        watch.end_warning_due = false;
    } else if watch.hit_end {
        watch.warnings_after_end += 1;
    }
    WATCH.set(watch);
}

extern "C-unwind" fn ignore(_: &mut jpeg_common_struct) {}

/// Whether the scans present in a JPEG carry every coefficient of every component of its
/// frame, read from the markers alone (ITU T.81, B.2): each component in some scan for a
/// sequential JPEG; for a progressive one, every coefficient of every component down to the
/// last bit of successive approximation (`Al` = 0). A scan whose entropy-coded data runs to
/// the end of the bytes counts as present: whether it is whole is for the decoder to say.
fn scans_cover_the_frame(bytes: &[u8]) -> bool {
    let mut frame: Option<Frame> = None;
    let mut at = 2; // after SOI
    while let Some((marker, after)) = next_marker(bytes, at) {
        match marker {
            // End of image, and markers without a length.
            0xD9 => break,
            0x01 | 0xD0..=0xD7 => {
                at = after;
                continue;
            }
            _ => {}
        }
        let Some(segment) = segment(bytes, after) else {
            return false; // the data ends inside a marker segment
        };
        match marker {
            // SOF0-3, 5-7, 9-11, 13-15: a frame header.
            0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                let progressive = matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE);
                match Frame::parse(segment, progressive) {
                    Some(parsed) => frame = Some(parsed),
                    None => return false,
                }
            }
            0xDA => {
                let Some(frame) = frame.as_mut() else {
                    return false;
                };
                if !frame.record_scan(segment) {
                    return false;
                }
                at = skip_entropy_coded_data(bytes, after + segment.len() + 2);
                continue;
            }
            _ => {}
        }
        at = after + segment.len() + 2;
    }
    frame.is_some_and(|frame| frame.is_complete())
}

/// The marker code at or after `at` (skipping fill bytes) and the index after it.
fn next_marker(bytes: &[u8], mut at: usize) -> Option<(u8, usize)> {
    while bytes.get(at) != Some(&0xFF) {
        at += 1;
        if at >= bytes.len() {
            return None;
        }
    }
    while bytes.get(at) == Some(&0xFF) {
        at += 1;
    }
    bytes.get(at).map(|&code| (code, at + 1))
}

/// The payload of the marker segment whose length field starts at `at`, if it is all there.
fn segment(bytes: &[u8], at: usize) -> Option<&[u8]> {
    let length = usize::from(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]));
    bytes.get(at + 2..at.checked_add(length)?)
}

/// The index of the first marker after the entropy-coded data starting at `at` (restart
/// markers and stuffed zero bytes belong to the data), or the end of the bytes.
fn skip_entropy_coded_data(bytes: &[u8], mut at: usize) -> usize {
    while let Some(&byte) = bytes.get(at) {
        if byte == 0xFF {
            match bytes.get(at + 1) {
                Some(0x00 | 0xD0..=0xD7) => at += 2,
                // Fill bytes before a marker.
                Some(0xFF) => at += 1,
                _ => return at,
            }
        } else {
            at += 1;
        }
    }
    at
}

/// The components of a frame and what the scans so far delivered of each.
struct Frame {
    components: Vec<Component>,
}

struct Component {
    id: u8,
    /// Sequential: whether a scan carried it. Progressive: for each of the 64 coefficients,
    /// the lowest successive-approximation bit delivered (`None` before any scan).
    delivered: Delivered,
}

enum Delivered {
    Sequential(bool),
    Progressive([Option<u8>; 64]),
}

impl Frame {
    /// A frame header: precision, height, width, then (id, sampling, table) per component.
    fn parse(segment: &[u8], progressive: bool) -> Option<Self> {
        let count = usize::from(*segment.get(5)?);
        let ids = segment.get(6..6 + 3 * count)?;
        let components = ids
            .chunks_exact(3)
            .map(|c| Component {
                id: c[0],
                delivered: if progressive {
                    Delivered::Progressive([None; 64])
                } else {
                    Delivered::Sequential(false)
                },
            })
            .collect();
        Some(Self { components })
    }

    /// A scan header: component ids, then Ss, Se and Ah/Al. False when it names a component
    /// the frame lacks or coefficients beyond 63.
    fn record_scan(&mut self, segment: &[u8]) -> bool {
        let Some(&count) = segment.first() else {
            return false;
        };
        let count = usize::from(count);
        let (Some(selectors), Some(&[start, end, approximation])) = (
            segment.get(1..1 + 2 * count),
            segment.get(1 + 2 * count..4 + 2 * count),
        ) else {
            return false;
        };
        let low_bit = approximation & 0x0F;
        for selector in selectors.chunks_exact(2) {
            let Some(component) = self.components.iter_mut().find(|c| c.id == selector[0]) else {
                return false;
            };
            match &mut component.delivered {
                Delivered::Sequential(seen) => *seen = true,
                Delivered::Progressive(bits) => {
                    let Some(range) = bits.get_mut(usize::from(start)..=usize::from(end)) else {
                        return false;
                    };
                    for bit in range {
                        *bit = Some(bit.map_or(low_bit, |b| b.min(low_bit)));
                    }
                }
            }
        }
        true
    }

    fn is_complete(&self) -> bool {
        self.components.iter().all(|c| match &c.delivered {
            Delivered::Sequential(seen) => *seen,
            Delivered::Progressive(bits) => bits.iter().all(|&b| b == Some(0)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_is_the_smallest_that_keeps_the_side() {
        assert_eq!(scale_eighths(640, 64), 1); // 80
        assert_eq!(scale_eighths(300, 64), 2); // 75
        assert_eq!(scale_eighths(100, 64), 8); // 50 at 1/2 is too small
        assert_eq!(scale_eighths(640, 1024), 8);
        assert_eq!(scale_eighths(5000, 1024), 2); // 1250
        assert_eq!(scale_eighths(65_535, 1024), 1);
    }

    fn baseline_jpeg() -> Vec<u8> {
        let mut bytes = Vec::new();
        image::RgbImage::from_pixel(16, 16, image::Rgb([200, 80, 20]))
            .write_to(&mut io::Cursor::new(&mut bytes), image::ImageFormat::Jpeg)
            .unwrap();
        bytes
    }

    #[test]
    fn libjpeg_refusals_are_caught_and_left_to_the_other_decoder() {
        let mut bytes = baseline_jpeg();
        // Claim 12-bit samples in the frame header: libjpeg (8-bit) aborts by unwinding.
        let frame = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        bytes[frame + 4] = 12;
        assert!(matches!(
            decode_scaled(&bytes, &Limits::default(), 64),
            Ok(Decoded::Refused)
        ));
    }

    #[test]
    fn the_watch_is_reset_for_every_decode() {
        let bytes = baseline_jpeg();
        let cut = &bytes[..bytes.len() / 2];
        assert_eq!(
            decode_scaled(cut, &Limits::default(), 64).err(),
            Some(ColorError::Incomplete)
        );
        assert!(matches!(
            decode_scaled(&bytes, &Limits::default(), 64),
            Ok(Decoded::Pixels(_))
        ));
    }

    /// SOI, a frame of components 1..=3, then one scan per listed component, each with a few
    /// bytes of entropy-coded data holding a stuffed 0xFF and a restart marker.
    fn sequential_jpeg(scans: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0xFF, 0xD8];
        bytes.extend([0xFF, 0xC0, 0, 17, 8, 0, 16, 0, 16, 3]);
        for id in 1..=3 {
            bytes.extend([id, 0x11, 0]);
        }
        for &id in scans {
            bytes.extend([0xFF, 0xDA, 0, 8, 1, id, 0, 0, 63, 0]);
            bytes.extend([0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56]);
        }
        bytes.extend([0xFF, 0xD9]);
        bytes
    }

    #[test]
    fn a_sequential_jpeg_needs_a_scan_for_every_component() {
        assert!(scans_cover_the_frame(&sequential_jpeg(&[1, 2, 3])));
        assert!(scans_cover_the_frame(&sequential_jpeg(&[3, 1, 2])));
        // Cut before the last component's scan.
        assert!(!scans_cover_the_frame(&sequential_jpeg(&[1, 2])));
        // A scan of a component the frame lacks.
        assert!(!scans_cover_the_frame(&sequential_jpeg(&[1, 2, 4])));
    }

    #[test]
    fn entropy_coded_data_ends_at_the_first_other_marker() {
        let data = [0x12, 0xFF, 0x00, 0xFF, 0xD3, 0x56, 0xFF, 0xFF, 0xDA, 0x00];
        // At the last of the fill bytes before the marker, where `next_marker` reads on.
        assert_eq!(skip_entropy_coded_data(&data, 0), 7);
        assert_eq!(next_marker(&data, 7), Some((0xDA, 9)));
        assert_eq!(skip_entropy_coded_data(&data[..6], 0), 6);
    }

    #[test]
    fn scan_coverage_is_read_from_the_markers() {
        let bytes = baseline_jpeg();
        assert!(scans_cover_the_frame(&bytes));
        // Without its end-of-image marker: still whole.
        assert!(scans_cover_the_frame(&bytes[..bytes.len() - 2]));
        // Cut before the scan header: nothing delivered.
        let sos = bytes.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        assert!(!scans_cover_the_frame(&bytes[..sos]));
        // Cut inside the scan header.
        assert!(!scans_cover_the_frame(&bytes[..sos + 5]));
    }
}
