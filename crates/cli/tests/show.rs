//! `mmappickle show`: pictures of arrays, checked by decoding what was drawn.
//!
//! Index:
//! - `png_pixels_are_the_colormap_of_the_elements`: a small float array with a
//!   NaN, with given limits, against colours computed from the colormap crate;
//!   the gray map's exact bytes; `--index` slices of a 3-D array.
//! - `masked_elements_are_transparent_and_nan_magenta`: a masked array.
//! - `robust_limits_clip_outliers`: the 2nd-98th percentile limits.
//! - `large_arrays_are_sampled_with_a_stride`: the shape after downsampling and
//!   the elements each pixel shows; a 1 GiB stub read through 10000 elements.
//! - `terminal_picture_has_the_forced_size`: half-block lines and cells.
//! - `one_dimensional_arrays_are_lines`: sparkline and line-plot PNG.
//! - `rgb_bands_are_drawn_as_colours`: `--rgb` of a (2, 2, 3) uint8 array.
//! - `python_written_arrays_are_drawn`: a big-endian array, a masked array and
//!   a Fortran-ordered array written by the Python library, and numpy's own
//!   pickle of a Fortran-ordered array stored as a generic value.
//! - `what_cannot_be_drawn_is_an_error`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mmappickle::{EmptyArray, MmapDict};

// The Python interpreters, shared with the `cli` tests.
mod support;
use support::python_mmappickle;

fn mmappickle(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mmappickle"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Runs the binary, asserts success, returns stdout.
fn ok(args: &[&str]) -> String {
    let output = mmappickle(args);
    assert!(
        output.status.success(),
        "mmappickle {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// Runs the binary, asserts failure, returns its one line of stderr.
fn fails(args: &[&str]) -> String {
    let output = mmappickle(args);
    assert_eq!(output.status.code(), Some(1), "mmappickle {args:?}");
    String::from_utf8(output.stderr).expect("UTF-8 errors")
}

/// A PNG decoded: `(width, height, RGBA pixels row-major)`.
fn decode_png(path: &Path) -> (usize, usize, Vec<[u8; 4]>) {
    let file = std::io::BufReader::new(std::fs::File::open(path).expect("the PNG exists"));
    let mut reader = png::Decoder::new(file).read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut buf).expect("one frame");
    assert_eq!(info.color_type, png::ColorType::Rgba);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let pixels = buf[..info.buffer_size()]
        .chunks_exact(4)
        .map(|p| [p[0], p[1], p[2], p[3]])
        .collect();
    (info.width as usize, info.height as usize, pixels)
}

fn viridis(t: f64) -> [u8; 4] {
    let [r, g, b] = colorous::VIRIDIS.eval_continuous(t).into_array();
    [r, g, b, 255]
}

const MAGENTA: [u8; 4] = [255, 0, 255, 255];

struct Fixture {
    _dir: tempfile::TempDir,
    file: PathBuf,
    png: PathBuf,
}

impl Fixture {
    fn new(fill: impl FnOnce(&mut MmapDict)) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("arrays.mmdpickle");
        let png = dir.path().join("out.png");
        let mut dict = MmapDict::open(&file).unwrap();
        fill(&mut dict);
        Fixture {
            _dir: dir,
            file,
            png,
        }
    }

    fn file(&self) -> &str {
        self.file.to_str().unwrap()
    }

    fn png(&self) -> &str {
        self.png.to_str().unwrap()
    }
}

#[test]
fn png_pixels_are_the_colormap_of_the_elements() {
    let mut values: Vec<f64> = (0..20).map(|v| f64::from(v) / 2.0).collect();
    values[7] = f64::NAN;
    let fixture = Fixture::new(|d| {
        d.insert_array("img", &values, &[4, 5]).unwrap();
        let cube: Vec<i16> = (0..60).collect();
        d.insert_array("cube", &cube, &[3, 4, 5]).unwrap();
    });
    let legend = ok(&[
        "show",
        fixture.file(),
        "img",
        "--out",
        fixture.png(),
        "--vmin",
        "0",
        "--vmax",
        "9.5",
    ]);
    let (width, height, pixels) = decode_png(&fixture.png);
    assert_eq!((width, height), (5, 4));
    for (index, (&value, &pixel)) in values.iter().zip(&pixels).enumerate() {
        let expected = if value.is_nan() {
            MAGENTA
        } else {
            viridis(value / 9.5)
        };
        assert_eq!(pixel, expected, "pixel {index} of value {value}");
    }
    assert_eq!(pixels[0], viridis(0.0));
    assert!(
        legend.contains("img: float64 (4, 5) -> 5x4 pixels, every element (20 read)"),
        "{legend}"
    );
    assert!(
        legend.contains("min 0, max 9.5; limits [0, 9.5]; NaN 1; masked 0"),
        "{legend}"
    );

    // Gray, exact bytes: 0 -> 0, 9.5 -> 255, linear between.
    ok(&[
        "show",
        fixture.file(),
        "img",
        "--out",
        fixture.png(),
        "--cmap",
        "gray",
        "--vmin",
        "0",
        "--vmax",
        "9.5",
    ]);
    let (_, _, pixels) = decode_png(&fixture.png);
    assert_eq!(pixels[0], [0, 0, 0, 255]);
    assert_eq!(pixels[19], [255, 255, 255, 255]);
    let level = (5.0f64 / 9.5 * 255.0).round() as u8;
    assert_eq!(pixels[10], [level, level, level, 255]);

    // A slice along the middle axis: cube[:, 2, :] is 3 x 5, element (i, j) = 20 i + 10 + j.
    ok(&[
        "show",
        fixture.file(),
        "cube",
        "--out",
        fixture.png(),
        "--index",
        ":,2,:",
        "--cmap",
        "gray",
        "--vmin",
        "10",
        "--vmax",
        "54",
    ]);
    let (width, height, pixels) = decode_png(&fixture.png);
    assert_eq!((width, height), (5, 3));
    assert_eq!(pixels[0], [0, 0, 0, 255]);
    assert_eq!(pixels[14], [255, 255, 255, 255]);
    let level = ((31.0f64 - 10.0) / 44.0 * 255.0).round() as u8;
    assert_eq!(pixels[6], [level, level, level, 255]);
}

#[test]
fn masked_elements_are_transparent_and_nan_magenta() {
    let fixture = Fixture::new(|d| {
        let data = [1.0f32, f32::NAN, 3.0, 4.0];
        d.insert_masked("m", &data, &[false, false, true, false], &[2, 2])
            .unwrap();
    });
    let legend = ok(&["show", fixture.file(), "m", "--out", fixture.png()]);
    let (_, _, pixels) = decode_png(&fixture.png);
    assert_eq!(pixels[1], MAGENTA);
    assert_eq!(pixels[2][3], 0, "masked is transparent");
    assert_eq!(pixels[0], viridis(0.0));
    assert_eq!(pixels[3], viridis(1.0));
    assert!(legend.contains("NaN 1; masked 1"), "{legend}");
    // In the terminal the masked pixel keeps the terminal's background (no 48;2 colour).
    let text = ok(&["show", fixture.file(), "m", "--width", "2", "--height", "1"]);
    let first_line = text.lines().next().unwrap();
    assert_eq!(first_line.matches("48;2;").count(), 1, "{first_line:?}");
}

#[test]
fn robust_limits_clip_outliers() {
    // 0..=99 and one huge outlier: limits from the 2nd and 98th percentiles.
    let values: Vec<f64> = (0..100).map(f64::from).chain([1e12]).collect();
    let fixture = Fixture::new(|d| d.insert_array("v", &values, &[1, 101]).unwrap());
    let legend = ok(&["show", fixture.file(), "v", "--out", fixture.png()]);
    assert!(
        legend.contains("limits [2, 98] (2nd-98th percentile)"),
        "{legend}"
    );
    let (_, _, pixels) = decode_png(&fixture.png);
    assert_eq!(
        pixels[0],
        viridis(0.0),
        "below the limits: the first colour"
    );
    assert_eq!(pixels[50], viridis(48.0 / 96.0));
    assert_eq!(pixels[100], viridis(1.0), "the outlier: the last colour");
}

#[test]
fn large_arrays_are_sampled_with_a_stride() {
    // 300 x 200, at most 100 x 100: a stride of 3 on both axes keeps the aspect.
    let values: Vec<u16> = (0..60_000u32).map(|v| (v % 65_521) as u16).collect();
    let fixture = Fixture::new(|d| {
        d.insert_array("big", &values, &[300, 200]).unwrap();
        // 16384 x 16384 float32: 1 GiB on disk as holes.
        d.insert_stub("gib", EmptyArray::new::<f32>(&[16_384, 16_384]))
            .unwrap();
    });
    let legend = ok(&[
        "show",
        fixture.file(),
        "big",
        "--out",
        fixture.png(),
        "--width",
        "100",
        "--height",
        "100",
        "--cmap",
        "gray",
        "--vmin",
        "0",
        "--vmax",
        "59997",
    ]);
    let (width, height, pixels) = decode_png(&fixture.png);
    assert_eq!((width, height), (67, 100));
    assert!(
        legend.contains("-> 67x100 pixels, one element in 3 per axis (6700 elements read)"),
        "{legend}"
    );
    for (row, col) in [(0, 0), (10, 20), (99, 66)] {
        let element = f64::from(values[3 * row * 200 + 3 * col]);
        let level = (element / 59997.0 * 255.0).round() as u8;
        assert_eq!(
            pixels[row * width + col],
            [level, level, level, 255],
            "({row}, {col})"
        );
    }

    let legend = ok(&[
        "show",
        fixture.file(),
        "gib",
        "--out",
        fixture.png(),
        "--width",
        "100",
        "--height",
        "100",
    ]);
    assert!(
        legend.contains("gib: float32 (16384, 16384) -> 100x100 pixels, one element in 164 per axis (10000 elements read)"),
        "{legend}"
    );
    let (width, height, _) = decode_png(&fixture.png);
    assert_eq!((width, height), (100, 100));
}

/// The visible cells of one terminal line (escape sequences removed).
fn cells(line: &str) -> usize {
    let mut count = 0;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            count += 1;
        }
    }
    count
}

#[test]
fn terminal_picture_has_the_forced_size() {
    let values: Vec<f64> = (0..400).map(f64::from).collect();
    let fixture = Fixture::new(|d| d.insert_array("a", &values, &[20, 20]).unwrap());
    // 10 columns x 4 lines = 10 x 8 pixels: stride 3, 7 x 7 pixels in 4 lines.
    let text = ok(&[
        "show",
        fixture.file(),
        "a",
        "--width",
        "10",
        "--height",
        "4",
    ]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "4 picture lines and the legend: {text}");
    for line in &lines[..4] {
        assert_eq!(cells(line), 7, "{line:?}");
        assert!(line.ends_with("\x1b[0m"));
    }
    // The last line has only upper pixels: no background colour.
    assert!(!lines[3].contains("48;2;"));
    assert!(
        lines[0].starts_with("\x1b[38;2;68;1;84m"),
        "viridis(0) first: {:?}",
        lines[0]
    );
    assert!(
        lines[4].starts_with("a: float64 (20, 20) -> 7x7 pixels"),
        "{}",
        lines[4]
    );
}

#[test]
fn one_dimensional_arrays_are_lines() {
    let mut values: Vec<f32> = (0..8).map(|v| v as f32).collect();
    values[5] = f32::NAN;
    let fixture = Fixture::new(|d| d.insert_array("line", &values, &[8]).unwrap());
    let text = ok(&["show", fixture.file(), "line", "--vmin", "0", "--vmax", "7"]);
    assert_eq!(text.lines().next(), Some("▁▂▃▄▅×▇█"));
    let text = ok(&["show", fixture.file(), "line", "--width", "4"]);
    assert_eq!(text.lines().next().map(|l| l.chars().count()), Some(4));

    ok(&[
        "show",
        fixture.file(),
        "line",
        "--out",
        fixture.png(),
        "--height",
        "8",
        "--vmin",
        "0",
        "--vmax",
        "7",
    ]);
    let (width, height, pixels) = decode_png(&fixture.png);
    assert_eq!((width, height), (8, 8));
    let at = |x: usize, y: usize| pixels[y * width + x];
    // Value 0 at the bottom left, 7 at the top right, NaN marked at the bottom of column 5.
    assert_eq!(at(0, 7), viridis(0.0));
    assert_eq!(at(7, 0), viridis(0.0));
    assert_eq!(at(0, 0), [255, 255, 255, 255]);
    assert_eq!(at(5, 7), MAGENTA);
}

#[test]
fn rgb_bands_are_drawn_as_colours() {
    let image: Vec<u8> = vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30];
    let fixture = Fixture::new(|d| d.insert_array("rgb", &image, &[2, 2, 3]).unwrap());
    ok(&[
        "show",
        fixture.file(),
        "rgb",
        "--rgb",
        "--out",
        fixture.png(),
    ]);
    let (width, height, pixels) = decode_png(&fixture.png);
    assert_eq!((width, height), (2, 2));
    assert_eq!(
        pixels,
        [
            [255, 0, 0, 255],
            [0, 255, 0, 255],
            [0, 0, 255, 255],
            [10, 20, 30, 255]
        ]
    );
    let error = fails(&["show", fixture.file(), "rgb", "--out", fixture.png()]);
    assert!(
        error.contains("expected 1 (a line) or 2 (an image)"),
        "{error}"
    );
}

#[test]
fn what_cannot_be_drawn_is_an_error() {
    let fixture = Fixture::new(|d| {
        d.insert("text", "not an array").unwrap();
        d.insert_array("a", &[1.0f64; 6], &[2, 3]).unwrap();
        d.insert_array("zero_d", &[1i64], &[]).unwrap();
    });
    let cases: [(&[&str], &str); 5] = [
        (&["text"], "key \"text\" holds a str: expected an array"),
        (
            &["a", "--index", "0,0,0"],
            "has 3 items: expected one per axis",
        ),
        (
            &["a", "--index", "2,:"],
            "out of bounds for axis 0 of extent 2",
        ),
        (
            &["a", "--rgb"],
            "expected 1 (a line) or 3 (an image with bands last)",
        ),
        (&["zero_d"], "a 0-d array is one number"),
    ];
    for (args, expected) in cases {
        let mut full = vec!["show", fixture.file()];
        full.extend_from_slice(args);
        let error = fails(&full);
        assert!(error.contains(expected), "{args:?}: {error}");
    }
    assert!(!fixture.png.exists(), "no PNG written for an error");
}

#[test]
fn python_written_arrays_are_drawn() {
    let fixture = Fixture::new(|_| {});
    let script = r#"
import pickle, sys
import numpy as np
import mmappickle
m = mmappickle.mmapdict(sys.argv[1])
m["c"] = np.arange(6, dtype=">f4").reshape(2, 3)
m["masked"] = np.ma.masked_array(np.arange(6.0).reshape(2, 3), mask=[[0, 1, 0], [0, 0, 0]])
m["fortran"] = np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3))
with open(sys.argv[2], "wb") as f:
    f.write(pickle.dumps(np.asfortranarray(np.arange(6, dtype="<u2").reshape(2, 3)), 2))
"#;
    let output = Command::new(python_mmappickle())
        .args(["-c", script, fixture.file(), fixture.png()])
        .output()
        .expect("Python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // numpy's own pickle of a Fortran-ordered array, stored as a generic value.
    let pickled = mmappickle::loads(&std::fs::read(&fixture.png).unwrap()).unwrap();
    let mut dict = MmapDict::open(&fixture.file).unwrap();
    dict.insert("pickled", pickled).unwrap();
    drop(dict);
    let listing = ok(&["ls", fixture.file()]);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("pickled") && l.contains(" value ")),
        "{listing}"
    );
    for key in ["c", "masked", "fortran", "pickled"] {
        let legend = ok(&[
            "show",
            fixture.file(),
            key,
            "--out",
            fixture.png(),
            "--cmap",
            "gray",
            "--vmin",
            "0",
            "--vmax",
            "5",
        ]);
        assert!(legend.contains("(2, 3) -> 3x2 pixels"), "{legend}");
        let (_, _, pixels) = decode_png(&fixture.png);
        let levels: Vec<u8> = pixels
            .iter()
            .map(|p| if p[3] == 0 { 1 } else { p[0] })
            .collect();
        // Element (i, j) = 3 i + j in C order: 0 -> 0, 5 -> 255; the masked one transparent.
        let expected: Vec<u8> = (0..6)
            .map(|v| match (key, v) {
                ("masked", 1) => 1,
                _ => (f64::from(v) / 5.0 * 255.0).round() as u8,
            })
            .collect();
        assert_eq!(levels, expected, "{key}");
    }
}
