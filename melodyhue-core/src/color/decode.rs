//! From encoded bytes to a small RGB8 raster, within stated limits.
//!
//! JPEG goes through `jpeg-decoder`, which can run the inverse DCT at 1/2, 1/4 or 1/8 scale:
//! most of the pixels of a cover are then never computed. PNG and WebP go through the `image`
//! crate at full size (they have no reduced decode) and are shrunk afterwards.

use image::{ImageDecoder, ImageFormat, ImageReader};
use jpeg_decoder::{CodingProcess, PixelFormat};

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
pub(crate) fn jpeg_scaled(
    bytes: &[u8],
    limits: &Limits,
    min_side: u16,
) -> Result<Raster, ColorError> {
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.read_info().map_err(jpeg_error)?;
    let info = decoder
        .info()
        .ok_or_else(|| ColorError::Decode("JPEG has no frame header".into()))?;
    check_pixels(u32::from(info.width), u32::from(info.height), limits)?;
    // Lossless JPEGs have no DCT to scale.
    if info.coding_process != CodingProcess::Lossless {
        decoder.scale(min_side, min_side).map_err(jpeg_error)?;
    }
    decoder.set_max_decoding_buffer_size(decoding_budget(limits));
    let data = decoder.decode().map_err(jpeg_error)?;
    let info = decoder
        .info()
        .ok_or_else(|| ColorError::Decode("JPEG has no frame header".into()))?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    let pixels = width as usize * height as usize;
    let rgb = match info.pixel_format {
        PixelFormat::RGB24 => data,
        PixelFormat::L8 => data.iter().flat_map(|&l| [l, l, l]).collect(),
        // Big-endian 16-bit samples: the high byte is the 8-bit value.
        PixelFormat::L16 => data
            .chunks_exact(2)
            .flat_map(|c| [c[0], c[0], c[0]])
            .collect(),
        PixelFormat::CMYK32 => data.chunks_exact(4).flat_map(cmyk_to_rgb).collect(),
    };
    if rgb.len() < pixels * 3 {
        return Err(ColorError::Decode(
            "JPEG decoder returned too few pixels".into(),
        ));
    }
    Ok(Raster { width, height, rgb })
}

/// Ink amounts (0 = no ink) to RGB, the naive way Pillow also uses.
fn cmyk_to_rgb(cmyk: &[u8]) -> [u8; 3] {
    let k = 255 - u16::from(cmyk[3]);
    // Each product is at most 255 * 255, so the quotient fits a byte.
    let channel = |c: u8| ((255 - u16::from(c)) * k / 255) as u8;
    [channel(cmyk[0]), channel(cmyk[1]), channel(cmyk[2])]
}

/// Bytes of decoded output the decoders may allocate: 8 bytes (RGBA16) per allowed pixel.
fn decoding_budget(limits: &Limits) -> usize {
    usize::try_from(limits.max_pixels.saturating_mul(8)).unwrap_or(usize::MAX)
}

fn jpeg_error(error: jpeg_decoder::Error) -> ColorError {
    match error {
        jpeg_decoder::Error::Unsupported(feature) => {
            ColorError::Decode(format!("unsupported JPEG feature: {feature:?}"))
        }
        other => ColorError::Decode(other.to_string()),
    }
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
