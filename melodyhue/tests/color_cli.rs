//! `melodyhue color PATH...`: one line per image (text or JSON), folders searched, failures
//! in the output and the exit status, and a quiet stop when the output is closed.
#![allow(clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

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
    melodyhue_color_with(&[], files)
}

fn melodyhue_color_with(options: &[&str], files: &[&std::path::Path]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_melodyhue"))
        .arg("color")
        .args(options)
        .args(files)
        .env_clear()
        .output()
        .expect("melodyhue runs")
}

fn json_lines(output: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8(output.stdout.clone())
        .expect("utf-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
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

#[test]
fn json_gives_one_object_per_image_and_line_failures_included() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let red = dir.path().join("red.png");
    let red_bytes = png(&red, [220, 30, 30]);
    let missing = dir.path().join("missing.png");
    let output = melodyhue_color_with(&["--json"], &[&red, &missing]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(output.stderr.is_empty(), "{output:?}");
    let lines = json_lines(&output);
    let report = color::analyze(&red_bytes).expect("analysable");
    let palette = report.palette;
    assert_eq!(
        lines[0],
        serde_json::json!({
            "path": red.display().to_string(),
            "color": report.color.hex(),
            "palette": {
                "vibrant": palette.vibrant.hex(),
                "muted": palette.muted.hex(),
                "dark_vibrant": palette.dark_vibrant.hex(),
                "dark_muted": palette.dark_muted.hex(),
                "light_vibrant": palette.light_vibrant.hex(),
                "light_muted": palette.light_muted.hex(),
            },
            "text_color": report.text_color.hex(),
        })
    );
    assert_eq!(lines[1]["path"], missing.display().to_string());
    assert!(
        lines[1]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("cannot read the file")),
        "{}",
        lines[1]
    );
    assert_eq!(lines.len(), 2);
}

#[test]
fn folders_are_searched_for_images_in_name_order() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let nested = dir.path().join("b-more").join("deeper");
    std::fs::create_dir_all(&nested).expect("folders");
    png(&dir.path().join("c.png"), [20, 200, 40]);
    png(&dir.path().join("a.PNG"), [220, 30, 30]);
    png(&nested.join("z.png"), [20, 40, 230]);
    std::fs::write(dir.path().join("notes.txt"), "not an image").expect("write");
    std::fs::write(dir.path().join("cover"), "no extension: not looked at").expect("write");
    let single = tempfile::tempdir().expect("temporary directory");
    // A file named on the command line is read whatever its name.
    let unnamed = single.path().join("cover.bin");
    png(&unnamed, [200, 200, 30]);

    let output = melodyhue_color_with(&["--json"], &[dir.path(), &unnamed]);
    assert!(output.status.success(), "{output:?}");
    let paths: Vec<String> = json_lines(&output)
        .iter()
        .map(|line| line["path"].as_str().expect("path").to_owned())
        .collect();
    let expected: Vec<String> = [
        dir.path().join("a.PNG"),
        nested.join("z.png"),
        dir.path().join("c.png"),
        unnamed,
    ]
    .iter()
    .map(|p| p.display().to_string())
    .collect();
    assert_eq!(paths, expected);
}

#[test]
fn incomplete_and_transparent_images_are_reported_as_such() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut jpeg = Vec::new();
    image::RgbImage::from_fn(64, 64, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 4) as u8, 90])
    })
    .write_to(
        &mut std::io::Cursor::new(&mut jpeg),
        image::ImageFormat::Jpeg,
    )
    .expect("encode");
    let cut = dir.path().join("cut.jpg");
    std::fs::write(&cut, &jpeg[..jpeg.len() / 2]).expect("write");
    let mut clear = Vec::new();
    image::RgbaImage::from_pixel(8, 8, image::Rgba([30, 255, 30, 0]))
        .write_to(
            &mut std::io::Cursor::new(&mut clear),
            image::ImageFormat::Png,
        )
        .expect("encode");
    let transparent = dir.path().join("clear.png");
    std::fs::write(&transparent, &clear).expect("write");

    let output = melodyhue_color_with(&["--json"], &[&cut, &transparent]);
    assert_eq!(output.status.code(), Some(1));
    let lines = json_lines(&output);
    assert_eq!(
        lines[0]["error"],
        color::ColorError::Incomplete.to_string(),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[1]["error"],
        color::ColorError::Transparent.to_string()
    );

    let text = melodyhue_color(&[&cut]);
    let stderr = String::from_utf8(text.stderr).expect("utf-8");
    assert_eq!(
        stderr.trim_end(),
        format!("{}: {}", cut.display(), color::ColorError::Incomplete)
    );
}

#[test]
fn a_closed_output_ends_the_command_quietly() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let image = dir.path().join("image.png");
    png(&image, [20, 100, 200]);
    // Far more output than a pipe buffers (64 KiB on Linux), so that the command is still
    // writing when the reader goes away.
    let many = vec![image.as_os_str(); 2000];
    for options in [&[][..], &["--json"][..]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_melodyhue"))
            .arg("color")
            .args(options)
            .args(&many)
            .env_clear()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("melodyhue runs");
        // `| head -1`: read one line, then close the pipe.
        let mut first = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("first line");
        assert!(first.contains("image.png"), "{first}");
        let output = child.wait_with_output().expect("melodyhue ends");
        assert_eq!(output.status.code(), Some(0), "{options:?}: {output:?}");
        assert!(
            output.stderr.is_empty(),
            "{options:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
