//! The colour extractor: reference colours, palette properties and hostile inputs.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test helpers

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;

use melodyhue_core::color::{
    ColorError, Limits, Palette, Rgb, analyze, analyze_with, classic_color, contrast_ratio,
    delta_e_2000, text_color_for,
};

fn fixture(path: &str) -> Vec<u8> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn references() -> BTreeMap<String, String> {
    serde_json::from_slice(&fixture("covers/reference-colors.json"))
        .unwrap_or_else(|e| panic!("reference JSON: {e}"))
}

fn encode(image: impl Into<image::DynamicImage>, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .into()
        .write_to(&mut Cursor::new(&mut bytes), format)
        .unwrap_or_else(|e| panic!("encoding a test image: {e}"));
    bytes
}

fn png(width: u32, height: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb(pixel(x, y)));
    encode(image, image::ImageFormat::Png)
}

fn jpeg(width: u32, height: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb(pixel(x, y)));
    encode(image, image::ImageFormat::Jpeg)
}

/// Small deterministic noise, -range..=range.
fn noise(x: u32, y: u32, range: u32) -> i32 {
    let h = x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503).rotate_left(13);
    (h % (2 * range + 1)) as i32 - range as i32
}

fn add(v: u8, d: i32) -> u8 {
    (i32::from(v) + d).clamp(0, 255) as u8
}

fn hsl_saturation(c: Rgb) -> f64 {
    let max = f64::from(c.r.max(c.g).max(c.b)) / 255.0;
    let min = f64::from(c.r.min(c.g).min(c.b)) / 255.0;
    let lightness = (max + min) / 2.0;
    if max == min {
        0.0
    } else {
        (max - min) / (1.0 - (2.0 * lightness - 1.0).abs())
    }
}

fn assert_text_contrast(report: &melodyhue_core::color::ColorReport) {
    let contrast = contrast_ratio(report.color, report.text_color);
    assert!(
        contrast >= 4.5,
        "text {} on {} has contrast {contrast:.2}",
        report.text_color.hex(),
        report.color.hex()
    );
}

// ---------------------------------------------------------------- reference colours

#[test]
fn fixture_covers_match_the_earlier_service_within_delta_e_2() {
    let references = references();
    assert!(references.len() >= 5);
    for (file, hex) in references {
        let reference = Rgb::from_hex(&hex).expect("reference hex");
        let ours = classic_color(&fixture(&format!("covers/{file}"))).expect("classic colour");
        let delta = delta_e_2000(reference, ours);
        assert!(
            delta <= 2.0,
            "{file}: reference {hex}, ours {} (ΔE {delta:.2})",
            ours.hex()
        );
    }
}

#[test]
fn analyze_agrees_with_classic_color_and_gives_readable_text() {
    for file in references().keys() {
        let bytes = fixture(&format!("covers/{file}"));
        let report = analyze(&bytes).expect("analysis");
        assert_eq!(report.color, classic_color(&bytes).expect("classic colour"));
        assert_text_contrast(&report);
    }
}

#[test]
fn delta_e_2000_matches_published_test_data() {
    assert_eq!(
        delta_e_2000(Rgb::new(10, 20, 30), Rgb::new(10, 20, 30)),
        0.0
    );
    // Black and white differ by 100 in L* and nothing else.
    let black_white = delta_e_2000(Rgb::new(0, 0, 0), Rgb::new(255, 255, 255));
    assert!((black_white - 100.0).abs() < 0.01, "{black_white}");
    let small = delta_e_2000(Rgb::new(0x5f, 0x69, 0x84), Rgb::new(0x5f, 0x6a, 0x83));
    assert!(small > 0.0 && small < 2.0, "{small}");
}

#[test]
fn contrast_ratio_follows_wcag_2() {
    let black = Rgb::new(0, 0, 0);
    let white = Rgb::new(255, 255, 255);
    assert!((contrast_ratio(black, white) - 21.0).abs() < 1e-9);
    assert!((contrast_ratio(white, white) - 1.0).abs() < 1e-9);
    // #777777 on white is the classic "just below AA" pair (4.48:1).
    let grey = contrast_ratio(Rgb::new(0x77, 0x77, 0x77), white);
    assert!((grey - 4.48).abs() < 0.01, "{grey}");
    assert_eq!(contrast_ratio(black, white), contrast_ratio(white, black));
}

// ---------------------------------------------------------------- formatting

#[test]
fn hex_round_trips_and_rejects_malformed_input() {
    let c = Rgb::new(0x0a, 0xbc, 0xff);
    assert_eq!(c.hex(), "#0abcff");
    assert_eq!(Rgb::from_hex("#0ABCFF"), Some(c));
    assert_eq!(Rgb::from_hex("#0abcff"), Some(c));
    for bad in [
        "", "#", "0abcff", "#0abcf", "#0abcfff", "#0abcfg", "#+1bcff", "#ééé",
    ] {
        assert_eq!(Rgb::from_hex(bad), None, "{bad:?}");
    }
}

#[test]
fn report_display_is_tab_separated() {
    let report = analyze(&fixture("covers/city.jpg")).expect("analysis");
    let line = report.to_string();
    let fields: Vec<&str> = line.split('\t').collect();
    assert_eq!(fields.len(), 8, "{line}");
    assert_eq!(fields[0], report.color.hex());
    assert_eq!(
        fields[1],
        format!("vibrant={}", report.palette.vibrant.hex())
    );
    assert_eq!(
        fields[6],
        format!("light_muted={}", report.palette.light_muted.hex())
    );
    assert_eq!(fields[7], format!("text={}", report.text_color.hex()));
}

// ---------------------------------------------------------------- palette

#[test]
fn colourful_image_has_a_saturated_vibrant_and_a_dull_muted_swatch() {
    // Quarters: saturated orange, saturated blue, dull olive, dark teal.
    let bytes = png(64, 64, |x, y| match (x < 32, y < 32) {
        (true, true) => [240, 120, 10],
        (false, true) => [20, 60, 230],
        (true, false) => [120, 118, 90],
        (false, false) => [10, 60, 60],
    });
    let report = analyze(&bytes).expect("analysis");
    assert!(
        hsl_saturation(report.palette.vibrant) >= 0.35,
        "{:?}",
        report.palette
    );
    assert!(
        hsl_saturation(report.palette.muted) <= 0.4,
        "{:?}",
        report.palette
    );
    assert_text_contrast(&report);
}

#[test]
fn grey_image_gets_grey_swatches_and_no_invented_hue() {
    let bytes = png(64, 64, |x, y| {
        let v = 60 + (x + y) as u8;
        [v, v, v]
    });
    let report = analyze(&bytes).expect("analysis");
    assert!(report.color.r == report.color.g && report.color.g == report.color.b);
    for (name, swatch) in report.palette.named() {
        let spread = swatch.r.max(swatch.g).max(swatch.b) - swatch.r.min(swatch.g).min(swatch.b);
        assert!(spread <= 1, "{name} = {} in a grey image", swatch.hex());
    }
    assert_text_contrast(&report);
}

#[test]
fn extreme_and_flat_images_give_sensible_answers() {
    let cases: [(&str, Vec<u8>); 5] = [
        (
            "almost white",
            png(48, 48, |x, y| [add(250, noise(x, y, 3)); 3]),
        ),
        (
            "almost black",
            png(48, 48, |x, y| [add(4, noise(x, y, 3)); 3]),
        ),
        ("pure black", png(8, 8, |_, _| [0, 0, 0])),
        ("single red", png(48, 48, |_, _| [200, 30, 30])),
        ("single pixel", png(1, 1, |_, _| [30, 200, 90])),
    ];
    for (name, bytes) in cases {
        let report = analyze(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_text_contrast(&report);
        if name == "single red" {
            // Every swatch keeps the image's hue: red dominates each one.
            for (swatch_name, s) in report.palette.named() {
                assert!(
                    s.r >= s.g && s.r >= s.b,
                    "{swatch_name} = {} for red",
                    s.hex()
                );
            }
            assert!(report.color.r > report.color.g && report.color.r > report.color.b);
        }
        if name.starts_with("almost") || name == "pure black" {
            for (swatch_name, s) in report.palette.named() {
                let spread = s.r.max(s.g).max(s.b) - s.r.min(s.g).min(s.b);
                assert!(spread <= 1, "{name}: {swatch_name} = {}", s.hex());
            }
        }
    }
}

#[test]
fn text_color_is_a_swatch_when_one_contrasts_enough_else_black_or_white() {
    let grey = Rgb::new(0x77, 0x77, 0x77);
    let flat = Palette {
        vibrant: grey,
        muted: grey,
        dark_vibrant: grey,
        dark_muted: grey,
        light_vibrant: grey,
        light_muted: grey,
    };
    let text = text_color_for(grey, &flat);
    assert!(text == Rgb::new(0, 0, 0) || text == Rgb::new(255, 255, 255));
    assert!(contrast_ratio(grey, text) >= 4.5);

    let dark_blue = Rgb::new(10, 20, 80);
    let with_light = Palette {
        light_muted: Rgb::new(230, 235, 245),
        ..flat
    };
    assert_eq!(
        text_color_for(dark_blue, &with_light),
        Rgb::new(230, 235, 245)
    );

    // Every background gets readable text.
    for v in (0..=255).step_by(5) {
        for background in [
            Rgb::new(v, v, v),
            Rgb::new(v, 255 - v, 128),
            Rgb::new(255, v, 0),
        ] {
            let text = text_color_for(background, &flat);
            assert!(
                contrast_ratio(background, text) >= 4.5,
                "{}",
                background.hex()
            );
        }
    }
}

// ---------------------------------------------------------------- formats

#[test]
fn progressive_cmyk_and_grayscale_jpegs_decode() {
    // Orange with a blue corner, saved by Pillow as progressive and as Adobe CMYK.
    for file in ["hostile/progressive.jpg", "hostile/cmyk.jpg"] {
        let color = classic_color(&fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            color.r > color.g && color.g > color.b,
            "{file}: {}",
            color.hex()
        );
    }
    let gray = image::GrayImage::from_fn(64, 64, |x, _| image::Luma([(x * 4) as u8]));
    let color = classic_color(&encode(gray, image::ImageFormat::Jpeg)).expect("grayscale JPEG");
    assert!(color.r == color.g && color.g == color.b, "{}", color.hex());
}

#[test]
fn sixteen_bit_png_with_alpha_decodes() {
    let image = image::ImageBuffer::<image::Rgba<u16>, _>::from_fn(40, 40, |x, _| {
        image::Rgba([60_000, 10_000, (x * 1000) as u16, 30_000])
    });
    let color = classic_color(&encode(image, image::ImageFormat::Png)).expect("16-bit PNG");
    assert!(color.r > color.g && color.r > color.b, "{}", color.hex());
}

#[test]
fn paletted_png_with_transparency_decodes() {
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, 16, 16);
        encoder.set_color(png::ColorType::Indexed);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_palette(vec![20, 180, 60, 250, 250, 250]);
        encoder.set_trns(vec![255, 0]);
        let mut writer = encoder.write_header().expect("PNG header");
        let data: Vec<u8> = (0..256).map(|i| u8::from(i % 3 == 0)).collect();
        writer.write_image_data(&data).expect("PNG data");
    }
    let color = classic_color(&bytes).expect("paletted PNG");
    assert!(color.g > color.r && color.g > color.b, "{}", color.hex());
}

#[test]
fn webp_decodes() {
    let image = image::RgbaImage::from_fn(32, 32, |_, y| image::Rgba([30, 90, 200 - y as u8, 255]));
    let color = classic_color(&encode(image, image::ImageFormat::WebP)).expect("WebP");
    assert!(color.b > color.r && color.b > color.g, "{}", color.hex());
}

#[test]
fn large_real_image_decodes_and_the_pixel_limit_is_enforced() {
    let bytes = jpeg(3000, 2000, |x, y| [(x / 12) as u8, (y / 8) as u8, 140]);
    let report = analyze(&bytes).expect("6 megapixel JPEG");
    assert_text_contrast(&report);
    let tight = Limits {
        max_pixels: 5_000_000,
        ..Limits::default()
    };
    assert_eq!(
        analyze_with(&bytes, &tight),
        Err(ColorError::TooManyPixels {
            width: 3000,
            height: 2000,
            limit: 5_000_000
        })
    );
}

// ---------------------------------------------------------------- hostile input

#[test]
fn empty_garbage_and_oversized_inputs_are_clear_errors() {
    assert_eq!(classic_color(b""), Err(ColorError::Empty));
    assert_eq!(
        classic_color(b"GIF89a not supported"),
        Err(ColorError::UnsupportedFormat)
    );
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    assert_eq!(analyze(&garbage), Err(ColorError::UnsupportedFormat));

    let small = Limits {
        max_input_bytes: 100,
        ..Limits::default()
    };
    let bytes = fixture("covers/city.jpg");
    assert_eq!(
        analyze_with(&bytes, &small),
        Err(ColorError::InputTooLarge {
            bytes: bytes.len(),
            limit: 100
        })
    );
}

#[test]
fn garbage_after_a_valid_magic_number_is_a_decode_error() {
    for magic in [
        &b"\xff\xd8\xff\xe0"[..],
        b"\x89PNG\r\n\x1a\n",
        b"RIFF\x10\0\0\0WEBPVP8 ",
    ] {
        let mut bytes = magic.to_vec();
        bytes.extend((0..500u32).map(|i| (i * 37 % 251) as u8));
        // A damaged length field may also run past the end of the bytes.
        assert!(
            matches!(
                analyze(&bytes),
                Err(ColorError::Decode(_) | ColorError::Incomplete)
            ),
            "{magic:?}: {:?}",
            analyze(&bytes)
        );
    }
}

#[test]
fn decompression_bombs_are_refused_from_the_header() {
    let expected = Err(ColorError::TooManyPixels {
        width: 50_000,
        height: 50_000,
        limit: Limits::default().max_pixels,
    });

    // PNG: a header declaring 50000x50000, then the start of a deflate stream.
    let mut png_bomb = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png_bomb, 50_000, 50_000);
        encoder.set_color(png::ColorType::Rgb);
        let mut writer = encoder.write_header().expect("PNG header");
        writer
            .write_chunk(
                png::chunk::IDAT,
                &[0x78, 0x9c, 0xed, 0xc1, 0x01, 0x0d, 0x00],
            )
            .expect("PNG data chunk");
    }
    assert!(png_bomb.len() < 200);
    assert_eq!(analyze(&png_bomb), expected);

    // JPEG: a real small JPEG whose frame header is rewritten to 50000x50000.
    let mut jpeg_bomb = jpeg(16, 16, |_, _| [200, 100, 50]);
    let sof = jpeg_bomb
        .windows(2)
        .position(|w| w == [0xff, 0xc0])
        .expect("baseline frame header");
    jpeg_bomb[sof + 5..sof + 9].copy_from_slice(&[0xc3, 0x50, 0xc3, 0x50]);
    assert_eq!(analyze(&jpeg_bomb), expected);

    // WebP: an extended header declaring a 50000x50000 canvas.
    let mut webp_bomb = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
    let side = (50_000u32 - 1).to_le_bytes();
    webp_bomb.extend_from_slice(&side[..3]);
    webp_bomb.extend_from_slice(&side[..3]);
    let riff_size = (webp_bomb.len() as u32 - 8).to_le_bytes();
    webp_bomb[4..8].copy_from_slice(&riff_size);
    // The file is nothing but that header, so it is also incomplete.
    let result = analyze(&webp_bomb);
    assert!(
        result == expected || matches!(result, Err(ColorError::Decode(_) | ColorError::Incomplete)),
        "{result:?}"
    );
}

// ---------------------------------------------------------------- transparency

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
fn red_on_hidden_green_everywhere() -> Vec<(&'static str, Vec<u8>)> {
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

// ---------------------------------------------------------------- incomplete files

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
