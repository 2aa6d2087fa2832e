//! One invocation's share of a run: resolve the queue item to the build, then read
//! `progressiveText` from the saved offset every poll interval and post what is new to
//! the Port run, until the build ends (→ [`crate::finish`]), the route's watchdog fires,
//! or this invocation's time is nearly up (→ the next checkpoint). Facts:
//! `reference/jenkins-api.md` §4–§6, `reference/port-api.md` §2, §4.
//!
//! Memory: nothing bounds a `progressiveText` answer (a finished build's is the whole
//! rest of its log), so its body is read a piece at a time into the line parser, and
//! lines go out in posts of at most `FLUSH_BYTES`: what a read holds is one piece, the
//! parser's unfinished line (cut at its cap) and the post being gathered, whatever the
//! log's size or its lines' lengths ([`TailReport::peak_held_bytes`]).
//!
//! Crash safety: after every post the progress (the answer's `start` and how many of its
//! lines are posted) is saved; a checkpoint that comes back after a crash asks again
//! from that `start` and skips those lines, so at most the last post repeats. An answer
//! cut short (Jenkins gone mid-body, or this invocation's time up) resumes the same way.
//! A checkpoint that was handed on already (the progress counts more handoffs than it
//! carries) is stale and dropped.

use std::time::{Duration, Instant};

use spigot_common::jenkins::builds::{BuildRef, JenkinsError, JenkinsServer, ProgressiveText};
use spigot_common::port::{RunStatus, RunUpdate};
use spigot_common::port_run::{Progress, TailCheckpoint};

use crate::answer::{AnswerPosts, Post};
use crate::finish;
use crate::{Deps, DEADLINE_MARGIN};

/// Jenkins sends at most this many lines per read of a running build: a full read
/// means more is waiting now.
const MAX_LINES_PER_READ: usize = 10_000;
/// A queue item that expired is looked up by the run's `PORT_RUN_ID` for this long.
const BUILD_SEARCH_PATIENCE: Duration = Duration::from_secs(120);
/// `PORT_RUN_ID`: the parameter that names the run.
const RUN_ID_PARAMETER: &str = "PORT_RUN_ID";
/// Body bytes given to the line parser at a time.
pub const READ_PIECE_BYTES: usize = 64 * 1024;

/// What one invocation did with a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailReport {
    pub tailed: Tailed,
    /// Log posts made.
    pub posts: u64,
    /// The most console log bytes held at once: the network chunk and piece being read,
    /// the parser's unfinished line, lines not yet gathered and the post being gathered.
    /// A post in flight adds its message and JSON body (each at most `FLUSH_BYTES`).
    pub peak_held_bytes: usize,
    /// The status this invocation ended the run with in Port, if it did.
    pub ended: Option<RunStatus>,
    /// The longest a post took from Jenkins' answer to Port's acceptance (none: no post).
    pub worst_post_latency: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tailed {
    /// The run is ended in Port (or was already).
    Finished,
    /// The next checkpoint is on the queue.
    HandedOn,
}

#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("the message is not a tail checkpoint: {0}")]
    Checkpoint(String),
    #[error(transparent)]
    State(#[from] spigot_common::port_run::StateError),
    #[error("Port: {0}")]
    Port(#[from] spigot_common::port::PortError),
    #[error("Jenkins: {0}")]
    Jenkins(#[from] JenkinsError),
    #[error("cannot hand the next checkpoint on: {0}")]
    HandOn(String),
}

/// Where the tail stands, kept in step with the saved progress.
pub(crate) struct Run<'a> {
    pub deps: &'a Deps,
    pub checkpoint: TailCheckpoint,
    pub server: JenkinsServer,
    pub progress: Progress,
    /// This invocation stops tailing at this instant.
    pub stop_at: Instant,
    posts: u64,
    peak_held: usize,
    /// Set by [`finish::end`] once Port has the run's final status from us.
    pub ended: Option<RunStatus>,
    /// When Jenkins' answer being posted arrived.
    read_at: Option<Instant>,
    worst_post_latency: Option<Duration>,
}

pub async fn tail(
    deps: &Deps,
    checkpoint: TailCheckpoint,
    deadline: Instant,
) -> Result<TailReport, TailError> {
    let report = |tailed| TailReport {
        tailed,
        posts: 0,
        peak_held_bytes: 0,
        ended: None,
        worst_post_latency: None,
    };
    let run_id = checkpoint.run_id.clone();
    let saved = deps.state.progress(&run_id).await?;
    if let Some(saved) = &saved {
        if saved.finished {
            tracing::info!(run_id, "the run was ended already");
            return Ok(report(Tailed::Finished));
        }
        if saved.handoffs > checkpoint.handoffs {
            tracing::info!(run_id, "stale checkpoint: its successor is tailing the run");
            return Ok(report(Tailed::Finished));
        }
    }
    let progress = match saved {
        Some(saved) if saved.offset >= checkpoint.offset => saved,
        _ => Progress {
            offset: checkpoint.offset,
            lines_posted: 0,
            build: checkpoint.build.clone(),
            handoffs: checkpoint.handoffs,
            finished: false,
        },
    };
    let server = JenkinsServer::new(
        &checkpoint.server_url,
        deps.jenkins_secrets.for_server(&checkpoint.server),
    )
    .map_err(|e| TailError::Checkpoint(e.to_string()))?;
    let mut run = Run {
        deps,
        checkpoint,
        server,
        progress,
        stop_at: deadline.checked_sub(DEADLINE_MARGIN).unwrap_or(deadline),
        posts: 0,
        peak_held: 0,
        ended: None,
        read_at: None,
        worst_post_latency: None,
    };
    let tailed = match run.follow().await {
        Err(TailError::Port(error)) if ended_elsewhere(&error) => {
            run.ended_elsewhere(&error).await?
        }
        other => other?,
    };
    Ok(TailReport {
        tailed,
        posts: run.posts,
        peak_held_bytes: run.peak_held,
        ended: run.ended,
        worst_post_latency: run.worst_post_latency,
    })
}

/// Port's answer that the run is over without us: 422 (ended already: a user stopped it)
/// or 404 (Port does not know it, e.g. deleted). Retrying cannot help.
fn ended_elsewhere(error: &spigot_common::port::PortError) -> bool {
    matches!(error.status(), Some(404 | 422))
}

impl Run<'_> {
    /// The run was ended in Port by someone else: stop tailing it for good (no retries
    /// into the DLQ), say so once, and abort the build when the route asks to.
    async fn ended_elsewhere(
        &mut self,
        error: &spigot_common::port::PortError,
    ) -> Result<Tailed, TailError> {
        let run_id = self.checkpoint.run_id.clone();
        let mut aborted = None;
        if let (true, Some(build)) = (
            self.checkpoint.abort_when_run_ends,
            self.progress.build.clone(),
        ) {
            aborted = Some(match self.server.stop(&build.url).await {
                Ok(()) => format!("build #{} aborted", build.number),
                Err(error) => format!("aborting build #{} failed: {error}", build.number),
            });
        }
        tracing::warn!(
            run_id,
            status = error.status(),
            %error,
            build = aborted.as_deref(),
            "the run was ended in Port (or Port does not know it): no longer followed"
        );
        self.progress.finished = true;
        self.save().await?;
        Ok(Tailed::Finished)
    }

    async fn follow(&mut self) -> Result<Tailed, TailError> {
        let build = match self.progress.build.clone() {
            Some(build) => build,
            None => match self.resolve_build().await? {
                Resolved::Build(build) => build,
                Resolved::Ended => return Ok(Tailed::Finished),
                Resolved::NotYet => return self.hand_on().await,
            },
        };
        loop {
            if let Some(tailed) = self.watchdog(Some(&build)).await? {
                return Ok(tailed);
            }
            let mut read = match self
                .server
                .progressive_text(&build.url, self.progress.offset)
                .await
            {
                Ok(read) => {
                    self.read_at = Some(Instant::now());
                    read
                }
                Err(error) if error.is_transient() => {
                    tracing::warn!(run_id = %self.checkpoint.run_id, %error, "Jenkins did not answer; trying at the next poll");
                    if !self.sleep_poll().await {
                        return self.hand_on().await;
                    }
                    continue;
                }
                Err(error) if error.status() == Some(404) => {
                    finish::end(self, RunStatus::Failure, "Build not found", &format!(
                        "The build {} is gone from Jenkins (deleted?); its log cannot be followed.", build.url
                    ))
                    .await?;
                    return Ok(Tailed::Finished);
                }
                Err(error) => return Err(error.into()),
            };
            let lines_in_read;
            if read.next < self.progress.offset {
                // Jenkins started again at 0 (our offset is past its end): nothing new,
                // and the body (the whole log again) is not read.
                lines_in_read = 0;
                tracing::warn!(run_id = %self.checkpoint.run_id, offset = self.progress.offset, size = read.next, "the log restarted at 0; not posting it again");
            } else {
                match self.post_answer(&mut read).await {
                    Ok(Some(lines)) => lines_in_read = lines,
                    Ok(None) => return self.hand_on().await,
                    Err(TailError::Jenkins(error)) if error.is_transient() => {
                        // What was posted is saved: the next read skips it.
                        tracing::warn!(run_id = %self.checkpoint.run_id, %error, "the console log broke off; reading it again at the next poll");
                        if !self.sleep_poll().await {
                            return self.hand_on().await;
                        }
                        continue;
                    }
                    Err(error) => return Err(error),
                }
                self.progress.offset = read.next;
                self.progress.lines_posted = 0;
                self.save().await?;
            }
            if !read.more {
                return finish::finish(self, &build).await;
            }
            // A full read means the rest is waiting: read again at once.
            if lines_in_read >= MAX_LINES_PER_READ {
                continue;
            }
            if !self.sleep_poll().await {
                return self.hand_on().await;
            }
        }
    }

    /// Posts the answer's lines after those posted already, in order, in posts of at
    /// most `FLUSH_BYTES`, saving the progress after each. `Some(lines in the answer)`
    /// once all are posted; `None` when this invocation's time ran out first.
    async fn post_answer(
        &mut self,
        read: &mut ProgressiveText,
    ) -> Result<Option<usize>, TailError> {
        let mut answer = AnswerPosts::new(self.progress.lines_posted, self.deps.flush_bytes);
        loop {
            let piece = read.piece(READ_PIECE_BYTES).await?;
            answer.feed(piece.as_deref());
            let held =
                piece.as_ref().map_or(0, |p| p.len()) + read.buffered_bytes() + answer.held_bytes();
            self.peak_held = self.peak_held.max(held);
            let at_end = piece.is_none();
            drop(piece);
            while let Some(post) = answer.take_full() {
                self.send(post).await?;
                // Only after a post: skipping what earlier invocations posted may
                // take long, and each invocation must move the run on.
                if Instant::now() >= self.stop_at {
                    return Ok(None);
                }
            }
            if at_end {
                break;
            }
        }
        if let Some(post) = answer.take_last() {
            self.send(post).await?;
        }
        Ok(Some(answer.lines_read() as usize))
    }

    /// Posts the gathered lines and saves the progress.
    async fn send(&mut self, post: Post) -> Result<(), TailError> {
        self.deps
            .port
            .add_log(&self.checkpoint.run_id, &post.message(), None)
            .await?;
        self.posts += 1;
        if let Some(read_at) = self.read_at {
            let latency = read_at.elapsed();
            self.worst_post_latency =
                Some(self.worst_post_latency.map_or(latency, |w| w.max(latency)));
        }
        self.progress.lines_posted += post.lines.len() as u64;
        self.save().await
    }

    pub(crate) async fn save(&self) -> Result<(), TailError> {
        Ok(self
            .deps
            .state
            .save_progress(&self.checkpoint.run_id, &self.progress)
            .await?)
    }

    /// Waits one poll interval; `false` when this invocation's time is up instead.
    async fn sleep_poll(&self) -> bool {
        let wake = Instant::now() + self.deps.poll_interval;
        if wake >= self.stop_at {
            return false;
        }
        tokio::time::sleep(self.deps.poll_interval).await;
        true
    }

    /// Ends the run if the route's time limit has passed.
    async fn watchdog(&mut self, build: Option<&BuildRef>) -> Result<Option<Tailed>, TailError> {
        let Ok(deadline) = time::OffsetDateTime::parse(
            &self.checkpoint.deadline_at,
            &time::format_description::well_known::Rfc3339,
        ) else {
            return Ok(None);
        };
        let now = time::OffsetDateTime::now_utc();
        if now < deadline {
            return Ok(None);
        }
        let started = time::OffsetDateTime::parse(
            &self.checkpoint.started_at,
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap_or(deadline);
        let limit = finish::human_duration((deadline - started).whole_milliseconds().max(0) as u64);
        let mut message = format!("Timed out after {limit}, the limit of this action.");
        if let (true, Some(build)) = (self.checkpoint.abort_on_timeout, build) {
            match self.server.stop(&build.url).await {
                Ok(()) => message.push_str(&format!(" The build #{} was aborted.", build.number)),
                Err(error) => message.push_str(&format!(
                    " Aborting build #{} failed: {error}",
                    build.number
                )),
            }
        }
        finish::end(
            self,
            RunStatus::Failure,
            &format!("Timed out after {limit}"),
            &message,
        )
        .await?;
        Ok(Some(Tailed::Finished))
    }

    /// Follows the queue item until the build starts, is cancelled, or this invocation
    /// must hand on.
    async fn resolve_build(&mut self) -> Result<Resolved, TailError> {
        let Some(queue_url) = self.checkpoint.queue_url.clone() else {
            return Err(TailError::Checkpoint(
                "neither a build nor a queue item".into(),
            ));
        };
        let mut said_waiting = false;
        loop {
            if let Some(_tailed) = self.watchdog(None).await? {
                return Ok(Resolved::Ended);
            }
            match self.server.queue_item(&queue_url).await {
                Ok(Some(item)) if item.cancelled => {
                    finish::end(
                        self,
                        RunStatus::Failure,
                        "Cancelled in queue",
                        "The build was cancelled while waiting in the Jenkins queue.",
                    )
                    .await?;
                    return Ok(Resolved::Ended);
                }
                Ok(Some(item)) if item.executable.is_some() => {
                    let started = item.executable.expect("checked");
                    let build = BuildRef {
                        number: started.number,
                        url: self.server.rebase(&started.url),
                    };
                    self.started(&build).await?;
                    return Ok(Resolved::Build(build));
                }
                Ok(Some(item)) => {
                    if !said_waiting {
                        let why = item.why.unwrap_or_else(|| "waiting".into());
                        let update = RunUpdate {
                            status_label: Some(format!("Queued: {why}")),
                            ..RunUpdate::default()
                        };
                        self.update_run(&update, "cannot update the run's label")
                            .await;
                        said_waiting = true;
                    }
                }
                // Gone: left the queue more than five minutes ago. Its build carries the
                // run id.
                Ok(None) => {
                    let found = self
                        .server
                        .find_build(
                            &self.checkpoint.job,
                            RUN_ID_PARAMETER,
                            &self.checkpoint.run_id,
                        )
                        .await;
                    match found {
                        Ok(Some(build)) => {
                            self.started(&build).await?;
                            return Ok(Resolved::Build(build));
                        }
                        Ok(None) if self.queued_for() > BUILD_SEARCH_PATIENCE => {
                            finish::end(self, RunStatus::Failure, "Build not found", &format!(
                                "The queue item expired and no build of {} carries {RUN_ID_PARAMETER}={}: declare that parameter in the job.",
                                self.checkpoint.job.display(),
                                self.checkpoint.run_id
                            ))
                            .await?;
                            return Ok(Resolved::Ended);
                        }
                        Ok(None) => {}
                        Err(error) => {
                            tracing::warn!(run_id = %self.checkpoint.run_id, %error, "cannot look for the build")
                        }
                    }
                }
                Err(error) if error.is_transient() => {
                    tracing::warn!(run_id = %self.checkpoint.run_id, %error, "Jenkins did not answer about the queue item");
                }
                Err(error) => return Err(error.into()),
            }
            if !self.sleep_poll().await {
                return Ok(Resolved::NotYet);
            }
        }
    }

    /// The build has started: remember it and tell Port.
    async fn started(&mut self, build: &BuildRef) -> Result<(), TailError> {
        self.progress.build = Some(build.clone());
        self.save().await?;
        let update = RunUpdate {
            status_label: Some(format!("Running #{}", build.number)),
            link: vec![build.url.clone()],
            external_run_id: Some(build.number.to_string()),
            ..RunUpdate::default()
        };
        self.update_run(&update, "cannot link the run to its build")
            .await;
        Ok(())
    }

    /// Updates the run's label or links; these only inform, so a refusal is logged and
    /// the tail goes on.
    pub(crate) async fn update_run(&self, update: &RunUpdate, failure: &str) {
        if let Err(error) = self
            .deps
            .port
            .update_run(&self.checkpoint.run_id, update)
            .await
        {
            tracing::warn!(run_id = %self.checkpoint.run_id, %error, "{failure}");
        }
    }

    fn queued_for(&self) -> Duration {
        time::OffsetDateTime::parse(
            &self.checkpoint.started_at,
            &time::format_description::well_known::Rfc3339,
        )
        .map(|started| (time::OffsetDateTime::now_utc() - started).unsigned_abs())
        .unwrap_or_default()
    }

    /// Sends the next checkpoint (where the tail stands) and lets this one go.
    async fn hand_on(&mut self) -> Result<Tailed, TailError> {
        self.progress.handoffs += 1;
        // Saved first: if this invocation dies after sending, the old checkpoint is known
        // stale when it comes back.
        self.save().await?;
        let mut next = self.checkpoint.clone();
        next.offset = self.progress.offset;
        next.build = self.progress.build.clone();
        next.handoffs = self.progress.handoffs;
        let body = serde_json::to_string(&next).expect("a checkpoint serialises");
        self.deps
            .sqs
            .send_message()
            .queue_url(&self.deps.tail_queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| TailError::HandOn(spigot_common::aws::error_text(&e)))?;
        tracing::info!(run_id = %self.checkpoint.run_id, offset = next.offset, handoffs = next.handoffs, "handed on to the next invocation");
        Ok(Tailed::HandedOn)
    }
}

enum Resolved {
    Build(BuildRef),
    /// The run was ended (cancelled, timed out, not found).
    Ended,
    /// Still queued when this invocation's time was up.
    NotYet,
}
