//! What every service process does the same way: connect to NATS, set up logging,
//! serve HTTP until told to stop, and wait for Ctrl-C or SIGTERM.

use std::{
    future::Future,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_nats::{Client, ConnectOptions, ReconnectToServer};
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{error::StartError, serve::MicroService};

/// How long a service waits for the bus at start-up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the client pings a server it heard nothing from; three unanswered pings
/// end the connection: a stalled server (a frozen process, a paused VM, which keep
/// their connections open) is left for another within 1 to 1.5 s. A ping goes out only
/// after this long without a byte from the server, and a busy server answers it at once
/// (from the connection's own read loop): only a server that sent nothing for over a
/// second is left.
const PING_INTERVAL: Duration = Duration::from_millis(500);
/// The longest wait between two reconnection attempts. An attempt at a node that is down
/// is refused at once, so trying twice a second costs nothing.
const MAX_RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// Where the bus is and who this process is on it; the same flags in every service.
#[derive(Debug, Clone, clap::Args)]
pub struct NatsConfig {
    /// The NATS server to join; several, comma-separated, are a cluster's nodes (tried
    /// in this order, the others are fallbacks).
    #[arg(
        long = "nats-url",
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub url: String,
    /// This service's NATS user (`nats.conf` gives each its permissions).
    #[arg(long = "nats-user", env = "NATS_USER")]
    pub user: Option<String>,
    /// Its password.
    #[arg(long = "nats-password", env = "NATS_PASSWORD", hide_env_values = true)]
    pub password: Option<Secret>,
}

impl NatsConfig {
    /// Anonymous access to `url` (a test server without users).
    pub fn anonymous(url: String) -> Self {
        Self {
            url,
            user: None,
            password: None,
        }
    }
}

/// A secret string that never shows in `Debug` output or logs.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// The inbox prefix of process `name`: `_INBOX_<name>`.
pub fn inbox_prefix(name: &str) -> String {
    format!("_INBOX_{name}")
}

/// Connects to NATS as `name`, failing within a few seconds when nobody is there or
/// the credentials are refused. Once connected, the client reconnects by itself for as
/// long as the process runs.
pub async fn connect(config: &NatsConfig, name: &str) -> Result<Client, StartError> {
    // Replies to this process come to its own inbox prefix, so that `nats.conf` can let
    // each service read only its own replies.
    let mut options = ConnectOptions::new()
        .name(name)
        .custom_inbox_prefix(inbox_prefix(name))
        .connection_timeout(CONNECT_TIMEOUT)
        // A server that stopped answering without closing the connection (a node cut
        // off by the network, or stalled) is left after three unanswered pings for
        // another node of NATS_URL; async-nats' default is a ping a minute.
        .ping_interval(PING_INTERVAL)
        .reconnect_to_server_callback(round_robin())
        .reconnect_delay_callback(reconnect_delay);
    if let (Some(user), Some(password)) = (&config.user, &config.password) {
        options = options.user_and_password(user.clone(), password.expose().to_owned());
    }
    // Several servers (a cluster's nodes), comma-separated: tried in the order given (not
    // shuffled, async-nats' default), so that instances can be spread over the nodes; the
    // others (and those the cluster announces) are the fallbacks.
    options = options.retain_servers_order();
    let servers: Vec<&str> = config
        .url
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    options
        .connect(servers)
        .await
        .map_err(|source| StartError::Nats {
            url: config.url.clone(),
            source,
        })
}

/// The wait before reconnection attempt `attempts`: at once, then doubling from 2 ms up
/// to [`MAX_RECONNECT_DELAY`] (async-nats' default goes up to 4 s, which a node back
/// after a few seconds down then cost on top of its own start).
fn reconnect_delay(attempts: usize) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let exponent = (attempts - 1).min(16) as u32;
    Duration::from_millis(2_u64.pow(exponent)).min(MAX_RECONNECT_DELAY)
}

/// Where to reconnect: the first connection tries the servers in the order given (the
/// default selection); each reconnection then tries the next server in turn, so that the
/// one just lost is tried last. A stalled node still accepts connections and never
/// answers: tried first again (the servers' order is kept for placement), it would cost
/// a whole connection timeout.
fn round_robin() -> impl Fn(
    Vec<async_nats::Server>,
    async_nats::ServerInfo,
) -> std::future::Ready<Option<ReconnectToServer>>
+ Send
+ Sync
+ 'static {
    let turn = Arc::new(AtomicUsize::new(0));
    move |servers, _last| {
        let n = turn.fetch_add(1, Ordering::Relaxed);
        std::future::ready((n > 0 && !servers.is_empty()).then(|| ReconnectToServer {
            addr: servers[n % servers.len()].addr.clone(),
            delay: None,
        }))
    }
}

/// Waits until the server has every subscription `name` made on `nats` (a ping answered
/// after them): a service is built only then, so that nothing published to it after
/// `build` returns is lost (async-nats' `subscribe` only queues the SUB).
pub async fn subscribed(nats: &Client, name: &'static str) -> Result<(), StartError> {
    nats.flush().await.map_err(|err| StartError::Service {
        service: name,
        reason: format!("the NATS server did not confirm the subscriptions: {err}"),
    })
}

/// Binds `addr`, naming `hint` (the flag or variable that changes it) on failure.
pub async fn bind(addr: SocketAddr, hint: &'static str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, hint, source })
}

/// The two doors of a built service, ready to run.
#[derive(Debug)]
pub struct Doors {
    /// Used in log lines.
    pub name: &'static str,
    pub listener: TcpListener,
    pub router: axum::Router,
    pub nats: Client,
    /// The NATS door; `None` for a client-only process (the gateway).
    pub micro: Option<MicroService>,
    /// Background work (such as a consumer) that stops after both doors have stopped
    /// and before the NATS connection is drained.
    pub workers: Workers,
}

/// Background tasks of a service and the token that tells them to stop.
#[derive(Debug, Clone, Default)]
pub struct Workers {
    pub stop: CancellationToken,
    pub tasks: TaskTracker,
}

impl Doors {
    /// The address the HTTP door listens on (useful with port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("BUG: a bound listener has an address")
    }

    /// Serves both doors until `shutdown` resolves, then stops taking requests on both,
    /// finishes those in flight and drains the NATS connection.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let stop = CancellationToken::new();
        let trigger = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            trigger.cancel();
        });

        let http_stop = stop.clone();
        let http = serve_http(self.listener, self.router, http_stop);
        let micro = self.micro;
        let bus = async move {
            stop.cancelled().await;
            if let Some(micro) = micro {
                micro.stop().await;
            }
        };
        tokio::join!(http, bus);
        self.workers.stop.cancel();
        self.workers.tasks.close();
        self.workers.tasks.wait().await;
        if let Err(err) = self.nats.drain().await {
            tracing::debug!(%err, "draining the NATS connection");
        }
        tracing::info!("{} service stopped", self.name);
        Ok(())
    }
}

/// A client that has not sent its request headers within this time is cut off.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Open HTTP connections a door serves at once; further ones wait in the listen
/// backlog until one closes, so that a flood of idle connections cannot take every file
/// descriptor (and with them the NATS connection's reconnects and the journal).
pub const MAX_CONNECTIONS: usize = 2048;

/// Serves `router` on `listener` until `stop` is cancelled, then lets the requests in
/// flight finish. HTTP/1.1 with the limits every door needs: headers must arrive within
/// [`HEADER_READ_TIMEOUT`] (a slow client is cut off), at most [`MAX_CONNECTIONS`] are
/// open, hyper refuses request heads over its buffer limit (about 400 KB) with 431, and
/// each request knows its client's address (`ConnectInfo`).
///
/// Our own loop rather than `axum::serve`, which has neither a header-read timeout nor
/// a cap on connections.
async fn serve_http(listener: TcpListener, router: axum::Router, stop: CancellationToken) {
    let connections = TaskTracker::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break, // never closed
            },
            () = stop.cancelled() => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, say: wait a little instead of spinning.
                    tracing::warn!(%err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let router = router.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(
                move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request
                        .extensions_mut()
                        .insert(axum::extract::ConnectInfo(remote));
                    tower::ServiceExt::oneshot(router.clone(), request.map(axum::body::Body::new))
                },
            );
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = result {
                tracing::debug!(%err, "a connection ended with an error");
            }
        });
    }
    connections.close();
    connections.wait().await;
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// How a binary runs, whatever it serves: the same flags in the four services and the
/// stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct RunConfig {
    /// Threads running the async tasks: one is the fastest for these services; scale
    /// out with more instances instead (NATS spreads a queue group's requests).
    //
    // The async work of a request is a few microseconds and everything slow (argon2,
    // SQLite, fsync) runs on its own threads, so more workers only add cross-thread
    // wake-ups: on two cores under load, two workers took the gateway 60% more CPU per
    // request than one, auth and orders about twice as much.
    #[arg(
        long = "worker-threads",
        env = "SHOP_WORKER_THREADS",
        default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..=1024)
    )]
    pub worker_threads: u16,
    /// How many nodes keep each stream this process makes: 1 on a single nats-server, 3
    /// on a cluster of three (a stream made with fewer is updated by its owner).
    #[arg(
        long = "stream-replicas",
        env = "SHOP_STREAM_REPLICAS",
        default_value_t = 1,
        value_parser = clap::value_parser!(u8).range(1..=5)
    )]
    pub stream_replicas: u8,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            worker_threads: 1,
            stream_replicas: 1,
        }
    }
}

impl RunConfig {
    fn build_runtime(self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = if self.worker_threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(usize::from(self.worker_threads));
            builder
        };
        builder.enable_all().build()
    }
}

/// The configuration of a binary: flags and environment, with a [`RunConfig`] among them.
pub trait BinaryConfig: clap::Parser {
    fn run_config(&self) -> RunConfig;
}

/// The whole `main` of a service binary: parses its configuration (flags and
/// environment), builds it with `build`, and runs both doors until Ctrl-C or SIGTERM.
pub fn serve<C, B, Fut>(build: B)
where
    C: BinaryConfig,
    B: FnOnce(C) -> Fut,
    Fut: Future<Output = Result<Doors, StartError>>,
{
    let config = C::parse();
    main(config.run_config(), async move {
        build(config)
            .await?
            .run_until_stopped(shutdown_signal())
            .await
    });
}

/// Runs a binary: logging from `RUST_LOG`, then `run` until it returns, as `config`
/// says, then the last spans sent when traces are exported. A start-up failure is printed as one line and the process exits with status 1.
pub fn main<F>(config: RunConfig, run: F)
where
    F: Future<Output = Result<(), StartError>>,
{
    init_tracing();
    let _ = STREAM_REPLICAS.set(usize::from(config.stream_replicas));
    let runtime = match config.build_runtime() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(run);
    drop(runtime);
    // The last spans, sent with the runtime gone (the exporter blocks).
    crate::trace::shutdown();
    if let Err(err) = result {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}

/// One subscriber for the process; `RUST_LOG` overrides the default `info`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,async_nats=warn"));
    // Colours only for a person at a terminal, not in a file or a pipe.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .try_init();
}

/// Whether the client is connected right now.
pub fn is_connected(nats: &Client) -> bool {
    nats.connection_state() == async_nats::connection::State::Connected
}

/// How many nodes keep each of the shop's streams, set once by [`main`] from
/// [`RunConfig::stream_replicas`]; 1 where nothing set it (a service built by a test).
static STREAM_REPLICAS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// The replicas of every stream this process makes.
pub fn stream_replicas() -> usize {
    STREAM_REPLICAS.get().copied().unwrap_or(1)
}

/// How long a service tries, at start, to make its streams while JetStream does not
/// answer (a cluster electing leaders, a server restarting).
pub const STREAMS_AT_START: Duration = Duration::from_secs(20);

/// Runs `attempt` until it succeeds or [`STREAMS_AT_START`] has passed, every half
/// second, saying what it waits for; the last error if it never succeeds, with a hint
/// that JetStream may be off on `nats`.
pub async fn retry_at_start<T, F, Fut>(
    what: &str,
    nats: &NatsConfig,
    mut attempt: F,
) -> Result<T, StartError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + STREAMS_AT_START;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(err) if tokio::time::Instant::now() + Duration::from_millis(500) < deadline => {
                tracing::warn!(%err, "{what}: JetStream does not answer yet; trying again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => {
                return Err(StartError::Other(format!(
                    "{err}; is JetStream enabled on {} (nats.conf has a jetstream block)?",
                    nats.url
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Binary {
        #[command(flatten)]
        run: RunConfig,
    }

    #[test]
    fn reconnections_come_at_once_then_at_most_twice_a_second() {
        let delays: Vec<u128> = (0..=12).map(|a| reconnect_delay(a).as_millis()).collect();
        assert_eq!(delays, [0, 0, 2, 4, 8, 16, 32, 64, 128, 256, 500, 500, 500]);
        assert_eq!(reconnect_delay(usize::MAX), MAX_RECONNECT_DELAY);
    }

    #[test]
    fn reconnections_go_round_the_servers_after_the_first_connection() {
        let servers: Vec<async_nats::Server> = ["nats://a:1", "nats://b:2", "nats://c:3"]
            .iter()
            .map(|url| async_nats::Server {
                addr: url.parse().expect("an address"),
                failed_attempts: 0,
                did_connect: false,
                is_discovered: false,
                last_error: None,
            })
            .collect();
        let choose = round_robin();
        let info = async_nats::ServerInfo::default();
        let mut chosen = Vec::new();
        for _ in 0..5 {
            let choice =
                futures_util::FutureExt::now_or_never(choose(servers.clone(), info.clone()))
                    .expect("ready");
            chosen.push(choice.map(|c| c.addr.port()));
        }
        // The first connection is async-nats' own (every server in the order given).
        assert_eq!(chosen, [None, Some(2), Some(3), Some(1), Some(2)]);
    }

    #[test]
    fn the_run_flags_take_good_values_and_refuse_bad_ones_with_a_message() {
        let parsed = Binary::try_parse_from(["x"]).expect("defaults");
        assert_eq!(parsed.run, RunConfig::default());
        let parsed =
            Binary::try_parse_from(["x", "--worker-threads", "4", "--stream-replicas", "3"])
                .expect("good values");
        assert_eq!(parsed.run.worker_threads, 4);
        assert_eq!(parsed.run.stream_replicas, 3);
        for (flag, bad) in [
            ("--worker-threads", "0"),
            ("--worker-threads", "two"),
            ("--stream-replicas", "0"),
            ("--stream-replicas", "7"),
            ("--stream-replicas", "three"),
        ] {
            let err = Binary::try_parse_from(["x", flag, bad]).expect_err(bad);
            assert!(err.to_string().contains(flag), "{flag} {bad}: {err}");
        }
    }
}
