//! The archive against a real store: values, partitions, idempotence, crashes,
//! retention, the background loop and the real CloudTrail corpus.

mod support;

mod background;
mod columns;
mod compaction;
mod corpus;
mod crash;
mod docs;
mod retention;
mod sealing;
