//! AWS wire protocols for OpenTrail.
//!
//! This is the only crate that knows HTTP headers and AWS JSON shapes. Everything here is
//! plain data in, plain data out: the server maps [`error::WireResponse`] onto its HTTP
//! framework, and fills the response inputs from its own types.
//!
//! - [`sigv4`]: Signature Version 4 verification (server) and signing (CLI).
//! - [`aws_calls`]: AWS calls seen from outside (the recording proxy): service, operation,
//!   parameters and resources of a request in any AWS protocol, and the error a response
//!   carries.
//! - [`error`]: error codes, HTTP statuses, and error rendering for both protocols.
//! - [`json11`]: awsJson1_1 dispatch (`X-Amz-Target`), body parsing and success rendering.
//! - [`lookup_events`]: LookupEvents request validation and response shapes.
//! - [`insights_metrics`]: ListInsightsMetricData validation, paging and response shapes.
//! - [`token`]: stateless, parameter-bound `NextToken` codec.
//! - [`cloudtrail_data`]: PutAuditEvents (restJson1) and the record CloudTrail stores for a
//!   channel event.
//! - [`channels`]: CreateChannel / GetChannel / ListChannels / UpdateChannel /
//!   DeleteChannel shapes.
//! - [`public_keys`]: ListPublicKeys (digest signing keys, PKCS#1 DER in base64).
//! - [`time`]: epoch-seconds numbers, milliseconds and RFC 3339 text.
//! - [`trails`]: the trail operations' shapes and their validation (names, ARNs, buckets,
//!   prefixes, selectors).
//! - [`insight_selectors`]: PutInsightSelectors / GetInsightSelectors on trails.

pub mod aws_calls;
pub mod channels;
pub mod cloudtrail_data;
pub mod error;
pub mod insight_selectors;
pub mod insights_metrics;
pub mod json11;
pub mod lake;
pub mod lookup_events;
pub mod native;
pub mod public_keys;
pub mod sigv4;
pub mod time;
pub mod token;
pub mod trails;

pub use error::{AwsError, WireResponse};
