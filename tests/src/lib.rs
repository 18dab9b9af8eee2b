//! Shared helpers of the end-to-end tests. See `tests/tests/*.rs`.

pub mod asl;
