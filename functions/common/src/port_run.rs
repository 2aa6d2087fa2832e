//! A Port run on its way from port_runner to log_tailer: the tail checkpoint that goes
//! through the tail queue, and the progress log_tailer saves in the state bucket after
//! every post, so that a crash repeats at most the last chunk.

use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::aws::error_text;
use crate::jenkins::builds::{BuildRef, JobPath};

pub const CHECKPOINT_VERSION: u32 = 1;

/// What log_tailer needs to follow a run's build, and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TailCheckpoint {
    pub version: u32,
    pub run_id: String,
    pub action: String,
    /// The Jenkins server's name (its credentials) and URL.
    pub server: String,
    pub server_url: String,
    pub job: JobPath,
    /// The queue item, until the build is known.
    pub queue_url: Option<String>,
    pub build: Option<BuildRef>,
    /// Raw bytes of the console log already posted to Port.
    pub offset: u64,
    /// When the run was triggered (RFC 3339).
    pub started_at: String,
    /// The watchdog: past this (RFC 3339) the run fails as timed out.
    pub deadline_at: String,
    pub abort_on_timeout: bool,
    /// Abort the build when the run was ended in Port by someone else (cancelled).
    #[serde(default)]
    pub abort_when_run_ends: bool,
    pub index_log: bool,
    /// An entity to upsert, tied to the run, when the build succeeds.
    pub entity: Option<EntityUpsert>,
    /// Checkpoints handed on before this one.
    #[serde(default)]
    pub handoffs: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityUpsert {
    pub blueprint: String,
    pub entity: Value,
}

/// Saved in the state bucket as `progress/{run_id}.json` after every post.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Where the console log read that is being posted starts (a `progressiveText`
    /// offset).
    pub offset: u64,
    /// Lines of the answer from `offset` already posted: a read resumed after a crash
    /// or a handoff asks from `offset` again and skips them (an answer has no bound, so
    /// it may take several posts, or invocations).
    #[serde(default)]
    pub lines_posted: u64,
    pub build: Option<BuildRef>,
    /// Checkpoints handed on: a checkpoint with fewer is stale (its successor runs).
    #[serde(default)]
    pub handoffs: u32,
    /// The run has been ended in Port: nothing is left to do.
    #[serde(default)]
    pub finished: bool,
}

/// How far port_runner got with a run, kept in its marker `runs/{run_id}`: a record
/// redelivered after a crash resumes from here instead of starting a second build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum RunMarker {
    /// Claimed; whether the trigger reached Jenkins is not known.
    Claimed,
    /// Jenkins queued it.
    Triggered {
        queue_url: String,
        build: Option<BuildRef>,
    },
    /// log_tailer has it (or the run was ended in Port).
    HandedOff,
}

/// Run ids are `r_…` (actions) or `wfnr_…` (workflow nodes); anything outside letters,
/// digits, `_` and `-` is refused, since the id names objects and URLs.
pub fn valid_run_id(run_id: &str) -> bool {
    !run_id.is_empty()
        && run_id.len() <= 128
        && run_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[derive(Debug, thiserror::Error)]
#[error("state bucket {bucket}: {reason}")]
pub struct StateError {
    pub bucket: String,
    pub reason: String,
}

/// The state bucket: run markers and tail progress.
#[derive(Clone)]
pub struct RunState {
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl RunState {
    pub fn new(s3: aws_sdk_s3::Client, bucket: &str) -> Self {
        RunState {
            s3,
            bucket: bucket.to_owned(),
        }
    }

    /// Marks the run as started: `None` when this call did, else the marker a first
    /// delivery of the record left.
    pub async fn claim(&self, run_id: &str) -> Result<Option<RunMarker>, StateError> {
        let body = serde_json::to_vec(&RunMarker::Claimed).expect("a marker serialises");
        let key = marker_key(run_id);
        if crate::aws::put_if_absent(&self.s3, &self.bucket, &key, body)
            .await
            .map_err(|reason| self.error(reason))?
        {
            return Ok(None);
        }
        let marker = crate::secrets::read_json(&self.s3, &self.bucket, &key)
            .await
            .map_err(|e| self.error(e.to_string()))?;
        Ok(Some(marker.unwrap_or(RunMarker::Claimed)))
    }

    pub async fn mark(&self, run_id: &str, marker: &RunMarker) -> Result<(), StateError> {
        self.put_json(&marker_key(run_id), marker).await
    }

    /// Forgets the marker, so that a retried record starts the run (the trigger failed
    /// before anything reached Jenkins).
    pub async fn release(&self, run_id: &str) {
        let result = self
            .s3
            .delete_object()
            .bucket(&self.bucket)
            .key(marker_key(run_id))
            .send()
            .await;
        if let Err(e) = result {
            tracing::warn!(run_id, error = %error_text(&e), "cannot remove a run marker");
        }
    }

    pub async fn progress(&self, run_id: &str) -> Result<Option<Progress>, StateError> {
        crate::secrets::read_json(&self.s3, &self.bucket, &progress_key(run_id))
            .await
            .map_err(|e| self.error(e.to_string()))
    }

    pub async fn save_progress(&self, run_id: &str, progress: &Progress) -> Result<(), StateError> {
        self.put_json(&progress_key(run_id), progress).await
    }

    async fn put_json(&self, key: &str, value: &impl Serialize) -> Result<(), StateError> {
        let body = serde_json::to_vec(value).expect("state serialises");
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.error(error_text(&e)))?;
        Ok(())
    }

    fn error(&self, reason: String) -> StateError {
        StateError {
            bucket: self.bucket.clone(),
            reason,
        }
    }
}

fn marker_key(run_id: &str) -> String {
    format!("runs/{run_id}")
}

fn progress_key(run_id: &str) -> String {
    format!("progress/{run_id}.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_safe_names() {
        assert!(valid_run_id("r_Ab12-x") && valid_run_id("wfnr_1"));
        for bad in ["", "r/1", "../x", "r 1", &"r".repeat(129)] {
            assert!(!valid_run_id(bad), "{bad:?}");
        }
    }
}
