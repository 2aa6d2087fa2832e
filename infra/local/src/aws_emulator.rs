//! The AWS emulator: a moto server (SQS, S3, API Gateway, EventBridge, ...) run from the
//! project venv, one per test or demo, on a free local port.

use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_config::{Region, SdkConfig};
use aws_sdk_s3::config::Credentials;
use tokio::process::Command;

use crate::process::ManagedChild;
use crate::venv::try_venv_bin;

/// The region every local resource lives in.
pub const REGION: &str = "us-east-1";

/// How long moto may take to answer its first request (a cold Python import of moto
/// takes a few seconds on a busy machine).
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Starts to try when moto exits at once, which is what losing the race for the port
/// looks like (see [`crate::net::free_port`]).
const START_ATTEMPTS: usize = 3;

/// A running `moto_server`, killed (with any process it started) when dropped.
pub struct MotoServer {
    process: ManagedChild,
    endpoint: String,
}

/// What became of one attempt to start moto.
enum Launch {
    Ready(Box<MotoServer>),
    /// moto exited before answering: most likely another process took the port.
    ExitedEarly(anyhow::Error),
}

impl MotoServer {
    /// Starts `moto_server` from the venv on a free port of 127.0.0.1 and waits until
    /// it answers HTTP.
    pub async fn start() -> anyhow::Result<MotoServer> {
        let program = try_venv_bin("moto_server")?;
        let mut attempt = 1;
        loop {
            match launch(&program).await? {
                Launch::Ready(server) => return Ok(*server),
                Launch::ExitedEarly(error) if attempt == START_ATTEMPTS => {
                    return Err(error.context(format!("moto_server failed {attempt} times")));
                }
                Launch::ExitedEarly(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "moto_server exited early, retrying"
                    );
                    attempt += 1;
                }
            }
        }
    }

    /// Base URL of the emulator, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Process id of the moto server (it also leads its own process group).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// SDK configuration pointing at the emulator: region us-east-1, static test
    /// credentials. S3 clients also need path-style addressing: `spigot_common::aws::s3_client` sets it.
    pub async fn sdk_config(&self) -> SdkConfig {
        spigot_common::aws::sdk_loader()
            .expect("the HTTP client's TLS setup (EXTRA_CA_CERTS) is valid")
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "spigot-local",
            ))
            .endpoint_url(&self.endpoint)
            .load()
            .await
    }

    /// Polls moto until it answers any HTTP response: `None` then, or its exit status if
    /// it exited first; an error if the deadline passes.
    async fn wait_until_ready(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .context("building the readiness probe client")?;
        let probe_url = format!("{}/moto-api/", self.endpoint);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.process.try_wait()? {
                return Ok(Some(status));
            }
            if http.get(&probe_url).send().await.is_ok() {
                // Checked again: if another server owns the port, moto exits on its
                // failed bind, and that answer was not moto's.
                return Ok(self.process.try_wait()?);
            }
            if Instant::now() >= deadline {
                bail!(
                    "moto_server did not answer on {} within {READY_TIMEOUT:?}{}",
                    self.endpoint,
                    self.process.output_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Spawns moto on a fresh port and waits for it.
async fn launch(program: &std::path::Path) -> anyhow::Result<Launch> {
    let port = crate::net::free_port().context("finding a free port for moto_server")?;
    let mut command = Command::new(program);
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let process = ManagedChild::spawn("moto_server", &mut command)
        .with_context(|| format!("starting {}", program.display()))?;
    // Built before waiting so that its Drop cleans up on every error path below.
    let mut server = MotoServer {
        process,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    match server.wait_until_ready().await? {
        None => Ok(Launch::Ready(Box::new(server))),
        Some(status) => Ok(Launch::ExitedEarly(anyhow::anyhow!(
            "moto_server exited with {status} before answering on port {port}{}",
            server.process.output_tail()
        ))),
    }
}
