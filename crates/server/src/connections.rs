//! The HTTP connection loop, with the bounds a slow or hostile client cannot get around.
//!
//! `axum::serve` sets no timeouts and accepts without limit: 1,000 idle connections and
//! 200 clients sending a header byte a second all stayed open. Here:
//!
//! - at most [`ConnectionLimits::connections_max`] connections are open; beyond it the
//!   loop stops accepting, so new ones wait in the kernel's backlog instead of taking
//!   file descriptors;
//! - a request's headers must arrive within `header_read_timeout` (hyper's HTTP/1 timer);
//! - a connection with no request in flight and no byte moving for `idle_timeout` is
//!   closed gracefully (HTTP/1 keep-alive and HTTP/2 alike);
//! - a request body must arrive within `body_read_timeout` (tower-http's
//!   `RequestBodyTimeoutLayer`; the handler then answers 408).
//!
//! With TLS (`tls.rs`), each connection first completes its handshake, within the header
//! timeout.
//!
//! On shutdown the loop stops accepting, asks every connection to finish its requests in
//! flight and close, and returns once all have.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

/// How often each connection checks whether it has been idle too long.
const IDLE_CHECK: Duration = Duration::from_millis(500);
/// After a failed `accept` (say, out of file descriptors), wait before the next.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub connections_max: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_read_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` completes, then waits for the open
/// connections to finish their requests (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let app = app.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        limits.body_read_timeout,
    ));
    let slots = Arc::new(Semaphore::new(limits.connections_max));
    let (closing_sender, closing) = watch::channel(false);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);

    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break, // never closed
            },
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            builder: Arc::clone(&builder),
            app: app.clone(),
            idle_timeout: limits.idle_timeout,
            closing: closing.clone(),
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection.run(stream, remote).await,
                // The handshake gets the header timeout too: a client that never finishes
                // it must not hold the slot. Plain HTTP to this port fails here.
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(stream)) => connection.run(stream, remote).await,
                        Ok(Err(error)) => {
                            tracing::debug!(%error, %remote, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                    }
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = closing_sender.send(true);
    // Every connection holds a slot until it ends.
    let _ = slots.acquire_many(limits.connections_max as u32).await;
}

struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    app: Router,
    idle_timeout: Duration,
    closing: watch::Receiver<bool>,
}

impl Connection {
    async fn run<S>(self, stream: S, remote: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            builder,
            app,
            idle_timeout,
            mut closing,
        } = self;
        let activity = Arc::new(Activity::new());
        let requests = Arc::clone(&activity);
        let responses = Arc::clone(&activity);
        let service = app
            .map_request(move |mut request: Request<Incoming>| {
                requests.request_started();
                request.extensions_mut().insert(ConnectInfo(remote));
                request
            })
            .map_future(move |response| {
                let activity = Arc::clone(&responses);
                async move {
                    let response = response.await;
                    activity.request_finished();
                    response
                }
            });
        let io = TokioIo::new(WatchedStream {
            inner: stream,
            activity: Arc::clone(&activity),
        });
        let connection =
            builder.serve_connection_with_upgrades(io, TowerToHyperService::new(service));
        tokio::pin!(connection);
        let mut checks = tokio::time::interval(IDLE_CHECK);
        let mut asked_to_close = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, %remote, "connection ended with an error");
                    }
                    return;
                }
                changed = closing.changed(), if !asked_to_close => {
                    if changed.is_err() || *closing.borrow() {
                        connection.as_mut().graceful_shutdown();
                        asked_to_close = true;
                    }
                }
                _ = checks.tick(), if !asked_to_close => {
                    if activity.idle_for() >= idle_timeout {
                        tracing::debug!(%remote, "closing an idle connection");
                        connection.as_mut().graceful_shutdown();
                        asked_to_close = true;
                    }
                }
            }
        }
    }
}

/// When a connection last moved a byte or finished a request, and how many requests it
/// has in flight (a slow handler is not an idle connection).
struct Activity {
    origin: Instant,
    last_millis: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            origin: Instant::now(),
            last_millis: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let now = self.origin.elapsed().as_millis() as u64;
        self.last_millis.store(now, Ordering::Relaxed);
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
    }

    fn request_finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.touch();
    }

    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_millis.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last)
    }
}

/// A stream that records when bytes move.
struct WatchedStream<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for WatchedStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buffer.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(context, buffer);
        if buffer.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WatchedStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(context, bytes);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(context, buffers);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(context)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(context)
    }
}
