//! The commands: run the operation, show progress on stderr, print the result on stdout
//! (a table, or one JSON object with `--json`), and say how the process should exit.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use spigot_common::buffer::{QueueDepth, WebhookBuffer};
use spigot_common::drain::{DrainOptions, DrainSummary, Drainer};
use spigot_common::jenkins::JenkinsTarget;
use spigot_common::state::{SpigotState, Stage};
use spigot_common::target_routes::TargetRoutes;

use crate::age::AgeSource;
use crate::cli::{OnArgs, RedriveArgs};
use crate::ops::{self, Depth, Spigot, StateView, Toggle, WaitEnd};
use crate::report;

const TICK: Duration = Duration::from_millis(120);

/// Where results go: a table, or one JSON object.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    fn print<T: Serialize>(
        &self,
        value: &T,
        human: impl FnOnce(&T) -> String,
    ) -> anyhow::Result<()> {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).context("serialising the result")?
            );
        } else {
            print!("{}", human(value));
        }
        Ok(())
    }
}

/// An error the result already told about: printed on stderr, exit status 1.
fn failed(why: &str) -> ExitCode {
    eprintln!("toggle_spigot: {why}");
    ExitCode::FAILURE
}

fn spinner(template: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template(template).expect("the template is valid"));
    bar.enable_steady_tick(TICK);
    bar
}

fn bar(len: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} {unit} {{msg}}"
        ))
        .expect("the template is valid"),
    );
    bar.enable_steady_tick(TICK);
    bar
}

pub async fn off(stage: &Stage, out: Output) -> anyhow::Result<ExitCode> {
    let toggle = ops::turn_off(stage).await?;
    out.print(&toggle, report::toggle)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn restore(stage: &Stage, state: SpigotState, out: Output) -> anyhow::Result<ExitCode> {
    let toggle = ops::restore(stage, state).await?;
    out.print(&toggle, report::toggle)?;
    Ok(ExitCode::SUCCESS)
}

/// `on` and, with `--wait`, how the wait ended.
#[derive(Debug, Serialize)]
struct OnReport {
    #[serde(flatten)]
    toggle: Toggle,
    wait: Option<WaitReport>,
}

#[derive(Debug, Serialize)]
struct WaitReport {
    /// `on`, `not_draining` (someone set another state) or `timed_out`.
    outcome: &'static str,
    waited_secs: u64,
    state: Option<StateView>,
    depth: Option<Depth>,
}

pub async fn on(spigot: &Spigot, args: &OnArgs, out: Output) -> anyhow::Result<ExitCode> {
    let toggle = ops::turn_on(spigot).await?;
    if !out.json {
        print!("{}", report::toggle(&toggle));
    }
    if !(args.wait && toggle.state == SpigotState::Draining) {
        if out.json {
            out.print(&OnReport { toggle, wait: None }, |_| String::new())?;
        }
        return Ok(ExitCode::SUCCESS);
    }

    let progress = spinner("{spinner} [{elapsed_precise}] waiting for ON: {msg}");
    let started = Instant::now();
    let timeout = (args.timeout > 0).then(|| Duration::from_secs(args.timeout));
    let tick = |view: &StateView, depth: Option<QueueDepth>| {
        let depth = depth.map_or("queue depth unknown".into(), |d| {
            format!("{} queued", report::depth(&d.into()))
        });
        progress.set_message(format!("{}, {depth}", view.state));
    };
    let end = ops::wait_until_on(spigot, timeout, Duration::from_secs(args.interval), &tick).await;
    progress.finish_and_clear();
    let end = end?;
    let waited_secs = started.elapsed().as_secs();
    let (wait, problem) = match end {
        WaitEnd::On => (
            WaitReport {
                outcome: "on",
                waited_secs,
                state: None,
                depth: None,
            },
            None,
        ),
        WaitEnd::NotDraining(view) => {
            let why = format!(
                "the spigot left DRAINING for {} while we waited: someone changed it",
                view.variable.as_deref().unwrap_or("an unset variable")
            );
            (
                WaitReport {
                    outcome: "not_draining",
                    waited_secs,
                    state: Some(view),
                    depth: None,
                },
                Some(why),
            )
        }
        WaitEnd::TimedOut { depth } => {
            let why = format!(
                "still DRAINING after {waited_secs} s ({}): is send_from_queue running? \
                 `toggle_spigot drain` replays the backlog from here",
                depth.map_or("queue depth unknown".into(), |d| format!(
                    "{} queued",
                    report::depth(&d.into())
                ))
            );
            (
                WaitReport {
                    outcome: "timed_out",
                    waited_secs,
                    state: None,
                    depth: depth.map(Depth::from),
                },
                Some(why),
            )
        }
    };
    if out.json {
        out.print(
            &OnReport {
                toggle,
                wait: Some(wait),
            },
            |_| String::new(),
        )?;
    } else if problem.is_none() {
        println!("The queue is empty and the spigot is ON (after {waited_secs} s).");
    }
    Ok(match problem {
        None => ExitCode::SUCCESS,
        Some(why) => failed(&why),
    })
}

pub async fn status(spigot: &Spigot, ages: &AgeSource, out: Output) -> anyhow::Result<ExitCode> {
    let status = ops::status(spigot, ages).await?;
    out.print(&status, report::status)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn drain(
    spigot: &Spigot,
    target: &JenkinsTarget,
    routes: &TargetRoutes,
    concurrency: usize,
    out: Output,
) -> anyhow::Result<ExitCode> {
    if spigot.buffer.config().dlq_url.is_none() {
        eprintln!("toggle_spigot: no DLQ URL: a request the target refuses stops the drain");
    }
    let initial = spigot.buffer.depth().await.map(|d| d.total()).unwrap_or(0);
    let progress = bar(initial, "replayed");
    let show = |s: &DrainSummary| {
        let done = s.delivered + s.poisoned;
        if done > progress.length().unwrap_or(0) {
            progress.set_length(done);
        }
        progress.set_position(done);
        let remaining = s.remaining.map_or_else(
            || format!("~{}", initial.saturating_sub(done)),
            |r| r.to_string(),
        );
        progress.set_message(format!(
            "(delivered {}, poisoned {}, remaining {remaining})",
            s.delivered, s.poisoned
        ));
    };
    let drainer = Drainer {
        stage: &spigot.stage,
        buffer: &spigot.buffer,
        target,
        routes,
    };
    let options = DrainOptions {
        concurrency,
        // An operator's drain runs until the queue is empty or the target stops it.
        deadline: None,
        ..DrainOptions::default()
    };
    let summary = drainer.drain(&options, &show).await;
    progress.finish_and_clear();
    out.print(&summary, report::drain)?;
    Ok(match ops::drain_verdict(&summary) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => failed(&format!("drain stopped: {why}")),
    })
}

pub async fn redrive(
    buffer: &WebhookBuffer,
    args: &RedriveArgs,
    out: Output,
) -> anyhow::Result<ExitCode> {
    if args.dry_run {
        let progress = spinner("{spinner} listing the DLQ...");
        let listing = ops::list_dead_letters(buffer, args.max).await;
        progress.finish_and_clear();
        out.print(&listing?, report::listing)?;
        return Ok(ExitCode::SUCCESS);
    }
    let before = buffer.dlq_depth().await?;
    let progress = bar(ops::redrive_limit(before, args.max), "moved");
    let summary = ops::redrive(buffer, args.max, &|moved| progress.set_position(moved)).await;
    progress.finish_and_clear();
    let summary = summary?;
    out.print(&summary, report::redrive)?;
    Ok(match &summary.error {
        None => ExitCode::SUCCESS,
        Some(error) => failed(&format!(
            "redrive stopped after {} messages: {error}",
            summary.moved
        )),
    })
}
