//! The recording proxy: a reverse proxy in front of any HTTP or AWS-protocol API that
//! forwards every call unchanged and records each one as a CloudTrail record.
//!
//! Bodies stream both ways; only the first bytes of each are copied for the record
//! ([`opentrail_recorder::capture`]), so a 100 MB upload is never buffered. The record is
//! built when the response has ended and handed to a [`RecordSink`] without waiting: the
//! call's latency does not include recording. When the sink is full the call is refused
//! with 503 (or, with `on_queue_full = "pass"`, forwarded unrecorded and counted).
//!
//! Hop-by-hop headers (`Connection`, `Keep-Alive`, `Transfer-Encoding`, `Upgrade`…) are
//! the only ones changed; `Host` is kept as the client sent it, because SigV4 signs it.
//! Protocol upgrades (WebSocket) are not forwarded.
//!
//! [`Proxy::router`] is an axum router; the server serves it with its own connection loop
//! (limits, timeouts) from `opentrail proxy` or a `[[proxy]]` section.

pub mod config;
mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use opentrail_recorder::capture::{CapturingBody, SharedCapture, snapshot};
use opentrail_recorder::{CallStart, ObservedCall, RecordSink, Recorder};

pub use config::{ProxyConfig, WhenQueueFull};
pub use upstream::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

/// One configured proxy, ready to serve.
#[derive(Clone)]
pub struct Proxy {
    state: Arc<ProxyState>,
}

struct ProxyState {
    config: ProxyConfig,
    /// `scheme://authority` of the upstream.
    upstream_origin: String,
    upstream_authority: HeaderValue,
    /// The upstream URL's path, prepended to each request's path ("" for none).
    upstream_path_prefix: String,
    client: upstream::UpstreamClient,
    recorder: Recorder,
    sink: Arc<dyn RecordSink>,
}

impl Proxy {
    pub fn new(config: ProxyConfig, sink: Arc<dyn RecordSink>) -> Result<Proxy, ProxyError> {
        config.validate().map_err(ProxyError::Config)?;
        let upstream: Uri = config
            .upstream
            .parse()
            .map_err(|error| ProxyError::Config(format!("proxy upstream: {error}")))?;
        let (Some(scheme), Some(authority)) = (upstream.scheme_str(), upstream.authority()) else {
            return Err(ProxyError::Config(format!(
                "proxy upstream {:?} needs a scheme and a host",
                config.upstream
            )));
        };
        let upstream_origin = format!("{scheme}://{authority}");
        let upstream_authority = HeaderValue::from_str(authority.as_str())
            .map_err(|error| ProxyError::Config(format!("proxy upstream host: {error}")))?;
        let upstream_path_prefix = upstream.path().trim_end_matches('/').to_owned();
        let client = upstream::client(config.upstream_ca.as_deref(), config.upstream_http2)?;
        let recorder = Recorder::new(config.recording.clone(), authority.host());
        Ok(Proxy {
            state: Arc::new(ProxyState {
                config,
                upstream_origin,
                upstream_authority,
                upstream_path_prefix,
                client,
                recorder,
                sink,
            }),
        })
    }

    pub fn listen(&self) -> SocketAddr {
        self.state.config.listen
    }

    pub fn upstream(&self) -> &str {
        &self.state.config.upstream
    }

    /// Every method and path goes to [`forward`].
    pub fn router(&self) -> Router {
        Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&self.state))
    }
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "trailer",
    "proxy-authenticate",
];

fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    // `TE: trailers` is end-to-end in practice: gRPC over HTTP/2 requires it.
    if headers
        .get(header::TE)
        .is_some_and(|value| value.as_bytes() != b"trailers")
    {
        headers.remove(header::TE);
    }
}

async fn forward(State(state): State<Arc<ProxyState>>, request: Request<Body>) -> Response<Body> {
    metrics::counter!("opentrail_proxy_calls_total").increment(1);
    if !state.sink.has_room() {
        match state.config.on_queue_full {
            WhenQueueFull::Refuse => return refuse_unrecordable(),
            WhenQueueFull::Pass => {
                metrics::counter!("opentrail_proxy_unrecorded_calls_total").increment(1);
            }
        }
    }
    let (mut parts, body) = request.into_parts();
    let peer_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    let (body, request_capture) = CapturingBody::new(body, state.recorder.capture_bytes());
    let body = body.expecting(content_length(&parts.headers));
    let start = CallStart::new(&parts.method, &parts.uri, &parts.headers, peer_ip);

    // An HTTP/2 client sends its host as the `:authority`; HTTP/1.1 upstreams need `Host`.
    let client_authority = parts
        .uri
        .authority()
        .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok());
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |path_and_query| path_and_query.as_str());
    let target = format!(
        "{}{}{}",
        state.upstream_origin, state.upstream_path_prefix, path_and_query
    );
    parts.uri = match target.parse() {
        Ok(uri) => uri,
        Err(error) => {
            return fail(
                &state,
                start,
                &request_capture,
                StatusCode::BAD_REQUEST,
                format!("bad request target: {error}"),
            );
        }
    };
    remove_hop_by_hop(&mut parts.headers);
    if !state.config.preserve_host {
        parts
            .headers
            .insert(header::HOST, state.upstream_authority.clone());
    } else if !parts.headers.contains_key(header::HOST) {
        let authority = client_authority.unwrap_or_else(|| state.upstream_authority.clone());
        parts.headers.insert(header::HOST, authority);
    }
    parts.version = Version::HTTP_11;

    let response = match state.client.request(Request::from_parts(parts, body)).await {
        Ok(response) => response,
        Err(error) => {
            metrics::counter!("opentrail_proxy_upstream_errors_total").increment(1);
            let message = format!(
                "the upstream {} could not be reached: {error}",
                state.config.upstream
            );
            tracing::warn!(%message, "proxy call failed");
            return fail(
                &state,
                start,
                &request_capture,
                StatusCode::BAD_GATEWAY,
                message,
            );
        }
    };
    let (mut parts, incoming) = response.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    let status = parts.status.as_u16();
    // Successful responses are only counted; error bodies are read for their code.
    let capture_bytes = if status >= 400 {
        state.recorder.capture_bytes()
    } else {
        0
    };
    let (body, response_capture) = CapturingBody::new(Body::new(incoming), capture_bytes);
    let body = body.expecting(content_length(&parts.headers));
    let response_headers = parts.headers.clone();
    let recording_state = Arc::clone(&state);
    let body = body.on_end(Box::new(move || {
        let call = start.finish(
            snapshot(&request_capture),
            Some(status),
            response_headers,
            snapshot(&response_capture),
            None,
        );
        submit(&recording_state, &call);
    }));
    Response::from_parts(parts, Body::new(body))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
}

fn submit(state: &ProxyState, call: &ObservedCall) {
    let record = state.recorder.record(call);
    if let Err(full) = state.sink.submit(record) {
        metrics::counter!("opentrail_proxy_unrecorded_calls_total").increment(1);
        tracing::warn!(%full, method = call.method, path = call.path, "a forwarded call was not recorded");
    }
}

/// Answers `status` with an error body and records the failed call.
fn fail(
    state: &ProxyState,
    start: CallStart,
    request_capture: &SharedCapture,
    status: StatusCode,
    message: String,
) -> Response<Body> {
    let call = start.finish(
        snapshot(request_capture),
        None,
        HeaderMap::new(),
        Default::default(),
        Some(message.clone()),
    );
    submit(state, &call);
    json_error(status, "UpstreamUnavailable", &message)
}

fn refuse_unrecordable() -> Response<Body> {
    metrics::counter!("opentrail_proxy_refused_calls_total").increment(1);
    let mut response = json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        "The OpenTrail proxy cannot record calls right now (its queue is full), so it does not forward them; retry later.",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "__type": code, "message": message }).to_string();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
