//! The command line: clap definitions, the original tool's `--spigot_state`, and which
//! settings came from the command line rather than from the environment or a default.

use std::ffi::OsString;

use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::settings::{ApiRef, Layer};

const AFTER_HELP: &str = "\
Settings are taken from flags first, then from the outputs of --stack (RestApiId, \
StageName, QueueUrl, DlqUrl, PayloadBucket), then from the environment, then defaults.
The AWS emulator is reached through the standard AWS_ENDPOINT_URL.
The original tool's `--spigot_state ON|OFF` is still accepted, as `on` / `off`.";

/// How long `on --wait` waits for send_from_queue to empty the queue and set ON.
pub const DEFAULT_WAIT_TIMEOUT_SECS: u64 = 900;
pub const DEFAULT_WAIT_INTERVAL_SECS: u64 = 5;

#[derive(Debug, Parser)]
#[command(
    name = "toggle_spigot",
    version,
    about = "Operate the spigot: turn it on or off, show its state, drain the backlog, redrive the DLQ.",
    after_help = AFTER_HELP,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The original tool's switch (no subcommand): ON acts as `on`, OFF as `off`.
    #[arg(
        long = "spigot_state",
        alias = "spigot-state",
        value_name = "ON|OFF",
        ignore_case = true
    )]
    pub spigot_state: Option<LegacyState>,

    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// Print one JSON object on stdout instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Where the spigot is: its API stage, queues and bucket, and the AWS region.
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// REST API id of the webhook API.
    #[arg(long, env = "REST_API_ID", global = true, value_name = "ID")]
    pub api_id: Option<String>,

    /// REST API name, looked up with GetRestApis (every page); exactly one API may match.
    #[arg(long, global = true, value_name = "NAME")]
    pub api_name: Option<String>,

    /// Stage that holds the spigot_state variable.
    #[arg(long, env = "STAGE_NAME", default_value = spigot_common::config::DEFAULT_STAGE_NAME, global = true, value_name = "NAME")]
    pub stage: String,

    /// URL of the spigot queue.
    #[arg(long, env = "SPIGOT_QUEUE_URL", global = true, value_name = "URL")]
    pub queue_url: Option<String>,

    /// URL of the dead-letter queue.
    #[arg(long, env = "SPIGOT_DLQ_URL", global = true, value_name = "URL")]
    pub dlq_url: Option<String>,

    /// Bucket of spilled bodies (needed by `drain`).
    #[arg(long, env = "PAYLOAD_BUCKET", global = true, value_name = "BUCKET")]
    pub payload_bucket: Option<String>,

    /// CloudFormation stack whose outputs give the settings not passed as flags.
    #[arg(long, global = true, value_name = "NAME")]
    pub stack: Option<String>,

    /// AWS region (default: the SDK's chain: AWS_REGION, profile, ...).
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LegacyState {
    #[value(name = "ON")]
    On,
    #[value(name = "OFF")]
    Off,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// State, queue depth (visible / in flight / delayed), DLQ depth, oldest message age.
    Status,
    /// Turn the spigot on: DRAINING while a backlog is queued (send_from_queue turns it ON
    /// once the queue is empty), else ON.
    On(OnArgs),
    /// Turn the spigot off: webhooks are queued until it is turned on again.
    Off,
    /// Replay the backlog to the target from here, with the same drain as send_from_queue.
    Drain(DrainArgs),
    /// Move the DLQ's messages back to the queue (receive, send, delete).
    Redrive(RedriveArgs),
    /// Set the state only if the stage has none (after a deploy: `make deploy` passes the
    /// state read before it, so a deploy never turns the spigot ON).
    Restore(RestoreArgs),
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct RestoreArgs {
    /// ON, OFF or DRAINING.
    #[arg(value_parser = parse_state)]
    pub state: spigot_common::state::SpigotState,
}

fn parse_state(value: &str) -> Result<spigot_common::state::SpigotState, String> {
    spigot_common::state::SpigotState::parse(value)
        .ok_or_else(|| format!("{value:?} is not ON, OFF or DRAINING"))
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct OnArgs {
    /// After setting DRAINING, wait until send_from_queue has emptied the queue and set ON.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this many seconds (0: no limit).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_WAIT_TIMEOUT_SECS, requires = "wait")]
    pub timeout: u64,
    /// Seconds between two looks at the stage and the queue while waiting.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_WAIT_INTERVAL_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct DrainArgs {
    /// Base URL of the target (Jenkins).
    #[arg(long, env = "TARGET_URL", value_name = "URL")]
    pub target_url: String,
    /// Path on the target of the default `/webhook` route (when no --target-routes).
    #[arg(long, env = "TARGET_PATH", default_value = spigot_common::target_routes::DEFAULT_ROOT_TARGET, value_name = "PATH")]
    pub target_path: String,
    /// The routes a replay may take, as send_from_queue has them (JSON; see the README).
    /// Unset: the default routes. A message no route takes goes to the DLQ.
    #[arg(long, env = "TARGET_ROUTES", value_name = "JSON")]
    pub target_routes: Option<String>,
    /// The end-of-run Jenkins job of aliecs_ingest (its builds wait in the same queue).
    #[arg(long, env = "EOR_JENKINS_JOB", value_name = "JOB")]
    pub eor_jenkins_job: Option<String>,
    /// Path probed before anything is received; the target is down unless it answers < 400.
    #[arg(long, env = "TARGET_HEALTH_PATH", default_value = spigot_common::config::DEFAULT_HEALTH_PATH, value_name = "PATH")]
    pub target_health_path: String,
    /// Longest wait for the target on one replay, in milliseconds.
    #[arg(long, env = "FORWARD_TIMEOUT_MS", default_value_t = spigot_common::config::DEFAULT_FORWARD_TIMEOUT_MS, value_name = "MS")]
    pub forward_timeout_ms: u64,
    /// Replays in flight at once; 1 replays in arrival order.
    #[arg(long, env = "DRAIN_CONCURRENCY", default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100))]
    pub concurrency: u64,
    /// Bucket holding jenkins.json (else JENKINS_USERNAME / JENKINS_API_TOKEN).
    #[arg(long, env = "CREDENTIALS_BUCKET", value_name = "BUCKET")]
    pub credentials_bucket: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct RedriveArgs {
    /// List the DLQ's messages (event, delivery, reason, age) without moving them. They
    /// are hidden for a few seconds while listed, then made visible again.
    #[arg(long)]
    pub dry_run: bool,
    /// Move (or list) at most this many messages.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max: Option<u64>,
}

/// What was asked for, with the settings layers taken apart.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub command: Command,
    pub json: bool,
    pub stack: Option<String>,
    pub region: Option<String>,
    /// Settings given as flags.
    pub command_line: Layer,
    /// Settings from the environment and defaults.
    pub environment: Layer,
}

/// Parses the process arguments; exits with clap's message and status on an error.
pub fn parse() -> Invocation {
    parse_from(std::env::args_os()).unwrap_or_else(|err| err.exit())
}

pub fn parse_from<I, T>(args: I) -> Result<Invocation, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut command = Cli::command();
    let matches = command.try_get_matches_from_mut(args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    let from_command_line = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);

    let action = match (cli.command, cli.spigot_state) {
        (Some(_), Some(_)) => {
            return Err(command.error(
                clap::error::ErrorKind::ArgumentConflict,
                "--spigot_state is the original tool's form of `on` / `off`: use it without a subcommand",
            ))
        }
        (Some(action), None) => action,
        (None, Some(LegacyState::On)) => Command::On(OnArgs {
            wait: false,
            timeout: DEFAULT_WAIT_TIMEOUT_SECS,
            interval: DEFAULT_WAIT_INTERVAL_SECS,
        }),
        (None, Some(LegacyState::Off)) => Command::Off,
        (None, None) => {
            return Err(command.error(
                clap::error::ErrorKind::MissingSubcommand,
                "a subcommand is required: status, on, off, drain or redrive",
            ))
        }
    };

    let c = cli.connection;
    // --api-id and --api-name both as flags is a contradiction; a REST_API_ID in the
    // environment is only a fallback, so --api-name beats it.
    if from_command_line("api_id") && c.api_name.is_some() {
        return Err(command.error(
            clap::error::ErrorKind::ArgumentConflict,
            "--api-id and --api-name name the API twice: pass one of them",
        ));
    }
    let mut command_line = Layer::default();
    let mut environment = Layer::default();
    {
        let mut place = |id: &str, value: Option<String>, set: fn(&mut Layer, String)| {
            if let Some(value) = value.filter(|v| !v.trim().is_empty()) {
                let layer = if from_command_line(id) {
                    &mut command_line
                } else {
                    &mut environment
                };
                set(layer, value);
            }
        };
        place("api_id", c.api_id, |l, v| l.api = Some(ApiRef::Id(v)));
        place("api_name", c.api_name, |l, v| l.api = Some(ApiRef::Name(v)));
        place("stage", Some(c.stage), |l, v| l.stage = Some(v));
        place("queue_url", c.queue_url, |l, v| l.queue_url = Some(v));
        place("dlq_url", c.dlq_url, |l, v| l.dlq_url = Some(v));
        place("payload_bucket", c.payload_bucket, |l, v| {
            l.payload_bucket = Some(v)
        });
    }

    Ok(Invocation {
        command: action,
        json: cli.json,
        stack: c.stack,
        region: c.region,
        command_line,
        environment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{
        merge, stack_layer, OUTPUT_QUEUE_URL, OUTPUT_REST_API_ID, OUTPUT_STAGE_NAME,
    };

    /// The variables clap reads; tests must not depend on the caller's environment.
    const ENV_VARS: [&str; 12] = [
        "REST_API_ID",
        "STAGE_NAME",
        "SPIGOT_QUEUE_URL",
        "SPIGOT_DLQ_URL",
        "PAYLOAD_BUCKET",
        "TARGET_URL",
        "TARGET_PATH",
        "TARGET_ROUTES",
        "EOR_JENKINS_JOB",
        "TARGET_HEALTH_PATH",
        "DRAIN_CONCURRENCY",
        "CREDENTIALS_BUCKET",
    ];

    /// Runs `f` with exactly `vars` set among [`ENV_VARS`]. The environment is process-wide:
    /// a lock keeps the tests of this module from seeing each other's variables.
    fn with_env<R>(vars: &[(&str, &str)], f: impl FnOnce() -> R) -> R {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let saved: Vec<_> = ENV_VARS.iter().map(|k| (*k, std::env::var_os(k))).collect();
        // The lock above serialises every test that touches these variables, and nothing
        // else in this test binary reads them.
        for key in ENV_VARS {
            std::env::remove_var(key);
        }
        for (key, value) in vars {
            std::env::set_var(key, value);
        }
        let result = f();
        for (key, value) in saved {
            match value {
                Some(value) => std::env::set_var(key, value),
                None => std::env::remove_var(key),
            }
        }
        result
    }

    fn parse(args: &[&str]) -> Result<Invocation, clap::Error> {
        parse_from(std::iter::once("toggle_spigot").chain(args.iter().copied()))
    }

    #[test]
    fn the_original_switch_is_on_or_off() {
        with_env(&[], || {
            let on = parse(&["--spigot_state", "ON", "--api-id", "abc"]).unwrap();
            assert!(matches!(
                on.command,
                Command::On(OnArgs { wait: false, .. })
            ));
            assert_eq!(
                parse(&["--spigot_state=off"]).unwrap().command,
                Command::Off
            );
            assert_eq!(
                parse(&["--spigot-state", "Off"]).unwrap().command,
                Command::Off
            );
            assert!(parse(&["--spigot_state", "DRAINING"]).is_err());
            let both = parse(&["--spigot_state", "ON", "status"]).unwrap_err();
            assert_eq!(both.kind(), clap::error::ErrorKind::ArgumentConflict);
        });
    }

    #[test]
    fn a_subcommand_or_the_switch_is_required() {
        with_env(&[], || {
            let error = parse(&["--api-id", "abc"]).unwrap_err();
            assert_eq!(error.kind(), clap::error::ErrorKind::MissingSubcommand);
        });
    }

    #[test]
    fn global_flags_go_before_or_after_the_subcommand() {
        with_env(&[], || {
            let before = parse(&["--api-id", "abc", "--json", "status"]).unwrap();
            let after = parse(&["status", "--api-id", "abc", "--json"]).unwrap();
            for invocation in [before, after] {
                assert_eq!(invocation.command, Command::Status);
                assert!(invocation.json);
                assert_eq!(invocation.command_line.api, Some(ApiRef::Id("abc".into())));
            }
        });
    }

    #[test]
    fn flags_beat_the_stack_and_the_stack_beats_environment_and_defaults() {
        with_env(
            &[("REST_API_ID", "env-api"), ("SPIGOT_DLQ_URL", "env-dlq")],
            || {
                let invocation =
                    parse(&["status", "--stack", "spigot", "--queue-url", "flag-queue"]).unwrap();
                assert_eq!(invocation.stack.as_deref(), Some("spigot"));
                let stack = stack_layer([
                    (OUTPUT_REST_API_ID, "stack-api"),
                    (OUTPUT_STAGE_NAME, "live"),
                    (OUTPUT_QUEUE_URL, "stack-queue"),
                ]);
                let settings = merge(invocation.command_line, stack, invocation.environment);
                assert_eq!(settings.api, Some(ApiRef::Id("stack-api".into())));
                // The default `prod` does not hide the stack's stage...
                assert_eq!(settings.stage, "live");
                assert_eq!(settings.queue_url.as_deref(), Some("flag-queue"));
                assert_eq!(settings.dlq_url.as_deref(), Some("env-dlq"));

                // ...but an explicit --stage does.
                let invocation = parse(&["status", "--stack", "s", "--stage", "canary"]).unwrap();
                let stack = stack_layer([(OUTPUT_STAGE_NAME, "live")]);
                let settings = merge(invocation.command_line, stack, invocation.environment);
                assert_eq!(settings.stage, "canary");
            },
        );
    }

    #[test]
    fn environment_fills_in_without_a_stack() {
        with_env(
            &[
                ("REST_API_ID", "env-api"),
                ("STAGE_NAME", "staging"),
                ("SPIGOT_QUEUE_URL", "env-queue"),
                ("PAYLOAD_BUCKET", "env-bucket"),
            ],
            || {
                let invocation = parse(&["off"]).unwrap();
                assert_eq!(invocation.command_line, Layer::default());
                let settings = merge(
                    invocation.command_line,
                    Layer::default(),
                    invocation.environment,
                );
                assert_eq!(settings.api, Some(ApiRef::Id("env-api".into())));
                assert_eq!(settings.stage, "staging");
                assert_eq!(settings.queue_url.as_deref(), Some("env-queue"));
                assert_eq!(settings.payload_bucket.as_deref(), Some("env-bucket"));
            },
        );
    }

    #[test]
    fn api_name_beats_an_api_id_from_the_environment_but_not_from_a_flag() {
        with_env(&[("REST_API_ID", "env-api")], || {
            let invocation = parse(&["status", "--api-name", "spigot"]).unwrap();
            let settings = merge(
                invocation.command_line,
                Layer::default(),
                invocation.environment,
            );
            assert_eq!(settings.api, Some(ApiRef::Name("spigot".into())));

            let error = parse(&["status", "--api-name", "spigot", "--api-id", "x"]).unwrap_err();
            assert_eq!(error.kind(), clap::error::ErrorKind::ArgumentConflict);
        });
    }

    #[test]
    fn drain_takes_its_target_from_flags_or_environment() {
        with_env(
            &[
                ("TARGET_URL", "http://jenkins:8080"),
                ("DRAIN_CONCURRENCY", "4"),
                ("EOR_JENKINS_JOB", "ops/post-run"),
            ],
            || {
                let Command::Drain(args) = parse(&["drain"]).unwrap().command else {
                    panic!("not drain");
                };
                assert_eq!(args.target_url, "http://jenkins:8080");
                assert_eq!(args.concurrency, 4);
                assert_eq!(args.target_path, "/github-webhook/");
                assert_eq!(args.target_routes, None);
                assert_eq!(args.eor_jenkins_job.as_deref(), Some("ops/post-run"));
            },
        );
        with_env(&[], || {
            assert!(parse(&["drain"]).is_err(), "the target URL is required");
            let Command::Drain(args) =
                parse(&["drain", "--target-url", "http://j", "--concurrency", "2"])
                    .unwrap()
                    .command
            else {
                panic!("not drain");
            };
            assert_eq!(
                (args.target_url.as_str(), args.concurrency),
                ("http://j", 2)
            );
            assert!(parse(&["drain", "--target-url", "http://j", "--concurrency", "0"]).is_err());
        });
    }

    #[test]
    fn on_and_redrive_options() {
        with_env(&[], || {
            let Command::On(on) = parse(&["on", "--wait", "--timeout", "60"]).unwrap().command
            else {
                panic!("not on");
            };
            assert_eq!((on.wait, on.timeout, on.interval), (true, 60, 5));
            assert!(
                parse(&["on", "--timeout", "60"]).is_err(),
                "--timeout needs --wait"
            );
            let Command::Redrive(redrive) = parse(&["redrive", "--dry-run", "--max", "3"])
                .unwrap()
                .command
            else {
                panic!("not redrive");
            };
            assert_eq!((redrive.dry_run, redrive.max), (true, Some(3)));
        });
    }
}
