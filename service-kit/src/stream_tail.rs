//! Reading one's writes across instances: the last sequence a JetStream stream holds,
//! asked of the server, so that a view that may be behind (an instance's `users.db` or
//! `purchases.json`) can wait until it has applied everything the stream held when a
//! request arrived.
//!
//! Callers that wait at the same moment share one question: a round trip to the server
//! serves every request that arrived before it was sent, however many they are (a
//! "read index", as consensus systems call it). Up to `IN_FLIGHT` questions are out at
//! once, so a caller rarely waits for a question sent before it arrived to come back
//! before its own is sent; beyond that, callers gather behind them.

use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

/// How long the server may take to answer before the view is declared unsure.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// How recently a replicated stream's leader must have heard from a majority of its
/// followers for its answer to be trusted. A leader hears from each follower at least
/// every second (its heartbeats are answered; an idle R3 stream showed at most 1.8 s);
/// a leader that was stalled (a frozen process, a paused VM) long enough for the others
/// to elect another has heard from nobody for at least the 4 s of raft's shortest
/// election timeout, and until it learns of the new term it answers with its old state.
const LEADER_HEARD_FOLLOWERS_WITHIN: Duration = Duration::from_secs(3);
/// Questions out at once.
const IN_FLIGHT: usize = 2;

/// Why the stream's end is not known.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot read the end of the {stream} stream: {reason}")]
pub struct TailError {
    pub stream: String,
    pub reason: String,
}

/// The end of one stream, asked for by many.
#[derive(Debug, Clone)]
pub struct StreamTail {
    waiting: mpsc::UnboundedSender<oneshot::Sender<Result<u64, TailError>>>,
}

impl StreamTail {
    /// Asks `nats` about `stream`; the asking task lives as long as a clone of this.
    pub fn new(nats: async_nats::Client, stream: &str) -> Self {
        let (waiting, mut queue) = mpsc::unbounded_channel::<oneshot::Sender<_>>();
        let stream = stream.to_owned();
        tokio::spawn(async move {
            let subject: std::sync::Arc<str> = format!("$JS.API.STREAM.INFO.{stream}").into();
            let stream: std::sync::Arc<str> = stream.into();
            let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
            while let Some(first) = queue.recv().await {
                let Ok(slot) = std::sync::Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                // Everyone who is waiting now was waiting before the question is sent.
                let mut batch = vec![first];
                while let Ok(next) = queue.try_recv() {
                    batch.push(next);
                }
                let (nats, subject, stream) = (nats.clone(), subject.clone(), stream.clone());
                tokio::spawn(async move {
                    let answer = ask(&nats, &subject).await.map_err(|reason| TailError {
                        stream: stream.to_string(),
                        reason,
                    });
                    drop(slot);
                    for caller in batch {
                        let _ = caller.send(answer.clone());
                    }
                });
            }
        });
        Self { waiting }
    }

    /// The stream's last sequence as the server holds it after this call began (0 for
    /// an empty stream).
    pub async fn last_sequence(&self) -> Result<u64, TailError> {
        let (tx, rx) = oneshot::channel();
        let gone = || TailError {
            stream: String::new(),
            reason: "the asking task stopped".to_owned(),
        };
        self.waiting.send(tx).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

/// Whether JetStream answered that a stream does not exist (not merely that it did not
/// answer).
pub fn is_stream_not_found(err: &async_nats::jetstream::context::GetStreamError) -> bool {
    matches!(
        err.kind(),
        async_nats::jetstream::context::GetStreamErrorKind::JetStream(api)
            if api.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

#[derive(Deserialize)]
struct InfoReply {
    state: Option<State>,
    error: Option<ApiError>,
    /// Present when the server runs JetStream clustered (and on 2.10+ always).
    cluster: Option<Cluster>,
}

#[derive(Deserialize)]
struct Cluster {
    /// The stream's leader as the answering server knows it; empty while it has none.
    #[serde(default)]
    leader: String,
    /// The other replicas, as the leader sees them.
    #[serde(default)]
    replicas: Vec<Replica>,
}

#[derive(Deserialize)]
struct Replica {
    /// Nanoseconds since the leader last heard from this replica.
    #[serde(default)]
    active: u64,
}

impl Cluster {
    /// Whether the leader heard from enough followers lately to be the leader still: of
    /// a group of n replicas, n / 2 followers make a majority with it.
    fn leader_is_current(&self) -> bool {
        let within = LEADER_HEARD_FOLLOWERS_WITHIN.as_nanos() as u64;
        let heard = self.replicas.iter().filter(|r| r.active < within).count();
        heard >= self.replicas.len().div_ceil(2)
    }
}

#[derive(Deserialize)]
struct State {
    last_seq: u64,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    description: String,
}

async fn ask(nats: &async_nats::Client, subject: &str) -> Result<u64, String> {
    let reply = tokio::time::timeout(ASK_TIMEOUT, nats.request(subject.to_owned(), "".into()))
        .await
        .map_err(|_| "JetStream did not answer in time".to_owned())?
        .map_err(|err| err.to_string())?;
    last_sequence_in(&reply.payload)
}

/// The last sequence a `STREAM.INFO` answer vouches for. A stream whose group has no
/// leader (one being elected after its leader died or stalled) is answered by any of its
/// replicas, with that replica's own state, which may lack what the leader acknowledged;
/// a leader that was stalled answers, for a moment after it resumes, with the state it
/// had before the others elected another: both answers are refused, so that a read
/// waits or answers 503, never an older state.
fn last_sequence_in(payload: &[u8]) -> Result<u64, String> {
    let info: InfoReply =
        serde_json::from_slice(payload).map_err(|err| format!("unreadable stream info: {err}"))?;
    if let Some(err) = info.error {
        return Err(err.description);
    }
    if let Some(cluster) = &info.cluster {
        if cluster.leader.is_empty() {
            return Err(
                "the stream has no leader now (a replica's state may lack acknowledged events)"
                    .to_owned(),
            );
        }
        if !cluster.leader_is_current() {
            return Err(format!(
                "the stream's leader {} has not heard from its followers lately (it may have \
                 been stalled while another was elected)",
                cluster.leader
            ));
        }
    }
    info.state
        .map(|state| state.last_seq)
        .ok_or_else(|| "the stream info has no state".to_owned())
}

#[cfg(test)]
mod tests {
    use super::last_sequence_in;

    #[test]
    fn only_a_stream_with_a_leader_vouches_for_its_end() {
        // nats-server 2.9, not clustered: no cluster block.
        let single = br#"{"state":{"last_seq":7},"config":{"name":"ORDERS"}}"#;
        assert_eq!(last_sequence_in(single), Ok(7));
        // The leader answers (2.10+, or any clustered server).
        let led =
            br#"{"state":{"last_seq":9},"cluster":{"name":"shop","leader":"n1","replicas":[]}}"#;
        assert_eq!(last_sequence_in(led), Ok(9));
        // A replica of a group without a leader answers with its own state.
        let leaderless = br#"{"state":{"last_seq":8},"cluster":{"name":"shop","replicas":[]}}"#;
        assert!(last_sequence_in(leaderless).is_err());
        let empty_leader = br#"{"state":{"last_seq":8},"cluster":{"name":"shop","leader":""}}"#;
        assert!(last_sequence_in(empty_leader).is_err());
        // A leader of three that heard from a follower 0.9 s ago, the other one lost.
        let one_follower = br#"{"state":{"last_seq":10},"cluster":{"leader":"n1",
            "replicas":[{"name":"n2","current":true,"active":900000000},
                        {"name":"n3","current":false,"active":25000000000}]}}"#;
        assert_eq!(last_sequence_in(one_follower), Ok(10));
        // A leader resumed after 10 s frozen, before it learnt of the new term.
        let stalled = br#"{"state":{"last_seq":6},"cluster":{"leader":"n1",
            "replicas":[{"name":"n2","current":true,"active":10200000000},
                        {"name":"n3","current":true,"active":10200000000}]}}"#;
        assert!(last_sequence_in(stalled).is_err());
        // A stream of five: two followers make the majority.
        let five = |active: [u64; 4]| {
            let replicas: Vec<String> = active
                .iter()
                .map(|a| format!(r#"{{"name":"x","active":{a}}}"#))
                .collect();
            format!(
                r#"{{"state":{{"last_seq":3}},"cluster":{{"leader":"n1","replicas":[{}]}}}}"#,
                replicas.join(",")
            )
        };
        let (heard, lost) = (1_000_000_000, 5_000_000_000);
        assert_eq!(
            last_sequence_in(five([heard, heard, lost, lost]).as_bytes()),
            Ok(3)
        );
        assert!(last_sequence_in(five([heard, lost, lost, lost]).as_bytes()).is_err());
        let refused =
            br#"{"error":{"code":503,"description":"JetStream system temporarily unavailable"}}"#;
        assert_eq!(
            last_sequence_in(refused),
            Err("JetStream system temporarily unavailable".to_owned())
        );
    }
}
