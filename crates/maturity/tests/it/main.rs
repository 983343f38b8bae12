//! Integration tests of the maturity crate (one binary: see ARCHITECTURE.md).
mod standard_text;
