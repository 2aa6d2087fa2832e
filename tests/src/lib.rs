//! The spigot on one machine for tests: a moto server with the spigot's resources, a
//! sandbox Jenkins, and the real handlers of process_webhooks and send_from_queue wired
//! to them the way main.rs wires them in Lambda.

pub mod aliecs;
pub mod gitlab;
pub mod logs;
pub mod peak;
pub mod port;

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use base64::Engine as _;
use http::{HeaderName, HeaderValue, Method};
use process_webhooks::Senders;
use serde_json::Value;
use spigot_common::buffer::{QueueDepth, QueuedHook, WebhookBuffer};
use spigot_common::config::{BufferConfig, StageConfig, TargetConfig};
use spigot_common::drain::DrainSummary;
use spigot_common::github::sign;
use spigot_common::jenkins::JenkinsTarget;
use spigot_common::secrets::{JenkinsCredentials, Secret};
use spigot_common::state::{SpigotState, Stage, STATE_VARIABLE};
use spigot_common::target_routes::TargetRoutes;
use spigot_local::aws_emulator::MotoServer;
use spigot_local::jenkins::{SandboxJenkins, SandboxJenkinsConfig};
use spigot_local::spigot_resources::{self, SpigotResources};

pub use spigot_local::jenkins::JenkinsMode;

pub const SECRET: &str = "s3cr3t-for-tests";

pub struct Options {
    /// Secrets process_webhooks checks; the sandbox Jenkins checks the same.
    pub webhook_secrets: Vec<String>,
    /// `X-Gitlab-Token`s taken on GitLab routes.
    pub gitlab_tokens: Vec<String>,
    pub allow_unsigned: bool,
    pub drain_concurrency: usize,
    /// `TARGET_ROUTES`; `None`: the defaults.
    pub routes: Option<String>,
    /// `EOR_JENKINS_JOB` (adds the end-of-run route of the drain).
    pub eor_jenkins_job: Option<String>,
    /// Jenkins credentials the target sends on routes that say so.
    pub jenkins_credentials: Option<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            webhook_secrets: vec![SECRET.into()],
            gitlab_tokens: Vec::new(),
            allow_unsigned: false,
            drain_concurrency: 1,
            routes: None,
            eor_jenkins_job: None,
            jenkins_credentials: None,
        }
    }
}

/// The routes of `options`, as the functions read them.
pub fn routes(options: &Options) -> TargetRoutes {
    TargetRoutes::from_settings(
        options.routes.as_deref(),
        None,
        options.eor_jenkins_job.as_deref(),
    )
    .expect("the test's routes are valid")
}

pub struct Spigot {
    pub jenkins: SandboxJenkins,
    pub resources: SpigotResources,
    pub sdk: SdkConfig,
    pub stage: Stage,
    pub webhooks: process_webhooks::Deps,
    pub sender: send_from_queue::Deps,
    // Last: dropped after the clients that talk to it.
    pub moto: MotoServer,
}

impl Spigot {
    pub async fn start(options: Options) -> Spigot {
        let moto = MotoServer::start().await.expect("moto server starts");
        let sdk = moto.sdk_config().await;
        let resources = spigot_resources::create(&sdk, "spigot")
            .await
            .expect("spigot resources on the emulator");
        let jenkins = SandboxJenkins::start(SandboxJenkinsConfig {
            webhook_secrets: options.webhook_secrets.clone(),
            credentials: options.jenkins_credentials.clone(),
        })
        .await
        .expect("sandbox Jenkins starts");

        let target_config = TargetConfig {
            url: jenkins.url(),
            health_path: spigot_common::config::DEFAULT_HEALTH_PATH.into(),
            timeout: std::time::Duration::from_secs(2),
        };
        let buffer = WebhookBuffer::new(
            aws_sdk_sqs::Client::new(&sdk),
            spigot_common::aws::s3_client(&sdk),
            BufferConfig {
                queue_url: resources.queue_url.clone(),
                dlq_url: Some(resources.dlq_url.clone()),
                payload_bucket: resources.payload_bucket.clone(),
            },
        );
        let stage = Stage::new(
            aws_sdk_apigateway::Client::new(&sdk),
            StageConfig {
                rest_api_id: resources.rest_api_id.clone(),
                stage_name: resources.stage_name.clone(),
            },
        );
        let credentials = options
            .jenkins_credentials
            .as_ref()
            .map(|(username, token)| JenkinsCredentials {
                username: username.clone(),
                api_token: Secret::new(token),
            });
        let target =
            JenkinsTarget::new(target_config, credentials).expect("the target client builds");
        let routes = routes(&options);
        let senders = Senders {
            github_secrets: options.webhook_secrets.iter().map(Secret::new).collect(),
            gitlab_tokens: options.gitlab_tokens.iter().map(Secret::new).collect(),
            allow_unsigned: options.allow_unsigned,
        };
        Spigot {
            webhooks: process_webhooks::Deps {
                buffer: buffer.clone(),
                target: target.clone(),
                routes: routes.clone(),
                senders,
            },
            sender: send_from_queue::Deps {
                stage: stage.clone(),
                buffer,
                target,
                routes,
                concurrency: options.drain_concurrency,
                down_streak: Default::default(),
            },
            stage,
            jenkins,
            resources,
            sdk,
            moto,
        }
    }

    /// The environment a function binary gets in Lambda, pointed at this stack: the
    /// emulator, the sandbox Jenkins and the resources (see template.yaml).
    pub fn function_env(&self, webhook_secret: &str) -> Vec<(&'static str, String)> {
        let resources = &self.resources;
        let mut env = moto_env(&self.moto);
        env.extend([
            ("TARGET_URL", self.jenkins.url()),
            ("SPIGOT_QUEUE_URL", resources.queue_url.clone()),
            ("SPIGOT_DLQ_URL", resources.dlq_url.clone()),
            ("PAYLOAD_BUCKET", resources.payload_bucket.clone()),
            ("REST_API_ID", resources.rest_api_id.clone()),
            ("STAGE_NAME", resources.stage_name.clone()),
            ("GITHUB_WEBHOOK_SECRETS", webhook_secret.to_owned()),
        ]);
        env
    }

    pub fn buffer(&self) -> &WebhookBuffer {
        &self.sender.buffer
    }

    pub async fn set_state(&self, state: SpigotState) {
        self.stage.set_state(state).await.expect("stage update");
    }

    pub async fn state(&self) -> Option<String> {
        self.stage.variable().await.expect("stage read")
    }

    /// What API Gateway does: the stage's variables, read live, go into the event.
    pub async fn send(&self, mut request: ApiGatewayProxyRequest) -> Response {
        if let Some(state) = self.state().await {
            request.stage_variables.insert(STATE_VARIABLE.into(), state);
        }
        Response(process_webhooks::handle_request(&self.webhooks, request).await)
    }

    /// A scheduled send_from_queue invocation with `seconds` left before its deadline.
    pub async fn drain(&self) -> DrainSummary {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        send_from_queue::handle_event(
            &self.sender,
            serde_json::json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}),
            Some(deadline),
        )
        .await
        .expect("a scheduled event is accepted")
    }

    pub async fn depth(&self) -> QueueDepth {
        self.buffer().depth().await.expect("queue depth")
    }

    pub async fn dlq_depth(&self) -> QueueDepth {
        self.buffer().dlq_depth().await.expect("dlq depth")
    }

    /// The next batch (up to 10) on the queue, received and made visible again at once:
    /// for looking at receive counts (the look itself counts as one more receive). On a
    /// FIFO queue a batch in flight locks the rest of its group, so one batch is all
    /// there is to see at a time.
    pub async fn peek_queue(&self) -> Vec<QueuedHook> {
        let batch = self.buffer().receive(10, 30, 0).await.expect("receive");
        let refs: Vec<&QueuedHook> = batch.iter().collect();
        self.buffer().release(&refs).await.expect("release");
        batch
    }

    pub async fn s3_keys(&self, prefix: &str) -> Vec<String> {
        spigot_common::aws::s3_client(&self.sdk)
            .list_objects_v2()
            .bucket(&self.resources.payload_bucket)
            .prefix(prefix)
            .send()
            .await
            .expect("list objects")
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect()
    }
}

/// What a function binary needs to reach `moto` as its AWS.
pub fn moto_env(moto: &MotoServer) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", moto.endpoint().to_owned()),
        ("AWS_REGION", spigot_local::aws_emulator::REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
    ]
}

/// Receives up to `max` messages of `queue_url` as the SQS event Lambda would pass,
/// hidden for `visibility` seconds (the queue's own timeout when `None`).
pub async fn receive_sqs_event(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    max: i32,
    visibility: Option<i32>,
) -> SqsEvent {
    let messages = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(max)
        .wait_time_seconds(1)
        .set_visibility_timeout(visibility)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .expect("receive")
        .messages
        .unwrap_or_default();
    let mut event = SqsEvent::default();
    event.records = messages
        .into_iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = m.message_id;
            record.receipt_handle = m.receipt_handle;
            record.body = m.body;
            record.attributes = m
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.as_str().to_owned(), v))
                .collect();
            record.event_source = Some("aws:sqs".into());
            record
        })
        .collect();
    event
}

/// A moto server holding the resources template.yaml declares for `parameters`.
pub async fn moto_with_template(
    stack: &str,
    parameters: &HashMap<String, String>,
) -> (
    MotoServer,
    SdkConfig,
    spigot_local::resources::LocalResources,
) {
    let moto = MotoServer::start().await.expect("moto starts");
    let sdk = moto.sdk_config().await;
    let template = spigot_local::template::Template::workspace().expect("template.yaml reads");
    let resources = spigot_local::resources::create(&sdk, &template, stack, parameters)
        .await
        .expect("the template's resources");
    (moto, sdk, resources)
}

/// An object's bytes; the test fails when it is not there.
pub async fn s3_object(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    s3.get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("s3://{bucket}/{key}: {e:?}"))
        .body
        .collect()
        .await
        .expect("the object's body")
        .to_vec()
}

/// The workspace root (the tests crate lives in it).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace root")
        .to_path_buf()
}

/// A sample event from events/.
pub fn fixture(name: &str) -> Value {
    let path = workspace_root().join("events").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("{} is not JSON: {error}", path.display()))
}

/// A webhook as API Gateway's REST proxy integration passes it.
pub struct Webhook {
    pub request: ApiGatewayProxyRequest,
}

impl Webhook {
    /// A GitHub delivery of `event` with `body`, signed with [`SECRET`].
    pub fn github(event: &str, delivery: &str, body: &[u8]) -> Webhook {
        let mut request = ApiGatewayProxyRequest::default();
        request.http_method = Method::POST;
        request.path = Some("/webhook".into());
        request.resource = Some("/webhook".into());
        request.body = Some(base64::engine::general_purpose::STANDARD.encode(body));
        request.is_base64_encoded = true;
        let mut webhook = Webhook { request };
        webhook
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("user-agent", "GitHub-Hookshot/f00d")
            .header("x-github-hook-id", "4242")
            .header("x-hub-signature-256", &sign(body, &Secret::new(SECRET)));
        webhook
    }

    pub fn header(&mut self, name: &str, value: &str) -> &mut Self {
        self.request.headers.insert(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
        self
    }

    /// A request on `/webhook/{proxy+}`.
    pub fn proxy_path(&mut self, remainder: &str, query: &[(&str, &str)]) -> &mut Self {
        self.request.path = Some(format!("/webhook/{remainder}"));
        self.request.resource = Some("/webhook/{proxy+}".into());
        self.request.path_parameters = HashMap::from([("proxy".into(), remainder.into())]);
        let query: HashMap<String, String> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.request.query_string_parameters = query.into();
        self
    }

    pub fn build(&self) -> ApiGatewayProxyRequest {
        self.request.clone()
    }
}

/// A push payload of about `size` bytes, valid JSON, distinct per `n`.
pub fn push_payload(n: usize, size: usize) -> Vec<u8> {
    let head = format!("{{\"ref\":\"refs/heads/main\",\"n\":{n},\"padding\":\"");
    let tail = "\"}";
    let pad = size.saturating_sub(head.len() + tail.len());
    let mut body = head.into_bytes();
    body.extend(std::iter::repeat_n(b'x', pad));
    body.extend_from_slice(tail.as_bytes());
    body
}

pub fn delivery_id(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// The handler's answer, with its JSON body parsed.
pub struct Response(pub ApiGatewayProxyResponse);

impl Response {
    pub fn status(&self) -> i64 {
        self.0.status_code
    }

    pub fn json(&self) -> Value {
        match &self.0.body {
            Some(Body::Text(text)) => serde_json::from_str(text).expect("JSON body"),
            other => panic!("expected a JSON text body, got {other:?}"),
        }
    }
}
