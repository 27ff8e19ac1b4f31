//! homecore-package (under construction).
#![forbid(unsafe_code)]
