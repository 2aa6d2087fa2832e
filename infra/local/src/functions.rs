//! The function binaries behind a Lambda runtime emulator, invoked by the event-source
//! glue (front door, SQS pollers, schedules, Kafka injector).
//!
//! Two runtimes:
//! - [`Runtime::Binaries`]: the binaries `cargo build` made, each behind our Runtime API
//!   emulator ([`crate::runtime_api`]), restarted when one exits. Tests and the demo use
//!   it: nothing compiles at run time. `SPIGOT_FUNCTION_BINARIES` and
//!   `SPIGOT_FUNCTION_RUNNER` run other builds, e.g. the arm64 release under qemu-user
//!   (`make test-arm64`).
//! - [`Runtime::CargoLambdaWatch`]: `cargo lambda watch` (the cargo-lambda wheel in the
//!   venv) builds each function on its first invocation and rebuilds it when the code
//!   changes: the loop for working on a function with `make up`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use serde_json::Value;
use tokio::process::Command;
use tokio::task::JoinHandle;

use crate::process::ManagedChild;
use crate::runtime_api::{FunctionError, Outcome, RuntimeApi};
use crate::template::FunctionSpec;
use crate::venv::{try_venv_bin, venv_dir, workspace_root};

/// Time given to `cargo lambda watch` to build a function on its first invocation.
const WATCH_BUILD_ALLOWANCE: Duration = Duration::from_secs(600);
/// How long a restarted function process waits before it starts again.
const RESTART_DELAY: Duration = Duration::from_millis(200);

/// How the function binaries run.
#[derive(Debug, Clone)]
pub enum Runtime {
    /// Prebuilt binaries from this directory (e.g. `target/debug`).
    Binaries(PathBuf),
    /// `cargo lambda watch` on this port (0: a free one); `reload` rebuilds on changes.
    CargoLambdaWatch { port: u16, reload: bool },
}

impl Runtime {
    /// The function binaries of [`function_bin_dir`].
    pub fn function_binaries() -> Runtime {
        Runtime::Binaries(function_bin_dir())
    }
}

/// Where the function binaries to run are: `SPIGOT_FUNCTION_BINARIES` (e.g.
/// `target/lambda`, cargo-lambda's arm64 builds that `sam build` packs), else
/// [`debug_bin_dir`].
pub fn function_bin_dir() -> PathBuf {
    match std::env::var_os("SPIGOT_FUNCTION_BINARIES") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => debug_bin_dir(),
    }
}

/// A function binary of [`function_bin_dir`], or an error saying to build it.
pub fn function_binary(name: &str) -> anyhow::Result<PathBuf> {
    binary_in(&function_bin_dir(), name)
}

/// `dir/name` (cargo's layout), or `dir/name/bootstrap`: cargo-lambda's `target/lambda`
/// layout, one directory per binary holding its `bootstrap` (cargo-lambda's README,
/// "the resulting binaries will be placed in the target/lambda directory"; the name
/// Lambda's `provided.al2023` runtime runs, AWS Lambda developer guide, "Building a custom
/// runtime").
fn binary_in(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    if path.is_dir() {
        return existing_binary(path.join("bootstrap"));
    }
    existing_binary(path)
}

/// A command that starts a function binary with an empty environment: Lambda gives a
/// function only its configured variables and the runtime's reserved ones (AWS Lambda
/// developer guide, "Defined runtime environment variables"), which the caller adds.
/// Directly, or through `SPIGOT_FUNCTION_RUNNER` (e.g. `qemu-aarch64` for arm64
/// binaries); a runner keeps our `QEMU_*` settings such as `QEMU_LD_PREFIX` (qemu-user(1):
/// every option may be given as a `QEMU_` environment variable).
pub fn function_command(binary: &Path) -> Command {
    let runner = std::env::var_os("SPIGOT_FUNCTION_RUNNER").filter(|r| !r.is_empty());
    let mut command = match &runner {
        Some(runner) => {
            let mut command = Command::new(runner);
            command.arg(binary);
            command
        }
        None => Command::new(binary),
    };
    command.env_clear();
    if runner.is_some() {
        command.envs(
            std::env::vars_os()
                .filter(|(name, _)| name.to_str().is_some_and(|name| name.starts_with("QEMU_"))),
        );
    }
    command
}

/// Where `cargo build` puts the workspace's binaries.
pub fn debug_bin_dir() -> PathBuf {
    crate::venv::target_dir().join("debug")
}

/// A binary `cargo build --workspace --bins` made, or an error saying to build it.
pub fn debug_binary(name: &str) -> anyhow::Result<PathBuf> {
    existing_binary(debug_bin_dir().join(name))
}

fn existing_binary(path: PathBuf) -> anyhow::Result<PathBuf> {
    if !path.is_file() {
        bail!(
            "{} is missing: run `cargo build --workspace --bins` first \
             (`make sam-build` for the arm64 ones)",
            path.display()
        );
    }
    Ok(path)
}

/// A function to run: its template spec and its whole environment.
#[derive(Debug, Clone)]
pub struct FunctionSetup {
    pub spec: FunctionSpec,
    pub env: Vec<(String, String)>,
}

/// The running functions.
pub struct Functions {
    specs: HashMap<String, FunctionSpec>,
    host: Host,
}

enum Host {
    Binaries(HashMap<String, Supervised>),
    Watch(Box<Watch>),
}

impl Functions {
    /// Starts every function of `setups` on `runtime`; `echo_logs` prints their log lines
    /// on our log (at info) instead of at debug.
    pub async fn start(
        setups: Vec<FunctionSetup>,
        runtime: &Runtime,
        echo_logs: bool,
    ) -> anyhow::Result<Functions> {
        let specs = setups
            .iter()
            .map(|s| (s.spec.binary.clone(), s.spec.clone()))
            .collect();
        let host = match runtime {
            Runtime::Binaries(dir) => {
                let mut functions = HashMap::new();
                for setup in setups {
                    let binary = binary_in(dir, &setup.spec.binary)?;
                    let supervised = Supervised::start(binary, setup, echo_logs).await?;
                    functions.insert(supervised.name.clone(), supervised);
                }
                Host::Binaries(functions)
            }
            Runtime::CargoLambdaWatch { port, reload } => {
                Host::Watch(Box::new(Watch::start(&setups, *port, *reload).await?))
            }
        };
        Ok(Functions { specs, host })
    }

    /// The function names (their binaries), sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.specs.keys().cloned().collect();
        names.sort();
        names
    }

    pub fn spec(&self, name: &str) -> Option<&FunctionSpec> {
        self.specs.get(name)
    }

    /// Invokes `name` synchronously with `event`, within its template timeout.
    pub async fn invoke(&self, name: &str, event: &Value) -> anyhow::Result<Outcome> {
        let spec = self
            .specs
            .get(name)
            .with_context(|| format!("no function {name}"))?;
        match &self.host {
            Host::Binaries(functions) => {
                let invocation = functions[name]
                    .api
                    .invoke(event, spec.timeout)
                    .await
                    .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
                Ok(invocation.outcome)
            }
            Host::Watch(watch) => watch.invoke(name, event, spec.timeout).await,
        }
    }

    /// Process ids of everything running functions: for checks that none outlives us.
    pub fn pids(&self) -> Vec<u32> {
        match &self.host {
            Host::Binaries(functions) => functions
                .values()
                .filter_map(|f| *f.pid.lock().unwrap_or_else(|p| p.into_inner()))
                .collect(),
            Host::Watch(watch) => vec![watch.process.pid()],
        }
    }

    /// Where `cargo lambda watch` takes invocations, when it runs the functions.
    pub fn watch_url(&self) -> Option<&str> {
        match &self.host {
            Host::Watch(watch) => Some(&watch.base_url),
            Host::Binaries(_) => None,
        }
    }
}

/// One prebuilt function binary behind its own Runtime API, restarted when it exits.
struct Supervised {
    name: String,
    api: Arc<RuntimeApi>,
    pid: Arc<Mutex<Option<u32>>>,
    task: JoinHandle<()>,
}

impl Supervised {
    async fn start(
        binary: PathBuf,
        setup: FunctionSetup,
        echo_logs: bool,
    ) -> anyhow::Result<Supervised> {
        let name = setup.spec.binary.clone();
        let api = Arc::new(RuntimeApi::start(&name).await?);
        let pid = Arc::new(Mutex::new(None));
        let first = spawn_function(&api, &binary, &setup.env, echo_logs, &name)?;
        *pid.lock().unwrap_or_else(|p| p.into_inner()) = Some(first.pid());
        let task = tokio::spawn(supervise(
            first,
            Arc::clone(&api),
            binary,
            setup.env,
            echo_logs,
            name.clone(),
            Arc::clone(&pid),
        ));
        Ok(Supervised {
            name,
            api,
            pid,
            task,
        })
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        // Dropping the task's future drops its ManagedChild, which kills the process.
        self.task.abort();
    }
}

fn spawn_function(
    api: &RuntimeApi,
    binary: &std::path::Path,
    env: &[(String, String)],
    echo_logs: bool,
    name: &str,
) -> anyhow::Result<ManagedChild> {
    let mut command = function_command(binary);
    command
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .envs(api.function_env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let spawned = if echo_logs {
        ManagedChild::spawn_echoing(name, &mut command)
    } else {
        ManagedChild::spawn(name, &mut command)
    };
    spawned.with_context(|| format!("starting {}", binary.display()))
}

/// Waits for the process to end, fails what it had taken, and starts a new one, as
/// Lambda starts a new instance after a crash.
async fn supervise(
    mut process: ManagedChild,
    api: Arc<RuntimeApi>,
    binary: PathBuf,
    env: Vec<(String, String)>,
    echo_logs: bool,
    name: String,
    pid: Arc<Mutex<Option<u32>>>,
) {
    loop {
        let status = process.wait().await;
        match &status {
            Ok(status) => {
                tracing::warn!(function = %name, %status, "function process exited; starting a new one");
                api.process_exited(status);
            }
            Err(error) => {
                tracing::warn!(function = %name, %error, "waiting for the function process failed")
            }
        }
        tokio::time::sleep(RESTART_DELAY).await;
        match spawn_function(&api, &binary, &env, echo_logs, &name) {
            Ok(next) => {
                *pid.lock().unwrap_or_else(|p| p.into_inner()) = Some(next.pid());
                process = next;
            }
            Err(error) => {
                tracing::error!(function = %name, error = format!("{error:#}"), "cannot restart the function");
                return;
            }
        }
    }
}

/// `cargo lambda watch`, serving every function of the workspace.
struct Watch {
    process: ManagedChild,
    base_url: String,
    client: reqwest::Client,
}

impl Watch {
    async fn start(setups: &[FunctionSetup], port: u16, reload: bool) -> anyhow::Result<Watch> {
        let cargo_lambda = try_venv_bin("cargo-lambda")?;
        // One process runs every function and they inherit its environment: the
        // functions' variables must agree where their names meet.
        let mut env: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
        for setup in setups {
            for (key, value) in &setup.env {
                if let Some((other, previous)) = env.insert(key, (&setup.spec.binary, value)) {
                    if previous != value {
                        bail!(
                            "cargo lambda watch runs every function with one environment, but \
                             {key} differs between {other} and {}",
                            setup.spec.binary
                        );
                    }
                }
            }
        }
        let port = match port {
            0 => crate::net::free_port()?,
            port => port,
        };
        let mut command = Command::new(&cargo_lambda);
        command
            .args(["lambda", "watch", "--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &port.to_string()])
            .current_dir(workspace_root())
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .envs(env.iter().map(|(k, (_, v))| (*k, *v)))
            .env("PATH", path_with_venv())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !reload {
            command.arg("--ignore-changes");
        }
        let process = ManagedChild::spawn_echoing("cargo-lambda-watch", &mut command)
            .with_context(|| format!("starting {}", cargo_lambda.display()))?;
        let base_url = format!("http://127.0.0.1:{port}");
        crate::net::wait_for_port(port, Duration::from_secs(60))
            .await
            .with_context(|| {
                format!(
                    "cargo lambda watch did not listen on {port}{}",
                    process.output_tail()
                )
            })?;
        Ok(Watch {
            process,
            base_url,
            client: reqwest::Client::builder().no_proxy().build()?,
        })
    }

    async fn invoke(
        &self,
        name: &str,
        event: &Value,
        timeout: Duration,
    ) -> anyhow::Result<Outcome> {
        let response = self
            .client
            .post(format!(
                "{}/2015-03-31/functions/{name}/invocations",
                self.base_url
            ))
            .header("content-type", "application/json")
            .body(event.to_string())
            // The first invocation of a function builds it.
            .timeout(timeout + WATCH_BUILD_ALLOWANCE)
            .send()
            .await
            .with_context(|| format!("invoking {name} through cargo lambda watch"))?;
        let status = response.status();
        let body = response.bytes().await?;
        Ok(if status.is_success() {
            Outcome::Response(body)
        } else {
            Outcome::Error(FunctionError {
                error_type: error_type(&body).unwrap_or_else(|| format!("HTTP {status}")),
                body,
            })
        })
    }
}

fn error_type(body: &Bytes) -> Option<String> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .get("errorType")?
        .as_str()
        .map(str::to_owned)
}

/// `$PATH` with the venv's bin first: cargo-lambda finds its helpers there.
fn path_with_venv() -> std::ffi::OsString {
    let mut paths = vec![venv_dir().join("bin")];
    if let Some(path) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(paths).unwrap_or_default()
}
