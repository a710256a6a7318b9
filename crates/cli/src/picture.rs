//! Pictures of arrays: a 2-D plane (or 1-D line) of a mapped array sampled
//! with a stride, so a huge array costs only the elements shown; colour limits
//! from the samples; a colormap; then a PNG, half-block terminal cells, a line
//! plot or a sparkline.

use std::io::Write;

use clap::ValueEnum;
use mmappickle::{f16, ByteOrder, DType, Kind};

use crate::error::{CliError, CliResult};

/// Colour of NaN elements: magenta, in no perceptual colormap.
pub const NAN_COLOR: Rgba = [255, 0, 255, 255];
/// Masked elements are transparent (the terminal's own background).
pub const MASKED_COLOR: Rgba = [0, 0, 0, 0];
/// Robust colour limits: these percentiles of the finite samples.
const ROBUST_PERCENTILES: (f64, f64) = (2.0, 98.0);

/// One RGBA pixel.
pub type Rgba = [u8; 4];

/// A perceptual colormap (`--cmap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Colormap {
    /// matplotlib's default: dark blue to yellow.
    Viridis,
    /// Black to light yellow through purple.
    Magma,
    /// Black to light yellow through red.
    Inferno,
    /// Blue to yellow through magenta.
    Plasma,
    /// Viridis as seen with colour-vision deficiency.
    Cividis,
    /// Rainbow-like, perceptually smoothed.
    Turbo,
    /// Black to white.
    Gray,
}

impl Colormap {
    /// The colour at `t` in `[0, 1]`.
    pub fn color(self, t: f64) -> Rgba {
        let gradient = match self {
            Colormap::Viridis => colorous::VIRIDIS,
            Colormap::Magma => colorous::MAGMA,
            Colormap::Inferno => colorous::INFERNO,
            Colormap::Plasma => colorous::PLASMA,
            Colormap::Cividis => colorous::CIVIDIS,
            Colormap::Turbo => colorous::TURBO,
            Colormap::Gray => {
                let level = unit_to_byte(t);
                return [level, level, level, 255];
            }
        };
        let [r, g, b] = gradient.eval_continuous(t.clamp(0.0, 1.0)).into_array();
        [r, g, b, 255]
    }
}

fn unit_to_byte(t: f64) -> u8 {
    (t.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Reads one element of a numeric dtype as `f64` (a complex as its modulus).
type Decode = fn(&[u8]) -> f64;

/// The decoder of `dtype`'s elements; an error for dtypes that have no number.
fn decoder(dtype: &DType) -> CliResult<Decode> {
    macro_rules! pick {
        ($t:ty) => {
            if dtype.byte_order() == ByteOrder::Big {
                (|b: &[u8]| <$t>::from_be_bytes(b.try_into().unwrap_or_default()) as f64) as Decode
            } else {
                (|b: &[u8]| <$t>::from_le_bytes(b.try_into().unwrap_or_default()) as f64) as Decode
            }
        };
    }
    macro_rules! complex {
        ($t:ty, $half:expr) => {
            if dtype.byte_order() == ByteOrder::Big {
                (|b: &[u8]| {
                    let (re, im) = b.split_at($half);
                    let re = <$t>::from_be_bytes(re.try_into().unwrap_or_default()) as f64;
                    re.hypot(<$t>::from_be_bytes(im.try_into().unwrap_or_default()) as f64)
                }) as Decode
            } else {
                (|b: &[u8]| {
                    let (re, im) = b.split_at($half);
                    let re = <$t>::from_le_bytes(re.try_into().unwrap_or_default()) as f64;
                    re.hypot(<$t>::from_le_bytes(im.try_into().unwrap_or_default()) as f64)
                }) as Decode
            }
        };
    }
    Ok(match (dtype.kind(), dtype.item_size()) {
        (Kind::Bool, 1) | (Kind::UInt, 1) => |b: &[u8]| f64::from(b[0]),
        (Kind::Int, 1) => |b: &[u8]| f64::from(b[0] as i8),
        (Kind::Int, 2) => pick!(i16),
        (Kind::Int, 4) => pick!(i32),
        (Kind::Int, 8) => pick!(i64),
        (Kind::UInt, 2) => pick!(u16),
        (Kind::UInt, 4) => pick!(u32),
        (Kind::UInt, 8) => pick!(u64),
        (Kind::Float, 2) => {
            if dtype.byte_order() == ByteOrder::Big {
                |b: &[u8]| f64::from(f16::from_be_bytes(b.try_into().unwrap_or_default()))
            } else {
                |b: &[u8]| f64::from(f16::from_le_bytes(b.try_into().unwrap_or_default()))
            }
        }
        (Kind::Float, 4) => pick!(f32),
        (Kind::Float, 8) => pick!(f64),
        (Kind::Complex, 8) => complex!(f32, 4),
        (Kind::Complex, 16) => complex!(f64, 8),
        _ => {
            return Err(CliError::new(format!(
                "an array of dtype {} has no numbers to draw: expected bool, int, float or complex",
                dtype.name()
            )))
        }
    })
}

/// Which axes of the array are drawn: fixed indices and the free axes left.
///
/// `spec` is numpy's basic indexing, one item per axis: an integer (negative
/// counts from the end) or `:`; `None` leaves every axis free.
pub fn parse_index(spec: Option<&str>, shape: &[usize]) -> CliResult<Vec<Option<usize>>> {
    let Some(spec) = spec else {
        return Ok(vec![None; shape.len()]);
    };
    let items: Vec<&str> = spec.split(',').map(str::trim).collect();
    if items.len() != shape.len() {
        return Err(CliError::new(format!(
            "--index {spec:?} has {} items: expected one per axis of shape {shape:?}",
            items.len()
        )));
    }
    items
        .iter()
        .zip(shape)
        .enumerate()
        .map(|(axis, (&item, &extent))| {
            if item == ":" {
                return Ok(None);
            }
            let index: i64 = item.parse().map_err(|_| {
                CliError::new(format!("--index item {item:?}: expected an integer or ':'"))
            })?;
            let extent_i64 = i64::try_from(extent).unwrap_or(i64::MAX);
            let resolved = if index < 0 { index + extent_i64 } else { index };
            if !(0..extent_i64).contains(&resolved) {
                return Err(CliError::new(format!(
                    "--index {index} is out of bounds for axis {axis} of extent {extent}"
                )));
            }
            Ok(Some(resolved as usize))
        })
        .collect()
}

/// A strided view of an array's raw bytes: up to three free axes (rows,
/// columns, bands), each with its extent and its stride in elements.
pub struct Plane<'a> {
    bytes: &'a [u8],
    decode: Decode,
    item_size: usize,
    /// Per element, nonzero when masked; `None` when nothing is masked.
    mask: Option<&'a [u8]>,
    base: usize,
    /// `(extent, stride)` of the free axes, outermost first.
    axes: Vec<(usize, usize)>,
}

impl<'a> Plane<'a> {
    /// The free axes of `bytes` (C order, `shape`, `dtype`) once `index` fixes the others.
    pub fn new(
        bytes: &'a [u8],
        dtype: &DType,
        shape: &[usize],
        index: &[Option<usize>],
        mask: Option<&'a [u8]>,
    ) -> CliResult<Plane<'a>> {
        let decode = decoder(dtype)?;
        let item_size = dtype.item_size();
        let n_elements = shape.iter().try_fold(1usize, |n, &e| n.checked_mul(e));
        if n_elements.and_then(|n| n.checked_mul(item_size)) != Some(bytes.len()) {
            return Err(CliError::new(format!(
                "the array has {} bytes: expected shape {shape:?} of {item_size}-byte elements",
                bytes.len()
            )));
        }
        let mut stride = 1usize;
        let mut base = 0usize;
        let mut axes = Vec::new();
        for (&extent, fixed) in shape.iter().zip(index).rev() {
            match fixed {
                Some(at) => base += at * stride,
                None => axes.push((extent, stride)),
            }
            stride *= extent;
        }
        axes.reverse();
        let mask = mask.filter(|mask| mask.len() == bytes.len() / item_size.max(1));
        Ok(Plane {
            bytes,
            decode,
            item_size,
            mask,
            base,
            axes,
        })
    }

    /// How many free axes there are.
    pub fn n_free_axes(&self) -> usize {
        self.axes.len()
    }

    /// The extents of the free axes.
    pub fn free_shape(&self) -> Vec<usize> {
        self.axes.iter().map(|&(extent, _)| extent).collect()
    }

    /// The element at flat `index`: its value, or `None` when masked.
    fn element(&self, index: usize) -> Option<f64> {
        if self.mask.is_some_and(|mask| mask[index] != 0) {
            return None;
        }
        let start = index * self.item_size;
        Some((self.decode)(&self.bytes[start..start + self.item_size]))
    }
}

/// What was read of a plane: a grid of `rows x cols` pixels of `bands` values.
#[derive(Debug)]
pub struct Samples {
    /// Pixel rows.
    pub rows: usize,
    /// Pixel columns.
    pub cols: usize,
    /// Values per pixel (1, or 3-4 for RGB(A)).
    pub bands: usize,
    /// The stride between two samples along each axis, in elements (1: every element).
    pub step: usize,
    /// Row-major, `bands` per pixel; `None` for a masked element.
    pub values: Vec<Option<f64>>,
}

impl Samples {
    /// Samples `plane` (1 free axis: a line; 2: an image; 3: an image with bands
    /// last) with one stride for both image axes, so that it fits in
    /// `max_cols x max_rows` keeping its aspect; only the sampled elements are read.
    pub fn take(plane: &Plane<'_>, max_cols: usize, max_rows: usize) -> CliResult<Samples> {
        let ((n_rows, row_stride), (cols, col_stride), (n_bands, band_stride)) =
            match *plane.axes.as_slice() {
                [cols] => ((1, 0), cols, (1, 0)),
                [rows, cols] => (rows, cols, (1, 0)),
                [rows, cols, bands] => (rows, cols, bands),
                _ => {
                    return Err(CliError::new(format!(
                        "{} free axes: expected 1 (a line), 2 (an image) or 3 with --rgb",
                        plane.axes.len()
                    )))
                }
            };
        let step = n_rows
            .div_ceil(max_rows.max(1))
            .max(cols.div_ceil(max_cols.max(1)))
            .max(1);
        let out_rows = n_rows.div_ceil(step);
        let out_cols = cols.div_ceil(step);
        let mut values = Vec::with_capacity(out_rows * out_cols * n_bands);
        for row in (0..n_rows).step_by(step) {
            for col in (0..cols).step_by(step) {
                for band in 0..n_bands {
                    let index =
                        plane.base + row * row_stride + col * col_stride + band * band_stride;
                    values.push(plane.element(index));
                }
            }
        }
        Ok(Samples {
            rows: out_rows,
            cols: out_cols,
            bands: n_bands,
            step,
            values,
        })
    }

    /// The finite sampled values.
    fn finite(&self) -> impl Iterator<Item = f64> + '_ {
        self.values
            .iter()
            .flatten()
            .copied()
            .filter(|v| v.is_finite())
    }

    /// Minimum and maximum of the finite samples.
    pub fn min_max(&self) -> Option<(f64, f64)> {
        self.finite().fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
    }

    /// NaN and masked samples.
    pub fn count_nan_masked(&self) -> (usize, usize) {
        let nan = self.values.iter().flatten().filter(|v| v.is_nan()).count();
        let masked = self.values.iter().filter(|v| v.is_none()).count();
        (nan, masked)
    }

    /// Colour limits: those given, the others from the robust percentiles.
    pub fn limits(&self, vmin: Option<f64>, vmax: Option<f64>) -> (f64, f64) {
        let mut finite: Vec<f64> = self.finite().collect();
        let mut percentile = |p: f64| {
            if finite.is_empty() {
                return 0.0;
            }
            let rank = ((p / 100.0) * (finite.len() - 1) as f64).round() as usize;
            *finite.select_nth_unstable_by(rank, f64::total_cmp).1
        };
        let lo = vmin.unwrap_or_else(|| percentile(ROBUST_PERCENTILES.0));
        let hi = vmax.unwrap_or_else(|| percentile(ROBUST_PERCENTILES.1));
        (lo, hi)
    }

    /// The pixels, row-major: one band through `cmap`, or 3-4 bands as RGB(A),
    /// each scaled from `limits` to 0-255.
    pub fn to_rgba(&self, cmap: Colormap, (lo, hi): (f64, f64)) -> Vec<Rgba> {
        let scale = |v: f64| {
            if hi > lo {
                (v - lo) / (hi - lo)
            } else if v >= hi {
                1.0
            } else {
                0.0
            }
        };
        self.values
            .chunks(self.bands.max(1))
            .map(|pixel| {
                if pixel.iter().any(Option::is_none) {
                    return MASKED_COLOR;
                }
                let pixel: Vec<f64> = pixel.iter().flatten().copied().collect();
                if pixel.iter().any(|v| v.is_nan()) {
                    return NAN_COLOR;
                }
                match pixel.as_slice() {
                    [value] => cmap.color(scale(*value)),
                    [r, g, b] => {
                        let [r, g, b] = [r, g, b].map(|v| unit_to_byte(scale(*v)));
                        [r, g, b, 255]
                    }
                    [r, g, b, a] => [r, g, b, a].map(|v| unit_to_byte(scale(*v))),
                    _ => NAN_COLOR,
                }
            })
            .collect()
    }
}

/// A line plot of a 1-D sample: `height` rows, one column per sample, a white
/// background, the line in the colormap's darkest colour, NaN as a mark at the
/// bottom, masked samples as gaps.
pub fn line_plot(
    samples: &Samples,
    cmap: Colormap,
    (lo, hi): (f64, f64),
    height: usize,
) -> Vec<Rgba> {
    let height = height.max(2);
    let width = samples.cols;
    let mut pixels = vec![[255, 255, 255, 255]; width * height];
    let line = cmap.color(0.0);
    let row_of = |v: f64| {
        let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
        ((1.0 - t.clamp(0.0, 1.0)) * (height - 1) as f64).round() as usize
    };
    let mut previous: Option<usize> = None;
    for (x, value) in samples.values.iter().enumerate() {
        match value {
            Some(v) if v.is_nan() => {
                for y in height.saturating_sub(3)..height {
                    pixels[y * width + x] = NAN_COLOR;
                }
                previous = None;
            }
            Some(v) => {
                let y = row_of(*v);
                let (top, bottom) = match previous {
                    Some(p) => (p.min(y), p.max(y)),
                    None => (y, y),
                };
                for row in top..=bottom {
                    pixels[row * width + x] = line;
                }
                previous = Some(y);
            }
            None => previous = None,
        }
    }
    pixels
}

/// Writes `pixels` (`width x height`, row-major) as an 8-bit RGBA PNG.
pub fn write_png(out: impl Write, width: usize, height: usize, pixels: &[Rgba]) -> CliResult {
    let too_large = || CliError::new("the picture is too large for a PNG");
    let width = u32::try_from(width).map_err(|_| too_large())?;
    let height = u32::try_from(height).map_err(|_| too_large())?;
    let mut encoder = png::Encoder::new(out, width, height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let png_error = |err: png::EncodingError| CliError::new(format!("cannot write the PNG: {err}"));
    let mut writer = encoder.write_header().map_err(png_error)?;
    writer
        .write_image_data(pixels.as_flattened())
        .map_err(png_error)?;
    writer.finish().map_err(png_error)
}

/// Draws `pixels` with 24-bit colour half blocks: each character cell is two
/// pixels, the upper one its foreground (`▀`), the lower one its background;
/// transparent pixels keep the terminal's own colours.
pub fn write_half_blocks(
    out: &mut dyn Write,
    width: usize,
    height: usize,
    pixels: &[Rgba],
) -> CliResult {
    let opaque = |pixel: Rgba| (pixel[3] != 0).then_some(pixel);
    for top_row in (0..height).step_by(2) {
        for x in 0..width {
            let top = opaque(pixels[top_row * width + x]);
            let bottom = (top_row + 1 < height)
                .then(|| opaque(pixels[(top_row + 1) * width + x]))
                .flatten();
            match (top, bottom) {
                (Some([r, g, b, _]), Some([br, bg, bb, _])) => write!(
                    out,
                    "\x1b[38;2;{r};{g};{b}m\x1b[48;2;{br};{bg};{bb}m\u{2580}"
                )?,
                (Some([r, g, b, _]), None) => {
                    write!(out, "\x1b[49m\x1b[38;2;{r};{g};{b}m\u{2580}")?
                }
                (None, Some([r, g, b, _])) => {
                    write!(out, "\x1b[49m\x1b[38;2;{r};{g};{b}m\u{2584}")?
                }
                (None, None) => write!(out, "\x1b[0m ")?,
            }
        }
        writeln!(out, "\x1b[0m")?;
    }
    Ok(())
}

/// A one-line sparkline of a 1-D sample: eight block heights between the
/// limits, `×` for NaN, a space for masked samples.
pub fn sparkline(samples: &Samples, (lo, hi): (f64, f64)) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    samples
        .values
        .iter()
        .map(|value| match value {
            None => ' ',
            Some(v) if v.is_nan() => '×',
            Some(v) => {
                let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
                BARS[(t.clamp(0.0, 1.0) * 7.0).round() as usize]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f64_bytes(values: &[f64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn index_fixes_axes_and_counts_from_the_end() {
        assert_eq!(
            parse_index(Some("5,:,-1"), &[10, 4, 3]).unwrap(),
            [Some(5), None, Some(2)]
        );
        assert!(parse_index(Some("10,:,:"), &[10, 4, 3])
            .unwrap_err()
            .to_string()
            .contains("out of bounds for axis 0 of extent 10"));
        assert!(parse_index(Some(":,:"), &[10, 4, 3]).is_err());
        assert!(parse_index(Some("x,:,:"), &[10, 4, 3]).is_err());
    }

    #[test]
    fn sampling_strides_and_reads_only_what_it_shows() {
        // 10 x 10 values 0..100, shown in at most 5 x 3: one stride of 4 for both axes.
        let values: Vec<f64> = (0..100).map(f64::from).collect();
        let bytes = f64_bytes(&values);
        let dtype = DType::parse("float64").unwrap();
        let plane = Plane::new(&bytes, &dtype, &[10, 10], &[None, None], None).unwrap();
        let samples = Samples::take(&plane, 5, 3).unwrap();
        assert_eq!((samples.rows, samples.cols, samples.step), (3, 3, 4));
        assert_eq!(samples.values.len(), 9);
        assert_eq!(samples.values[4], Some(44.0));
        // A slice along the middle axis of a 3-D array.
        let plane = Plane::new(&bytes, &dtype, &[2, 5, 10], &[None, Some(1), None], None).unwrap();
        let samples = Samples::take(&plane, 100, 100).unwrap();
        assert_eq!((samples.rows, samples.cols), (2, 10));
        assert_eq!(samples.values[10], Some(60.0));
    }

    #[test]
    fn big_endian_and_complex_elements_decode() {
        let dtype = DType::parse(">i4").unwrap();
        assert_eq!(decoder(&dtype).unwrap()(&(-7i32).to_be_bytes()), -7.0);
        let dtype = DType::parse("complex64").unwrap();
        let bytes: Vec<u8> = [3.0f32, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(decoder(&dtype).unwrap()(&bytes), 5.0);
        let error = decoder(&DType::parse("<U5").unwrap()).unwrap_err();
        assert!(error.to_string().contains("no numbers to draw"), "{error}");
    }

    #[test]
    fn limits_are_robust_unless_given() {
        let values: Vec<f64> = (0..=100).map(f64::from).chain([f64::NAN, 1e9]).collect();
        let bytes = f64_bytes(&values);
        let dtype = DType::parse("float64").unwrap();
        let plane = Plane::new(&bytes, &dtype, &[values.len()], &[None], None).unwrap();
        let samples = Samples::take(&plane, 1000, 1).unwrap();
        assert_eq!(samples.limits(None, None), (2.0, 99.0));
        assert_eq!(samples.limits(Some(-1.0), None), (-1.0, 99.0));
        assert_eq!(samples.min_max(), Some((0.0, 1e9)));
        assert_eq!(samples.count_nan_masked(), (1, 0));
        assert_eq!(
            sparkline(&samples, (0.0, 100.0)).chars().nth(101),
            Some('×')
        );
    }
}
