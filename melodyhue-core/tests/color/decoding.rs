//! Decoding: JPEG, PNG and WebP variants, the pixel limit, and hostile input.

use super::*;

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
