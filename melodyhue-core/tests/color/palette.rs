//! Palette properties: vibrant and muted swatches, grey and extreme images, the text colour.

use super::*;

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
