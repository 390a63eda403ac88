//! Incomplete files: JPEGs, PNGs and WebPs cut short.

use super::*;
use crate::transparency::red_on_hidden_green_everywhere;

/// A cover re-encoded as a progressive JPEG (mozjpeg's default scan script: DC first, then
/// spectral bands and successive-approximation refinements).
fn progressive_cover() -> Vec<u8> {
    let cover = image::load_from_memory(&fixture("covers/darkesthour.jpg"))
        .expect("cover")
        .into_rgb8();
    let mut compress = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
    compress.set_size(cover.width() as usize, cover.height() as usize);
    compress.set_quality(80.0);
    compress.set_progressive_mode();
    let mut started = compress.start_compress(Vec::new()).expect("compress");
    started.write_scanlines(cover.as_raw()).expect("scanlines");
    started.finish().expect("finish")
}

/// Positions of a JPEG's scan headers (SOS markers).
fn scan_starts(jpeg: &[u8]) -> Vec<usize> {
    jpeg.windows(2)
        .enumerate()
        .filter(|(_, w)| w == &[0xFF, 0xDA])
        .map(|(i, _)| i)
        .collect()
}

/// The JPEGs whose truncations are checked, with their names.
fn jpegs() -> Vec<(&'static str, Vec<u8>)> {
    let gray = image::GrayImage::from_fn(256, 256, |x, y| image::Luma([((x * y) % 251) as u8]));
    vec![
        ("baseline cover", fixture("covers/darkesthour.jpg")),
        ("progressive cover", progressive_cover()),
        ("grayscale", encode(gray, image::ImageFormat::Jpeg)),
        (
            "small progressive (Pillow)",
            fixture("hostile/progressive.jpg"),
        ),
        ("Adobe CMYK (Pillow)", fixture("hostile/cmyk.jpg")),
    ]
}

#[test]
fn jpegs_cut_inside_their_scans_are_incomplete() {
    for (name, jpeg) in jpegs() {
        let scans = scan_starts(&jpeg);
        assert!(!scans.is_empty(), "{name}");
        let first = scans[0];
        let end = jpeg.len() - 2; // before the end-of-image marker
        let cuts = [
            first,      // before any scan
            first + 12, // in the first scan's header or first bytes
            first + (end - first) / 10,
            first + (end - first) * 4 / 10,
            first + (end - first) * 3 / 4,
            end - 20, // in the last scan
        ];
        for cut in cuts {
            assert_eq!(
                analyze(&jpeg[..cut]),
                Err(ColorError::Incomplete),
                "{name} cut at {cut} of {}",
                jpeg.len()
            );
        }
    }
}

#[test]
fn progressive_jpegs_cut_between_two_scans_are_incomplete() {
    for (name, jpeg) in [
        ("progressive cover", progressive_cover()),
        (
            "small progressive (Pillow)",
            fixture("hostile/progressive.jpg"),
        ),
    ] {
        let scans = scan_starts(&jpeg);
        assert!(scans.len() > 3, "{name}: {} scans", scans.len());
        // Every scan before the cut is whole, and its data ends at the next scan's header:
        // only the coefficients of the missing scans tell that the image is incomplete.
        for &cut in &scans[1..] {
            assert_eq!(
                analyze(&jpeg[..cut]),
                Err(ColorError::Incomplete),
                "{name} cut before the scan at {cut}"
            );
        }
    }
}

#[test]
fn a_jpeg_missing_only_its_end_of_image_marker_is_accepted() {
    for (name, jpeg) in jpegs() {
        assert_eq!(&jpeg[jpeg.len() - 2..], [0xFF, 0xD9], "{name}");
        let whole = analyze(&jpeg).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(analyze(&jpeg[..jpeg.len() - 2]), Ok(whole), "{name}");
        assert_eq!(analyze(&jpeg[..jpeg.len() - 1]), Ok(whole), "{name}");
    }
}

#[test]
fn pngs_and_webps_cut_inside_their_image_data_are_incomplete() {
    let gradient = image::RgbaImage::from_fn(64, 64, |x, y| {
        image::Rgba([(x * 4) as u8, (y * 4) as u8, ((x * y) % 256) as u8, 200])
    });
    let files = [
        (
            "RGBA PNG",
            encode(gradient.clone(), image::ImageFormat::Png),
        ),
        (
            "palette PNG",
            red_on_hidden_green_everywhere().swap_remove(1).1,
        ),
        ("lossless WebP", encode(gradient, image::ImageFormat::WebP)),
        ("lossy WebP", fixture("hostile/lossy.webp")),
        ("lossy WebP with alpha", fixture("hostile/alpha-lossy.webp")),
    ];
    for (name, bytes) in files {
        assert!(analyze(&bytes).is_ok(), "{name}");
        let len = bytes.len();
        // The lossy decoder reads zeros past the end of its data: a cut of 2 bytes is one
        // it used to accept, with other pixels.
        let trailer = if name.ends_with("PNG") { 12 } else { 0 }; // PNG's IEND chunk
        for cut in [
            40,
            len / 3,
            len * 2 / 3,
            len - trailer - 6,
            len - trailer - 2,
        ] {
            assert_eq!(
                analyze(&bytes[..cut]),
                Err(ColorError::Incomplete),
                "{name} cut at {cut} of {len}"
            );
        }
    }
}
