//! The launcher as a person runs it: the real binary, started and stopped by signal.

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    path::Path,
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

use serde_json::Value;
use testkit::NatsServer;

/// The stack binary with a temp data dir, quiet logs and every service on port 0.
fn stack(data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stack"));
    cmd.env_remove("NATS_URL")
        .env("SHOP_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .env("USERS_HTTP_ADDR", "127.0.0.1:0")
        .env("AUTH_HTTP_ADDR", "127.0.0.1:0")
        .env("ORDERS_HTTP_ADDR", "127.0.0.1:0")
        .env("GATEWAY_HTTP_ADDR", "127.0.0.1:0")
        .env_remove("AUTH_JWT_SECRET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Reads the banner up to "Press Ctrl-C", returning its lines.
fn banner(child: &mut Child) -> Vec<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(testkit::PATIENCE) {
        let done = line.starts_with("Press Ctrl-C");
        lines.push(line);
        if done {
            return lines;
        }
    }
    let _ = child.kill();
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
    }
    panic!("the stack printed no banner: {lines:?}\nstderr: {stderr}");
}

fn url_of(lines: &[String], service: &str) -> String {
    lines
        .iter()
        .find_map(|l| {
            l.trim()
                .strip_prefix(service)
                .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned())
        })
        .unwrap_or_else(|| panic!("no {service} line in {lines:?}"))
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let started = std::time::Instant::now();
    while started.elapsed() < testkit::PATIENCE {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!(
        "the stack did not stop within {:?} of SIGTERM",
        testkit::PATIENCE
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

async fn get_json(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.expect("request sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json body"))
}

#[tokio::test]
async fn the_stack_serves_every_service_on_a_given_bus_and_stops_cleanly_on_sigterm() {
    let nats = NatsServer::start();
    let data = tempfile::tempdir().expect("temp dir");
    let mut child = stack(data.path())
        .env("NATS_URL", nats.url())
        .spawn()
        .expect("stack starts");
    let lines = banner(&mut child);
    let users = url_of(&lines, "users");

    let (status, body) = get_json(&format!("{users}/users/victor")).await;
    assert_eq!(status, 200);
    assert_eq!(body["username"], "victor");
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let ping = client
        .request("$SRV.PING.users", "".into())
        .await
        .expect("users answers PING");
    let ping: Value = serde_json::from_slice(&ping.payload).expect("json");
    assert_eq!(ping["name"], "users");
    assert!(data.path().join("users.db").is_file());

    let auth = url_of(&lines, "auth");
    let login = reqwest::Client::new()
        .post(format!("{auth}/auth/login"))
        .json(&serde_json::json!({ "username": "victor", "password": "1234" }))
        .send()
        .await
        .expect("login sent");
    assert_eq!(login.status(), 200);
    let ping = client
        .request("$SRV.PING.auth", "".into())
        .await
        .expect("auth answers PING");
    let ping: Value = serde_json::from_slice(&ping.payload).expect("json");
    assert_eq!(ping["name"], "auth");
    // No private signing key on disk: auth keeps its pair in memory.
    let secrets: Vec<String> = std::fs::read_dir(data.path().join("secrets"))
        .expect("secrets dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    assert!(
        !secrets
            .iter()
            .any(|f| f.contains("jwt") || f.contains("sign")),
        "{secrets:?}"
    );

    let token: Value = login.json().await.expect("json");
    let token = token["access_token"].as_str().expect("token");
    let orders = url_of(&lines, "orders");
    let bought = reqwest::Client::new()
        .post(format!("{orders}/orders/victor/buy"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "article_id": 1 }))
        .send()
        .await
        .expect("buy sent");
    assert_eq!(bought.status(), 201);
    let written =
        std::fs::read_to_string(data.path().join("purchases.json")).expect("purchases.json");
    assert_eq!(written.lines().count(), 1);

    let status = terminate(&mut child);
    assert!(status.success(), "exit status {status}");
    let err = client.request("$SRV.PING.users", "".into()).await;
    assert!(err.is_err(), "users no longer answers after the stop");
}

#[tokio::test]
async fn the_stack_starts_its_own_nats_server_with_permissions_and_everything_works() {
    let data = tempfile::tempdir().expect("temp dir");
    // As a checkout's data/ would be: readable by all until the stack narrows it.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    // The project's config with the store moved into the temp dir.
    let conf =
        std::fs::read_to_string(testkit::project_dir().join("nats.conf")).expect("nats.conf");
    let store = data.path().join("jetstream");
    let conf = conf.replace("\"data/jetstream\"", &format!("\"{}\"", store.display()));
    let conf_path = data.path().join("nats.conf");
    std::fs::write(&conf_path, conf).expect("write conf");
    let port = free_port();

    let mut child = stack(data.path())
        .env("STACK_NATS_CONFIG", &conf_path)
        .env("STACK_NATS_PORT", port.to_string())
        // No monitoring port: one free port less to race other tests for.
        .env("STACK_NATS_MONITOR_PORT", "0")
        .spawn()
        .expect("stack starts");
    let lines = banner(&mut child);
    let url = format!("nats://127.0.0.1:{port}");
    assert_eq!(url_of(&lines, "nats"), url);

    // Anonymous is refused; the ops user made by the stack sees the services.
    assert!(
        async_nats::connect(&url).await.is_err(),
        "anonymous refused"
    );
    let passwords = std::fs::read_to_string(data.path().join("secrets/nats-passwords.env"))
        .expect("passwords file");
    let ops_password = passwords
        .lines()
        .find_map(|l| l.strip_prefix("SHOP_NATS_PASSWORD_OPS="))
        .expect("ops password");
    let ops = async_nats::ConnectOptions::with_user_and_password("ops".into(), ops_password.into())
        .connect(&url)
        .await
        .expect("ops connects");
    let endpoints = testkit::micro_endpoints(&ops, "users").await;
    assert_eq!(endpoints.len(), 3);
    assert!(
        store.is_dir(),
        "JetStream keeps its store where nats.conf says"
    );

    // The whole flow through the gateway, with every service under its own user.
    let gateway = url_of(&lines, "gateway");
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{gateway}api/login"))
        .json(&serde_json::json!({ "username": "victor", "password": "1234" }))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = login["access_token"].as_str().expect("token");
    let bought = http
        .post(format!("{gateway}api/buy"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "article_id": 2 }))
        .send()
        .await
        .expect("buy");
    assert_eq!(bought.status(), 201);
    let history: Value = http
        .get(format!("{gateway}api/purchases"))
        .bearer_auth(token)
        .send()
        .await
        .expect("purchases")
        .json()
        .await
        .expect("json");
    assert_eq!(history["purchases"], serde_json::json!(["Article 2"]));
    let ready = http
        .get(format!("{gateway}readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200, "the gateway may ping the services");
    drop(ops);
    // Hashes, purchases, secrets and logs are the owner's alone, whoever wrote them.
    let mode = |name: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(data.path().join(name))
            .unwrap_or_else(|err| panic!("{name}: {err}"))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(""), 0o700, "the data directory");
    for file in [
        "users.db",
        "users.db-wal",
        "purchases.json",
        "purchases.json.index",
        "purchases.json.index-wal",
        "nats-server.log",
        "secrets/nats-passwords.env",
    ] {
        assert_eq!(mode(file), 0o600, "{file}");
    }

    let status = terminate(&mut child);
    assert!(status.success(), "exit status {status}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nats-server was stopped with the stack"
    );
}

fn failed_start(cmd: &mut Command) -> String {
    let Output { status, stderr, .. } = cmd.output().expect("stack runs");
    assert_eq!(status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one line, not a panic: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn a_taken_port_is_a_one_line_error_that_says_what_to_do() {
    let nats = NatsServer::start();
    let data = tempfile::tempdir().expect("temp dir");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let stderr = failed_start(
        stack(data.path())
            .env("NATS_URL", nats.url())
            .env("USERS_HTTP_ADDR", addr.to_string()),
    );
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(stderr.contains("USERS_HTTP_ADDR"), "{stderr}");
}

#[test]
fn a_missing_nats_server_is_a_one_line_error_that_says_how_to_install_it() {
    let data = tempfile::tempdir().expect("temp dir");
    let conf = testkit::project_dir().join("nats.conf");
    let stderr = failed_start(
        stack(data.path())
            .env("NATS_SERVER_BIN", "/nonexistent/nats-server")
            .env("STACK_NATS_CONFIG", conf)
            .env("STACK_NATS_PORT", free_port().to_string())
            .env("STACK_NATS_MONITOR_PORT", free_port().to_string()),
    );
    assert!(stderr.contains("is not installed"), "{stderr}");
    assert!(stderr.contains("make deps"), "{stderr}");
}

#[test]
fn an_unreachable_bus_is_a_one_line_error() {
    let data = tempfile::tempdir().expect("temp dir");
    let stderr = failed_start(
        stack(data.path()).env("NATS_URL", format!("nats://127.0.0.1:{}", free_port())),
    );
    assert!(stderr.contains("cannot connect to NATS"), "{stderr}");
}
