//! The sandbox GitLab: the jobs API and job traces as `reference/gitlab-api.md` describes
//! them, pitfalls included — `PRIVATE-TOKEN` (or Bearer) required, 404 for a missing job
//! and for a job without a log alike, the whole trace in one streamed answer with no
//! ranges, jobs that are still running when asked and finish later. It records every
//! request, and builds the Job Hook GitLab would send for a job.

pub mod indexed;
pub mod trace;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use indexed::check_indexed;
pub use trace::{ExpectedLine, TraceGenerator, TraceShape};

/// The log of a sandbox job.
#[derive(Debug, Clone)]
pub enum Trace {
    /// No log file: the trace answers 404.
    Missing,
    Fixed(Bytes),
    Generated(TraceShape),
}

/// A job of the sandbox.
#[derive(Debug, Clone)]
pub struct SandboxJob {
    pub project_id: u64,
    pub job_id: u64,
    pub project_path: String,
    pub name: String,
    pub stage: String,
    /// `running`, `success`, `failed`, ...
    pub status: String,
    /// After this many reads of the job, its status becomes `finishes_as`.
    pub finishes_after_reads: Option<u32>,
    pub finishes_as: String,
    pub pipeline_id: u64,
    pub trace: Trace,
}

impl SandboxJob {
    /// A finished job of project `project_id` with a generated trace.
    pub fn finished(
        project_id: u64,
        job_id: u64,
        name: &str,
        status: &str,
        shape: TraceShape,
    ) -> SandboxJob {
        SandboxJob {
            project_id,
            job_id,
            project_path: format!("ci/project-{project_id}"),
            name: name.to_owned(),
            stage: "test".to_owned(),
            status: status.to_owned(),
            finishes_after_reads: None,
            finishes_as: status.to_owned(),
            pipeline_id: 1000 + job_id,
            trace: Trace::Generated(shape),
        }
    }
}

/// A request the sandbox received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedGitlabRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The token came in `PRIVATE-TOKEN` or `Authorization: Bearer` and matched.
    pub authorized: bool,
    pub status: u16,
}

struct Shared {
    token: String,
    state: Mutex<State_>,
}

#[derive(Default)]
struct State_ {
    jobs: BTreeMap<(u64, u64), (SandboxJob, u32)>,
    log: Vec<RecordedGitlabRequest>,
    /// Answer the next N API requests with this status.
    failing: Option<(u16, u32)>,
}

/// A running sandbox GitLab; stops when dropped.
pub struct SandboxGitlab {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl SandboxGitlab {
    /// Starts on `port` of 127.0.0.1 (0: a free one), accepting `token`.
    pub async fn start(port: u16, token: &str) -> anyhow::Result<SandboxGitlab> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            state: Mutex::new(State_::default()),
        });
        let app = Router::new()
            .route("/api/v4/projects/{project}/jobs/{job}", get(job))
            .route("/api/v4/projects/{project}/jobs/{job}/trace", get(trace_of))
            .fallback(|| async {
                (
                    StatusCode::NOT_FOUND,
                    Json(json!({"error": "404 Not Found"})),
                )
            })
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(crate::http_server::accept_connections(
            listener,
            app,
            std::future::pending::<()>(),
            "sandbox GitLab",
        ));
        Ok(SandboxGitlab { addr, shared, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn add_job(&self, job: SandboxJob) {
        self.lock()
            .jobs
            .insert((job.project_id, job.job_id), (job, 0));
    }

    pub fn set_status(&self, project_id: u64, job_id: u64, status: &str) {
        if let Some((job, _)) = self.lock().jobs.get_mut(&(project_id, job_id)) {
            job.status = status.to_owned();
        }
    }

    pub fn job(&self, project_id: u64, job_id: u64) -> Option<SandboxJob> {
        self.lock()
            .jobs
            .get(&(project_id, job_id))
            .map(|(job, _)| job.clone())
    }

    /// Answers the next `count` API requests with `status` (429, 500, ...).
    pub fn fail_next(&self, status: u16, count: u32) {
        self.lock().failing = (count > 0).then_some((status, count));
    }

    pub fn requests(&self) -> Vec<RecordedGitlabRequest> {
        self.lock().log.clone()
    }

    /// The Job Hook GitLab sends when `job` changes status.
    pub fn job_hook(&self, job: &SandboxJob) -> Value {
        json!({
            "object_kind": "build",
            "ref": "main",
            "tag": false,
            "before_sha": "0000000000000000000000000000000000000000",
            "sha": sha(job),
            "build_id": job.job_id,
            "build_name": job.name,
            "build_stage": job.stage,
            "build_status": job.status,
            "build_created_at": "2026-11-22 09:59:00 UTC",
            "build_started_at": "2026-11-22 10:00:00 UTC",
            "build_finished_at": if is_running(&job.status) { Value::Null } else { json!("2026-11-22 10:05:00 UTC") },
            "build_duration": 300.0,
            "build_allow_failure": false,
            "build_failure_reason": if job.status == "failed" { "script_failure" } else { "unknown_failure" },
            "pipeline_id": job.pipeline_id,
            "project_id": job.project_id,
            "project_name": job.project_path.replace('/', " / "),
            // GitLab puts the pipeline id here, not a SHA.
            "commit": {"id": job.pipeline_id, "name": null, "sha": sha(job), "status": job.status},
            "user": {"id": 42, "name": "Ana Lyst", "username": "ana"},
            "runner": {"id": 7, "description": "docker-runner-1", "runner_type": "instance_type", "is_shared": true, "tags": ["docker"]},
            "project": {"id": job.project_id, "path_with_namespace": job.project_path, "web_url": format!("{}/{}", self.url(), job.project_path)},
        })
    }

    fn lock(&self) -> MutexGuard<'_, State_> {
        lock(&self.shared)
    }
}

impl Drop for SandboxGitlab {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, State_> {
    shared.state.lock().unwrap_or_else(|p| p.into_inner())
}

fn is_running(status: &str) -> bool {
    !matches!(
        status,
        "success" | "failed" | "canceled" | "skipped" | "manual"
    )
}

fn sha(job: &SandboxJob) -> String {
    format!("{:040x}", job.pipeline_id)
}

/// Checks the token and the injected failures, and records the request; the answer when
/// it is refused.
fn refuse(shared: &Shared, headers: &HeaderMap, path: String) -> Option<Response> {
    let presented = headers
        .get("private-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_owned)
        });
    let authorized = presented.as_deref() == Some(shared.token.as_str());
    let mut state = lock(shared);
    let record = |status: u16| RecordedGitlabRequest {
        method: "GET".into(),
        path: path.clone(),
        query: None,
        authorized,
        status,
    };
    if !authorized {
        state.log.push(record(401));
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"message": "401 Unauthorized"})),
            )
                .into_response(),
        );
    }
    if let Some((status, left)) = state.failing {
        state.failing = (left > 1).then_some((status, left - 1));
        state.log.push(record(status));
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Some(
            (
                code,
                Json(json!({"message": format!("{status} sandbox failure")})),
            )
                .into_response(),
        );
    }
    state.log.push(record(200));
    None
}

async fn job(
    State(shared): State<Arc<Shared>>,
    Path((project, job_id)): Path<(u64, u64)>,
    headers: HeaderMap,
) -> Response {
    if let Some(answer) = refuse(
        &shared,
        &headers,
        format!("/api/v4/projects/{project}/jobs/{job_id}"),
    ) {
        return answer;
    }
    let mut state = lock(&shared);
    let Some((job, reads)) = state.jobs.get_mut(&(project, job_id)) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "404 Job Not Found"})),
        )
            .into_response();
    };
    *reads += 1;
    if job.finishes_after_reads.is_some_and(|after| *reads > after) {
        job.status = job.finishes_as.clone();
    }
    let running = is_running(&job.status);
    let web = format!(
        "http://gitlab.sandbox/{}/-/jobs/{}",
        job.project_path, job.job_id
    );
    Json(json!({
        "id": job.job_id,
        "name": job.name,
        "stage": job.stage,
        "status": job.status,
        "ref": "main",
        "tag": false,
        "allow_failure": false,
        "web_url": web,
        "created_at": "2026-11-22T09:59:00.000Z",
        "started_at": "2026-11-22T10:00:00.000Z",
        "finished_at": if running { Value::Null } else { json!("2026-11-22T10:05:00.000Z") },
        "duration": if running { Value::Null } else { json!(300.0) },
        "queued_duration": 1.5,
        "failure_reason": if job.status == "failed" { json!("script_failure") } else { Value::Null },
        "pipeline": {"id": job.pipeline_id, "project_id": job.project_id, "ref": "main", "sha": sha(job), "status": job.status},
        "commit": {"id": sha(job), "short_id": &sha(job)[..8], "title": "Sandbox commit"},
        "runner": {"id": 7, "description": "docker-runner-1", "active": true, "is_shared": true},
        "user": {"id": 42, "username": "ana", "name": "Ana Lyst"},
        "artifacts": [{"file_type": "trace", "filename": "job.log"}],
    }))
    .into_response()
}

async fn trace_of(
    State(shared): State<Arc<Shared>>,
    Path((project, job_id)): Path<(u64, u64)>,
    headers: HeaderMap,
) -> Response {
    if let Some(answer) = refuse(
        &shared,
        &headers,
        format!("/api/v4/projects/{project}/jobs/{job_id}/trace"),
    ) {
        return answer;
    }
    let trace = match lock(&shared).jobs.get(&(project, job_id)) {
        None => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"message": "404 Job Not Found"})),
            )
                .into_response()
        }
        Some((job, _)) => job.trace.clone(),
    };
    let body = match trace {
        // GitLab says 404 for a job without a log too.
        Trace::Missing => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"message": "404 Not Found"})),
            )
                .into_response()
        }
        Trace::Fixed(bytes) => Body::from(bytes),
        Trace::Generated(shape) => Body::from_stream(futures::stream::iter(
            TraceGenerator::new(shape).map(Ok::<_, std::io::Error>),
        )),
    };
    Response::builder()
        .header("content-type", "text/plain")
        .header(
            "content-disposition",
            format!("infile; filename=\"{job_id}.log\""),
        )
        .body(body)
        .expect("a valid response")
}
