//! The AWS emulator: a moto server (SQS, S3, API Gateway, EventBridge, ...) run from the
//! project venv, one per test or demo, on a free local port.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, TcpListener};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_config::{Region, SdkConfig};
use aws_sdk_s3::config::Credentials;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use crate::venv::try_venv_bin;

/// The region every local resource lives in.
pub const REGION: &str = "us-east-1";

/// How long moto may take to answer its first request (a cold Python import of moto
/// takes a few seconds on a busy machine).
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Starts to try when moto exits at once, which is what losing the race for the port
/// looks like (see [`free_port`]).
const START_ATTEMPTS: usize = 3;
/// Lines of moto's output kept for the error message when it fails to start.
const OUTPUT_TAIL_LINES: usize = 20;
/// How long [`Drop`] waits for the killed process to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(2);

/// A running `moto_server`, killed (with any process it started) when dropped.
pub struct MotoServer {
    child: Child,
    pid: u32,
    endpoint: String,
    output_tail: Arc<Mutex<VecDeque<String>>>,
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
        self.pid
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
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if http.get(&probe_url).send().await.is_ok() {
                // Checked again: if another server owns the port, moto exits on its
                // failed bind, and that answer was not moto's.
                return Ok(self.child.try_wait()?);
            }
            if Instant::now() >= deadline {
                bail!(
                    "moto_server did not answer on {} within {READY_TIMEOUT:?}{}",
                    self.endpoint,
                    self.output_summary()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn output_summary(&self) -> String {
        let tail = self
            .output_tail
            .lock()
            .map(|lines| {
                lines
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
        if tail.is_empty() {
            String::new()
        } else {
            format!("; its last output:\n{tail}")
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // `id()` is None once the child has been reaped: then its pid may belong to
        // someone else, and nothing is left to kill.
        let Some(pid) = self.child.id() else { return };
        let Ok(process_group) = libc::pid_t::try_from(pid) else {
            return;
        };
        // The child leads its own process group, so this also kills anything moto
        // started; kill_on_drop alone would only reach the python process itself.
        // SAFETY: killpg only sends a signal; the group id is our own unreaped child's.
        unsafe {
            libc::killpg(process_group, libc::SIGKILL);
        }
        // Reap it here rather than leave it to tokio's background reaper, so that no
        // zombie is left once the server is dropped.
        let deadline = Instant::now() + REAP_TIMEOUT;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Spawns moto on a fresh port and waits for it.
async fn launch(program: &std::path::Path) -> anyhow::Result<Launch> {
    let port = free_port().context("finding a free port for moto_server")?;
    let mut command = Command::new(program);
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    let pid = child
        .id()
        .context("moto_server exited before its pid was read")?;

    let output_tail = Arc::new(Mutex::new(VecDeque::new()));
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(forward_output(stdout, Arc::clone(&output_tail)));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(forward_output(stderr, Arc::clone(&output_tail)));
    }

    // Built before waiting so that its Drop cleans up on every error path below.
    let mut server = MotoServer {
        child,
        pid,
        endpoint: format!("http://127.0.0.1:{port}"),
        output_tail,
    };
    match server.wait_until_ready().await? {
        None => Ok(Launch::Ready(Box::new(server))),
        Some(status) => Ok(Launch::ExitedEarly(anyhow::anyhow!(
            "moto_server exited with {status} before answering on port {port}{}",
            server.output_summary()
        ))),
    }
}

/// A port that was free a moment ago. The OS picks it; it is released at once so that
/// moto can bind it, which leaves a short window for another process to take it first.
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Drains moto's output (a full pipe would block it) into the debug log, keeping the
/// last lines for error messages.
async fn forward_output(stream: impl AsyncRead + Unpin, output_tail: Arc<Mutex<VecDeque<String>>>) {
    let mut reader = BufReader::new(stream);
    let mut raw_line = Vec::new();
    // Bytes, not `lines()`: one non-UTF-8 line must not stop the draining.
    while matches!(reader.read_until(b'\n', &mut raw_line).await, Ok(read) if read > 0) {
        let line = String::from_utf8_lossy(&raw_line).trim_end().to_owned();
        raw_line.clear();
        tracing::debug!(target: "moto_server", "{line}");
        if let Ok(mut tail) = output_tail.lock() {
            if tail.len() == OUTPUT_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
}
