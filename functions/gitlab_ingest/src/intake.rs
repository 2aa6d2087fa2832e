//! `/gitlab`: a GitLab Job Hook (POST) or the legacy `after_script` call (GET) asks for a
//! job's log. Only finished jobs are queued; every other event or status gets a 2xx and is
//! ignored, because GitLab disables for good a hook that answers 4xx. Facts:
//! `reference/gitlab-api.md` §4, §10–§11.

use std::collections::HashMap;

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use serde_json::{json, Value};
use spigot_common::apigw::{header, json_response, query_pairs, raw_body, Answer};
use spigot_common::aws::error_text;
use spigot_common::envelope::now_rfc3339;
use spigot_common::gitlab::{hook_token_matches, is_terminal};
use spigot_common::secrets::Secret;
use spigot_common::text::truncate;

use crate::{IngestRequest, REQUEST_VERSION};

pub const EVENT_HEADER: &str = "x-gitlab-event";
pub const TOKEN_HEADER: &str = "x-gitlab-token";
pub const JOB_HOOK: &str = "Job Hook";

pub struct Intake {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    /// `None` only with `ALLOW_UNSIGNED=true` (the function refuses to start otherwise):
    /// requests are taken without a token.
    pub webhook_secret: Option<Secret>,
}

/// A finished job whose log is to be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRequest {
    pub project_id: u64,
    pub job_id: u64,
    /// `job_hook` or `after_script`.
    pub source: &'static str,
    pub project_path: Option<String>,
}

pub async fn handle_request(
    intake: &Intake,
    request: ApiGatewayProxyRequest,
) -> ApiGatewayProxyResponse {
    match read_request(intake.webhook_secret.as_ref(), &request) {
        Ok(job) => enqueue(intake, request_id(&request), job).await,
        Err(answer) => answer.into_response(),
    }
}

/// Reads and checks a request without any I/O; `Err` is the answer for a request that
/// queues nothing (refused, malformed, or ignored with a 2xx).
pub fn read_request(
    webhook_secret: Option<&Secret>,
    request: &ApiGatewayProxyRequest,
) -> Result<JobRequest, Answer> {
    match request.http_method.as_str() {
        "POST" => job_hook(webhook_secret, request),
        "GET" => after_script(webhook_secret, request),
        other => Err(Answer::error(
            405,
            format!(
                "{} is not accepted: POST a Job Hook, or GET from after_script",
                other.chars().take(16).collect::<String>()
            ),
        )),
    }
}

/// `POST /gitlab` with a Job Hook.
fn job_hook(
    webhook_secret: Option<&Secret>,
    request: &ApiGatewayProxyRequest,
) -> Result<JobRequest, Answer> {
    refuse_token(webhook_secret, header(request, TOKEN_HEADER))?;
    let event = header(request, EVENT_HEADER).unwrap_or("");
    if event != JOB_HOOK {
        return Err(ignored(&format!(
            "X-Gitlab-Event {:?} is not a Job Hook",
            truncate(event, 64)
        )));
    }
    let body = raw_body(request).map_err(|err| Answer::error(400, err.to_string()))?;
    let hook: Value = serde_json::from_slice(&body)
        .map_err(|err| Answer::error(400, format!("the Job Hook body is not JSON: {err}")))?;
    let (Some(project_id), Some(job_id), Some(status)) = (
        hook["project_id"].as_u64(),
        hook["build_id"].as_u64(),
        hook["build_status"].as_str(),
    ) else {
        return Err(Answer::error(
            400,
            "a Job Hook needs numeric project_id and build_id, and build_status",
        ));
    };
    if !is_terminal(status) {
        return Err(ignored(&format!(
            "job {job_id} is {}; its log is read once it has finished",
            truncate(status, 64)
        )));
    }
    let project_path = hook["project"]["path_with_namespace"]
        .as_str()
        .map(str::to_owned);
    Ok(JobRequest {
        project_id,
        job_id,
        source: "job_hook",
        project_path,
    })
}

/// `GET /gitlab?project_id=&job_id=...` from a job's `after_script`: the job is still
/// running then, so ingest waits for it to finish.
fn after_script(
    webhook_secret: Option<&Secret>,
    request: &ApiGatewayProxyRequest,
) -> Result<JobRequest, Answer> {
    let query: HashMap<String, String> = query_pairs(request).into_iter().collect();
    if query.contains_key("gitlab_token") {
        // Said before the token check: the fix is on the caller's side either way.
        return Err(Answer::error(
            400,
            "do not send gitlab_token: a token in a URL ends up in access logs; gitlab_ingest \
             reads job logs with its own configured GitLab token",
        ));
    }
    let token = header(request, TOKEN_HEADER).or(query.get("token").map(String::as_str));
    refuse_token(webhook_secret, token)?;
    let number = |name: &str| query.get(name).and_then(|v| v.trim().parse::<u64>().ok());
    let (Some(project_id), Some(job_id)) = (number("project_id"), number("job_id")) else {
        return Err(Answer::error(
            400,
            "project_id and job_id are required and must be numbers",
        ));
    };
    let project_path = query.get("project_name").cloned().filter(|p| !p.is_empty());
    Ok(JobRequest {
        project_id,
        job_id,
        source: "after_script",
        project_path,
    })
}

/// The answer to a request whose token does not match the configured secret (compared
/// in constant time); `None` when it matches, or when no secret is configured on purpose.
fn refuse_token(webhook_secret: Option<&Secret>, token: Option<&str>) -> Result<(), Answer> {
    let Some(secret) = webhook_secret else {
        return Ok(());
    };
    match token {
        None => Err(Answer::error(401, "X-Gitlab-Token is missing")),
        Some(token) if hook_token_matches(token, std::slice::from_ref(secret)) => Ok(()),
        Some(_) => Err(Answer::error(
            401,
            "X-Gitlab-Token does not match the configured secret",
        )),
    }
}

async fn enqueue(
    intake: &Intake,
    request_id: Option<&str>,
    job: JobRequest,
) -> ApiGatewayProxyResponse {
    let JobRequest {
        project_id,
        job_id,
        source,
        project_path,
    } = job;
    let message = IngestRequest {
        version: REQUEST_VERSION,
        project_id,
        job_id,
        source: source.to_owned(),
        project_path,
        received_at: now_rfc3339(),
    };
    let body = serde_json::to_string(&message).expect("a request serialises");
    match intake
        .sqs
        .send_message()
        .queue_url(&intake.queue_url)
        .message_body(body)
        .send()
        .await
    {
        Ok(_) => {
            tracing::info!(project_id, job_id, source, "job queued for ingestion");
            json_response(
                202,
                json!({"status": "queued", "project_id": project_id, "job_id": job_id}),
            )
        }
        Err(err) => {
            // The detail (queue URL, AWS's words) is for our log, not for the caller.
            tracing::error!(project_id, job_id, request_id, error = %error_text(&err), "cannot queue the job");
            json_response(
                503,
                json!({"error": "the job could not be queued; send it again later", "request_id": request_id}),
            )
        }
    }
}

fn request_id(request: &ApiGatewayProxyRequest) -> Option<&str> {
    request.request_context.request_id.as_deref()
}

fn ignored(reason: &str) -> Answer {
    Answer {
        status: 200,
        body: json!({"status": "ignored", "reason": reason}),
    }
}
