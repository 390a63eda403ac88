//! From encoded bytes to a raster, within stated limits, refusing incomplete pixel data.
//!
//! JPEG goes through libjpeg-turbo ([`super::jpeg`]), which can run the inverse DCT at 1/8,
//! 1/4 or 1/2 scale: most of the pixels of a cover are then never computed, and at full scale
//! its pixels are the ones the earlier service saw. JPEGs it does not take (CMYK, 12-bit), PNG
//! and WebP go through the `image` crate at full size and are shrunk afterwards. Transparency
//! is kept as an opacity per pixel.

use image::{ImageDecoder, ImageFormat, ImageReader};

use super::jpeg::{self, Decoded};
use super::{ColorError, Limits};

/// Packed pixels, row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Raster {
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// r, g, b of each pixel (not premultiplied by its opacity).
    pub(crate) rgb: Vec<u8>,
    /// The opacity of each pixel, 0 (transparent) to 255; `None` when every pixel is opaque.
    pub(crate) alpha: Option<Vec<u8>>,
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

pub(crate) fn check_pixels(width: u32, height: u32, limits: &Limits) -> Result<(), ColorError> {
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
    match jpeg::decode_scaled(bytes, limits, min_side)? {
        Decoded::Pixels(raster) => Ok(raster),
        Decoded::OtherColorSpace | Decoded::Refused => full(bytes, Format::Jpeg, limits),
    }
}

/// Decodes any supported format at full size with the `image` crate.
///
/// A WebP file must hold every byte its image chunks declare (the decoder of lossy WebP
/// reads zeros past the end of its data instead of failing); PNG's decoder fails by itself
/// on missing data.
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
    let complete = format != ImageFormat::WebP || webp_chunks_complete(bytes);
    let failure = |error| match complete {
        true => image_error(error),
        false => ColorError::Incomplete,
    };
    let decoder = reader.into_decoder().map_err(failure)?;
    let (width, height) = decoder.dimensions();
    // The header's promise is checked first: a bomb is refused as one, complete or not.
    check_pixels(width, height, limits)?;
    if !complete {
        return Err(ColorError::Incomplete);
    }
    let image = image::DynamicImage::from_decoder(decoder).map_err(image_error)?;
    let (width, height) = (image.width(), image.height());
    if !image.color().has_alpha() {
        return Ok(Raster {
            width,
            height,
            rgb: image.into_rgb8().into_raw(),
            alpha: None,
        });
    }
    let rgba = image.into_rgba8().into_raw();
    let alpha: Vec<u8> = rgba.chunks_exact(4).map(|p| p[3]).collect();
    if alpha.iter().all(|&a| a == 0) {
        return Err(ColorError::Transparent);
    }
    Ok(Raster {
        width,
        height,
        rgb: rgba
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        alpha: (!alpha.iter().all(|&a| a == u8::MAX)).then_some(alpha),
    })
}

/// Whether a WebP file holds all of every chunk up to its last image chunk (RIFF: a four-byte
/// tag, a little-endian size, the payload, a pad byte after an odd size). Metadata chunks
/// after the image may be cut, and so may the last pad byte.
fn webp_chunks_complete(bytes: &[u8]) -> bool {
    const IMAGE_CHUNKS: [&[u8; 4]; 5] = [b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANMF"];
    let mut at = 12; // "RIFF", the file size, "WEBP"
    let mut image_seen = false;
    while at < bytes.len() {
        let tag = bytes.get(at..at + 4);
        let is_image = tag.is_some_and(|tag| IMAGE_CHUNKS.iter().any(|t| t.as_slice() == tag));
        let Some(size) = bytes.get(at + 4..at + 8) else {
            // A cut chunk header.
            return image_seen && !is_image;
        };
        let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize;
        let end = at + 8 + size;
        if end > bytes.len() {
            return image_seen && !is_image;
        }
        image_seen |= matches!(tag, Some(b"VP8 " | b"VP8L" | b"ANMF"));
        at = end + size % 2;
    }
    image_seen
}

fn image_error(error: image::ImageError) -> ColorError {
    match error {
        image::ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            ColorError::Incomplete
        }
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

    fn riff(chunks: &[(&[u8; 4], usize)]) -> Vec<u8> {
        let mut bytes = b"RIFF\0\0\0\0WEBP".to_vec();
        for (tag, size) in chunks {
            bytes.extend_from_slice(*tag);
            bytes.extend_from_slice(&(*size as u32).to_le_bytes());
            bytes.extend(std::iter::repeat_n(7, *size + size % 2));
        }
        bytes
    }

    #[test]
    fn webp_chunks_must_be_whole_up_to_the_image() {
        let simple = riff(&[(b"VP8 ", 11)]);
        assert!(webp_chunks_complete(&simple));
        // Only the pad byte missing.
        assert!(webp_chunks_complete(&simple[..simple.len() - 1]));
        assert!(!webp_chunks_complete(&simple[..simple.len() - 2]));
        assert!(!webp_chunks_complete(&simple[..16]));
        assert!(!webp_chunks_complete(&simple[..12]));

        let extended = riff(&[(b"VP8X", 10), (b"ALPH", 5), (b"VP8 ", 20), (b"EXIF", 30)]);
        assert!(webp_chunks_complete(&extended));
        // Cut in the metadata after the image: the pixels are all there.
        assert!(webp_chunks_complete(&extended[..extended.len() - 10]));
        assert!(webp_chunks_complete(&extended[..extended.len() - 35]));
        // Cut in the image chunk, or before it.
        assert!(!webp_chunks_complete(&extended[..extended.len() - 40]));
        assert!(!webp_chunks_complete(&extended[..40]));
    }
}
