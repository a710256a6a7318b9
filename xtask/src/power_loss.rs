//! The power-loss part of `cargo xtask stress`: every crash state of every kind of change,
//! with every placement of the commit write across a sector boundary, multi-page values
//! written through the buffer and straight to the file, and several seeds
//! (`tests/tests/power_loss/`, `RELIABILITY.md`, *Power loss*).
//!
//! It runs the test command's `every_power_loss_state_of_every_change_is_consistent` with
//! `MMAPPICKLE_POWER_LOSS_ROUND=full`; `MMAPPICKLE_POWER_LOSS_SEEDS` (4 when unset) sets the
//! number of seeds. The test prints the figures per kind of change (copy them into
//! `RELIABILITY.md`). It needs `strace`.

use crate::stress::conformance_test;
use crate::{run, step, Result};

const ROUND_VARIABLE: &str = "MMAPPICKLE_POWER_LOSS_ROUND";
const SEEDS_VARIABLE: &str = "MMAPPICKLE_POWER_LOSS_SEEDS";
const DEFAULT_SEEDS: u64 = 4;

/// Runs the full power-loss round.
pub fn stress() -> Result {
    let seeds = match std::env::var(SEEDS_VARIABLE) {
        Ok(text) => text
            .parse::<u64>()
            .ok()
            .filter(|&seeds| seeds > 0)
            .ok_or_else(|| format!("{SEEDS_VARIABLE} must be a number >= 1, found {text:?}"))?,
        Err(_) => DEFAULT_SEEDS,
    };
    step(
        &format!("power loss, every crash state of every change, {seeds} seeds"),
        || {
            let mut command = conformance_test(
                "power_loss",
                "every_power_loss_state_of_every_change_is_consistent",
            );
            command
                .env(ROUND_VARIABLE, "full")
                .env(SEEDS_VARIABLE, seeds.to_string());
            run(&mut command)
        },
    )
}
