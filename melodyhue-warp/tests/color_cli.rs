//! `melodyhue color FILE...`: one line per image, failures on stderr and in the exit status.
#![allow(clippy::expect_used)]

use std::process::Command;

use melodyhue_core::color;

fn png(path: &std::path::Path, rgb: [u8; 3]) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::RgbImage::from_pixel(40, 40, image::Rgb(rgb))
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .expect("encode");
    std::fs::write(path, &bytes).expect("write");
    bytes
}

fn melodyhue_color(files: &[&std::path::Path]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_melodyhue"))
        .arg("color")
        .args(files)
        .env_clear()
        .output()
        .expect("melodyhue runs")
}

#[test]
fn prints_one_line_per_image() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (red, blue) = (dir.path().join("red.png"), dir.path().join("blue.png"));
    let red_bytes = png(&red, [220, 30, 30]);
    let blue_bytes = png(&blue, [20, 40, 230]);
    let output = melodyhue_color(&[&red, &blue]);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let lines: Vec<&str> = stdout.lines().collect();
    for (line, (path, bytes)) in lines.iter().zip([(&red, &red_bytes), (&blue, &blue_bytes)]) {
        let report = color::analyze(bytes).expect("analysable");
        assert_eq!(*line, format!("{}\t{report}", path.display()));
        assert!(
            line.contains("\tvibrant=#") && line.contains("\ttext=#"),
            "{line}"
        );
    }
    assert_eq!(lines.len(), 2);
}

#[test]
fn failures_go_to_stderr_and_the_exit_status() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let good = dir.path().join("good.png");
    png(&good, [10, 200, 90]);
    let garbage = dir.path().join("garbage.jpg");
    std::fs::write(&garbage, b"\xff\xd8\xff not really a jpeg").expect("write");
    let missing = dir.path().join("missing.png");
    let output = melodyhue_color(&[&good, &garbage, &missing]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with(&format!("{}\t#", good.display())));
    let stderr = String::from_utf8(output.stderr).expect("utf-8");
    assert!(
        stderr.contains(&format!("{}: ", garbage.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}: cannot read", missing.display())),
        "{stderr}"
    );
}

#[test]
fn needs_at_least_one_file() {
    let output = melodyhue_color(&[]);
    assert_eq!(output.status.code(), Some(2));
}
