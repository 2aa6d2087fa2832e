//! Ending a run. When the build is over: its result and duration, the whole console log
//! archived to S3 (and indexed, when the route asks), the entity upserted while the run
//! can still be tied to it, the run linked to the archive, and last the terminating log
//! line — Port makes a run immutable after that, so it comes after everything else.
//!
//! Results: `SUCCESS` → SUCCESS; `UNSTABLE`, `FAILURE`, `ABORTED`, `NOT_BUILT` → FAILURE,
//! labelled "Build RESULT (duration)".

use std::time::Duration;

use spigot_common::archive::ArchiveUpload;
use spigot_common::jenkins::builds::{BuildInfo, BuildRef};
use spigot_common::log_copy::{IndexTarget, LogCopy};
use spigot_common::log_index::{index_name, index_template, JobFields, LogSource};
use spigot_common::logline::DEFAULT_MAX_LINE_BYTES;
use spigot_common::port::{RunStatus, RunUpdate};

use crate::tail::{Run, TailError, Tailed};

/// A build whose log is complete may take a moment to record its result.
const RESULT_ATTEMPTS: u32 = 10;
const RESULT_WAIT: Duration = Duration::from_millis(500);

pub(crate) async fn finish(run: &mut Run<'_>, build: &BuildRef) -> Result<Tailed, TailError> {
    let info = result_of(run, build).await?;
    let result = info.result.clone().unwrap_or_else(|| "UNKNOWN".into());
    let status = if result == "SUCCESS" {
        RunStatus::Success
    } else {
        RunStatus::Failure
    };
    let duration = human_duration(info.duration);
    let label = format!("Build {result} ({duration})");

    let mut links = vec![build.url.clone()];
    let mut notes = Vec::new();
    match archive(run, build, &info).await {
        Ok(link) => links.push(link),
        Err(problem) => notes.push(format!("The console log could not be archived: {problem}")),
    }
    if status == RunStatus::Success {
        if let Some(upsert) = &run.checkpoint.entity {
            // Tied to the run only while it is in progress: before the end.
            match run
                .deps
                .port
                .upsert_entity(&upsert.blueprint, &upsert.entity, &run.checkpoint.run_id)
                .await
            {
                Ok(()) => notes.push(format!(
                    "Entity {} of blueprint {} updated.",
                    upsert.entity["identifier"].as_str().unwrap_or("?"),
                    upsert.blueprint
                )),
                Err(error) => notes.push(format!("The entity could not be updated: {error}")),
            }
        }
    }
    let update = RunUpdate {
        link: links,
        summary: Some(format!(
            "Jenkins build #{} of {}: {result} in {duration}",
            build.number,
            run.checkpoint.job.display()
        )),
        ..RunUpdate::default()
    };
    run.update_run(&update, "cannot link the run to its archive")
        .await;
    let mut message = notes;
    message.push(format!(
        "Finished: {result} (build #{} took {duration})",
        build.number
    ));
    end(run, status, &label, &message.join("\n")).await?;
    Ok(Tailed::Finished)
}

/// Ends the run with `message` as its last log line, and remembers that it did.
pub(crate) async fn end(
    run: &mut Run<'_>,
    status: RunStatus,
    label: &str,
    message: &str,
) -> Result<(), TailError> {
    match run
        .deps
        .port
        .add_log(&run.checkpoint.run_id, message, Some((status, label)))
        .await
    {
        Ok(()) => {}
        // Port refuses a second termination: an earlier try got through.
        Err(error) if error.status() == Some(422) => {
            tracing::warn!(run_id = %run.checkpoint.run_id, %error, "the run was ended already");
        }
        Err(error) => return Err(error.into()),
    }
    tracing::info!(run_id = %run.checkpoint.run_id, status = status.as_str(), label, "run ended");
    run.ended = Some(status);
    run.progress.finished = true;
    run.save().await
}

/// The build's final state, once Jenkins has recorded it.
async fn result_of(run: &Run<'_>, build: &BuildRef) -> Result<BuildInfo, TailError> {
    let mut attempt = 1;
    loop {
        let info = run.server.build(&build.url).await?;
        if !info.building && info.result.is_some() || attempt == RESULT_ATTEMPTS {
            return Ok(info);
        }
        tokio::time::sleep(RESULT_WAIT).await;
        attempt += 1;
    }
}

/// Streams the whole console log into the archive (and the index); the link to it.
async fn archive(run: &Run<'_>, build: &BuildRef, info: &BuildInfo) -> Result<String, String> {
    let deps = run.deps;
    let job_path = run.checkpoint.job.0.join("/");
    let key = format!(
        "jenkins/{}/{}/{}.log",
        safe_key(&run.checkpoint.server),
        safe_key(&job_path),
        build.number
    );
    let started =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(info.timestamp) * 1_000_000)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    let format = &time::format_description::well_known::Rfc3339;
    let started_at = started.format(format).unwrap_or_default();
    let finished_at = (started + Duration::from_millis(info.duration))
        .format(format)
        .unwrap_or_default();
    let source = LogSource::new(
        "jenkins.build_log",
        &JobFields {
            source: "jenkins",
            project_id: format!("{}/{job_path}", run.checkpoint.server),
            project_path: job_path.clone(),
            job_id: build.number.to_string(),
            job_name: job_path.clone(),
            job_status: info.result.clone().unwrap_or_default(),
            job_url: build.url.clone(),
            started_at: Some(started_at.clone()),
            finished_at: Some(finished_at),
            pipeline_id: build.number.to_string(),
            ..JobFields::default()
        },
        &started_at,
        Some(format!("s3://{}/{key}", deps.archive_bucket)),
    );
    let index = index_name(&deps.index_prefix, &started_at);
    let target = match (&deps.search, run.checkpoint.index_log) {
        (Some(search), true) => {
            deps.template
                .ensure(
                    search,
                    &deps.index_prefix,
                    &index_template(&deps.index_prefix),
                )
                .await;
            Some(IndexTarget {
                search,
                index: &index,
                source: &source,
            })
        }
        _ => None,
    };
    let upload = ArchiveUpload::new(
        deps.s3.clone(),
        &deps.archive_bucket,
        &key,
        "text/plain; charset=utf-8",
    );
    let mut copy = LogCopy::new(upload, target, DEFAULT_MAX_LINE_BYTES);
    let mut response = run
        .server
        .console_text(&build.url)
        .await
        .map_err(|e| e.to_string())?;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if let Err(error) = copy.write(&chunk).await {
                    copy.abort().await;
                    return Err(error.to_string());
                }
            }
            Ok(None) => break,
            Err(error) => {
                copy.abort().await;
                return Err(spigot_common::http::error_chain(&error));
            }
        }
    }
    let stats = copy.finish().await.map_err(|e| e.to_string())?;
    if let Some(bulk) = &stats.bulk {
        if bulk.rejected > 0 {
            return Err(format!(
                "{} lines were refused by the index, e.g. {:?}",
                bulk.rejected, bulk.reasons
            ));
        }
    }
    tracing::info!(run_id = %run.checkpoint.run_id, key, bytes = stats.bytes, lines = stats.lines, "console log archived");
    Ok(format!(
        "https://s3.console.aws.amazon.com/s3/object/{}?prefix={key}",
        deps.archive_bucket
    ))
}

/// A name as an S3 key part: letters, digits and `-_./` kept, the rest as `_`.
fn safe_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .replace("..", "_")
}

/// `2m 13s`, `45s`, `1h 02m`.
pub fn human_duration(millis: u64) -> String {
    let secs = millis / 1000;
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m {:02}s", secs / 60, secs % 60),
        _ => format!("{}h {:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(45_900), "45s");
        assert_eq!(human_duration(133_000), "2m 13s");
        assert_eq!(human_duration(3_720_000), "1h 02m");
    }

    #[test]
    fn keys_keep_paths_and_drop_tricks() {
        assert_eq!(safe_key("deploy/micro service"), "deploy/micro_service");
        assert_eq!(safe_key("../etc"), "_/etc");
    }
}
