//! Records each request of an axum or tonic service into OpenTrail, as a CloudTrail record,
//! with one layer:
//!
//! ```no_run
//! # async fn example() -> Result<(), opentrail_recorder::ClientSetupError> {
//! use opentrail_tower::{Client, RecordLayer};
//! use opentrail_recorder::IngestCredentials;
//!
//! let credentials = IngestCredentials {
//!     access_key_id: "OTAK…".into(),
//!     secret_access_key: "…".into(),
//! };
//! let client = Client::new("http://127.0.0.1:4580", credentials, "us-east-1")?;
//! let app: axum::Router = axum::Router::new()
//!     .route("/v1/orders/{id}", axum::routing::delete(|| async { "deleted" }))
//!     .layer(RecordLayer::new(client.clone()).event_source("orders.example.com"));
//! # Ok(()) }
//! ```
//!
//! The caller is read from the request's credentials (SigV4, a JWT's claims, basic auth;
//! never stored), the name from route rules or the method and path, the error from the
//! response, exactly as the recording proxy does (`opentrail_recorder`). Requests are
//! recorded once their response body has been sent, asynchronously: a bounded in-memory
//! queue (10,000 records by default) feeds a task that ships batches to OpenTrail with
//! retries. When the queue is full a record is dropped and counted
//! (`opentrail_recorder_records_refused_total`); the request itself is never slowed or
//! failed. Request bodies are not read (the service owns them), so parameters come from
//! the path and query.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderMap, Request, Response};
use http_body::Body;
use opentrail_recorder::capture::{Captured, CapturingBody, snapshot};
use opentrail_recorder::{
    CallStart, ClientSetupError, IngestClient, IngestCredentials, QueueKind, RecordSink, Recorder,
    RecordingOptions, RemoteSink,
};

/// Records kept in memory for OpenTrail by default.
pub const QUEUE_RECORDS_DEFAULT: usize = 10_000;
/// Bytes of an error response body read for its error code.
const ERROR_BODY_BYTES: usize = 16 * 1024;

/// A connection to OpenTrail with its queue; cheap to clone.
#[derive(Clone)]
pub struct Client {
    sink: RemoteSink,
}

impl Client {
    /// Starts shipping to `endpoint` with a key that may ingest. Call inside a tokio
    /// runtime.
    pub fn new(
        endpoint: &str,
        credentials: IngestCredentials,
        region: &str,
    ) -> Result<Client, ClientSetupError> {
        Client::with_queue(endpoint, credentials, region, QUEUE_RECORDS_DEFAULT)
    }

    /// [`Client::new`] with a queue of `records_max` records.
    pub fn with_queue(
        endpoint: &str,
        credentials: IngestCredentials,
        region: &str,
        records_max: usize,
    ) -> Result<Client, ClientSetupError> {
        let client = IngestClient::new(endpoint, credentials, region)?;
        let sink = RemoteSink::start(client, QueueKind::Memory { records_max })?;
        Ok(Client { sink })
    }

    /// Waits until everything recorded so far is stored by OpenTrail (at shutdown), or
    /// `timeout` passes; returns whether it all was.
    pub async fn flush(&self, timeout: Duration) -> bool {
        self.sink.flush(timeout).await
    }
}

/// The layer: wrap a service with [`RecordLayer::new`].
#[derive(Clone)]
pub struct RecordLayer {
    recorder: Arc<Recorder>,
    sink: Arc<dyn RecordSink>,
}

impl RecordLayer {
    pub fn new(client: Client) -> RecordLayer {
        RecordLayer {
            recorder: Arc::new(Recorder::new(RecordingOptions::default(), "service")),
            sink: Arc::new(client.sink),
        }
    }

    /// The `eventSource` of the service's calls (default `service`).
    pub fn event_source(self, event_source: &str) -> RecordLayer {
        let mut options = self.recorder.options().clone();
        options.event_source = Some(event_source.to_owned());
        self.options(options)
    }

    /// The same options as the proxy's `[proxy.recording]`: account, region, key names,
    /// redaction, route rules, trusted `X-Forwarded-For` hops.
    pub fn options(self, options: RecordingOptions) -> RecordLayer {
        let default_source = options
            .event_source
            .clone()
            .unwrap_or_else(|| "service".to_owned());
        RecordLayer {
            recorder: Arc::new(Recorder::new(options, &default_source)),
            sink: self.sink,
        }
    }
}

impl<S> tower::Layer<S> for RecordLayer {
    type Service = RecordService<S>;

    fn layer(&self, inner: S) -> RecordService<S> {
        RecordService {
            inner,
            recorder: Arc::clone(&self.recorder),
            sink: Arc::clone(&self.sink),
        }
    }
}

/// A service whose requests are recorded.
#[derive(Clone)]
pub struct RecordService<S> {
    inner: S,
    recorder: Arc<Recorder>,
    sink: Arc<dyn RecordSink>,
}

/// A request's start and where its record goes.
struct PendingRecord {
    start: CallStart,
    recorder: Arc<Recorder>,
    sink: Arc<dyn RecordSink>,
}

impl PendingRecord {
    fn finish(self, status: u16, response_headers: HeaderMap, response: Captured) {
        let call = self.start.finish(
            Captured::default(),
            Some(status),
            response_headers,
            response,
            None,
        );
        let record = self.recorder.record(&call);
        if let Err(full) = self.sink.submit(record) {
            tracing::warn!(%full, method = call.method, path = call.path, "a request was not recorded");
        }
    }
}

impl<S, RequestBody, ResponseBody> tower::Service<Request<RequestBody>> for RecordService<S>
where
    S: tower::Service<Request<RequestBody>, Response = Response<ResponseBody>>,
    ResponseBody: Body,
{
    type Response = Response<CapturingBody<ResponseBody>>;
    type Error = S::Error;
    type Future = RecordFuture<S::Future>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        // axum puts the peer here when served with `into_make_service_with_connect_info`.
        let peer_ip = request
            .extensions()
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|axum::extract::ConnectInfo(peer)| peer.ip());
        let start = PendingRecord {
            start: CallStart::new(request.method(), request.uri(), request.headers(), peer_ip),
            recorder: Arc::clone(&self.recorder),
            sink: Arc::clone(&self.sink),
        };
        RecordFuture {
            inner: self.inner.call(request),
            start: Some(start),
        }
    }
}

pin_project_lite::pin_project! {
    /// Wraps the response body so the call is recorded when it has been sent.
    pub struct RecordFuture<F> {
        #[pin]
        inner: F,
        start: Option<PendingRecord>,
    }
}

impl<F, ResponseBody, Error> Future for RecordFuture<F>
where
    F: Future<Output = Result<Response<ResponseBody>, Error>>,
    ResponseBody: Body,
{
    type Output = Result<Response<CapturingBody<ResponseBody>>, Error>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match this.inner.poll(context) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(error)) => {
                if let Some(start) = this.start.take() {
                    start.finish(500, HeaderMap::new(), Default::default());
                }
                return Poll::Ready(Err(error));
            }
            Poll::Ready(Ok(response)) => response,
        };
        let (parts, body) = response.into_parts();
        let status = parts.status.as_u16();
        let limit = if status >= 400 { ERROR_BODY_BYTES } else { 0 };
        let (body, capture) = CapturingBody::new(body, limit);
        let body = match this.start.take() {
            Some(start) => {
                let headers = parts.headers.clone();
                body.on_end(Box::new(move || {
                    start.finish(status, headers, snapshot(&capture))
                }))
            }
            None => body,
        };
        Poll::Ready(Ok(Response::from_parts(parts, body)))
    }
}
