//! The fuzz targets (see `targets.rs`), shared by the AFL binaries.
pub mod targets;
