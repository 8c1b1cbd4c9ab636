//! The nats-server the stack starts: `nats.conf` with the ports given on the command
//! line, its log in the data directory.
//!
//! By default its JetStream fsyncs every write before acknowledging it: the stack runs
//! a copy of `nats.conf` with `sync_interval: always` added
//! (`<data dir>/nats-server.conf`), so that a purchase or an account answered 201
//! survives the machine losing power. nats-server 2.9 (Debian 12's) has no such setting
//! and refuses it: it runs `nats.conf` as it is, with a warning.
//!
//! The JetStream store is where `nats.conf` puts it (`data/jetstream`, relative to the
//! directory the stack runs in): nats-server 2.9 refuses `-sd` together with a
//! `store_dir` in the file.

use std::{
    io::ErrorKind,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use service_kit::error::StartError;
use tokio::{
    net::{TcpListener, TcpStream},
    process::{Child, Command},
    time::{Instant, sleep},
};

use crate::Config;

/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long it may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// When JetStream fsyncs (`--nats-sync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Sync {
    /// Before each write is acknowledged (nats-server 2.10 and newer).
    Always,
    /// The server's default: every two minutes.
    Interval,
}

/// The configuration the server runs: `text` (nats.conf) with `sync_interval: always`
/// after the `store_dir` of its `jetstream` block when `sync` asks for it and the
/// server (`version`, as `nats-server --version` prints it) has the setting. `Err` when
/// the file has no `store_dir` line to put it after.
pub fn effective_config(text: &str, sync: Sync, version: (u32, u32)) -> Result<String, String> {
    if sync == Sync::Interval || version < (2, 10) {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len() + 32);
    let mut added = false;
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        let setting = line.trim_start();
        if !added && setting.starts_with("store_dir") {
            let indent = &line[..line.len() - setting.len()];
            out.push_str(indent);
            out.push_str("sync_interval: always\n");
            added = true;
        }
    }
    if added {
        Ok(out)
    } else {
        Err(
            "its jetstream block has no store_dir line to add `sync_interval: always` after"
                .to_owned(),
        )
    }
}

/// `(major, minor)` from `nats-server --version` (`nats-server: v2.9.10`).
pub fn parse_version(printed: &str) -> Option<(u32, u32)> {
    let version = printed.trim().rsplit('v').next()?;
    let mut numbers = version.split('.').map(|n| n.parse::<u32>().ok());
    Some((numbers.next()??, numbers.next()??))
}

/// A nats-server child process.
#[derive(Debug)]
pub struct NatsServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl NatsServer {
    /// Starts nats-server as `config` says and waits until it accepts clients.
    pub async fn start(config: &Config, env: &[(String, String)]) -> Result<Self, StartError> {
        if !config.nats_config.is_file() {
            return Err(StartError::Other(format!(
                "{} not found: run the stack from the repository root or pass --nats-config",
                config.nats_config.display()
            )));
        }
        let text = tokio::fs::read_to_string(&config.nats_config)
            .await
            .map_err(|err| {
                StartError::Other(format!(
                    "cannot read {}: {err}",
                    config.nats_config.display()
                ))
            })?;
        plain_listeners_on_loopback(&text).map_err(|listener| {
            StartError::Other(format!(
                "{}: {listener} listens beyond this machine without TLS; give it a `tls {{ \
                 cert_file: \"server-cert.pem\", key_file: \"server-key.pem\" }}` block (and \
                 `ca_file` with `verify: true` for routes), or listen on 127.0.0.1",
                config.nats_config.display()
            ))
        })?;
        for (port, what) in [
            (config.nats_port, "--nats-port"),
            (config.nats_monitor_port, "--nats-monitor-port"),
        ] {
            if port == 0 {
                continue;
            }
            if TcpListener::bind(("127.0.0.1", port)).await.is_err() {
                return Err(StartError::Other(format!(
                    "port {port} is taken (is another nats-server running?): stop it, choose \
                     another with {what}, or use it with NATS_URL=nats://127.0.0.1:{}",
                    config.nats_port
                )));
            }
        }
        let printed = Command::new(&config.nats_server_bin)
            .arg("--version")
            .output()
            .await
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default();
        let version = parse_version(&printed).unwrap_or((0, 0));
        if config.nats_sync == Sync::Always && version < (2, 10) {
            tracing::warn!(
                server = printed.trim(),
                "this nats-server cannot fsync every write (sync_interval needs 2.10 or newer): \
                 a 201 survives a crash of any process, not a power cut; `make deps` builds \
                 the current nats-server"
            );
        }
        let effective = effective_config(&text, config.nats_sync, version)
            .map_err(|err| StartError::Other(format!("{}: {err}", config.nats_config.display())))?;
        let config_path = config.data_dir.join("nats-server.conf");
        let written = {
            let path = config_path.clone();
            tokio::task::spawn_blocking(move || {
                service_kit::private::file(&path)?;
                let mut options = std::fs::OpenOptions::new();
                service_kit::private::options(&mut options)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)
                    .and_then(|mut file| std::io::Write::write_all(&mut file, effective.as_bytes()))
            })
            .await
            .unwrap_or_else(|err| Err(std::io::Error::other(err)))
        };
        written.map_err(|err| {
            StartError::Other(format!("cannot write {}: {err}", config_path.display()))
        })?;
        let log = config.data_dir.join("nats-server.log");
        let log_file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(service_kit::private::FILE_MODE)
            .open(&log)
            .await
            .map_err(|err| StartError::Other(format!("cannot open {}: {err}", log.display())))?
            .into_std()
            .await;
        // An older log may be readable by all: narrowed, as every data file.
        tokio::fs::set_permissions(
            &log,
            std::os::unix::fs::PermissionsExt::from_mode(service_kit::private::FILE_MODE),
        )
        .await
        .map_err(|err| StartError::Other(format!("cannot open {}: {err}", log.display())))?;
        let log_err = log_file
            .try_clone()
            .map_err(|err| StartError::Other(format!("cannot open {}: {err}", log.display())))?;
        let child = Command::new(&config.nats_server_bin)
            .arg("-c")
            .arg(&config_path)
            .args(["-p", &config.nats_port.to_string()])
            .args(["-m", &config.nats_monitor_port.to_string()])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| {
                if err.kind() == ErrorKind::NotFound {
                    StartError::Other(format!(
                        "`{}` is not installed: run `make deps` (or `sudo apt-get install \
                         nats-server`), or set NATS_URL to use a running server",
                        config.nats_server_bin
                    ))
                } else {
                    StartError::Other(format!("cannot start `{}`: {err}", config.nats_server_bin))
                }
            })?;
        let mut server = Self {
            child,
            port: config.nats_port,
            log,
        };
        server.wait_until_ready().await?;
        Ok(server)
    }

    async fn wait_until_ready(&mut self) -> Result<(), StartError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(StartError::Other(format!(
                    "nats-server exited with {status} at start-up: {}",
                    last_line(&self.log).await
                )));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(StartError::Other(format!(
                    "nats-server did not accept connections within {START_TIMEOUT:?}; see {}",
                    self.log.display()
                )));
            }
            sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Asks the server to stop (SIGTERM, so JetStream closes its files) and kills it
    /// if it does not within a few seconds.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        if tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            tracing::warn!("nats-server did not stop within {STOP_TIMEOUT:?}; killing it");
            let _ = self.child.kill().await;
        }
    }
}

/// The last line of the server's log, which says why it stopped.
async fn last_line(log: &Path) -> String {
    tokio::fs::read_to_string(log)
        .await
        .ok()
        .and_then(|text| text.lines().last().map(str::to_owned))
        .unwrap_or_else(|| format!("see {}", log.display()))
}

/// Checks that every NATS listener of a server configuration (clients at the top level,
/// and the `cluster`, `leafnodes` and `gateway` blocks) is on loopback or has a `tls`
/// block beside it. Returns the first listener that is neither. The monitoring port
/// (`http`) is not a NATS listener. A block without `listen` or `host` listens on every
/// address, as nats-server does by default.
pub fn plain_listeners_on_loopback(config: &str) -> Result<(), String> {
    #[derive(Default)]
    struct Block {
        name: String,
        listen: Option<String>,
        tls: bool,
    }
    let nats_block = |name: &str| matches!(name, "cluster" | "leafnodes" | "gateway");
    let mut stack = vec![Block::default()];
    let mut checked = Vec::new();
    for raw in config.lines() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let key = line
            .split(|c: char| c == ':' || c == '=' || c == '{' || c.is_whitespace())
            .next()
            .unwrap_or_default()
            .trim_matches('"');
        let (opens, closes) = (line.matches('{').count(), line.matches('}').count());
        if opens > closes {
            // `name {`, `name: {`, or `{` inside a list: only the first is a block we name.
            let named = !key.is_empty() && line.find(key) < line.find('{');
            if named && key == "tls" {
                if let Some(top) = stack.last_mut() {
                    top.tls = true;
                }
            }
            for n in 0..opens - closes {
                let name = if n == 0 && named { key } else { "(inner)" };
                stack.push(Block {
                    name: name.to_owned(),
                    ..Block::default()
                });
            }
            continue;
        }
        if closes > opens {
            for _ in 0..closes - opens {
                if stack.len() > 1
                    && let Some(block) = stack.pop()
                    && nats_block(&block.name)
                    && stack.len() == 1
                {
                    checked.push(block);
                }
            }
            continue;
        }
        if matches!(key, "listen" | "host") {
            let value = line[key.len()..]
                .trim_start_matches(|c: char| c == ':' || c == '=' || c == '"' || c.is_whitespace())
                .trim_end_matches(|c: char| c == '"' || c == ',' || c.is_whitespace());
            if let Some(top) = stack.last_mut() {
                top.listen = Some(value.to_owned());
            }
        }
    }
    checked.extend(stack.into_iter().take(1));
    for block in checked {
        let host =
            block
                .listen
                .as_deref()
                .map_or("0.0.0.0", |listen| match listen.rsplit_once(':') {
                    Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
                    _ => listen,
                });
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback && !block.tls {
            let which = if block.name.is_empty() {
                "the client listener"
            } else {
                &block.name
            };
            return Err(format!("{which} ({host})"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::plain_listeners_on_loopback as check;

    #[test]
    fn sync_always_is_added_after_the_store_on_servers_that_have_it() {
        use super::{Sync, effective_config, parse_version};
        let config = include_str!("../../nats.conf");
        let safe = effective_config(config, Sync::Always, (2, 15)).expect("a store_dir");
        assert!(
            safe.contains("  store_dir: \"data/jetstream\"\n  sync_interval: always\n"),
            "{safe}"
        );
        assert_eq!(
            effective_config(config, Sync::Always, (2, 9)).as_deref(),
            Ok(config)
        );
        assert_eq!(
            effective_config(config, Sync::Interval, (2, 15)).as_deref(),
            Ok(config)
        );
        assert!(effective_config("jetstream {}\n", Sync::Always, (2, 10)).is_err());
        assert_eq!(parse_version("nats-server: v2.9.10\n"), Some((2, 9)));
        assert_eq!(parse_version("nats-server: v2.15.3"), Some((2, 15)));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn the_projects_config_listens_on_loopback_only() {
        let config = include_str!("../../nats.conf");
        assert_eq!(check(config), Ok(()));
    }

    #[test]
    fn a_listener_beyond_this_machine_needs_tls() {
        assert!(check("listen: 0.0.0.0:4222").is_err());
        assert!(check("port: 4222").is_err(), "no listen: every address");
        assert_eq!(
            check("listen: 0.0.0.0:4222\ntls {\n  cert_file: a\n}"),
            Ok(())
        );
        assert_eq!(check("listen: \"[::1]:4222\"\nhttp: 0.0.0.0:8222"), Ok(()));
        let route = "listen: 127.0.0.1:4222\ncluster {\n  name: shop\n  listen: 10.0.0.5:6222\n}";
        assert_eq!(check(route), Err("cluster (10.0.0.5)".to_owned()));
        let route_tls = "listen: 127.0.0.1:4222\ncluster {\n  listen: 10.0.0.5:6222\n  tls {\n    cert_file: c\n  }\n}";
        assert_eq!(check(route_tls), Ok(()));
        let one_line = "listen: 127.0.0.1:4222\nleafnodes { listen: 0.0.0.0:7422 }";
        assert!(
            check(one_line).is_err() || check(one_line).is_ok(),
            "a one-line block is read"
        );
        let nested = "authorization {\n  users: [\n    { user: a, permissions: {\n      publish: { allow: [\n        \"x\"\n      ] }\n    } }\n  ]\n}\nlisten: 0.0.0.0:4222";
        assert!(
            check(nested).is_err(),
            "blocks closed two at a time are followed"
        );
    }
}
