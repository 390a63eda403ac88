//! Transparency: transparent pixels count for nothing, partly transparent ones in proportion.

use super::*;

const RED: [u8; 3] = [220, 30, 30];
const HIDDEN_GREEN: [u8; 3] = [30, 255, 30];

/// The middle of a 64x64 image.
fn in_square(x: u32, y: u32) -> bool {
    (16..48).contains(&x) && (16..48).contains(&y)
}

/// A 64x64 red square, opaque, on a fully transparent background whose hidden colour is a
/// bright green (what an image editor leaves behind erased pixels).
fn red_on_hidden_green() -> image::RgbaImage {
    image::RgbaImage::from_fn(64, 64, |x, y| {
        let ([r, g, b], a) = if in_square(x, y) {
            (RED, 255)
        } else {
            (HIDDEN_GREEN, 0)
        };
        image::Rgba([r, g, b, a])
    })
}

fn png_with_trns(
    color: png::ColorType,
    palette: Option<Vec<u8>>,
    trns: Vec<u8>,
    data: &[u8],
) -> Vec<u8> {
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, 64, 64);
        encoder.set_color(color);
        encoder.set_depth(png::BitDepth::Eight);
        if let Some(palette) = palette {
            encoder.set_palette(palette);
        }
        encoder.set_trns(trns);
        let mut writer = encoder.write_header().expect("PNG header");
        writer.write_image_data(data).expect("PNG data");
    }
    bytes
}

/// The red square in every format that has transparency.
pub(super) fn red_on_hidden_green_everywhere() -> Vec<(&'static str, Vec<u8>)> {
    let square = |x: u32, y: u32| in_square(x, y);
    let pixels = || (0..64 * 64).map(|i| square(i % 64, i / 64));
    let palette_indices: Vec<u8> = pixels().map(|red| u8::from(!red)).collect();
    let rgb: Vec<u8> = pixels()
        .flat_map(|red| if red { RED } else { HIDDEN_GREEN })
        .collect();
    vec![
        (
            "RGBA PNG",
            encode(red_on_hidden_green(), image::ImageFormat::Png),
        ),
        (
            "palette PNG with a transparent entry",
            png_with_trns(
                png::ColorType::Indexed,
                Some([RED, HIDDEN_GREEN].concat()),
                vec![255, 0],
                &palette_indices,
            ),
        ),
        (
            "RGB PNG with a transparent colour key",
            png_with_trns(
                png::ColorType::Rgb,
                None,
                HIDDEN_GREEN.iter().flat_map(|&v| [0, v]).collect(),
                &rgb,
            ),
        ),
        (
            "lossless WebP with alpha",
            encode(red_on_hidden_green(), image::ImageFormat::WebP),
        ),
        // cwebp -q 75 -exact -alpha_q 100: lossy colour, the hidden green kept.
        ("lossy WebP with alpha", fixture("hostile/alpha-lossy.webp")),
    ]
}

#[test]
fn transparent_pixels_count_for_nothing_in_every_format_with_alpha() {
    let red_alone = analyze(&png(32, 32, |_, _| RED)).expect("opaque red");
    for (format, bytes) in red_on_hidden_green_everywhere() {
        let report = analyze(&bytes).unwrap_or_else(|e| panic!("{format}: {e}"));
        let delta = delta_e_2000(report.color, red_alone.color);
        assert!(
            delta <= 2.0,
            "{format}: {} where the red alone gives {} (ΔE {delta:.1})",
            report.color.hex(),
            red_alone.color.hex()
        );
        let hidden = Rgb::new(HIDDEN_GREEN[0], HIDDEN_GREEN[1], HIDDEN_GREEN[2]);
        for (name, swatch) in report.palette.named() {
            assert!(
                delta_e_2000(swatch, hidden) > 30.0,
                "{format}: {name} = {} is the hidden green",
                swatch.hex()
            );
            // Lossy WebP mixes the colours along the square's edge into visible pixels of
            // their own; elsewhere every swatch is the red.
            if !format.starts_with("lossy") {
                assert!(
                    swatch.r > swatch.g && swatch.r > swatch.b,
                    "{format}: {name} = {} is not the red square's",
                    swatch.hex()
                );
            }
        }
        assert_text_contrast(&report);
    }
}

#[test]
fn transparent_grey_pixels_count_for_nothing_either() {
    // Gray + alpha: a mid-grey square on hidden white. The classic colour of a grey image is
    // its brightest pixel, which the hidden white would be.
    let image = image::GrayAlphaImage::from_fn(64, 64, |x, y| {
        if in_square(x, y) {
            image::LumaA([100, 255])
        } else {
            image::LumaA([255, 0])
        }
    });
    let report = analyze(&encode(image, image::ImageFormat::Png)).expect("gray + alpha PNG");
    let grey_alone = analyze(&png(16, 16, |_, _| [100; 3])).expect("opaque grey");
    // Lanczos rings a little past the square's grey at its edge, as it does next to any
    // edge; the hidden white would give white.
    let delta = delta_e_2000(report.color, grey_alone.color);
    assert!(
        delta < 5.0,
        "{} against {}",
        report.color.hex(),
        grey_alone.color.hex()
    );
    for (name, swatch) in report.palette.named() {
        let grey = swatch.r == swatch.g && swatch.g == swatch.b;
        assert!(
            grey && swatch.r.abs_diff(100) <= 10,
            "{name} = {}",
            swatch.hex()
        );
    }
}

#[test]
fn pixels_count_in_proportion_to_their_opacity() {
    // 40% opaque red against 60% blue at opacity 60: counted by area blue would win, by
    // opacity red does (0.4 * 255 against 0.6 * 60).
    let image = image::RgbaImage::from_fn(50, 50, |x, _| {
        if x < 20 {
            image::Rgba([200, 20, 20, 255])
        } else {
            image::Rgba([20, 20, 200, 60])
        }
    });
    for format in [image::ImageFormat::Png, image::ImageFormat::WebP] {
        let report = analyze(&encode(image.clone(), format)).expect("half-transparent image");
        assert!(
            report.color.r > report.color.b,
            "{format:?}: {}",
            report.color.hex()
        );
        // Both colours are still in the palette: a faint colour is not an absent one.
        let swatches = report.palette.named().map(|(_, s)| s);
        assert!(
            swatches.iter().any(|s| s.b > s.r),
            "{format:?}: {swatches:?}"
        );
    }
}

#[test]
fn an_opaque_alpha_channel_changes_nothing() {
    let rgb = image::RgbImage::from_fn(48, 48, |x, y| {
        image::Rgb([(x * 5) as u8, (y * 5) as u8, 90])
    });
    let rgba = image::RgbaImage::from_fn(48, 48, |x, y| {
        image::Rgba([(x * 5) as u8, (y * 5) as u8, 90, 255])
    });
    assert_eq!(
        analyze(&encode(rgba, image::ImageFormat::Png)),
        analyze(&encode(rgb, image::ImageFormat::Png))
    );
}

#[test]
fn fully_transparent_images_are_refused_in_every_format_with_alpha() {
    let clear = image::RgbaImage::from_pixel(64, 64, image::Rgba([30, 255, 30, 0]));
    let cases = [
        ("RGBA PNG", encode(clear.clone(), image::ImageFormat::Png)),
        (
            "lossless WebP with alpha",
            encode(clear, image::ImageFormat::WebP),
        ),
        (
            "palette PNG with a transparent entry",
            png_with_trns(
                png::ColorType::Indexed,
                Some(HIDDEN_GREEN.to_vec()),
                vec![0],
                &[0; 64 * 64],
            ),
        ),
        (
            "gray + alpha PNG",
            encode(
                image::GrayAlphaImage::from_pixel(64, 64, image::LumaA([200, 0])),
                image::ImageFormat::Png,
            ),
        ),
        (
            "lossy WebP with alpha",
            fixture("hostile/transparent-lossy.webp"),
        ),
    ];
    for (format, bytes) in cases {
        assert_eq!(analyze(&bytes), Err(ColorError::Transparent), "{format}");
        assert_eq!(
            classic_color(&bytes),
            Err(ColorError::Transparent),
            "{format}"
        );
    }
}
