//! One run: claim its id, trigger the Jenkins job, tell Port where the build is, and hand
//! a tail checkpoint to log_tailer. A refusal from Jenkins ends the run FAILURE with a
//! message that says what to fix; nothing here fails the Kafka batch.
//!
//! The run's marker in the state bucket records how far this got, so that a record
//! delivered again (at-least-once) resumes instead of starting a second build.

use std::time::{Duration, Instant};

use spigot_common::jenkins::builds::{BuildRef, JenkinsError, JenkinsServer, JobPath, Triggered};
use spigot_common::port::{RunStatus, RunUpdate};
use spigot_common::port_run::{EntityUpsert, RunMarker, TailCheckpoint, CHECKPOINT_VERSION};

use crate::message::RunRequest;
use crate::routes::{Route, Unrouted, RUN_ID_PARAMETER};
use crate::Deps;

/// Tries of a trigger that Jenkins may be too busy (or restarting) for.
const TRIGGER_ATTEMPTS: u32 = 3;
const TRIGGER_BACKOFF: Duration = Duration::from_secs(1);
const QUEUE_POLL: Duration = Duration::from_millis(400);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Started,
    Duplicate,
    Skipped,
    Failed,
    Rejected,
    /// Another invocation method's run: left to its consumer.
    OtherInvocation,
}

pub async fn start(deps: &Deps, request: &RunRequest) -> Outcome {
    let run_id = request.run_id.as_str();
    let Some(route) = deps
        .routes
        .find(request.blueprint.as_deref(), &request.action)
    else {
        return match deps.routes.unrouted {
            Unrouted::Skip => {
                tracing::info!(run_id, action = %request.action, "no route for the action; left to other consumers");
                Outcome::Skipped
            }
            Unrouted::Fail => {
                end_not_started(
                    deps,
                    run_id,
                    &format!(
                    "No Jenkins job is set up for action {}: add a route for it to routes.json.",
                    request.action
                ),
                )
                .await;
                Outcome::Failed
            }
        };
    };
    let Some(server_url) = deps.routes.servers.get(&route.server) else {
        // Routes::parse checked this; a missing server is a bug, said plainly.
        end_not_started(
            deps,
            run_id,
            &format!(
                "Route {} names an unknown server {}.",
                request.action, route.server
            ),
        )
        .await;
        return Outcome::Failed;
    };
    let server =
        match JenkinsServer::new(server_url, deps.jenkins_secrets.for_server(&route.server)) {
            Ok(server) => server,
            Err(error) => {
                end_not_started(
                    deps,
                    run_id,
                    &format!("The Jenkins server {} is not usable: {error}", route.server),
                )
                .await;
                return Outcome::Failed;
            }
        };
    let job = route.job.path();

    let marker = match deps.state.claim(run_id).await {
        Ok(marker) => marker,
        Err(error) => {
            tracing::error!(run_id, %error, "cannot record the run");
            end_not_started(deps, run_id, "The run could not be recorded (state bucket unavailable), so it was not started: run it again.").await;
            return Outcome::Failed;
        }
    };
    let (triggered, outcome) = match marker {
        Some(RunMarker::HandedOff) => {
            tracing::info!(run_id, "run already started by an earlier delivery");
            return Outcome::Duplicate;
        }
        // The first delivery triggered the build and stopped before the handoff.
        Some(RunMarker::Triggered { queue_url, build }) => {
            ((queue_url, build, false), Outcome::Duplicate)
        }
        // The first delivery may or may not have reached Jenkins: look for its build.
        Some(RunMarker::Claimed) => match existing_build(&server, &job, route, request).await {
            Some(build) => ((String::new(), Some(build), false), Outcome::Duplicate),
            None => match trigger(deps, &server, &job, route, request).await {
                Some(triggered) => (triggered, Outcome::Started),
                None => return Outcome::Failed,
            },
        },
        None => match trigger(deps, &server, &job, route, request).await {
            Some(triggered) => (triggered, Outcome::Started),
            None => return Outcome::Failed,
        },
    };
    let (queue_url, build, merged) = triggered;
    let build = match build {
        Some(build) => Some(build),
        None => wait_for_build(&server, &queue_url, deps.build_number_wait).await,
    };
    announce(
        deps,
        request,
        route,
        &job,
        &queue_url,
        build.as_ref(),
        merged,
    )
    .await;
    match hand_off(deps, request, route, &job, server_url, &queue_url, build).await {
        // A redelivered record that finished the first delivery's work.
        Outcome::Started => outcome,
        failed => failed,
    }
}

/// Triggers the build; `None` when the run was ended FAILURE instead.
async fn trigger(
    deps: &Deps,
    server: &JenkinsServer,
    job: &JobPath,
    route: &Route,
    request: &RunRequest,
) -> Option<(String, Option<BuildRef>, bool)> {
    let run_id = request.run_id.as_str();
    let parameters = route.parameters(request);
    let mut backoff = TRIGGER_BACKOFF;
    let mut attempt = 1;
    let result = loop {
        match server.trigger(job, &parameters).await {
            Err(error) if error.is_transient() && attempt < TRIGGER_ATTEMPTS => {
                tracing::warn!(run_id, %error, attempt, "Jenkins did not take the trigger; trying again");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                attempt += 1;
            }
            result => break result,
        }
    };
    match result {
        Ok(triggered) => {
            let merged = matches!(triggered, Triggered::Merged { .. });
            let queue_url = triggered.queue_url().to_owned();
            let marker = RunMarker::Triggered {
                queue_url: queue_url.clone(),
                build: None,
            };
            if let Err(error) = deps.state.mark(run_id, &marker).await {
                tracing::warn!(run_id, %error, "cannot record the trigger");
            }
            tracing::info!(run_id, job = %job.display(), queue_url, merged, "build queued");
            Some((queue_url, None, merged))
        }
        Err(error) => {
            tracing::warn!(run_id, job = %job.display(), %error, "Jenkins refused the trigger");
            let explanation =
                explain_refusal(&error, server, job, &route.server, !parameters.is_empty());
            end_not_started(deps, run_id, &explanation).await;
            if let Err(error) = deps.state.mark(run_id, &RunMarker::HandedOff).await {
                tracing::warn!(run_id, %error, "cannot record the end of the run");
            }
            None
        }
    }
}

/// What the run's user should do about a refusal.
fn explain_refusal(
    error: &JenkinsError,
    server: &JenkinsServer,
    job: &JobPath,
    server_name: &str,
    with_parameters: bool,
) -> String {
    let where_ = format!(
        "{} on Jenkins {server_name} ({})",
        job.display(),
        server.job_url(job)
    );
    match error.status() {
        Some(404) => format!("Jenkins has no job {where_}: check the job path of this action's route."),
        Some(409) => format!("The job {where_} is not buildable (disabled?): enable it in Jenkins and run the action again."),
        Some(401 | 403) => format!("Jenkins {server_name} refused the credentials: check the API token for {server_name} in jenkins.json."),
        Some(500) if with_parameters => format!(
            "Jenkins failed to start {where_} with parameters. If the job takes no parameters, set \"parameters\": {{}} in the route."
        ),
        Some(400) => format!("Jenkins refused the parameters for {where_}: {error}"),
        Some(302) => format!("The Jenkins queue refused the build of {where_}."),
        _ if error.is_transient() => format!("Jenkins did not answer the trigger of {where_} ({error}); run the action again once it is back."),
        _ => format!("Jenkins did not start {where_}: {error}"),
    }
}

/// A build of this run that exists already (found by its `PORT_RUN_ID`).
async fn existing_build(
    server: &JenkinsServer,
    job: &JobPath,
    route: &Route,
    request: &RunRequest,
) -> Option<BuildRef> {
    let has_run_id = route
        .parameters(request)
        .iter()
        .any(|(name, value)| name == RUN_ID_PARAMETER && *value == request.run_id);
    if !has_run_id {
        return None;
    }
    match server
        .find_build(job, RUN_ID_PARAMETER, &request.run_id)
        .await
    {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(run_id = %request.run_id, %error, "cannot look for an earlier build of the run");
            None
        }
    }
}

/// Follows the queue item briefly: the build's number when it starts in time.
async fn wait_for_build(
    server: &JenkinsServer,
    queue_url: &str,
    wait: Duration,
) -> Option<BuildRef> {
    let deadline = Instant::now() + wait;
    loop {
        match server.queue_item(queue_url).await {
            Ok(Some(item)) if item.executable.is_some() => {
                let build = item.executable?;
                return Some(BuildRef {
                    number: build.number,
                    url: server.rebase(&build.url),
                });
            }
            Ok(Some(item)) if item.cancelled => return None,
            // Just triggered: a 404 can be the queue catching up.
            Ok(_) | Err(_) => {}
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(QUEUE_POLL).await;
    }
}

/// Links the run to its build (or queue item) and writes its first log lines.
async fn announce(
    deps: &Deps,
    request: &RunRequest,
    route: &Route,
    job: &JobPath,
    queue_url: &str,
    build: Option<&BuildRef>,
    merged: bool,
) {
    let run_id = request.run_id.as_str();
    let update = match build {
        Some(build) => RunUpdate {
            status_label: Some(format!("Running #{}", build.number)),
            link: vec![build.url.clone()],
            external_run_id: Some(build.number.to_string()),
            ..RunUpdate::default()
        },
        None => RunUpdate {
            status_label: Some("Queued in Jenkins".into()),
            link: vec![queue_url.to_owned()],
            external_run_id: queue_url
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .map(|id| format!("queue-{id}")),
            ..RunUpdate::default()
        },
    };
    if let Err(error) = deps.port.update_run(run_id, &update).await {
        tracing::warn!(run_id, %error, "cannot link the run to its build");
    }
    let mut lines = vec![route.intro(request, job)];
    if merged {
        lines.push("Jenkins merged this request into a queue item that was already waiting with the same parameters.".into());
    }
    lines.push(match build {
        Some(build) => format!(
            "Jenkins build #{} of {} started: {}",
            build.number,
            job.display(),
            build.url
        ),
        None => format!("Jenkins job {} queued: {queue_url}", job.display()),
    });
    if let Err(error) = deps.port.add_log(run_id, &lines.join("\n"), None).await {
        tracing::warn!(run_id, %error, "cannot write the run's first log lines");
    }
}

/// Sends the tail checkpoint; the run is log_tailer's from here.
async fn hand_off(
    deps: &Deps,
    request: &RunRequest,
    route: &Route,
    job: &JobPath,
    server_url: &str,
    queue_url: &str,
    build: Option<BuildRef>,
) -> Outcome {
    let run_id = request.run_id.as_str();
    let now = time::OffsetDateTime::now_utc();
    let checkpoint = TailCheckpoint {
        version: CHECKPOINT_VERSION,
        run_id: run_id.to_owned(),
        action: request.action.clone(),
        server: route.server.clone(),
        server_url: server_url.to_owned(),
        job: job.clone(),
        queue_url: (!queue_url.is_empty()).then(|| queue_url.to_owned()),
        build: build.clone(),
        offset: 0,
        started_at: rfc3339(now),
        deadline_at: rfc3339(now + route.timeout()),
        abort_on_timeout: route.abort_on_timeout,
        abort_when_run_ends: route.abort_when_run_ends,
        index_log: route.index_log,
        entity: route
            .entity(request)
            .map(|(blueprint, entity)| EntityUpsert { blueprint, entity }),
        handoffs: 0,
    };
    let body = serde_json::to_string(&checkpoint).expect("a checkpoint serialises");
    let sent = deps
        .sqs
        .send_message()
        .queue_url(&deps.tail_queue_url)
        .message_body(body)
        .send()
        .await;
    let outcome = match sent {
        Ok(_) => Outcome::Started,
        Err(error) => {
            let error = spigot_common::aws::error_text(&error);
            tracing::error!(run_id, %error, "cannot hand the run to log_tailer");
            let link = build.as_ref().map_or(queue_url, |b| b.url.as_str());
            end_not_started(deps, run_id, &format!(
                "The build was started but its log cannot be followed ({error}); it runs in Jenkins: {link}"
            ))
            .await;
            Outcome::Failed
        }
    };
    if let Err(error) = deps.state.mark(run_id, &RunMarker::HandedOff).await {
        tracing::warn!(run_id, %error, "cannot record the handoff");
    }
    outcome
}

/// Ends the run FAILURE, labelled "Not started", with `message` as its last log line.
async fn end_not_started(deps: &Deps, run_id: &str, message: &str) {
    end_failed(deps, run_id, "Not started", message).await;
}

/// Ends the run FAILURE with `label` and `message` as its last log line.
pub async fn end_failed(deps: &Deps, run_id: &str, label: &str, message: &str) {
    tracing::warn!(run_id, message, "ending the run FAILURE");
    if let Err(error) = deps
        .port
        .add_log(run_id, message, Some((RunStatus::Failure, label)))
        .await
    {
        tracing::error!(run_id, %error, "cannot end the run in Port");
    }
}

fn rfc3339(time: time::OffsetDateTime) -> String {
    time.format(&time::format_description::well_known::Rfc3339)
        .expect("UTC time formats")
}
