//! Recording calls that OpenTrail does not serve itself: the ones the proxy forwards, the
//! ones a service's tower layer sees, and Kubernetes audit events. Each becomes one
//! CloudTrail record, which goes to a [`sink::RecordSink`].
//!
//! - [`capture`]: a pass-through body that keeps a bounded copy of the first bytes;
//! - [`identity`]: the caller from SigV4, JWT or basic credentials, secrets dropped;
//! - [`redact`]: what a record never keeps;
//! - [`routes`]: naming calls to plain HTTP APIs;
//! - [`record`]: [`record::ObservedCall`] → record (AWS protocols through
//!   `opentrail_protocol::aws_calls`, gRPC, route rules);
//! - [`k8s_audit`]: Kubernetes audit `EventList` → records;
//! - [`client`], [`queue`], [`sink`]: shipping records to a server through a bounded
//!   queue, on disk or in memory.

pub mod capture;
pub mod client;
pub mod identity;
pub mod k8s_audit;
pub mod queue;
pub mod record;
pub mod redact;
pub mod routes;
pub mod sink;

pub use client::{ClientSetupError, IngestClient, IngestCredentials};
pub use record::{CallStart, ObservedCall, Recorder, RecordingOptions};
pub use sink::{QueueKind, RecordSink, RemoteSink, SinkFull};
