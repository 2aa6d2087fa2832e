//! gitlab_ingest on real protocol, handlers in-process: a moto server with the template's
//! resources, the search server behind the fault proxy, and the sandbox GitLab. No SQS
//! poller runs here: tests hand the ingest queue's messages to the handler themselves.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use base64::Engine as _;
use gitlab_ingest::ingest::{Ingest, IngestConfig};
use gitlab_ingest::intake::Intake;
use http::{HeaderName, HeaderValue, Method};
use serde_json::{json, Value};
use spigot_common::gitlab::GitlabClient;
use spigot_common::search::{SearchAuth, SearchClient};
use spigot_common::secrets::Secret;
use spigot_local::aws_emulator::MotoServer;
use spigot_local::gitlab::{check_indexed, SandboxGitlab, SandboxJob, TraceShape};
use spigot_local::resources::LocalResources;
use spigot_local::search_proxy::SearchProxy;
use spigot_local::search_server::SearchServer;

pub const TOKEN: &str = "glpat-test-token";
pub const HOOK_SECRET: &str = "hook-secret";
pub const PREFIX: &str = "ci-logs";

pub struct GitlabWorld {
    pub gitlab: SandboxGitlab,
    pub proxy: SearchProxy,
    /// The search server itself, for reading back what was indexed.
    pub search: SearchClient,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub queue_url: String,
    pub archive_bucket: String,
    pub deps: gitlab_ingest::Deps,
    pub resources: LocalResources,
    pub sdk: SdkConfig,
    _search_server: SearchServer,
    pub moto: MotoServer,
}

impl GitlabWorld {
    pub async fn start() -> GitlabWorld {
        let (moto, sdk, resources) =
            crate::moto_with_template("gitlab-test", &HashMap::new()).await;
        let search_server = SearchServer::start(0).await.expect("osmem starts");
        let proxy = SearchProxy::start(search_server.url())
            .await
            .expect("the proxy starts");
        let gitlab = SandboxGitlab::start(0, TOKEN)
            .await
            .expect("the sandbox GitLab starts");
        let queue_url = resources.reference("IngestQueue").unwrap().to_owned();
        let archive_bucket = resources.reference("ArchiveBucket").unwrap().to_owned();
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let s3 = spigot_common::aws::s3_client(&sdk);
        let deps = gitlab_ingest::Deps {
            intake: Intake {
                sqs: sqs.clone(),
                queue_url: queue_url.clone(),
                webhook_secret: Some(Secret::new(HOOK_SECRET)),
            },
            ingest: Ingest::new(IngestConfig {
                gitlab: GitlabClient::new(
                    &gitlab.url(),
                    Secret::new(TOKEN),
                    std::time::Duration::from_secs(10),
                )
                .unwrap(),
                search: SearchClient::new(&proxy.url(), SearchAuth::None).unwrap(),
                s3: s3.clone(),
                sqs: sqs.clone(),
                queue_url: queue_url.clone(),
                archive_bucket: archive_bucket.clone(),
                index_prefix: PREFIX.into(),
                max_line_bytes: spigot_common::logline::DEFAULT_MAX_LINE_BYTES,
            }),
        };
        GitlabWorld {
            search: SearchClient::new(search_server.url(), SearchAuth::None).unwrap(),
            gitlab,
            proxy,
            sqs,
            s3,
            queue_url,
            archive_bucket,
            deps,
            resources,
            sdk,
            _search_server: search_server,
            moto,
        }
    }

    /// Calls the function with an API request or an SQS batch, as Lambda would.
    pub async fn invoke(&self, event: Value) -> Value {
        gitlab_ingest::handle(&self.deps, event, None)
            .await
            .expect("the event is handled")
    }

    /// Receives what is on the ingest queue as the SQS event Lambda would pass.
    pub async fn receive(&self) -> Value {
        let event = crate::receive_sqs_event(&self.sqs, &self.queue_url, 10, None).await;
        serde_json::to_value(event).unwrap()
    }

    /// Documents of job `job_id` in the index, after a refresh.
    pub async fn documents(&self, job_id: u64) -> u64 {
        self.search
            .refresh(&format!("{PREFIX}-*"))
            .await
            .expect("refresh");
        self.search
            .count(
                &format!("{PREFIX}-*"),
                &json!({"term": {"ci.job.id": job_id.to_string()}}),
            )
            .await
            .expect("count")
    }

    /// Job `job_id`'s documents are the lines GitLab's job log page shows for `shape`'s
    /// trace: count, order, section paths, texts, durations.
    pub async fn assert_indexed_as_shown(&self, job_id: u64, shape: &TraceShape) {
        let checked = check_indexed(
            &self.search,
            &format!("{PREFIX}-*"),
            job_id,
            &shape.expected_lines(),
        )
        .await
        .expect("the search server answers");
        if let Err(diff) = checked {
            panic!("job {job_id}'s documents differ from its log page:\n{diff}");
        }
    }

    /// The document of line `sequence` of job `job_id` (there must be one).
    pub async fn line(&self, job_id: u64, sequence: u64) -> Value {
        let query = json!({"query": {"bool": {"filter": [
            {"term": {"ci.job.id": job_id.to_string()}},
            {"term": {"event.sequence": sequence}},
        ]}}});
        let hits = self
            .search
            .search(&format!("{PREFIX}-*"), &query)
            .await
            .expect("search");
        assert_eq!(hits["hits"]["total"]["value"], 1, "{hits}");
        hits["hits"]["hits"][0]["_source"].clone()
    }

    pub async fn archived(&self, key: &str) -> Vec<u8> {
        crate::s3_object(&self.s3, &self.archive_bucket, key).await
    }

    /// A finished job `job_id` of project 9 whose trace is `bytes` long, ingested whole
    /// by the release `gitlab_ingest` binary from one SQS message: its peak memory and
    /// time, and the trace's line count. `Err` unless the message succeeded. The search
    /// side is whatever the proxy is set to (the benchmarks sink it: the in-memory
    /// search server cannot hold a million documents, and its memory is not the
    /// function's).
    pub async fn ingest_whole_job(
        &self,
        job_id: u64,
        bytes: u64,
    ) -> Result<(crate::peak::Measured, u64), String> {
        let shape = TraceShape {
            bytes,
            seed: job_id,
            ..TraceShape::default()
        };
        let lines = shape.count_lines();
        self.gitlab
            .add_job(SandboxJob::finished(9, job_id, "bench", "success", shape));
        let mut env = crate::moto_env(&self.moto);
        env.extend([
            ("GITLAB_URL", self.gitlab.url()),
            ("GITLAB_TOKEN", TOKEN.to_owned()),
            ("GITLAB_WEBHOOK_SECRET", HOOK_SECRET.to_owned()),
            ("INGEST_QUEUE_URL", self.queue_url.clone()),
            ("SEARCH_URL", self.proxy.url()),
            ("ARCHIVE_BUCKET", self.archive_bucket.clone()),
            ("RUST_LOG", "warn".to_owned()),
        ]);
        let event = json!({"Records": [{
            "messageId": format!("whole-job-{job_id}"),
            "receiptHandle": "whole-job",
            "body": json!({"version": 1, "project_id": 9, "job_id": job_id, "source": "bench",
                           "received_at": "2026-11-22T10:00:00Z"}).to_string(),
            "attributes": {"ApproximateReceiveCount": "1"},
            "eventSource": "aws:sqs",
        }]});
        // Lambda's longest timeout, the template's for gitlab_ingest.
        let timeout = std::time::Duration::from_secs(900);
        let measured =
            crate::peak::run_release_binary("gitlab_ingest", env, &[event], timeout).await?;
        match measured.outcomes.first().and_then(crate::peak::answer_json) {
            Some(answer) if answer == json!({"batchItemFailures": []}) => Ok((measured, lines)),
            _ => Err(format!(
                "the ingest did not succeed: {:?}",
                measured.outcomes
            )),
        }
    }
}

/// An API Gateway request for `/gitlab`.
pub fn gitlab_request(
    method: Method,
    headers: &[(&str, &str)],
    query: &[(&str, &str)],
    body: Option<&Value>,
) -> Value {
    let mut request = ApiGatewayProxyRequest::default();
    request.http_method = method;
    request.path = Some("/gitlab".into());
    request.resource = Some("/gitlab".into());
    for (name, value) in headers {
        request.headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    request.query_string_parameters = query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<HashMap<_, _>>()
        .into();
    if let Some(body) = body {
        request.body = Some(base64::engine::general_purpose::STANDARD.encode(body.to_string()));
        request.is_base64_encoded = true;
    }
    serde_json::to_value(request).unwrap()
}

/// A Job Hook POST with the right token.
pub fn job_hook(hook: &Value) -> Value {
    gitlab_request(
        Method::POST,
        &[
            ("x-gitlab-event", "Job Hook"),
            ("x-gitlab-token", HOOK_SECRET),
            ("content-type", "application/json"),
        ],
        &[],
        Some(hook),
    )
}

/// The ids of the messages the batch response lists as failed.
pub fn failures(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["itemIdentifier"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
