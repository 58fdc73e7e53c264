//! Integration tests of trails: selectors, log file naming and bytes, and delivery
//! (exactly once across simulated crashes, stopped trails, destination outages).
//!
//! One test binary for the crate: each extra binary would relink the whole graph.

mod delivery;
mod digests;
mod log_files;
mod selectors;
mod streams;
mod support;
