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
//!
//! The question is a `STREAM.INFO`, which JetStream answers from its API queue, and on
//! a cluster from the stream's leader. A stream kept on one server that allows direct
//! gets is asked more cheaply: a direct get of its last message, which that server
//! answers at once, with the message's sequence in a header. Direct gets are used only
//! while a `STREAM.INFO` of the last second said so (one replica, direct gets allowed),
//! after one was answered (a `nats.conf` of an older version does not let the service
//! send them), and never from a replica or mirror of another name: with more replicas,
//! any of them answers a direct get, a follower with what it has so far.
//!
//! On the same terms, [`StreamTail::newest_of`] asks the newest message of one subject
//! (one user's events, say): a copy of a view read when that was the subject's newest
//! message is still whole while it is.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

/// How long the server may take to answer before the view is declared unsure.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a direct get may take before the question goes to `STREAM.INFO` instead.
const DIRECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a `STREAM.INFO` that allowed direct gets is trusted: while reads are
/// answered by direct gets, one `STREAM.INFO` a second checks that the stream still has
/// one replica.
const DIRECT_CHECKED_FOR: Duration = Duration::from_secs(1);
/// How long direct gets are left alone after one failed.
const DIRECT_REST: Duration = Duration::from_secs(60);
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

/// Questions asked so far, by how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Questions {
    /// `STREAM.INFO` requests.
    pub info: u64,
    /// Direct gets of the last message.
    pub direct: u64,
    /// Direct gets of the last message of one subject ([`StreamTail::newest_of`]).
    pub subject: u64,
}

/// The end of the stream: its last sequence (0 when empty) and the time its last message
/// was stored (as the server wrote it; empty when it has none). With the time, the same
/// end tells that nothing was appended since, even to a stream made again.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct End {
    pub seq: u64,
    pub stored_at: String,
}

/// The newest message of one subject in the stream, as a direct get found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Newest {
    /// The stream holds no message of the subject.
    Nothing,
    /// Its newest message: its sequence, and the time the stream stored it (as the
    /// server wrote it; with the sequence, it tells a stream made again apart).
    Message { seq: u64, stored_at: String },
}

impl Newest {
    /// The sequence of the newest message, 0 when there is none.
    pub fn seq(&self) -> u64 {
        match self {
            Self::Nothing => 0,
            Self::Message { seq, .. } => *seq,
        }
    }
}

/// The end of one stream, asked for by many.
#[derive(Debug, Clone)]
pub struct StreamTail {
    waiting: mpsc::UnboundedSender<oneshot::Sender<Result<End, TailError>>>,
    asker: Arc<Asker>,
}

impl StreamTail {
    /// Asks `nats` about `stream`; the asking task lives as long as a clone of this.
    pub fn new(nats: async_nats::Client, stream: &str) -> Self {
        let (waiting, mut queue) = mpsc::unbounded_channel::<oneshot::Sender<_>>();
        let asker = Arc::new(Asker::new(nats, stream));
        let shared = Arc::clone(&asker);
        tokio::spawn(async move {
            let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
            while let Some(first) = queue.recv().await {
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                // Everyone who is waiting now was waiting before the question is sent.
                let mut batch = vec![first];
                while let Ok(next) = queue.try_recv() {
                    batch.push(next);
                }
                let asker = Arc::clone(&shared);
                tokio::spawn(async move {
                    let answer = asker.ask().await.map_err(|reason| TailError {
                        stream: asker.stream.clone(),
                        reason,
                    });
                    drop(slot);
                    for caller in batch {
                        let _ = caller.send(answer.clone());
                    }
                });
            }
        });
        Self { waiting, asker }
    }

    /// The stream's last sequence as the server holds it after this call began (0 for
    /// an empty stream).
    pub async fn last_sequence(&self) -> Result<u64, TailError> {
        self.end().await.map(|end| end.seq)
    }

    /// The stream's [`End`] as the server holds it after this call began.
    pub async fn end(&self) -> Result<End, TailError> {
        let (tx, rx) = oneshot::channel();
        let gone = || TailError {
            stream: self.asker.stream.clone(),
            reason: "the asking task stopped".to_owned(),
        };
        self.waiting.send(tx).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// The newest message of `subject` (no wildcard) as the stream holds it after this
    /// call began, by a direct get; `None` when direct gets are not in use now (the
    /// stream has more replicas, any of which would answer, or one failed, or no
    /// `STREAM.INFO` of the last second said it has one: [`Self::last_sequence`] asks
    /// one) or this one failed. Not shared: each caller asks its own.
    pub async fn newest_of(&self, subject: &str) -> Option<Newest> {
        if !self.asker.mode().usable(Instant::now()) {
            return None;
        }
        self.asker.subject_asked.fetch_add(1, Ordering::Relaxed);
        let body = serde_json::json!({ "last_by_subj": subject }).to_string();
        let reply = tokio::time::timeout(
            DIRECT_TIMEOUT,
            self.asker
                .nats
                .request(self.asker.direct_subject.clone(), body.into()),
        )
        .await
        .ok()?
        .ok()?;
        newest_answer(&self.asker.stream, reply.status, reply.headers.as_ref())
    }

    /// The questions asked so far.
    pub fn questions(&self) -> Questions {
        Questions {
            info: self.asker.info_asked.load(Ordering::Relaxed),
            direct: self.asker.direct_asked.load(Ordering::Relaxed),
            subject: self.asker.subject_asked.load(Ordering::Relaxed),
        }
    }

    /// The questions asked so far, in the Prometheus text format.
    pub fn metrics(&self) -> String {
        let Questions {
            info,
            direct,
            subject,
        } = self.questions();
        let stream = &self.asker.stream;
        format!(
            "# HELP shop_stream_end_questions_total Questions about a stream's last sequence \
             before reads of the view, by how they were asked.\n\
             # TYPE shop_stream_end_questions_total counter\n\
             shop_stream_end_questions_total{{stream=\"{stream}\",how=\"stream_info\"}} {info}\n\
             shop_stream_end_questions_total{{stream=\"{stream}\",how=\"direct_get\"}} {direct}\n\
             shop_stream_end_questions_total{{stream=\"{stream}\",how=\"direct_get_of_subject\"}} {subject}\n"
        )
    }
}

/// Puts the questions about one stream, and chooses how.
#[derive(Debug)]
struct Asker {
    nats: async_nats::Client,
    stream: String,
    info_subject: String,
    direct_subject: String,
    mode: Mutex<Mode>,
    info_asked: AtomicU64,
    direct_asked: AtomicU64,
    subject_asked: AtomicU64,
}

/// What is known of direct gets on the stream.
#[derive(Debug, Default)]
struct Mode {
    /// When a `STREAM.INFO` last showed one replica that allows direct gets.
    allowed_at: Option<Instant>,
    /// A direct get was answered since the last one failed.
    answered: bool,
    /// When a direct get last failed.
    failed_at: Option<Instant>,
    /// A direct get is out to find out whether they are answered.
    probing: bool,
}

impl Mode {
    fn usable(&self, now: Instant) -> bool {
        self.answered
            && self
                .allowed_at
                .is_some_and(|at| now.duration_since(at) < DIRECT_CHECKED_FOR)
    }

    /// Whether to send a direct get, with nobody waiting for it, to find out whether
    /// they are answered.
    fn should_probe(&self, now: Instant) -> bool {
        self.allowed_at.is_some()
            && !self.answered
            && !self.probing
            && self
                .failed_at
                .is_none_or(|at| now.duration_since(at) >= DIRECT_REST)
    }
}

/// The answer to a direct get of the last message.
enum Direct {
    Last(End),
    /// The stream has no message at its last sequence (empty, or the last removed).
    NoLastMessage,
}

impl Asker {
    fn new(nats: async_nats::Client, stream: &str) -> Self {
        Self {
            nats,
            stream: stream.to_owned(),
            info_subject: format!("$JS.API.STREAM.INFO.{stream}"),
            direct_subject: format!("$JS.API.DIRECT.GET.{stream}"),
            mode: Mutex::default(),
            info_asked: AtomicU64::new(0),
            direct_asked: AtomicU64::new(0),
            subject_asked: AtomicU64::new(0),
        }
    }

    fn mode(&self) -> std::sync::MutexGuard<'_, Mode> {
        self.mode.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn ask(self: &Arc<Self>) -> Result<End, String> {
        if self.mode().usable(Instant::now()) {
            self.direct_asked.fetch_add(1, Ordering::Relaxed);
            match self.direct().await {
                Ok(Direct::Last(end)) => return Ok(end),
                Ok(Direct::NoLastMessage) => {}
                Err(err) => self.direct_failed(&err),
            }
        }
        self.info_asked.fetch_add(1, Ordering::Relaxed);
        let (last, allows_direct) = self.info().await?;
        let probe = {
            let now = Instant::now();
            let mut mode = self.mode();
            mode.allowed_at = allows_direct.then_some(now);
            let probe = mode.should_probe(now);
            mode.probing |= probe;
            probe
        };
        if probe {
            let asker = Arc::clone(self);
            tokio::spawn(async move {
                let answered = asker.direct().await;
                if let Err(err) = &answered {
                    asker.direct_failed(err);
                }
                let mut mode = asker.mode();
                mode.answered = answered.is_ok();
                mode.probing = false;
            });
        }
        Ok(last)
    }

    fn direct_failed(&self, err: &str) {
        tracing::info!(
            stream = %self.stream,
            %err,
            "direct gets of the stream's last message failed; asking STREAM.INFO for a while"
        );
        let mut mode = self.mode();
        mode.answered = false;
        mode.failed_at = Some(Instant::now());
    }

    /// The stream's last sequence, and whether it may be asked by direct gets.
    async fn info(&self) -> Result<(End, bool), String> {
        let reply = tokio::time::timeout(
            ASK_TIMEOUT,
            self.nats.request(self.info_subject.clone(), "".into()),
        )
        .await
        .map_err(|_| "JetStream did not answer in time".to_owned())?
        .map_err(|err| err.to_string())?;
        info_answer(&reply.payload)
    }

    async fn direct(&self) -> Result<Direct, String> {
        let reply = tokio::time::timeout(
            DIRECT_TIMEOUT,
            self.nats.request(
                self.direct_subject.clone(),
                r#"{"last_by_subj":">"}"#.into(),
            ),
        )
        .await
        .map_err(|_| "no answer in time (is the service allowed to send them?)".to_owned())?
        .map_err(|err| err.to_string())?;
        direct_answer(&self.stream, reply.status, reply.headers.as_ref())
    }
}

/// What a direct get's reply says of the stream's last sequence. The reply must come
/// from the stream itself: a mirror with `mirror_direct` answers for its origin too,
/// with what it has copied so far.
fn direct_answer(
    stream: &str,
    status: Option<async_nats::StatusCode>,
    headers: Option<&async_nats::HeaderMap>,
) -> Result<Direct, String> {
    match status {
        None | Some(async_nats::StatusCode::OK) => {}
        Some(async_nats::StatusCode::NOT_FOUND) => return Ok(Direct::NoLastMessage),
        Some(status) => return Err(format!("direct get answered {status}")),
    }
    let header = |name: &str| {
        headers
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    };
    match header("Nats-Stream") {
        Some(name) if name == stream => {}
        other => return Err(format!("direct get answered by stream {other:?}")),
    }
    let seq = header("Nats-Sequence")
        .and_then(|seq| seq.parse().ok())
        .ok_or_else(|| "direct get answered without a sequence".to_owned())?;
    let stored_at =
        header("Nats-Time-Stamp").ok_or_else(|| "direct get answered without a time".to_owned())?;
    Ok(Direct::Last(End { seq, stored_at }))
}

/// What a direct get of one subject's last message says of it: from the stream itself
/// (not a mirror), with its sequence and time; `None` for anything else.
fn newest_answer(
    stream: &str,
    status: Option<async_nats::StatusCode>,
    headers: Option<&async_nats::HeaderMap>,
) -> Option<Newest> {
    match status {
        None | Some(async_nats::StatusCode::OK) => {}
        Some(async_nats::StatusCode::NOT_FOUND) => return Some(Newest::Nothing),
        Some(_) => return None,
    }
    let header = |name: &str| headers?.get(name).map(|v| v.as_str().to_owned());
    if header("Nats-Stream").as_deref() != Some(stream) {
        return None;
    }
    Some(Newest::Message {
        seq: header("Nats-Sequence")?.parse().ok()?,
        stored_at: header("Nats-Time-Stamp")?,
    })
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
    config: Option<StreamConfig>,
    error: Option<ApiError>,
    /// Present when the server runs JetStream clustered (and on 2.10+ always).
    cluster: Option<Cluster>,
}

#[derive(Deserialize)]
struct StreamConfig {
    #[serde(default)]
    num_replicas: u64,
    #[serde(default)]
    allow_direct: bool,
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
    /// The time of the last message; the zero time (year 1) for an empty stream.
    #[serde(default)]
    last_ts: String,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    description: String,
}

/// The last sequence a `STREAM.INFO` answer vouches for, and whether the stream may be
/// asked by direct gets (one replica, direct gets allowed). A stream whose group has no
/// leader (one being elected after its leader died or stalled) is answered by any of its
/// replicas, with that replica's own state, which may lack what the leader acknowledged;
/// a leader that was stalled answers, for a moment after it resumes, with the state it
/// had before the others elected another: both answers are refused, so that a read
/// waits or answers 503, never an older state.
fn info_answer(payload: &[u8]) -> Result<(End, bool), String> {
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
    let allows_direct = info
        .config
        .is_some_and(|c| c.num_replicas == 1 && c.allow_direct);
    info.state
        .map(|state| {
            let stored_at = if state.last_seq == 0 {
                String::new()
            } else {
                state.last_ts
            };
            (
                End {
                    seq: state.last_seq,
                    stored_at,
                },
                allows_direct,
            )
        })
        .ok_or_else(|| "the stream info has no state".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_sequence_in(payload: &[u8]) -> Result<u64, String> {
        info_answer(payload).map(|(last, _)| last.seq)
    }

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

    #[test]
    fn only_one_replica_that_allows_them_is_asked_by_direct_gets() {
        let allows = |config: &str| {
            let payload = format!(r#"{{"state":{{"last_seq":4}},"config":{config}}}"#);
            info_answer(payload.as_bytes()).map(|(_, direct)| direct)
        };
        assert_eq!(
            allows(r#"{"num_replicas":1,"allow_direct":true}"#),
            Ok(true)
        );
        assert_eq!(
            allows(r#"{"num_replicas":3,"allow_direct":true}"#),
            Ok(false)
        );
        assert_eq!(allows(r#"{"num_replicas":1}"#), Ok(false));
        assert_eq!(allows(r#"{"name":"ORDERS"}"#), Ok(false));
    }

    #[test]
    fn direct_gets_wait_for_an_answer_a_recent_check_and_rest_after_a_failure() {
        let now = Instant::now();
        let later = |d: Duration| now + d;
        let mut mode = Mode {
            allowed_at: Some(now),
            ..Mode::default()
        };
        // Allowed by the stream, but not yet answered: probed, not used.
        assert!(!mode.usable(now) && mode.should_probe(now));
        mode.answered = true;
        assert!(mode.usable(later(Duration::from_millis(900))));
        // The check is a second old: the next question is a STREAM.INFO.
        assert!(!mode.usable(later(DIRECT_CHECKED_FOR)));
        // A failure: not used, and not probed again before the rest is over.
        mode.answered = false;
        mode.failed_at = Some(now);
        assert!(!mode.usable(now) && !mode.should_probe(later(Duration::from_secs(59))));
        assert!(mode.should_probe(later(DIRECT_REST)));
        mode.probing = true;
        assert!(!mode.should_probe(later(DIRECT_REST)));
    }

    #[test]
    fn a_subject_s_newest_counts_only_from_the_stream_itself_with_its_time() {
        let headers = |stream: &str, seq: &str, time: Option<&str>| {
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nats-Stream", stream);
            h.insert("Nats-Sequence", seq);
            if let Some(time) = time {
                h.insert("Nats-Time-Stamp", time);
            }
            h
        };
        let at = "2026-12-07T23:00:00.123456789Z";
        assert_eq!(
            newest_answer("ORDERS", None, Some(&headers("ORDERS", "7", Some(at)))),
            Some(Newest::Message {
                seq: 7,
                stored_at: at.to_owned()
            })
        );
        assert_eq!(
            newest_answer("ORDERS", Some(async_nats::StatusCode::NOT_FOUND), None),
            Some(Newest::Nothing)
        );
        assert_eq!(Newest::Nothing.seq(), 0);
        for refused in [
            headers("ORDERS_MIRROR", "7", Some(at)),
            headers("ORDERS", "x", Some(at)),
            headers("ORDERS", "7", None),
        ] {
            assert_eq!(newest_answer("ORDERS", None, Some(&refused)), None);
        }
        assert_eq!(newest_answer("ORDERS", None, None), None);
        assert_eq!(
            newest_answer("ORDERS", Some(async_nats::StatusCode::TIMEOUT), None),
            None
        );
    }

    #[test]
    fn a_direct_answer_counts_only_from_the_stream_itself() {
        let headers = |stream: &str, seq: &str| {
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nats-Stream", stream);
            h.insert("Nats-Sequence", seq);
            h.insert("Nats-Time-Stamp", "2026-12-07T23:00:00.5Z");
            h
        };
        let last =
            |status, h: Option<&async_nats::HeaderMap>| match direct_answer("ORDERS", status, h) {
                Ok(Direct::Last(end)) => Ok(Some(end.seq)),
                Ok(Direct::NoLastMessage) => Ok(None),
                Err(err) => Err(err),
            };
        assert_eq!(last(None, Some(&headers("ORDERS", "42"))), Ok(Some(42)));
        // A mirror with mirror_direct answers for its origin with what it has copied.
        assert!(last(None, Some(&headers("ORDERS_MIRROR", "40"))).is_err());
        assert!(last(None, Some(&headers("ORDERS", "x"))).is_err());
        assert!(last(None, None).is_err());
        assert_eq!(
            last(Some(async_nats::StatusCode::NOT_FOUND), None),
            Ok(None)
        );
        assert!(last(Some(async_nats::StatusCode::TIMEOUT), None).is_err());
    }
}
