//! Shared code of the zt examples.
#![forbid(unsafe_code)]
