//! From encoded bytes to a small RGB8 raster, within stated limits.
//!
//! JPEG goes through `mozjpeg` (libjpeg-turbo's decoder, the one Pillow uses), which can run
//! the inverse DCT at 1/8, 1/4 or 1/2 scale: most of the pixels of a cover are then never
//! computed, and at full scale its pixels are the ones the earlier service saw. JPEGs it does
//! not take (CMYK, arithmetic coding, lossless), PNG and WebP go through the `image` crate at
//! full size and are shrunk afterwards.

use std::panic::{AssertUnwindSafe, catch_unwind};

use image::{ImageDecoder, ImageFormat, ImageReader};

use super::{ColorError, Limits};

/// Packed RGB8 pixels, row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Raster {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) rgb: Vec<u8>,
}

/// The encoded formats this module reads, sniffed from their magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Jpeg,
    Png,
    WebP,
}

/// Names the format from the first bytes, without trusting any file name or content type.
pub(crate) fn sniff(bytes: &[u8]) -> Result<Format, ColorError> {
    match image::guess_format(bytes) {
        Ok(ImageFormat::Jpeg) => Ok(Format::Jpeg),
        Ok(ImageFormat::Png) => Ok(Format::Png),
        Ok(ImageFormat::WebP) => Ok(Format::WebP),
        _ => Err(ColorError::UnsupportedFormat),
    }
}

/// Refuses empty and oversized inputs before any parsing.
pub(crate) fn check_input(bytes: &[u8], limits: &Limits) -> Result<(), ColorError> {
    if bytes.is_empty() {
        return Err(ColorError::Empty);
    }
    if bytes.len() > limits.max_input_bytes {
        return Err(ColorError::InputTooLarge {
            bytes: bytes.len(),
            limit: limits.max_input_bytes,
        });
    }
    Ok(())
}

fn check_pixels(width: u32, height: u32, limits: &Limits) -> Result<(), ColorError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(ColorError::TooManyPixels {
            width,
            height,
            limit: limits.max_pixels,
        });
    }
    if pixels == 0 {
        return Err(ColorError::Decode("image has no pixels".into()));
    }
    Ok(())
}

/// Decodes a JPEG with the inverse DCT scaled so that the result is at least `min_side`
/// pixels on its longer side (or the full image when it is smaller than that).
///
/// JPEGs that libjpeg-turbo refuses or cannot give as RGB are decoded by the `image` crate
/// at full size instead, whose error is the one reported when both fail.
pub(crate) fn jpeg_scaled(
    bytes: &[u8],
    limits: &Limits,
    min_side: u32,
) -> Result<Raster, ColorError> {
    // libjpeg reports fatal errors by unwinding (without the panic hook) out of the C code;
    // they end here. Nothing is shared with the failed decoder afterwards.
    match catch_unwind(AssertUnwindSafe(|| libjpeg_scaled(bytes, limits, min_side))) {
        Ok(Some(decoded)) => decoded,
        Ok(None) | Err(_) => full(bytes, Format::Jpeg, limits),
    }
}

/// libjpeg-turbo's scaled decode; `None` when it cannot give RGB or gray pixels.
fn libjpeg_scaled(
    bytes: &[u8],
    limits: &Limits,
    min_side: u32,
) -> Option<Result<Raster, ColorError>> {
    let mut decoder = mozjpeg::Decompress::new_mem(bytes).ok()?;
    let (width, height) = (decoder.width(), decoder.height());
    let (Ok(width), Ok(height)) = (u32::try_from(width), u32::try_from(height)) else {
        return Some(Err(ColorError::Decode(
            "JPEG dimensions out of range".into(),
        )));
    };
    if let Err(error) = check_pixels(width, height, limits) {
        return Some(Err(error));
    }
    decoder.scale(scale_eighths(width.max(height), min_side));
    let gray = match decoder.color_space() {
        mozjpeg::ColorSpace::JCS_GRAYSCALE => true,
        mozjpeg::ColorSpace::JCS_YCbCr | mozjpeg::ColorSpace::JCS_RGB => false,
        _ => return None,
    };
    let mut started = if gray {
        decoder.grayscale()
    } else {
        decoder.rgb()
    }
    .ok()?;
    let (width, height) = (started.width(), started.height());
    let samples: Vec<u8> = started.read_scanlines().ok()?;
    // A truncated scan is padded by libjpeg and only warned about; the pixels are kept.
    let _ = started.finish();
    let rgb = if gray {
        samples.iter().flat_map(|&l| [l, l, l]).collect()
    } else {
        samples
    };
    if rgb.len() < width * height * 3 {
        return Some(Err(ColorError::Decode(
            "JPEG decoder returned too few pixels".into(),
        )));
    }
    Some(Ok(Raster {
        width: u32::try_from(width).ok()?,
        height: u32::try_from(height).ok()?,
        rgb,
    }))
}

/// The smallest DCT scale, in eighths, that keeps `side` at least `min_side` pixels long.
fn scale_eighths(side: u32, min_side: u32) -> u8 {
    [1u8, 2, 4]
        .into_iter()
        .find(|&eighths| (u64::from(side) * u64::from(eighths)).div_ceil(8) >= u64::from(min_side))
        .unwrap_or(8)
}

/// Decodes any supported format at full size with the `image` crate.
pub(crate) fn full(bytes: &[u8], format: Format, limits: &Limits) -> Result<Raster, ColorError> {
    let format = match format {
        Format::Jpeg => ImageFormat::Jpeg,
        Format::Png => ImageFormat::Png,
        Format::WebP => ImageFormat::WebP,
    };
    let mut reader = ImageReader::with_format(std::io::Cursor::new(bytes), format);
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8));
    reader.limits(image_limits);
    let decoder = reader.into_decoder().map_err(image_error)?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, limits)?;
    let image = image::DynamicImage::from_decoder(decoder).map_err(image_error)?;
    let rgb = image.into_rgb8();
    Ok(Raster {
        width: rgb.width(),
        height: rgb.height(),
        rgb: rgb.into_raw(),
    })
}

fn image_error(error: image::ImageError) -> ColorError {
    match error {
        image::ImageError::Limits(limit) => {
            ColorError::Decode(format!("over the memory limit: {limit}"))
        }
        image::ImageError::Unsupported(u) => ColorError::Decode(format!("unsupported: {u}")),
        other => ColorError::Decode(other.to_string()),
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

    #[test]
    fn libjpeg_failures_are_caught_and_reported_by_the_fallback_decoder() {
        let mut bytes = Vec::new();
        image::RgbImage::from_pixel(16, 16, image::Rgb([200, 80, 20]))
            .write_to(&mut std::io::Cursor::new(&mut bytes), ImageFormat::Jpeg)
            .unwrap();
        // Claim 12-bit samples in the frame header: libjpeg (8-bit) aborts by unwinding.
        let frame = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        bytes[frame + 4] = 12;
        let limits = Limits::default();
        assert!(catch_unwind(|| libjpeg_scaled(&bytes, &limits, 64)).is_err());
        assert!(matches!(
            jpeg_scaled(&bytes, &limits, 64),
            Err(ColorError::Decode(_))
        ));
    }
}
