//! Search documents of CI log lines, one per line, the same shape whichever CI they come
//! from (GitLab jobs now, Jenkins builds later): ECS names for what ECS has (`@timestamp`,
//! `message`, `log.offset`, `event.dataset`, `event.sequence` for the line number,
//! `tags`), OpenTelemetry's `cicd.*` attributes, and the job's own fields under `ci.*`.
//! Facts: `reference/search-bulk.md` §5–§6.
//!
//! Ids are derived from (source, project, job, line number), so a replay of the same log
//! creates nothing new (`create` + 409), and indices are dated by the job, not by the day
//! of ingestion, so that a replay lands in the same index.

use std::io::Write as _;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::logline::{LogLine, SectionEvent};

/// Where a log comes from: the fields every one of its lines carries.
#[derive(Debug, Clone)]
pub struct LogSource {
    /// `gitlab.job_log`, `jenkins.build_log`.
    dataset: &'static str,
    /// Makes ids unique across sources, projects and jobs: `gitlab:5:1234`.
    id_scope: String,
    /// `@timestamp` of lines without a time of their own (RFC 3339).
    default_timestamp: String,
    /// Where the raw log is archived (`s3://bucket/key`).
    archive: Option<String>,
    /// The job's fields, serialised once: the inside of the `ci` object.
    ci_fields: String,
    /// The `cicd` object, serialised once.
    cicd: String,
}

/// The job-level facts of a log.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct JobFields {
    /// `gitlab` or `jenkins`.
    pub source: &'static str,
    pub project_id: String,
    pub project_path: String,
    pub job_id: String,
    pub job_name: String,
    pub job_stage: String,
    pub job_status: String,
    pub job_url: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub pipeline_id: String,
    pub git_ref: String,
    pub sha: String,
    pub runner_id: String,
    pub runner_description: String,
    pub user: String,
}

impl LogSource {
    pub fn new(
        dataset: &'static str,
        job: &JobFields,
        default_timestamp: &str,
        archive: Option<String>,
    ) -> Self {
        let none_if_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let ci = json!({
            "source": job.source,
            "project": {"id": job.project_id, "path": none_if_empty(&job.project_path)},
            "job": {
                "id": job.job_id,
                "name": none_if_empty(&job.job_name),
                "stage": none_if_empty(&job.job_stage),
                "status": none_if_empty(&job.job_status),
                "url": none_if_empty(&job.job_url),
                "started_at": job.started_at,
                "finished_at": job.finished_at,
            },
            "pipeline": {"id": none_if_empty(&job.pipeline_id)},
            "ref": none_if_empty(&job.git_ref),
            "sha": none_if_empty(&job.sha),
            "runner": {"id": none_if_empty(&job.runner_id), "description": none_if_empty(&job.runner_description)},
            "user": none_if_empty(&job.user),
        });
        let ci_text = ci.to_string();
        // `{...}` → `...`: the per-line fields are added after them.
        let ci_fields = ci_text[1..ci_text.len() - 1].to_owned();
        let cicd = json!({
            "pipeline": {
                "name": none_if_empty(&job.project_path),
                "run": {"id": none_if_empty(&job.pipeline_id)},
                "task": {"name": none_if_empty(&job.job_name), "run": {"id": job.job_id}},
            }
        })
        .to_string();
        LogSource {
            dataset,
            id_scope: format!("{}:{}:{}", job.source, job.project_id, job.job_id),
            default_timestamp: default_timestamp.to_owned(),
            archive,
            ci_fields,
            cicd,
        }
    }

    /// The document id of line `number`.
    pub fn document_id(&self, number: u64) -> String {
        let digest = Sha256::digest(format!("{}:{number}", self.id_scope).as_bytes());
        hex::encode(&digest[..16])
    }

    /// Writes the document of `line` as one line of JSON (no newline) into `out`.
    pub fn write_document(&self, line: &LogLine<'_>, out: &mut Vec<u8>) {
        let timestamp = line.timestamp.unwrap_or(&self.default_timestamp);
        let _ = write!(out, "{{\"@timestamp\":\"{timestamp}\",\"message\":");
        let _ = serde_json::to_writer(&mut *out, line.message);
        let _ = write!(out, ",\"log\":{{\"offset\":{}", line.offset);
        if let Some(archive) = &self.archive {
            out.extend_from_slice(b",\"file\":{\"path\":");
            let _ = serde_json::to_writer(&mut *out, archive);
            out.push(b'}');
        }
        let _ = write!(
            out,
            "}},\"event\":{{\"dataset\":\"{}\",\"sequence\":{}}}",
            self.dataset, line.number
        );
        let mut tags: Vec<&str> = Vec::new();
        if line.truncated {
            tags.push("line_truncated");
        }
        if line.log_limit_exceeded {
            tags.push("log_limit_exceeded");
        }
        match line.section_event {
            Some(SectionEvent::Start) => tags.push("section_start"),
            Some(SectionEvent::End { .. }) => tags.push("section_end"),
            None => {}
        }
        // The parser's caps on hostile sections (logline's module doc): the section fields
        // of this document are incomplete.
        if line.section_depth_exceeded {
            tags.push("section_depth_exceeded");
        }
        if line.section_name_truncated {
            tags.push("section_name_truncated");
        }
        if line.section_markers_ignored {
            tags.push("section_markers_ignored");
        }
        if !tags.is_empty() {
            out.extend_from_slice(b",\"tags\":");
            let _ = serde_json::to_writer(&mut *out, &tags);
        }
        out.extend_from_slice(b",\"ci\":{");
        out.extend_from_slice(self.ci_fields.as_bytes());
        if let Some(innermost) = line.sections.last() {
            out.extend_from_slice(b",\"section\":{\"name\":");
            let _ = serde_json::to_writer(&mut *out, &innermost.name);
            out.extend_from_slice(b",\"path\":");
            let path: Vec<&str> = line.sections.iter().map(|s| s.name.as_str()).collect();
            let _ = serde_json::to_writer(&mut *out, &path.join("/"));
            let _ = write!(out, ",\"depth\":{}", line.sections.len());
            if let Some(options) = &innermost.options {
                out.extend_from_slice(b",\"options\":");
                let _ = serde_json::to_writer(&mut *out, options);
            }
            if let Some(SectionEvent::End { duration_secs }) = line.section_event {
                let _ = write!(out, ",\"duration_s\":{duration_secs}");
            }
            out.push(b'}');
        }
        if let Some(stream) = line.stream {
            let _ = write!(
                out,
                ",\"stream\":\"{:02x}{}\"",
                stream.id,
                if stream.stderr { 'E' } else { 'O' }
            );
        }
        out.extend_from_slice(b"},\"cicd\":");
        out.extend_from_slice(self.cicd.as_bytes());
        out.push(b'}');
    }
}

/// `{prefix}-{YYYY.MM.DD}` for a job whose time is `timestamp` (RFC 3339).
pub fn index_name(prefix: &str, timestamp: &str) -> String {
    let date = timestamp
        .get(..10)
        .filter(|d| d.as_bytes().get(4) == Some(&b'-'))
        .unwrap_or("1970-01-01");
    format!("{prefix}-{}", date.replace('-', "."))
}

/// Base priority of the log documents' template; the AliECS templates sit above
/// ([`crate::search::template_priority`] adds at most 255).
pub const LOG_TEMPLATE_PRIORITY: u64 = 100;

/// The index template for `{prefix}-*`: the mappings of the log documents.
pub fn index_template(prefix: &str) -> Value {
    let keyword = json!({"type": "keyword"});
    let date = json!({"type": "date"});
    json!({
        "index_patterns": [format!("{prefix}-*")],
        "priority": crate::search::template_priority(LOG_TEMPLATE_PRIORITY, prefix),
        "template": {
            "mappings": {
                "dynamic": false,
                "properties": {
                    "@timestamp": date,
                    "message": {"type": "text"},
                    "tags": keyword,
                    "log": {"properties": {"offset": {"type": "long"}, "file": {"properties": {"path": keyword}}}},
                    "event": {"properties": {"dataset": keyword, "sequence": {"type": "long"}}},
                    "ci": {"properties": {
                        "source": keyword,
                        "project": {"properties": {"id": keyword, "path": keyword}},
                        "job": {"properties": {
                            "id": keyword, "name": keyword, "stage": keyword, "status": keyword,
                            "url": keyword, "started_at": date, "finished_at": date,
                        }},
                        "pipeline": {"properties": {"id": keyword}},
                        "ref": keyword,
                        "sha": keyword,
                        "runner": {"properties": {"id": keyword, "description": keyword}},
                        "user": keyword,
                        "section": {"properties": {
                            "name": keyword, "path": keyword, "depth": {"type": "integer"},
                            "options": keyword, "duration_s": {"type": "long"},
                        }},
                        "stream": keyword,
                    }},
                    "cicd": {"properties": {"pipeline": {"properties": {
                        "name": keyword,
                        "run": {"properties": {"id": keyword}},
                        "task": {"properties": {"name": keyword, "run": {"properties": {"id": keyword}}}},
                    }}}},
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logline::{Section, Stream};

    fn source() -> LogSource {
        LogSource::new(
            "gitlab.job_log",
            &JobFields {
                source: "gitlab",
                project_id: "5".into(),
                project_path: "group/app".into(),
                job_id: "77".into(),
                job_name: "build".into(),
                job_status: "success".into(),
                pipeline_id: "9".into(),
                ..JobFields::default()
            },
            "2026-11-22T10:00:00Z",
            Some("s3://archive/gitlab/5/77.log".into()),
        )
    }

    #[test]
    fn a_document_has_the_ecs_and_cicd_fields() {
        let sections = [
            Section {
                name: "build".into(),
                name_truncated: false,
                started_at: 1,
                options: None,
            },
            Section {
                name: "tests".into(),
                name_truncated: true,
                started_at: 2,
                options: Some("collapsed=true".into()),
            },
        ];
        let line = LogLine {
            number: 12,
            offset: 3456,
            message: "ok \"quoted\"\n",
            timestamp: Some("2026-11-22T10:00:01.000001Z"),
            stream: Some(Stream {
                id: 1,
                stderr: true,
            }),
            sections: &sections,
            section_event: Some(SectionEvent::End { duration_secs: 4 }),
            truncated: true,
            log_limit_exceeded: false,
            section_depth_exceeded: true,
            section_name_truncated: true,
            section_markers_ignored: true,
        };
        let mut out = Vec::new();
        source().write_document(&line, &mut out);
        let doc: Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(doc["@timestamp"], "2026-11-22T10:00:01.000001Z");
        assert_eq!(doc["message"], "ok \"quoted\"\n");
        assert_eq!(doc["log"]["offset"], 3456);
        assert_eq!(doc["log"]["file"]["path"], "s3://archive/gitlab/5/77.log");
        assert_eq!(
            doc["event"],
            json!({"dataset": "gitlab.job_log", "sequence": 12})
        );
        assert_eq!(
            doc["tags"],
            json!([
                "line_truncated",
                "section_end",
                "section_depth_exceeded",
                "section_name_truncated",
                "section_markers_ignored"
            ])
        );
        assert_eq!(
            doc["ci"]["section"],
            json!({"name": "tests", "path": "build/tests", "depth": 2, "options": "collapsed=true", "duration_s": 4})
        );
        assert_eq!(doc["ci"]["stream"], "01E");
        assert_eq!(doc["ci"]["job"]["id"], "77");
        assert_eq!(doc["ci"]["project"]["path"], "group/app");
        assert_eq!(doc["cicd"]["pipeline"]["task"]["run"]["id"], "77");
        assert!(!out.contains(&b'\n'), "one line of NDJSON");

        let plain = LogLine {
            timestamp: None,
            sections: &[],
            section_event: None,
            truncated: false,
            stream: None,
            section_depth_exceeded: false,
            section_name_truncated: false,
            section_markers_ignored: false,
            ..line
        };
        let mut out = Vec::new();
        source().write_document(&plain, &mut out);
        let doc: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(doc["@timestamp"], "2026-11-22T10:00:00Z", "the job's time");
        assert!(doc.get("tags").is_none() && doc["ci"].get("section").is_none());
    }

    #[test]
    fn ids_are_stable_per_line_and_indices_dated_by_the_job() {
        let s = source();
        assert_eq!(s.document_id(1), source().document_id(1));
        assert_ne!(s.document_id(1), s.document_id(2));
        assert_eq!(s.document_id(1).len(), 32);
        // Pinned to Python's hashlib (sha256(b"gitlab:5:77:1").hexdigest()[:32]): an id
        // that changed between releases or architectures (sha2 takes the CPU's SHA
        // instructions where it finds them) would index a re-ingested job's lines twice.
        assert_eq!(s.document_id(1), "bdc7d3d7dfaf9a32dea9b2533dae8645");
        assert_eq!(
            s.document_id(123_456_789),
            "b3e268b6cfc4cde7d2d79e3377b328ad"
        );
        assert_eq!(
            index_name("ci-logs", "2026-11-22T23:59:59.000Z"),
            "ci-logs-2026.11.22"
        );
        assert_eq!(index_name("ci-logs", "garbage"), "ci-logs-1970.01.01");
    }
}
