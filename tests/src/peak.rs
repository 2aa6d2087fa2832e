//! A function's release binary run behind the Runtime API emulator, with the memory it
//! needed: what Lambda reports as "Max Memory Used". That is the process's resident
//! high-water mark, read from `/proc/<pid>/status` (`VmHWM`) just before it is stopped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use spigot_local::runtime_api::{FunctionProcess, Outcome, RuntimeApi};

/// One process's invocations: their answers, their time and its peak memory.
#[derive(Debug)]
pub struct Measured {
    pub peak_kib: u64,
    /// From the first event sent to the last answer.
    pub seconds: f64,
    /// CPU time (user + system) the process used, init included: what a Lambda share of
    /// a vCPU stretches.
    pub cpu_seconds: f64,
    pub outcomes: Vec<Outcome>,
}

impl Measured {
    pub fn peak_mib(&self) -> f64 {
        self.peak_kib as f64 / 1024.0
    }
}

/// The release binaries: `$SPIGOT_BENCH_BIN_DIR` (scripts/bench.sh sets it), else
/// `target/release`.
pub fn release_bin_dir() -> PathBuf {
    std::env::var_os("SPIGOT_BENCH_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| spigot_local::venv::target_dir().join("release"))
}

/// Starts `function`'s release binary with only `env` (and what Lambda sets), invokes
/// it with each event in turn, each given `timeout` as its deadline, and reads its peak
/// memory before killing it. An event the emulator refuses, a timeout or an exit is an
/// `Err`; the answers (errors included) are the caller's to judge.
pub async fn run_release_binary(
    function: &str,
    env: Vec<(&'static str, String)>,
    events: &[Value],
    timeout: Duration,
) -> Result<Measured, String> {
    let binary = release_bin_dir().join(function);
    if !binary.is_file() {
        return Err(format!(
            "{} not found: `cargo build --release` builds it (scripts/bench.sh does)",
            binary.display()
        ));
    }
    let api = RuntimeApi::start(function)
        .await
        .map_err(|error| format!("starting the Runtime API: {error}"))?;
    let mut process = spawn_quiet(&api, &binary, env)?;
    let pid = process.pid().ok_or("the function exited at once")?;
    let started = Instant::now();
    let mut outcomes = Vec::with_capacity(events.len());
    for event in events {
        let invocation = process
            .invoke(event, timeout)
            .await
            .map_err(|error| error.to_string())?;
        outcomes.push(invocation.outcome);
    }
    let seconds = started.elapsed().as_secs_f64();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|error| format!("/proc/{pid}/status: {error}"))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|error| format!("/proc/{pid}/stat: {error}"))?;
    // Killing it is cleanup; a failure here does not change what was measured.
    let _ = process.kill().await;
    let peak_kib = vm_hwm_kib(&status).ok_or("no VmHWM in /proc/<pid>/status")?;
    let cpu_ticks = cpu_ticks(&stat).ok_or("no utime and stime in /proc/<pid>/stat")?;
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    Ok(Measured {
        peak_kib,
        seconds,
        cpu_seconds: cpu_ticks as f64 / ticks_per_second as f64,
        outcomes,
    })
}

/// Starts `binary` behind `api` as the local stack starts a function (only `env`, no
/// AWS profile or RUST_LOG from the caller's shell, and what Lambda sets), its output
/// discarded.
pub fn spawn_quiet(
    api: &RuntimeApi,
    binary: &Path,
    env: impl IntoIterator<Item = (&'static str, String)>,
) -> Result<FunctionProcess, String> {
    let mut command = spigot_local::functions::function_command(binary);
    command
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    api.spawn(command)
        .map_err(|error| format!("starting {}: {error}", binary.display()))
}

/// `VmHWM:   12345 kB` of a `/proc/<pid>/status` text (proc(5)).
fn vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
}

/// utime + stime of a `/proc/<pid>/stat` text, in clock ticks: fields 14 and 15
/// (proc(5)), counted after the command name, which is in parentheses and may hold
/// spaces.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name.
    let mut fields = after_name.split_whitespace().skip(14 - 3);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The answer's JSON, when the function answered (not an error) with JSON.
pub fn answer_json(outcome: &Outcome) -> Option<Value> {
    match outcome {
        Outcome::Response(body) => serde_json::from_slice(body).ok(),
        Outcome::Error(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_is_read_in_kib() {
        let status = "Name:\tgitlab_ingest\nVmPeak:\t  123456 kB\nVmHWM:\t   23456 kB\nVmRSS:\t   20000 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(23_456));
        assert_eq!(vm_hwm_kib("Name:\tx\nVmRSS:\t 1 kB\n"), None);
    }

    #[test]
    fn cpu_ticks_are_utime_and_stime_whatever_the_name() {
        let stat =
            "4242 (log tailer) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 31 0 0 20 0 9 0 1000 1 1";
        assert_eq!(cpu_ticks(stat), Some(281));
        assert_eq!(cpu_ticks("4242 (x) S 1"), None);
    }
}
