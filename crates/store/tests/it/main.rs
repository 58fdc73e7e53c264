//! Integration tests of the event store, one binary (each extra test binary relinks).

mod backup;
mod columns;
mod consumer;
mod corpus;
mod corruption;
mod crash;
mod lookup;
mod memory;
mod model;
mod retention;
mod segment_formats;
mod segments_s3;
mod settling;
mod support;
mod upgrade;
