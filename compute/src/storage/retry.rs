//! Retrying storage calls that fail because a service is restarting or electing a leader.

use std::time::Duration;

use tokio::time::Instant;
use tonic::Code;

/// How long a call keeps retrying before it gives up.
pub(crate) const RETRY_DEADLINE: Duration = Duration::from_secs(30);

/// Exponential backoff from 10 ms to 1 s, until a deadline.
pub(crate) struct Backoff {
    deadline: Instant,
    delay: Duration,
}

impl Backoff {
    pub(crate) fn new(total: Duration) -> Self {
        Self {
            deadline: Instant::now() + total,
            delay: Duration::from_millis(10),
        }
    }

    /// Waits before the next attempt; `false` once the deadline has passed.
    pub(crate) async fn wait(&mut self) -> bool {
        if Instant::now() + self.delay > self.deadline {
            return false;
        }
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Duration::from_secs(1));
        true
    }
}

/// Whether a gRPC error is worth retrying: the server is down, restarting or busy. A server
/// that shuts down answers in-flight requests with an HTTP/2 GOAWAY, which tonic reports as
/// INTERNAL.
pub(crate) fn is_transient(status: &tonic::Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::ResourceExhausted => true,
        Code::Internal => {
            status.message().contains("h2 protocol error")
                || status.message().contains("transport error")
        }
        _ => false,
    }
}
