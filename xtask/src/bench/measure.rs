//! Measuring: what the drivers print (`sample NAME SECONDS`, `info NAME VALUE`) per side,
//! and each row's figures (medians of the samples).

use std::collections::BTreeMap;

use super::rows::Row;
use crate::Result;

/// Which side measured a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Side {
    Python,
    Rust,
    /// Our Python package (`crates/python`), driven by the same script as Python's.
    Package,
}

impl Side {
    pub(super) fn name(self) -> &'static str {
        match self {
            Side::Python => "python",
            Side::Rust => "rust",
            Side::Package => "package",
        }
    }
}

/// Everything both drivers printed.
#[derive(Debug, Default)]
pub(super) struct Measurements {
    pub(super) samples: BTreeMap<(Side, String), Vec<f64>>,
    pub(super) info: BTreeMap<(Side, String), String>,
}

impl Measurements {
    /// Reads a driver's output: `sample NAME SECONDS` and `info NAME VALUE` lines.
    pub(super) fn parse(&mut self, side: Side, output: &str) -> Result {
        for line in output.lines() {
            let mut words = line.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("sample"), Some(name), Some(value)) => {
                    let seconds: f64 = value
                        .trim()
                        .parse()
                        .map_err(|e| format!("bad sample line {line:?}: {e}"))?;
                    self.samples
                        .entry((side, name.to_owned()))
                        .or_default()
                        .push(seconds);
                }
                (Some("info"), Some(name), Some(value)) => {
                    self.info
                        .insert((side, name.to_owned()), value.trim().to_owned());
                }
                _ => {
                    return Err(format!(
                        "unexpected line from the {} driver: {line:?}",
                        side.name()
                    ))
                }
            }
        }
        Ok(())
    }

    pub(super) fn samples(&self, side: Side, name: &str) -> &[f64] {
        self.samples
            .get(&(side, name.to_owned()))
            .map_or(&[], Vec::as_slice)
    }

    pub(super) fn info(&self, side: Side, name: &str) -> Option<&str> {
        self.info.get(&(side, name.to_owned())).map(String::as_str)
    }
}

pub(super) fn fastest(values: &[f64]) -> Option<f64> {
    values.iter().copied().min_by(f64::total_cmp)
}

pub(super) fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => sorted.get(n / 2).copied(),
        _ => Some((sorted.get(n / 2 - 1)? + sorted.get(n / 2)?) / 2.0),
    }
}

/// A row with its figures.
#[derive(Debug, Clone)]
pub(super) struct Figures<'a> {
    pub(super) row: &'a Row,
    pub(super) reference: Option<f64>,
    pub(super) rust: Option<f64>,
    pub(super) reference_samples: &'a [f64],
    pub(super) rust_samples: &'a [f64],
}

impl Figures<'_> {
    pub(super) fn ratio(&self) -> Option<f64> {
        Some(self.reference? / self.rust?)
    }

    /// The ratio of the best runs: what each side does when the machine interferes least.
    pub(super) fn best_ratio(&self) -> Option<f64> {
        Some(fastest(self.reference_samples)? / fastest(self.rust_samples)?)
    }

    pub(super) fn met(&self) -> Option<bool> {
        self.row.goal.met(self.reference, self.rust)
    }
}

pub(super) fn figures_of<'a>(rows: &'a [Row], measured: &'a Measurements) -> Vec<Figures<'a>> {
    rows.iter()
        .map(|row| {
            let reference_samples = row
                .reference_metric
                .as_ref()
                .map_or(&[][..], |(side, name)| measured.samples(*side, name));
            let rust_samples = measured.samples(row.ours, &row.rust_metric);
            Figures {
                row,
                reference: median(reference_samples),
                rust: median(rust_samples),
                reference_samples,
                rust_samples,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The median of an even count is the mean of the middle two; none of nothing.
    #[test]
    fn median_and_fastest_of_odd_even_and_empty() {
        assert_eq!(fastest(&[3.0, 1.0, 2.0]), Some(1.0));
        assert_eq!(fastest(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    // Driver lines are read per side; anything else is an error, not silently dropped.
    #[test]
    fn measurements_parse_the_line_protocol() {
        let mut measured = Measurements::default();
        measured
            .parse(Side::Rust, "sample gets 1e-3\nsample gets 3e-3\ninfo n 5\n")
            .unwrap();
        assert_eq!(measured.samples(Side::Rust, "gets"), [1e-3, 3e-3]);
        assert!(measured.samples(Side::Python, "gets").is_empty());
        assert_eq!(measured.info(Side::Rust, "n"), Some("5"));
        assert!(measured
            .parse(Side::Rust, "Traceback (most recent call last):")
            .is_err());
    }
}
