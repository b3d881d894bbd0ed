//! Alert rules: the model (`model.rs`), and the TOML and JSON file format
//! that builds it (`config.rs`, which imports the model and never the other
//! way round).

pub(crate) mod config;
pub(crate) mod model;
