//! Pickle opcodes (placeholder until the opcode work lands).

/// One pickle opcode with its decoded argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Op<'a> {
    /// `STOP`.
    Stop,
    /// Placeholder.
    Placeholder(&'a [u8]),
}
