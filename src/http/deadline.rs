//! Request bodies with deadlines: a body that stops arriving for [`STALL`] or takes longer
//! than [`WHOLE`] in all fails with [`BodyTimeout`], which handlers answer with 408. Without
//! it a client that sends `{` and then nothing holds its connection (and its teamspace's
//! body slot) for ever.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{sleep, Instant, Sleep};

/// The longest pause allowed between two parts of a body.
pub const STALL: Duration = Duration::from_secs(10);

/// The longest a whole body may take: 1 MiB (the largest SCIM body) at about 17 KiB/s.
pub const WHOLE: Duration = Duration::from_secs(60);

/// Why a body was abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyTimeout {
    /// Nothing arrived for [`STALL`].
    #[error("the request body stalled: nothing arrived for {} s", STALL.as_secs())]
    Stalled,
    /// The body was still arriving after [`WHOLE`].
    #[error("the request body took longer than {} s", WHOLE.as_secs())]
    TooSlow,
}

impl BodyTimeout {
    /// The deadline error somewhere in `error`'s chain, if that is why reading failed.
    pub fn cause_of(error: &(dyn std::error::Error + 'static)) -> Option<BodyTimeout> {
        let mut cause = Some(error);
        while let Some(current) = cause {
            if let Some(timeout) = current.downcast_ref::<BodyTimeout>() {
                return Some(*timeout);
            }
            cause = current.source();
        }
        None
    }
}

pin_project_lite::pin_project! {
    /// A body read under [`STALL`] and [`WHOLE`].
    pub struct Deadline {
        #[pin]
        body: Body,
        #[pin]
        stall: Sleep,
        #[pin]
        whole: Sleep,
    }
}

impl Deadline {
    /// Wraps `body`; both clocks start now.
    pub fn new(body: Body) -> Self {
        Deadline { body, stall: sleep(STALL), whole: sleep(WHOLE) }
    }
}

impl HttpBody for Deadline {
    type Data = axum::body::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        if let Poll::Ready(frame) = this.body.poll_frame(cx) {
            this.stall.as_mut().reset(Instant::now() + STALL);
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.whole.poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyTimeout::TooSlow.into())));
        }
        if this.stall.poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyTimeout::Stalled.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Every request's body, under deadlines (a request without one, most GETs, is passed as is).
pub async fn apply(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    next.run(request.map(|body| Body::new(Deadline::new(body)))).await
}
