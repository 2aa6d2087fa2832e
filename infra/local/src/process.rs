//! Child processes of the local stack (the AWS emulator, the search server, `cargo lambda
//! watch`, the function binaries). Each runs in its own process group, is killed with its
//! group when its handle is dropped, and is told by the kernel to die with the process
//! that started it (`PR_SET_PDEATHSIG`), so that even a `kill -9` of the stack leaves
//! nothing behind.

use std::collections::VecDeque;
use std::io;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// How long [`Drop`] waits for a killed process to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(2);
/// Lines of a child's output kept for error messages.
const OUTPUT_TAIL_LINES: usize = 20;

/// Makes `command` start in a process group of its own and die with us.
///
/// The death signal fires when the *thread* that spawned the child ends; spawn from a
/// task on the runtime's worker threads (they live as long as the runtime), never from
/// `spawn_blocking`.
pub fn dies_with_us(command: &mut Command) -> &mut Command {
    let parent = std::process::id();
    command.process_group(0).kill_on_drop(true);
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
    // calls (prctl, getppid, _exit).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // We may have died between the fork and the prctl.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    command
}

/// A started child; its whole process group is killed and the child reaped on drop.
pub struct ManagedChild {
    child: Child,
    pid: u32,
    name: String,
    output_tail: Arc<Mutex<VecDeque<String>>>,
}

impl ManagedChild {
    /// Spawns `command` (set up with [`dies_with_us`]). Its stdout and stderr, when
    /// piped, are drained into the debug log, their last lines kept for
    /// [`ManagedChild::output_tail`].
    pub fn spawn(name: impl Into<String>, command: &mut Command) -> io::Result<ManagedChild> {
        Self::spawn_logging(name.into(), command, false)
    }

    /// Like [`ManagedChild::spawn`], with the output logged at info: what the operator
    /// of `spigot-local up` wants to see (the functions' own logs).
    pub fn spawn_echoing(
        name: impl Into<String>,
        command: &mut Command,
    ) -> io::Result<ManagedChild> {
        Self::spawn_logging(name.into(), command, true)
    }

    fn spawn_logging(name: String, command: &mut Command, echo: bool) -> io::Result<ManagedChild> {
        let mut child = dies_with_us(command).spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other(format!("{name} exited before its pid was read")))?;
        let output_tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(drain_output(
                name.clone(),
                echo,
                stdout,
                Arc::clone(&output_tail),
            ));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(drain_output(
                name.clone(),
                echo,
                stderr,
                Arc::clone(&output_tail),
            ));
        }
        Ok(ManagedChild {
            child,
            pid,
            name,
            output_tail,
        })
    }

    /// Wraps a child whose output the caller reads itself.
    pub fn from_child(name: impl Into<String>, child: Child) -> io::Result<ManagedChild> {
        let name = name.into();
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other(format!("{name} exited before its pid was read")))?;
        Ok(ManagedChild {
            child,
            pid,
            name,
            output_tail: Arc::default(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// The last lines the child printed, for an error message ("" when none).
    pub fn output_tail(&self) -> String {
        let lines = self
            .output_tail
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default();
        if lines.is_empty() {
            String::new()
        } else {
            format!("; its last output:\n{}", Vec::from(lines).join("\n"))
        }
    }

    /// Asks the process group to stop (SIGTERM), then kills what is left after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        if matches!(self.child.try_wait(), Ok(None)) {
            signal_group(self.pid, libc::SIGTERM);
            let _ = tokio::time::timeout(grace, self.child.wait()).await;
        }
        // Drop kills whatever is left of the group and reaps.
    }
}

impl Drop for ManagedChild {
    fn drop(&mut self) {
        // Even an exited leader's group may hold processes it started.
        signal_group(self.pid, libc::SIGKILL);
        // `id()` is None once reaped; then there is nothing left to wait for.
        if self.child.id().is_none() {
            return;
        }
        // Reap here rather than leave it to tokio's background reaper, so that no
        // zombie is left once the handle is gone.
        let deadline = Instant::now() + REAP_TIMEOUT;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Sends `signal` to the process group led by `pid`.
pub fn signal_group(pid: u32, signal: libc::c_int) {
    if let Ok(group) = libc::pid_t::try_from(pid) {
        // SAFETY: killpg only sends a signal; the group is one we started.
        unsafe {
            libc::killpg(group, signal);
        }
    }
}

/// Drains a child's output (a full pipe would block it) into the debug log, keeping the
/// last lines for error messages.
async fn drain_output(
    name: String,
    echo: bool,
    stream: impl AsyncRead + Unpin,
    output_tail: Arc<Mutex<VecDeque<String>>>,
) {
    let mut reader = BufReader::new(stream);
    let mut raw_line = Vec::new();
    // Bytes, not `lines()`: one non-UTF-8 line must not stop the draining.
    while matches!(reader.read_until(b'\n', &mut raw_line).await, Ok(read) if read > 0) {
        let line = String::from_utf8_lossy(&raw_line).trim_end().to_owned();
        raw_line.clear();
        if echo {
            tracing::info!(target: "spigot_local::child", child = %name, "{line}");
        } else {
            tracing::debug!(target: "spigot_local::child", child = %name, "{line}");
        }
        if let Ok(mut tail) = output_tail.lock() {
            if tail.len() == OUTPUT_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: u32) -> bool {
        // Zombies count as gone: they hold no resources but a table entry.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| {
                let state = stat.rsplit(')').next().unwrap_or("").trim_start();
                !state.starts_with('Z')
            })
            .unwrap_or(false)
    }

    #[tokio::test]
    async fn dropping_the_handle_kills_the_whole_group() {
        let mut command = Command::new("sh");
        // A grandchild in the same group, printing its pid.
        command
            .args(["-c", "sleep 30 & echo $!; wait"])
            .stdout(std::process::Stdio::piped());
        let mut child = dies_with_us(&mut command).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .await
            .unwrap();
        let grandchild: u32 = line.trim().parse().unwrap();
        let managed = ManagedChild::from_child("sh", child).unwrap();
        let pid = managed.pid();
        assert!(alive(pid) && alive(grandchild));
        drop(managed);
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(grandchild) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!alive(pid), "the child survived");
        assert!(!alive(grandchild), "the grandchild survived");
    }

    #[tokio::test]
    async fn stop_lets_the_child_exit_on_sigterm() {
        let mut command = Command::new("sleep");
        command.arg("30");
        let managed = ManagedChild::spawn("sleep", &mut command).unwrap();
        let pid = managed.pid();
        let started = Instant::now();
        managed.stop(Duration::from_secs(5)).await;
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "SIGTERM was not enough"
        );
        assert!(!alive(pid));
    }
}
