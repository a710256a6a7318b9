//! Cross-language conformance tests.
