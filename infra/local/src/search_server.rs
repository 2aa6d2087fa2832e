//! The search server: `osmem-server`, an in-memory OpenSearch-compatible server from the
//! `osmem-server` wheel in the project venv. The functions that index talk to it with the
//! same bulk API they use against Amazon OpenSearch.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::process::ManagedChild;
use crate::venv::venv_dir;

/// How long the server may take to print its address.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running search server; stopped when dropped.
pub struct SearchServer {
    url: String,
    // Holds the server's stdin open: it exits when its stdin closes (and when we die).
    process: ManagedChild,
}

impl SearchServer {
    /// Starts the server on `port` of 127.0.0.1 (0: a free port) and waits for it.
    pub async fn start(port: u16) -> anyhow::Result<SearchServer> {
        let binary = binary()?;
        let mut command = Command::new(&binary);
        command
            .args(["-addr", &format!("127.0.0.1:{port}")])
            .args(["-parent-pid", &std::process::id().to_string()])
            // No Japanese analysis: CI logs are not Japanese, and it saves start-up time.
            .arg("-no-ja")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = crate::process::dies_with_us(&mut command)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("osmem-server stdout")?;
        let process = ManagedChild::from_child("osmem-server", child)?;
        // The server announces itself with one JSON line that carries its URL.
        let mut lines = BufReader::new(stdout).lines();
        let url = tokio::time::timeout(READY_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Ok(Value::Object(ready)) = serde_json::from_str::<Value>(&line) {
                    if let Some(Value::String(url)) = ready.get("url") {
                        return Ok::<_, std::io::Error>(Some(url.trim_end_matches('/').to_owned()));
                    }
                }
            }
            Ok(None)
        })
        .await
        .context("osmem-server did not announce its address in time")??;
        let Some(url) = url else {
            bail!("osmem-server exited before announcing its address")
        };
        // Keep reading, so that a full pipe never blocks the server.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(SearchServer { url, process })
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

/// The server binary the wheel bundles.
fn binary() -> anyhow::Result<PathBuf> {
    let lib = venv_dir().join("lib");
    let entries = std::fs::read_dir(&lib)
        .with_context(|| format!("{} not found: run `make venv` first", lib.display()))?;
    for entry in entries.flatten() {
        let candidate = entry
            .path()
            .join("site-packages/osmem_server/bin/osmem-server");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "osmem-server is not installed in {}: run `make venv` first",
        venv_dir().display()
    )
}
