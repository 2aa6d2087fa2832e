//! `spigot-local`: the whole system on this machine (see `spigot_local::stack`).
//!
//! - `up`: starts the stack, prints its URLs and example commands, runs until Ctrl-C or
//!   `spigot-local down`, then stops every process it started;
//! - `down`: stops the stack `up` started;
//! - `env`: prints `export` lines that point toggle_spigot and the AWS SDKs at it;
//! - `demo`: `make demo` (see `spigot_local::demo`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::Value;
use spigot_local::functions::Runtime;
use spigot_local::stack::{Stack, StackOptions};
use tokio::signal::unix::{signal, SignalKind};

#[derive(Parser)]
#[command(
    name = "spigot-local",
    about = "spigot on this machine: AWS emulator, search server, sandbox upstreams, the real function binaries"
)]
struct Cli {
    /// Names the local resources and the state file.
    #[arg(long, default_value = "spigot", global = true)]
    stack: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the stack and keep it running.
    Up(UpArgs),
    /// Stop the stack `up` started.
    Down,
    /// Print `export` lines for toggle_spigot and the AWS SDKs.
    Env,
    /// Start the stack, run the narrated demo, print the summary, stop; exit 0 only when
    /// every number adds up.
    Demo,
}

#[derive(clap::Args)]
struct UpArgs {
    /// How the functions run: `watch` builds them with `cargo lambda watch` and rebuilds
    /// on changes; `binaries` runs what `cargo build` made (target/debug).
    #[arg(long, value_enum, default_value_t = RuntimeArg::Watch)]
    runtime: RuntimeArg,
    /// Port of the front door (API routes, Kafka injector); 0: a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    #[arg(long, default_value_t = 0)]
    jenkins_port: u16,
    #[arg(long, default_value_t = 0)]
    search_port: u16,
    #[arg(long, default_value_t = 0)]
    gitlab_port: u16,
    /// The secret GitLab's Job Hook sends in X-Gitlab-Token.
    #[arg(long, env = "SPIGOT_GITLAB_WEBHOOK_SECRET", default_value = spigot_local::stack::LOCAL_GITLAB_WEBHOOK_SECRET)]
    gitlab_webhook_secret: String,
    /// Port `cargo lambda watch` takes invocations on; 0: a free one.
    #[arg(long, default_value_t = 0)]
    watch_port: u16,
    /// Schedules run this many times faster than in AWS (rate(1 minute) → every 5 s).
    #[arg(long, default_value_t = 12)]
    schedule_speedup: u32,
    /// GitHub webhook secret; without one, signatures are not checked.
    #[arg(long, env = "SPIGOT_WEBHOOK_SECRET")]
    webhook_secret: Option<String>,
    /// A template parameter, `Name=value` (repeatable).
    #[arg(long = "param", value_parser = parse_param)]
    params: Vec<(String, String)>,
}

#[derive(Clone, Copy, ValueEnum)]
enum RuntimeArg {
    Watch,
    Binaries,
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{text:?} is not Name=value"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo narrates on stdout; only problems go to the log.
    init_tracing(if matches!(cli.command, Command::Demo) {
        "warn"
    } else {
        "info"
    });
    let result = match cli.command {
        Command::Up(args) => up(&cli.stack, args).await,
        Command::Down => down(&cli.stack).await,
        Command::Env => env(&cli.stack),
        Command::Demo => demo().await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("spigot-local: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{level},aws_config=warn,aws_smithy_runtime=warn"
        ))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// Where `up` writes what `down` and `env` read.
fn state_file(stack: &str) -> PathBuf {
    spigot_local::venv::target_dir()
        .join("spigot-local")
        .join(format!("{stack}.json"))
}

async fn up(stack_name: &str, args: UpArgs) -> anyhow::Result<()> {
    let state = state_file(stack_name);
    if let Some(pid) = running_pid(&state) {
        bail!("stack {stack_name} already runs (pid {pid}); `spigot-local down` stops it");
    }
    // Registered before the start, so that Ctrl-C during a slow start also cleans up.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let options = StackOptions {
        stack_name: stack_name.to_owned(),
        runtime: match args.runtime {
            RuntimeArg::Watch => Runtime::CargoLambdaWatch {
                port: args.watch_port,
                reload: true,
            },
            RuntimeArg::Binaries => Runtime::function_binaries(),
        },
        front_door_port: args.port,
        jenkins_port: args.jenkins_port,
        search_port: args.search_port,
        gitlab_port: args.gitlab_port,
        port_port: 0,
        port_routes: None,
        gitlab_webhook_secret: args.gitlab_webhook_secret,
        schedule_speedup: args.schedule_speedup,
        webhook_secret: args.webhook_secret,
        parameters: args.params.into_iter().collect(),
        echo_function_logs: true,
    };
    eprintln!("starting the local stack {stack_name}…");
    let stack = tokio::select! {
        stack = Stack::start(options) => stack?,
        _ = interrupt.recv() => bail!("interrupted while starting"),
        _ = terminate.recv() => bail!("terminated while starting"),
    };
    let info = stack.info();
    std::fs::create_dir_all(state.parent().expect("the state file has a folder"))?;
    std::fs::write(&state, serde_json::to_vec_pretty(&info)?)
        .with_context(|| format!("writing {}", state.display()))?;
    println!("{}", banner(&stack, stack_name));
    // One machine-readable line last, for scripts and tests that start `up`.
    println!("{}", serde_json::json!({"ready": info}));

    tokio::select! {
        _ = interrupt.recv() => eprintln!("stopping (Ctrl-C)…"),
        _ = terminate.recv() => eprintln!("stopping…"),
    }
    let _ = std::fs::remove_file(&state);
    drop(stack);
    eprintln!("stopped");
    Ok(())
}

async fn demo() -> anyhow::Result<()> {
    println!("==> starting the local stack: AWS emulator, search server, sandbox Jenkins, the function binaries");
    let stack = Stack::start(spigot_local::demo::stack_options()).await?;
    println!(
        "    front door {}   AWS emulator {}",
        stack.url(),
        stack.moto().endpoint()
    );
    let rows = spigot_local::demo::run(&stack, &spigot_local::demo::DemoOptions::default()).await;
    drop(stack);
    let rows = rows?;
    println!("\n{}", spigot_local::demo::table(&rows));
    let mismatches = rows.iter().filter(|r| !r.ok()).count();
    if mismatches > 0 {
        bail!("{mismatches} numbers do not add up");
    }
    println!("OK: every number adds up; nothing was lost. Everything is stopped.");
    Ok(())
}

fn banner(stack: &Stack, stack_name: &str) -> String {
    let webhook = stack
        .api_url("SpigotApi")
        .map(|url| format!("{url}/webhook"))
        .unwrap_or_default();
    let signing = match &stack.options().webhook_secret {
        Some(_) => "   (webhooks must be signed with the secret you gave: X-Hub-Signature-256)\n",
        None => "   (no --webhook-secret: this local endpoint takes unsigned requests, as ALLOW_UNSIGNED=true)\n",
    };
    let functions = stack.functions().names().join(", ");
    let runtime = match stack.functions().watch_url() {
        Some(url) => format!("cargo lambda watch on {url} (built on first use, rebuilt on change)"),
        None => "prebuilt binaries (target/debug)".to_owned(),
    };
    format!(
        "\nspigot is running locally (stack {stack_name})\n\
         \n  webhook endpoint   {webhook}\n  Kafka injector     {front}/kafka/<topic>\n  \
         sandbox Jenkins    {jenkins}\n  sandbox GitLab     {gitlab}\n  sandbox Port       {port}\n  AWS emulator       {aws}\n  search server      {search}\n  \
         functions          {functions}\n  runtime            {runtime}\n\n\
         Try:\n\
         \n  # a GitHub push webhook\n  curl -i -X POST {webhook} -H 'Content-Type: application/json' \\\n    \
         -H 'X-GitHub-Event: push' -H \"X-GitHub-Delivery: $(cat /proc/sys/kernel/random/uuid)\" \\\n    \
         --data '{{\"ref\":\"refs/heads/main\"}}'\n{signing}\
         \n  # point toggle_spigot at this stack, then switch the spigot and look at the queue\n  \
         eval \"$(cargo run -q -p spigot-local -- env)\"\n  \
         cargo run -q -p toggle_spigot -- off\n  cargo run -q -p toggle_spigot -- status\n  \
         cargo run -q -p toggle_spigot -- on --wait\n\
         \n  # Jenkins maintenance: take the sandbox Jenkins down and back up\n  \
         curl -X POST {front}/_local/jenkins -d '{{\"mode\":\"down\"}}'\n  \
         curl -X POST {front}/_local/jenkins -d '{{\"mode\":\"up\"}}'\n\
         \n  # what Jenkins received\n  curl {front}/_local\n\
         \nCtrl-C or `make down` stops everything.\n",
        front = stack.url(),
        jenkins = stack.jenkins().url(),
        gitlab = stack.gitlab().url(),
        port = stack.port().url(),
        aws = stack.moto().endpoint(),
        search = stack.search_url(),
    )
}

/// The pid in the state file, when that process still runs.
fn running_pid(state: &std::path::Path) -> Option<i32> {
    let info: Value = serde_json::from_slice(&std::fs::read(state).ok()?).ok()?;
    let pid = i32::try_from(info["pid"].as_u64()?).ok()?;
    // SAFETY: signal 0 only checks that the process exists.
    (unsafe { libc::kill(pid, 0) } == 0).then_some(pid)
}

async fn down(stack_name: &str) -> anyhow::Result<()> {
    let state = state_file(stack_name);
    let Some(pid) = running_pid(&state) else {
        let _ = std::fs::remove_file(&state);
        println!("stack {stack_name} is not running");
        return Ok(());
    };
    // SAFETY: sends SIGTERM to the process `up` recorded.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    while running_pid(&state).is_some() && state.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // SAFETY: signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid, 0) } == 0 && state.exists() {
        bail!("stack {stack_name} (pid {pid}) did not stop within 20 s");
    }
    println!("stack {stack_name} stopped");
    Ok(())
}

fn env(stack_name: &str) -> anyhow::Result<()> {
    let state = state_file(stack_name);
    if running_pid(&state).is_none() {
        bail!("stack {stack_name} is not running: start it with `make up`");
    }
    let info: Value = serde_json::from_slice(&std::fs::read(&state)?)?;
    let env = info["operator_env"]
        .as_object()
        .context("the state file has no operator_env")?;
    for (name, value) in env {
        let value = value.as_str().unwrap_or_default().replace('\'', r"'\''");
        println!("export {name}='{value}'");
    }
    Ok(())
}
