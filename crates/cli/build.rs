//! Links the command as a position-dependent executable on Linux.
//!
//! A position-independent executable is relocated by the dynamic loader at every start: for
//! this binary some 16,000 relocations, which write to ~70 pages of its data, one page fault
//! each. The command is started once per file by scripts, so its start is most of what a
//! small `ls` or `get` costs; a fixed load address removes that work (shared libraries, the
//! heap and the stack are still placed at random).
fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if target_os == "linux" && target_env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
