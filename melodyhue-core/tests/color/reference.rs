//! Reference colours (the earlier service's, published ΔE and WCAG data) and formatting.

use super::*;

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
