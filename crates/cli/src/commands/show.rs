//! `show`: a picture of an array, as a PNG or in the terminal.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;
use mmappickle::{DType, Item, OwnedArray};

use crate::arrays;
use crate::error::{CliError, CliResult};
use crate::picture::{self, Colormap, Plane, Samples};
use crate::store::ReadDict;

/// Largest side of a PNG unless `--width` / `--height` say otherwise.
const PNG_MAX_SIDE: usize = 1024;
/// Height of a line plot PNG unless `--height` says otherwise.
const LINE_PLOT_HEIGHT: usize = 256;
/// The picture's size when the output is not a terminal and none is forced.
const DEFAULT_TERMINAL: (usize, usize) = (80, 24);

/// Arguments of `show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The mmappickle file.
    file: PathBuf,
    /// The key of an array (mapped, masked, or pickled by numpy inside a value).
    key: String,
    /// Write a PNG here instead of drawing in the terminal.
    #[arg(long, value_name = "PNG")]
    out: Option<PathBuf>,
    /// numpy-style index choosing what is drawn, one item per axis: an integer
    /// or `:`, e.g. `5,:,:` (two `:` for an image, one for a line, three with --rgb).
    #[arg(long, allow_hyphen_values = true)]
    index: Option<String>,
    /// Draw a last axis of 3 or 4 bands as RGB(A) instead of through a colormap.
    #[arg(long)]
    rgb: bool,
    /// The colormap.
    #[arg(long, value_enum, default_value_t = Colormap::Viridis)]
    cmap: Colormap,
    /// The value drawn as the colormap's first colour (default: the 2nd percentile).
    #[arg(long, allow_hyphen_values = true)]
    vmin: Option<f64>,
    /// The value drawn as the colormap's last colour (default: the 98th percentile).
    #[arg(long, allow_hyphen_values = true)]
    vmax: Option<f64>,
    /// Largest width: pixels of a PNG, characters in the terminal (default: 1024 / the terminal's).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    width: Option<u16>,
    /// Largest height: pixels of a PNG (256 for a line plot), lines in the terminal
    /// (default: 1024 / the terminal's).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    height: Option<u16>,
}

/// `show`: samples the array of `args.key` through its map and draws it.
pub fn show(args: &ShowArgs, out: &mut dyn Write) -> CliResult {
    let dict = ReadDict::open(&args.file)?;
    let item = dict.get(&args.key)?;
    let owned;
    // Only the sampled elements are read: no readahead around them. A hint,
    // so its refusal changes nothing but speed.
    let (dtype, shape, bytes, mask): (&DType, &[usize], &[u8], Option<&[u8]>) = match &item {
        Item::Array(map) => {
            let _ = map.advise_random();
            (map.dtype(), map.shape(), map.bytes(), None)
        }
        // A 0-d mask means "nothing masked".
        Item::Masked(masked) => {
            let _ = (masked.data.advise_random(), masked.mask.advise_random());
            (
                masked.data.dtype(),
                masked.data.shape(),
                masked.data.bytes(),
                Some(masked.mask.bytes()).filter(|_| !masked.mask.shape().is_empty()),
            )
        }
        Item::Value(value) => {
            owned = OwnedArray::from_value(value)
                .and_then(Result::ok)
                .ok_or_else(|| not_an_array(&args.key, value.type_name()))?;
            (&owned.dtype, &owned.shape, &owned.data, None)
        }
        Item::Other(other) => return Err(not_an_array(&args.key, other.pickler())),
    };
    let index = picture::parse_index(args.index.as_deref(), shape)?;
    let plane = Plane::new(bytes, dtype, shape, &index, mask)?;
    let free = plane.free_shape();
    check_free_axes(shape, &free, args.rgb)?;
    let is_line = plane.n_free_axes() == 1;
    let (max_cols, max_rows) = picture_box(args, is_line);
    let samples = Samples::take(&plane, max_cols, max_rows)?;
    let (limits, limits_source) = color_limits(args, dtype, &samples);
    let (width, height, pixels) = if is_line {
        let height = args.height.map_or(LINE_PLOT_HEIGHT, usize::from);
        let pixels = picture::line_plot(&samples, args.cmap, limits, height);
        (samples.cols, height.max(2), pixels)
    } else {
        let pixels = samples.to_rgba(args.cmap, limits);
        (samples.cols, samples.rows, pixels)
    };
    match &args.out {
        Some(png_path) => {
            let file = File::create(png_path)
                .map_err(|err| CliError::from(err).context(png_path.display()))?;
            let mut writer = BufWriter::new(file);
            picture::write_png(&mut writer, width, height, &pixels)?;
            writer
                .flush()
                .map_err(|err| CliError::from(err).context(png_path.display()))?;
            writeln!(
                out,
                "wrote {} ({width}x{height} pixels)",
                png_path.display()
            )?;
        }
        None if is_line => writeln!(out, "{}", picture::sparkline(&samples, limits))?,
        None => picture::write_half_blocks(out, width, height, &pixels)?,
    }
    writeln!(
        out,
        "{}",
        legend(
            args,
            dtype,
            shape,
            &samples,
            (limits, limits_source),
            is_line
        )
    )?;
    Ok(())
}

/// What can be drawn: 1 free axis (a line), 2 (an image), 3 with `--rgb`
/// (bands last, 3 or 4 of them), none of extent 0.
fn check_free_axes(shape: &[usize], free: &[usize], rgb: bool) -> CliResult {
    let wanted = if rgb { 3 } else { 2 };
    if shape.is_empty() {
        return Err(CliError::new(
            "a 0-d array is one number: nothing to draw (print it with `get`)",
        ));
    }
    if free.len() != 1 && free.len() != wanted {
        return Err(CliError::new(format!(
            "{} free axes of extents {free:?}: expected 1 (a line) or {wanted} ({}); \
             choose them with --index, e.g. --index {}",
            free.len(),
            if rgb {
                "an image with bands last"
            } else {
                "an image"
            },
            example_index(shape.len(), wanted)
        )));
    }
    if rgb && !matches!(free.last(), Some(3 | 4)) {
        return Err(CliError::new(format!(
            "--rgb draws a last axis of 3 or 4 bands: found extents {free:?}"
        )));
    }
    if free.contains(&0) {
        return Err(CliError::new(format!(
            "nothing to draw: the free axes have extents {free:?}"
        )));
    }
    Ok(())
}

/// The colour limits and where they come from, for the legend.
fn color_limits(args: &ShowArgs, dtype: &DType, samples: &Samples) -> ((f64, f64), &'static str) {
    match (args.vmin, args.vmax) {
        (Some(vmin), Some(vmax)) => ((vmin, vmax), ""),
        // 8-bit images are already 0-255.
        (vmin, vmax) if args.rgb && dtype.name() == "uint8" => (
            (vmin.unwrap_or(0.0), vmax.unwrap_or(255.0)),
            " (uint8 range where not given)",
        ),
        (None, None) => (samples.limits(None, None), " (2nd-98th percentile)"),
        (vmin, vmax) => (samples.limits(vmin, vmax), " (percentile where not given)"),
    }
}

fn not_an_array(key: &str, found: &str) -> CliError {
    CliError::new(format!("key {key:?} holds a {found}: expected an array"))
}

/// `0,:,:`-like: leading axes fixed at 0, the last `free` left free.
fn example_index(n_dims: usize, free: usize) -> String {
    let fixed = n_dims.saturating_sub(free);
    let items: Vec<&str> = (0..n_dims)
        .map(|axis| if axis < fixed { "0" } else { ":" })
        .collect();
    items.join(",")
}

/// The largest picture, in samples: `(columns, rows)`.
fn picture_box(args: &ShowArgs, is_line: bool) -> (usize, usize) {
    let width = args.width.map(usize::from);
    let height = args.height.map(usize::from);
    let (cols, rows) = if args.out.is_some() {
        (
            width.unwrap_or(PNG_MAX_SIDE),
            height.unwrap_or(PNG_MAX_SIDE),
        )
    } else {
        let (term_cols, term_lines) = terminal_size();
        // Two pixels per line; two lines left for the legend and the prompt.
        let lines = height.unwrap_or(term_lines.saturating_sub(2)).max(1);
        (width.unwrap_or(term_cols).max(1), lines * 2)
    };
    (cols, if is_line { 1 } else { rows })
}

/// The terminal's `(columns, lines)` when stdout is one, else [`DEFAULT_TERMINAL`].
fn terminal_size() -> (usize, usize) {
    let stdout = std::io::stdout();
    if !stdout.is_terminal() {
        return DEFAULT_TERMINAL;
    }
    console::Term::stdout()
        .size_checked()
        .map_or(DEFAULT_TERMINAL, |(lines, cols)| {
            (usize::from(cols), usize::from(lines))
        })
}

/// One line: what was drawn and how, e.g. `img: float64 (2000, 2000) -> 100x100 pixels,
/// one element in 20 per axis (10000 elements read); min 0, max 1; limits [..] (..); NaN 0;
/// masked 0; cmap viridis`. Min, max and the counts are of the elements read.
fn legend(
    args: &ShowArgs,
    dtype: &DType,
    shape: &[usize],
    samples: &Samples,
    ((lo, hi), limits_source): ((f64, f64), &str),
    is_line: bool,
) -> String {
    let mut text = format!(
        "{}: {} {}",
        args.key,
        dtype.name(),
        arrays::shape_repr(shape)
    );
    if let Some(index) = &args.index {
        text.push_str(&format!("[{index}]"));
    }
    if is_line {
        text.push_str(&format!(" -> {} samples", samples.cols));
    } else {
        text.push_str(&format!(" -> {}x{} pixels", samples.cols, samples.rows));
    }
    let n_read = samples.values.len();
    match samples.step {
        1 => text.push_str(&format!(", every element ({n_read} read)")),
        step => text.push_str(&format!(
            ", one element in {step} per axis ({n_read} elements read)"
        )),
    }
    if let Some((min, max)) = samples.min_max() {
        text.push_str(&format!("; min {min}, max {max}"));
    }
    text.push_str(&format!("; limits [{lo}, {hi}]{limits_source}"));
    let (nan, masked) = samples.count_nan_masked();
    text.push_str(&format!("; NaN {nan}; masked {masked}"));
    if !args.rgb {
        text.push_str(&format!("; cmap {:?}", args.cmap).to_lowercase());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_index_leaves_the_last_axes_free() {
        assert_eq!(example_index(4, 2), "0,0,:,:");
        assert_eq!(example_index(3, 3), ":,:,:");
    }
}
