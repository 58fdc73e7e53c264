//! A body that passes every frame through unchanged and keeps a bounded copy of the first
//! bytes (and the trailers), so a call can be recorded without buffering it: a 100 MB
//! upload streams as it would without the recorder, and only `limit` bytes are copied.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Buf;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

/// What was seen of one body.
#[derive(Debug, Default, Clone)]
pub struct Captured {
    /// The first bytes, at most the capture limit.
    pub bytes: Vec<u8>,
    /// Every byte that passed, kept or not.
    pub total_bytes: u64,
    /// The body reached its end (it was not cut off by an error or a dropped connection).
    pub finished: bool,
    pub trailers: Option<HeaderMap>,
    /// The length the body announced (`Content-Length`), when it did.
    pub expected_bytes: Option<u64>,
}

impl Captured {
    /// The whole body is in `bytes`: it ended and nothing was cut.
    pub fn is_complete(&self) -> bool {
        self.finished && self.total_bytes == self.bytes.len() as u64
    }
}

/// Shared between the body (which fills it) and whoever records the call.
pub type SharedCapture = Arc<Mutex<Captured>>;

/// Runs once when the body ends or is dropped, whichever comes first.
pub type OnBodyEnd = Box<dyn FnOnce() + Send + Sync>;

pin_project_lite::pin_project! {
    /// `inner`, with its first `limit` bytes copied into `capture`.
    pub struct CapturingBody<B> {
        #[pin]
        inner: B,
        capture: SharedCapture,
        limit: usize,
        on_end: Option<OnBodyEnd>,
    }

    impl<B> PinnedDrop for CapturingBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(on_end) = this.project().on_end.take() {
                on_end();
            }
        }
    }
}

impl<B: Body> CapturingBody<B> {
    pub fn new(inner: B, limit: usize) -> (CapturingBody<B>, SharedCapture) {
        let capture = SharedCapture::default();
        {
            let mut captured = lock(&capture);
            captured.expected_bytes = inner.size_hint().exact();
            // A body that is empty from the start is never polled.
            captured.finished = inner.is_end_stream() || captured.expected_bytes == Some(0);
        }
        let body = CapturingBody {
            inner,
            capture: Arc::clone(&capture),
            limit,
            on_end: None,
        };
        (body, capture)
    }

    /// The length the message announced (its `Content-Length`), for bodies whose
    /// `size_hint` does not carry it through (wrappers that do not forward it).
    pub fn expecting(self, length: Option<u64>) -> CapturingBody<B> {
        if let Some(length) = length {
            let mut captured = lock(&self.capture);
            captured.expected_bytes = Some(length);
            captured.finished |= length == 0 || captured.total_bytes == length;
        }
        self
    }

    /// Calls `on_end` when the body has ended or been dropped (the call is over).
    pub fn on_end(mut self, on_end: OnBodyEnd) -> CapturingBody<B> {
        self.on_end = Some(on_end);
        self
    }
}

fn lock(capture: &SharedCapture) -> std::sync::MutexGuard<'_, Captured> {
    // A panic while holding this lock leaves plain data behind; keep using it.
    capture
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<B> Body for CapturingBody<B>
where
    B: Body,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(context);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                let mut captured = lock(this.capture);
                // HTTP stacks stop polling a body once its announced length has passed,
                // so the end is noted here too, not only on `None`.
                if this.inner.is_end_stream() {
                    captured.finished = true;
                }
                if let Some(data) = frame.data_ref() {
                    let chunk = data.chunk();
                    // `chunk` is the whole frame for the Bytes-like bodies HTTP stacks use.
                    let length = data.remaining();
                    captured.total_bytes += length as u64;
                    let room = this.limit.saturating_sub(captured.bytes.len());
                    captured
                        .bytes
                        .extend_from_slice(&chunk[..room.min(chunk.len())]);
                    if captured.expected_bytes == Some(captured.total_bytes) {
                        captured.finished = true;
                    }
                } else if let Some(trailers) = frame.trailers_ref() {
                    captured.trailers = Some(trailers.clone());
                }
            }
            Poll::Ready(None) => {
                lock(this.capture).finished = true;
                if let Some(on_end) = this.on_end.take() {
                    on_end();
                }
            }
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A copy of what was captured so far.
pub fn snapshot(capture: &SharedCapture) -> Captured {
    lock(capture).clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Chunks(Vec<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _context: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.0.is_empty() {
                Poll::Ready(None)
            } else {
                Poll::Ready(Some(Ok(Frame::data(self.0.remove(0)))))
            }
        }
    }

    #[test]
    fn frames_pass_unchanged_and_only_the_first_bytes_are_kept() {
        let ends = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&ends);
        let (body, capture) = CapturingBody::new(
            Chunks(vec![
                Bytes::from_static(b"hello "),
                Bytes::from_static(b"world"),
            ]),
            8,
        );
        let mut body = Box::pin(body.on_end(Box::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })));
        let waker = std::task::Waker::noop();
        let mut context = Context::from_waker(waker);
        let mut passed = Vec::new();
        while let Poll::Ready(Some(Ok(frame))) = body.as_mut().poll_frame(&mut context) {
            passed.extend_from_slice(frame.data_ref().expect("data"));
        }
        assert_eq!(passed, b"hello world");
        let captured = snapshot(&capture);
        assert_eq!(captured.bytes, b"hello wo");
        assert_eq!(captured.total_bytes, 11);
        assert!(captured.finished && !captured.is_complete());
        drop(body);
        assert_eq!(ends.load(Ordering::SeqCst), 1, "on_end runs exactly once");
    }
}
