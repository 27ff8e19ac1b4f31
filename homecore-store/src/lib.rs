//! homecore-store (under construction).
#![forbid(unsafe_code)]
