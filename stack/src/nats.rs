//! The nats-server the stack starts: `nats.conf` with the ports given on the command
//! line, its log in the data directory.
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

use service_kit::runtime::StartError;
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
            .arg(&config.nats_config)
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
