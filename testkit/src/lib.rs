//! A real `nats-server` for tests: started on a free port with its own JetStream
//! directory, killed and cleaned up on drop.
//!
//! The server picks its own port (`-p -1`) and writes it to a ports file, so two tests
//! never race for the same port.
//!
//! ```no_run
//! let nats = testkit::NatsServer::start();
//! println!("{}", nats.url());
//! ```
//!
//! [`Running`] runs a built service in the test's runtime until it is stopped;
//! [`StubAuth`] publishes a signing key of its own in `AUTH_KEYS`, so that every verifier
//! on the server (the gateway, orders) accepts the tokens it signs, and a test of a
//! service that checks tokens need not start users and auth. [`retry_unavailable`] and
//! [`send_carefully`] ask again after a 503 as a careful client does, and [`PATIENCE`]
//! bounds every wait: tests assert outcomes, never speed.

use std::{
    io::ErrorKind,
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use tempfile::TempDir;

/// How to install the server when it is missing.
const INSTALL_HINT: &str =
    "install it with `sudo apt-get install nats-server` (or `make deps`), or set NATS_SERVER_BIN";

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running `nats-server`, stopped when dropped.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    dir: TempDir,
    port: u16,
    monitor_port: u16,
    config: Option<PathBuf>,
    extra_args: Vec<String>,
    env: Vec<(String, String)>,
}

/// What to start.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// A config file, e.g. the project's `nats.conf`; its ports and store directory are
    /// overridden by the server's command line.
    pub config: Option<PathBuf>,
    /// Turn JetStream off (it is on by default).
    pub no_jetstream: bool,
    /// Extra command-line arguments for `nats-server`.
    pub extra_args: Vec<String>,
    /// Environment variables for the server (the passwords `nats.conf` refers to).
    pub env: Vec<(String, String)>,
}

impl NatsServer {
    /// Starts a server with JetStream and no config file.
    ///
    /// # Panics
    /// When the binary is missing or the server does not come up; the message says why.
    pub fn start() -> Self {
        Self::start_with(Options::default())
    }

    /// Starts a server with `options`.
    ///
    /// # Panics
    /// When the binary is missing or the server does not come up; the message says why.
    pub fn start_with(options: Options) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("testkit-nats-")
            .tempdir()
            .unwrap_or_else(|err| panic!("testkit: cannot create a temp dir: {err}"));
        let mut args = Vec::new();
        if !options.no_jetstream {
            args.push("-js".to_owned());
        }
        args.extend(options.extra_args);
        let mut server = Self {
            child: None,
            dir,
            port: 0,
            monitor_port: 0,
            config: options.config,
            extra_args: args,
            env: options.env,
        };
        server.spawn(None);
        server
    }

    /// The client URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The monitoring port (HTTP).
    pub fn monitor_port(&self) -> u16 {
        self.monitor_port
    }

    /// The server's JetStream store directory (without a config file; with one, the
    /// file's relative `store_dir` lands inside [`Self::dir`]).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("jetstream")
    }

    /// The server's temp directory, removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server (as a crash would: SIGKILL), keeping its store directory.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same store, after [`stop`](Self::stop).
    pub fn restart(&mut self) {
        self.stop();
        let port = self.port;
        self.spawn(Some(port));
    }

    /// Starts the server again on the same port with JetStream off, as a server whose
    /// JetStream failed or was turned off by its operator would be.
    pub fn restart_without_jetstream(&mut self) {
        self.extra_args.retain(|arg| arg != "-js");
        self.restart();
    }

    fn spawn(&mut self, port: Option<u16>) {
        let bin = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".to_owned());
        let ports_dir = self.dir.path().join("ports");
        let _ = std::fs::remove_dir_all(&ports_dir);
        std::fs::create_dir_all(&ports_dir)
            .unwrap_or_else(|err| panic!("testkit: cannot create {}: {err}", ports_dir.display()));
        let mut cmd = Command::new(&bin);
        if let Some(config) = &self.config {
            // nats-server 2.9 refuses `-sd` beside a `store_dir` in the file; running in
            // the temp dir puts a relative store (`data/jetstream`) there instead.
            let config = std::path::absolute(config).unwrap_or_else(|_| config.clone());
            cmd.arg("-c").arg(config).current_dir(self.dir.path());
        } else {
            cmd.arg("-sd").arg(self.store_dir());
        }
        let port_arg = port.map_or_else(|| "-1".to_owned(), |p| p.to_string());
        cmd.args(["-a", "127.0.0.1", "-p", &port_arg, "-m", "-1"])
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .args(&self.extra_args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file(self.dir.path())));
        let child = cmd.spawn().unwrap_or_else(|err| {
            if err.kind() == ErrorKind::NotFound {
                panic!("testkit: `{bin}` was not found: {INSTALL_HINT}");
            }
            panic!("testkit: cannot start `{bin}`: {err}");
        });
        let pid = child.id();
        self.child = Some(child);
        let (port, monitor_port) = self.wait_for_ports(&ports_dir, pid);
        self.port = port;
        self.monitor_port = monitor_port;
    }

    /// Waits for the ports file and then for the port to accept connections.
    fn wait_for_ports(&mut self, ports_dir: &Path, pid: u32) -> (u16, u16) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "testkit: nats-server exited with {status} during start-up:\n{}",
                    self.log()
                );
            }
            if let Some(ports) = read_ports(ports_dir, pid)
                && TcpStream::connect(("127.0.0.1", ports.0)).is_ok()
            {
                return ports;
            }
            assert!(
                Instant::now() < deadline,
                "testkit: nats-server did not accept connections within {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats-server.log")).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn log_file(dir: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("nats-server.log"))
        .unwrap_or_else(|err| panic!("testkit: cannot create the server log: {err}"))
}

/// The client and monitoring ports from `<exe>_<pid>.ports`, once the server wrote it.
fn read_ports(dir: &Path, pid: u32) -> Option<(u16, u16)> {
    let entry = std::fs::read_dir(dir).ok()?.flatten().find(|e| {
        e.file_name()
            .to_string_lossy()
            .ends_with(&format!("_{pid}.ports"))
    })?;
    let text = std::fs::read_to_string(entry.path()).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let port_of = |key: &str| -> Option<u16> {
        let url = json.get(key)?.as_array()?.first()?.as_str()?;
        url.rsplit(':').next()?.trim_end_matches('/').parse().ok()
    };
    Some((port_of("nats")?, port_of("monitoring").unwrap_or(0)))
}

/// A service (its [`service_kit::runtime::Doors`]) running in this process until
/// [`stop`](Running::stop)ped or dropped.
#[derive(Debug)]
pub struct Running {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Runs `app` on the current tokio runtime.
    pub fn spawn(app: service_kit::runtime::Doors) -> Self {
        let addr = app.http_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.run_until_stopped(async move {
                let _ = stopped.await;
            })
            .await
            .expect("the service stops cleanly");
        });
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The service's HTTP address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// `http://<addr><path>`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops the service as Ctrl-C would and waits until it has finished.
    ///
    /// # Panics
    /// When it does not stop within [`PATIENCE`] or its task panicked.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(PATIENCE, task)
                .await
                .expect("the service stops")
                .expect("the service task did not panic");
        }
    }
}

/// The endpoint subjects of micro service `name`, sorted, from `$SRV.INFO.<name>`.
///
/// # Panics
/// When the service does not answer or its reply is not an INFO document.
pub async fn micro_endpoints(nats: &async_nats::Client, name: &str) -> Vec<String> {
    let reply = nats
        .request(format!("$SRV.INFO.{name}"), "".into())
        .await
        .unwrap_or_else(|err| panic!("{name} did not answer $SRV.INFO: {err}"));
    let info: serde_json::Value =
        serde_json::from_slice(&reply.payload).expect("an INFO reply is JSON");
    assert_eq!(info["name"], name);
    let mut subjects: Vec<String> = info["endpoints"]
        .as_array()
        .expect("INFO lists endpoints")
        .iter()
        .filter_map(|e| e["subject"].as_str().map(str::to_owned))
        .collect();
    subjects.sort_unstable();
    subjects
}

/// Waits until micro service `name` answers `$SRV.PING.<name>` on `nats`: a service
/// whose endpoints were subscribed on its own connection may not be known to the server
/// yet when a request comes in on another.
///
/// # Panics
/// When it does not answer within [`PATIENCE`].
pub async fn answering(nats: &async_nats::Client, name: &str) {
    let subject = bus_schema::discovery::ping(Some(name));
    let started = Instant::now();
    while started.elapsed() < PATIENCE {
        if nats.request(subject.clone(), "".into()).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("testkit: {name} does not answer {subject} after {PATIENCE:?}");
}

/// The status and body of an HTTP answer: the body as JSON, or as a JSON string when it
/// is not JSON (a page, a plain-text error).
///
/// # Panics
/// When the body cannot be read.
pub async fn read(response: reqwest::Response) -> (reqwest::StatusCode, serde_json::Value) {
    let status = response.status();
    let text = response.text().await.expect("testkit: the body is read");
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, body)
}

/// Sends `request` as a careful client would: a 503 is sent again after a short pause
/// until anything else answers or [`PATIENCE`] runs out. Only for requests that may
/// arrive twice (reads, keyed buys).
///
/// # Panics
/// When the request cannot be sent or its body is a stream.
pub async fn send_carefully(
    request: reqwest::RequestBuilder,
) -> (reqwest::StatusCode, serde_json::Value) {
    read(response_carefully(request).await).await
}

/// `request` with `If-None-Match: tag` when a tag is given, sent carefully: the
/// response, for its status and `ETag`.
pub fn get_unless(
    request: reqwest::RequestBuilder,
    if_none_match: Option<&str>,
) -> impl Future<Output = reqwest::Response> + use<> {
    let request = match if_none_match {
        Some(tag) => request.header(reqwest::header::IF_NONE_MATCH, tag),
        None => request,
    };
    response_carefully(request)
}

/// [`send_carefully`]'s response itself, for its headers.
pub async fn response_carefully(request: reqwest::RequestBuilder) -> reqwest::Response {
    let started = Instant::now();
    loop {
        let again = request.try_clone().expect("testkit: a body in memory");
        let response = again.send().await.expect("testkit: sent");
        if response.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE
            || started.elapsed() > PATIENCE
        {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every page of a paged answer, from `path` on the door at `base` (`http://host:port`),
/// following each page's `Link: <...>; rel="next"` header, which must name the page's
/// `next_url` (and be missing on the last page). The pages' bodies, in order.
///
/// # Panics
/// When a page is not a 200, or its header and body disagree.
pub async fn follow_pages(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: &str,
) -> Vec<serde_json::Value> {
    let mut pages = Vec::new();
    let mut path = path.to_owned();
    loop {
        let response = http
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("testkit: sent");
        let link = response
            .headers()
            .get(reqwest::header::LINK)
            .map(|v| v.to_str().expect("testkit: an ASCII link").to_owned());
        let (status, page) = read(response).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{path}: {page}");
        let next = page["next_url"].as_str().map(str::to_owned);
        assert_eq!(
            link,
            next.as_ref().map(|next| format!("<{next}>; rel=\"next\"")),
            "the Link header names the next page of {path}"
        );
        pages.push(page);
        match next {
            Some(next) => path = next,
            None => return pages,
        }
    }
}

/// The `error` message of an error body.
///
/// # Panics
/// When the body has none.
pub fn error_of(body: &serde_json::Value) -> &str {
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {body}"))
}

/// Waits until the instance serving `metrics_url` (its `/metrics`) has counted at least
/// `expected` attempts that other instances announced to its throttle `name`: after
/// that, those attempts count there, however slow the bus hop was.
///
/// # Panics
/// When it has not within [`PATIENCE`].
pub async fn throttle_shared(metrics_url: &str, name: &str, expected: u64) {
    let series = format!("shop_throttle_shared_total{{throttle=\"{name}\"}} ");
    let started = Instant::now();
    let mut seen = None;
    while started.elapsed() < PATIENCE {
        let (_, text) = reqwest_lite::Client::new()
            .send("GET", metrics_url, None)
            .await;
        seen = text
            .lines()
            .find_map(|line| line.strip_prefix(series.as_str()))
            .and_then(|count| count.trim().parse::<u64>().ok());
        if seen.is_some_and(|count| count >= expected) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("testkit: {metrics_url} counted {seen:?} shared attempts of {name}, not {expected}");
}

/// Checks an OpenAPI document served by the door at `base`: OpenAPI 3.1, every
/// `$ref` names a schema it has, every operation has answers, it lists at least
/// `expected` (and `/openapi.json` itself is listed or served), and every operation it
/// lists exists on the door (a request to it, with `token` as Bearer, path parameters
/// filled with `victor`, gets anything but the door's "no such endpoint" 404 or a 405).
///
/// # Panics
/// On the first thing that is wrong.
pub async fn check_openapi(
    doc: &serde_json::Value,
    base: &str,
    token: Option<&str>,
    expected: &[&str],
) {
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "not OpenAPI 3.1: {}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    for path in expected {
        assert!(
            paths.contains_key(*path) || *path == "/openapi.json",
            "{path} is not in the document"
        );
    }
    let schemas = doc["components"]["schemas"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"").skip(1) {
        let target = piece.split('"').next().unwrap_or_default();
        let name = target.rsplit('/').next().unwrap_or_default();
        assert!(
            target.starts_with("#/components/schemas/") && schemas.contains_key(name),
            "$ref {target} names no schema of the document"
        );
    }
    let http = reqwest_lite::Client::new();
    for (path, item) in paths {
        let url = format!("{base}{}", path.replace("{username}", "victor"));
        for (method, operation) in item.as_object().expect("path item") {
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty()),
                "{method} {path} has no responses"
            );
            let (status, body) = http.send(method, &url, token).await;
            let missing = status == 404 && body.contains("no such endpoint");
            assert!(
                !missing && status != 405,
                "{method} {path} is documented but not served: {status} {body}"
            );
        }
    }
}

/// The few HTTP requests [`check_openapi`] makes, over a plain TCP connection (no HTTP
/// client in testkit's dependencies).
mod reqwest_lite {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    pub struct Client;

    impl Client {
        pub fn new() -> Self {
            Self
        }

        /// `(status, body)` of `method url` with an empty JSON body.
        pub async fn send(&self, method: &str, url: &str, token: Option<&str>) -> (u16, String) {
            let rest = url.strip_prefix("http://").expect("http URL");
            let (host, path) = rest
                .split_once('/')
                .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
            let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
            let auth = token
                .map(|t| format!("Authorization: Bearer {t}\r\n"))
                .unwrap_or_default();
            let request = format!(
                "{} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}",
                method.to_uppercase()
            );
            stream.write_all(request.as_bytes()).await.expect("write");
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await.expect("read");
            let answer = String::from_utf8_lossy(&answer).into_owned();
            let status = answer
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let body = answer
                .split_once("\r\n\r\n")
                .map(|(_, b)| b.to_owned())
                .unwrap_or_default();
            (status, body)
        }
    }
}

/// How long a test waits for something that only needs time: a service answering, a
/// view catching up, a retried request getting through. Generous on purpose: a test
/// asserts what happens, never how fast, and a busy disk or one core shared by a whole
/// test binary can make any of these take many seconds. Passing tests never wait for it.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// The project's top directory (where `nats.conf` and `docs/` are), from the
/// `CARGO_MANIFEST_DIR` cargo gives the running test. Not the one compiled in: cargo may
/// reuse a test binary built from another checkout sharing the target directory, and
/// that checkout may be gone.
pub fn project_dir() -> PathBuf {
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    crate_dir.join("..")
}

/// Calls `call` as a careful client would: a 503 (the service busy or late, a purchase
/// accepted but not on disk yet) is asked again after a short pause, until it answers
/// anything else or [`PATIENCE`] runs out; then the last answer is returned.
///
/// Only for calls that may safely arrive twice: reads, and writes with an idempotency
/// key (the same key every time, which the closure must reuse).
pub async fn retry_unavailable<T, F, Fut>(mut call: F) -> Result<T, bus_schema::CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, bus_schema::CallError>>,
{
    let started = Instant::now();
    loop {
        match call().await {
            Err(err)
                if err.code() == bus_schema::ErrorCode::Unavailable
                    && started.elapsed() < PATIENCE =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            answer => return answer,
        }
    }
}

/// Stores `count` purchases of `user` in the `ORDERS` stream, as orders instances
/// would have (call it once orders has made the stream): article `1 + n % 3` at price
/// `(1 + n % 3) * 1000`, named `name(n)`, as the buy of idempotency key `bulk-<n>`.
/// Returns their ids in stream order. Publishes ahead of the acks, so thousands take
/// about a second.
///
/// # Panics
/// When the stream does not store them.
pub async fn publish_purchases(
    nats: &async_nats::Client,
    user: &str,
    count: usize,
    name: impl Fn(usize) -> String,
) -> Vec<String> {
    use bus_schema::orders;
    let js = async_nats::jetstream::new(nats.clone());
    let mut ids = Vec::with_capacity(count);
    let mut acks = Vec::new();
    for n in 0..count {
        let key = format!("bulk-{n}");
        let id = orders::purchase_id(user, &key).to_string();
        let price = u32::try_from(1 + n % 3).expect("small") * 1000;
        let event = orders::PurchasedEvent {
            id: id.clone(),
            username: user.to_owned(),
            article: orders::Article {
                id: price / 1000,
                name: name(n),
                price,
            },
            purchased_at: "2026-12-06T12:00:00Z".into(),
            idempotency_key: Some(key),
        };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.as_str());
        acks.push(
            js.publish_with_headers(
                orders::subject::purchased(user),
                headers,
                serde_json::to_vec(&event).expect("json").into(),
            )
            .await
            .expect("testkit: published"),
        );
        ids.push(id);
        if acks.len() == 256 || n + 1 == count {
            for ack in acks.drain(..) {
                ack.await.expect("testkit: the purchase is stored");
            }
        }
    }
    ids
}

/// A stand-in for the auth service's keys: an Ed25519 pair whose public half is
/// published in `AUTH_KEYS` (the stream made when missing), so that every verifier on
/// the server accepts the tokens [`StubAuth::token`] signs, as auth's own.
#[derive(Debug, Clone)]
pub struct StubAuth {
    kid: String,
    encoding: jsonwebtoken::EncodingKey,
}

impl StubAuth {
    /// Publishes a new key on `nats`'s server.
    ///
    /// # Panics
    /// When the stream cannot be made or the key stored.
    pub async fn start(nats: &async_nats::Client) -> Self {
        use base64::Engine;
        let js = async_nats::jetstream::new(nats.clone());
        js.get_or_create_stream(async_nats::jetstream::stream::Config {
            name: bus_schema::auth::KEYS_STREAM.to_owned(),
            subjects: vec![bus_schema::auth::subject::KEYS.to_owned()],
            ..Default::default()
        })
        .await
        .expect("testkit: the keys stream");
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("testkit: randomness");
        let public = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes();
        let kid = format!("stub-{}", service_kit::random::hex(4));
        let jwk = bus_schema::auth::PublicKey::ed25519(
            kid.clone(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public),
            u64::MAX / 2,
        );
        js.publish(
            bus_schema::auth::subject::key(&kid),
            serde_json::to_vec(&jwk).expect("json").into(),
        )
        .await
        .expect("testkit: publish the key")
        .await
        .expect("testkit: the key is stored");
        Self {
            kid,
            encoding: service_kit::tokens::ed25519_signing_key(&seed),
        }
    }

    /// Options of a bus call acting for `username` (its token in the `Authorization`
    /// header), as the gateway sends them.
    pub fn calls_for(&self, username: &str) -> bus_schema::CallOptions {
        bus_schema::CallOptions::default().bearer(&self.token(username))
    }

    /// A token for `username`, valid for an hour, as auth would issue it.
    pub fn token(&self, username: &str) -> String {
        self.token_with(username, 0, 3600)
    }

    /// A token for `username` valid from `nbf` to `exp` seconds from now.
    ///
    /// # Panics
    /// When signing fails.
    pub fn token_with(&self, username: &str, nbf: i64, exp: i64) -> String {
        // As auth issues them: for the normalised name.
        let username = bus_schema::users::Username::parse(username).map_or_else(
            |_| username.to_owned(),
            bus_schema::users::Username::into_string,
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let claims = serde_json::json!({
            "sub": username,
            "iat": now,
            "nbf": now + nbf,
            "exp": now + exp,
            "jti": service_kit::random::hex(16),
            "iss": "shop-auth",
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding).expect("testkit: sign")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_server_accepts_connections_and_is_gone_after_drop() {
        let server = NatsServer::start();
        let port = server.port();
        assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
        assert_ne!(server.monitor_port(), 0);
        drop(server);
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    }

    #[test]
    fn the_projects_nats_conf_loads_with_its_store_in_the_temp_dir() {
        let config = project_dir().join("nats.conf");
        let env = ["GATEWAY", "AUTH", "USERS", "ORDERS", "OPS"]
            .iter()
            .map(|u| (format!("SHOP_NATS_PASSWORD_{u}"), "test".to_owned()))
            .collect();
        let server = NatsServer::start_with(Options {
            config: Some(config),
            env,
            ..Options::default()
        });
        assert!(TcpStream::connect(("127.0.0.1", server.port())).is_ok());
        assert!(
            server.dir().join("data/jetstream").is_dir(),
            "{}",
            server.log()
        );
    }

    #[test]
    fn a_restarted_server_keeps_its_port() {
        let mut server = NatsServer::start();
        let port = server.port();
        server.stop();
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
        server.restart();
        assert_eq!(server.port(), port);
        assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    }
}
