//! Integration tests of trails: selectors, log file naming and bytes, delivery (exactly
//! once across simulated crashes, stopped trails, destination outages), Insights files,
//! and a destination
//! and a stream sink added from outside the crate.
//!
//! One test binary for the crate: each extra binary would relink the whole graph.

mod delivery;
mod digests;
mod extensions;
mod insights;
mod log_files;
mod selectors;
mod streams;
mod support;
