//! Integration tests of `ballast-exec`'s public API.

mod danger;
