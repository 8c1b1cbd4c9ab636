//! Reading a feed of messages (a JetStream consumer) in batches: one batch is what has
//! arrived by the time the first message is taken, so a view is written once per batch
//! (one transaction, one fsync) however fast the stream grows.

use std::time::Duration;

use async_nats::jetstream::{self, stream::Stream as JsStream};
use futures_util::{FutureExt, Stream, StreamExt};
use tokio_util::sync::CancellationToken;

/// What waiting for the next batch of a feed gave.
#[derive(Debug)]
pub enum Next<T, E> {
    /// One to `max` messages, in the feed's order.
    Batch(Vec<T>),
    /// The feed failed (the first message was an error).
    Failed(E),
    /// The feed ended.
    Ended,
    /// `stop` was cancelled while waiting.
    Stopped,
}

/// Waits for the next message of `feed`, then takes the ones already there, up to `max`.
pub async fn next_batch<S, T, E>(feed: &mut S, stop: &CancellationToken, max: usize) -> Next<T, E>
where
    S: Stream<Item = Result<T, E>> + Unpin,
{
    let first = tokio::select! {
        () = stop.cancelled() => return Next::Stopped,
        next = feed.next() => next,
    };
    let first = match first {
        Some(Ok(message)) => message,
        Some(Err(err)) => return Next::Failed(err),
        None => return Next::Ended,
    };
    let mut batch = vec![first];
    while batch.len() < max {
        match feed.next().now_or_never() {
            Some(Some(Ok(message))) => batch.push(message),
            _ => break,
        }
    }
    Next::Batch(batch)
}

/// How long a feed waits before it makes again a stream it found gone.
const MAKE_AGAIN_AFTER: Duration = Duration::from_millis(500);

/// The stream `name` to open a feed on again after one failed: its state from the
/// stream's leader, and `make` (which creates or updates it) only when it is gone.
/// Creating or updating a stream waits for the cluster's meta leader, which may be the
/// very node whose stall or death made the feed fail; reading the stream does not.
///
/// A gone stream is made only [`MAKE_AGAIN_AFTER`] later: a feed fails as soon as its
/// stream's deletion begins, and nats-server 2.9.10 then still removes the old files:
/// a stream made again in that moment could not open its first block and refused every
/// publish for good (seen in orders' tests).
pub async fn reopen<F>(js: &jetstream::Context, name: &str, make: F) -> Result<JsStream, String>
where
    F: Future<Output = Result<JsStream, String>>,
{
    match js.get_stream(name).await {
        Ok(stream) => Ok(stream),
        Err(err) if crate::stream_tail::is_stream_not_found(&err) => {
            tokio::time::sleep(MAKE_AGAIN_AFTER).await;
            make.await
        }
        Err(err) => Err(format!("cannot read the state of the {name} stream: {err}")),
    }
}

/// Waits `pause` before trying again, or less if `stop` is cancelled.
pub async fn pause(stop: &CancellationToken, pause: Duration) {
    tokio::select! {
        () = stop.cancelled() => {},
        () = tokio::time::sleep(pause) => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_is_what_has_arrived_up_to_the_limit() {
        let stop = CancellationToken::new();
        let mut feed = futures_util::stream::iter((1..=5).map(Ok::<_, ()>));
        assert!(matches!(next_batch(&mut feed, &stop, 3).await, Next::Batch(b) if b == [1, 2, 3]));
        assert!(matches!(next_batch(&mut feed, &stop, 3).await, Next::Batch(b) if b == [4, 5]));
        assert!(matches!(next_batch(&mut feed, &stop, 3).await, Next::Ended));
        let mut failing = futures_util::stream::iter([Err::<u8, _>("gone")]);
        assert!(matches!(
            next_batch(&mut failing, &stop, 3).await,
            Next::Failed("gone")
        ));
        stop.cancel();
        let mut pending = futures_util::stream::pending::<Result<u8, ()>>();
        assert!(matches!(
            next_batch(&mut pending, &stop, 3).await,
            Next::Stopped
        ));
    }
}
