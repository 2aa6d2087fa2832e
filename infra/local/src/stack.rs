//! The whole system on one machine: the AWS emulator with the template's resources, the
//! search server, the sandbox upstreams, the function binaries behind a runtime
//! emulator, and the event-source glue, wired the way template.yaml wires AWS.
//! Dropping the [`Stack`] stops everything.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use aws_config::SdkConfig;
use aws_sdk_s3::primitives::ByteStream;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::api_gateway::Routes;
use crate::aws_emulator::{MotoServer, REGION};
use crate::front_door::{FrontDoor, FrontDoorParts};
use crate::functions::{FunctionSetup, Functions, Runtime};
use crate::gitlab::SandboxGitlab;
use crate::jenkins::{BuildScript, SandboxJenkins, SandboxJenkinsConfig, SandboxJob};
use crate::kafka::KafkaInjector;
use crate::port::SandboxPort;
use crate::resources::{self, LocalResources};
use crate::schedules::{self, Schedule};
use crate::search_proxy::SearchProxy;
use crate::search_server::SearchServer;
use crate::sqs_event_source::{self, SqsEventSource};
use crate::template::{EventSource, Template};

/// Credentials the functions get for the emulator.
const ACCESS_KEY: &str = "testing";
/// The token the sandbox GitLab accepts (gitlab.json in the credentials bucket).
pub const LOCAL_GITLAB_TOKEN: &str = "glpat-local-sandbox-token";
pub const LOCAL_GITLAB_WEBHOOK_SECRET: &str = "local-gitlab-hook-secret";
/// The sandbox Port's organisation and client credentials (port.json).
pub const LOCAL_PORT_ORG: &str = "org_sandbox";
pub const LOCAL_PORT_CLIENT_ID: &str = "sandbox-client";
pub const LOCAL_PORT_CLIENT_SECRET: &str = "sandbox-client-secret";
/// The reference example action, routed to the sandbox Jenkins' example job.
pub const EXAMPLE_ACTION: &str = "deploy_microservice_kafka";
pub const EXAMPLE_JOB: &str = "deploy/microservice";
/// The Jenkins job aliecs_ingest builds at each end of run.
pub const EOR_JOB: &str = "aliecs/eor";

/// How the stack is set up.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Names the resources (`{stack}-{logical-id}`).
    pub stack_name: String,
    pub runtime: Runtime,
    /// 0: a free port.
    pub front_door_port: u16,
    pub jenkins_port: u16,
    pub search_port: u16,
    /// A `rate(1 minute)` schedule fires every `60 s / speedup` locally.
    pub schedule_speedup: u32,
    /// GitHub webhook secret (in the credentials bucket's github.json, and checked by
    /// the sandbox Jenkins); `None`: signatures are not checked.
    pub webhook_secret: Option<String>,
    pub gitlab_port: u16,
    /// The secret GitLab's Job Hook sends (`X-Gitlab-Token`), in gitlab.json.
    pub gitlab_webhook_secret: String,
    pub port_port: u16,
    /// port_runner's routes; `None`: the example action to the sandbox Jenkins'
    /// example job.
    pub port_routes: Option<String>,
    /// Template parameters, over the local defaults.
    pub parameters: HashMap<String, String>,
    /// The functions' log lines on our log at info, instead of at debug.
    pub echo_function_logs: bool,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            stack_name: "spigot".into(),
            runtime: Runtime::function_binaries(),
            front_door_port: 0,
            jenkins_port: 0,
            search_port: 0,
            schedule_speedup: 12,
            webhook_secret: None,
            gitlab_port: 0,
            gitlab_webhook_secret: LOCAL_GITLAB_WEBHOOK_SECRET.into(),
            port_port: 0,
            port_routes: None,
            parameters: HashMap::new(),
            echo_function_logs: false,
        }
    }
}

/// The running stack. Fields drop in order: glue first, servers last.
pub struct Stack {
    tasks: Vec<JoinHandle<()>>,
    front_door: FrontDoor,
    functions: Arc<Functions>,
    jenkins: Arc<SandboxJenkins>,
    gitlab: SandboxGitlab,
    port: Arc<SandboxPort>,
    search_proxy: SearchProxy,
    search: SearchServer,
    resources: LocalResources,
    sdk: SdkConfig,
    options: StackOptions,
    moto: MotoServer,
}

impl Stack {
    pub async fn start(options: StackOptions) -> anyhow::Result<Stack> {
        let template = Template::workspace()?;
        let moto = MotoServer::start()
            .await
            .context("starting the AWS emulator")?;
        let sdk = moto.sdk_config().await;
        let search = SearchServer::start(options.search_port)
            .await
            .context("starting the search server")?;
        let jenkins = Arc::new(
            SandboxJenkins::start_on(
                SocketAddr::from((Ipv4Addr::LOCALHOST, options.jenkins_port)),
                SandboxJenkinsConfig {
                    webhook_secrets: options.webhook_secret.iter().cloned().collect(),
                    credentials: None,
                },
            )
            .await?,
        );

        let gitlab = SandboxGitlab::start(options.gitlab_port, LOCAL_GITLAB_TOKEN).await?;
        let port = Arc::new(
            SandboxPort::start(
                options.port_port,
                LOCAL_PORT_CLIENT_ID,
                LOCAL_PORT_CLIENT_SECRET,
            )
            .await?,
        );
        // A message injected by hand names a run the sandbox never created.
        port.adopt_unknown_runs(true);
        jenkins.add_job(example_job());
        jenkins.add_job(eor_job());
        let routes = options
            .port_routes
            .clone()
            .unwrap_or_else(|| example_routes(&jenkins.url()));
        // The functions reach the search server through the proxy that can inject faults
        // and records bulk sizes.
        let search_proxy = SearchProxy::start(search.url()).await?;

        let credentials_bucket = format!("{}-credentials", options.stack_name);
        create_credentials(&sdk, &credentials_bucket, &options).await?;
        let mut parameters = local_parameters(
            &template,
            &[
                ("TargetUrl", jenkins.url()),
                ("GitlabUrl", gitlab.url()),
                ("PortOrgId", LOCAL_PORT_ORG.to_owned()),
                ("PortApiUrl", port.url()),
                ("PortRoutes", routes),
                ("SearchUrl", search_proxy.url()),
                ("CredentialsBucket", credentials_bucket),
                (
                    "AliecsKafkaBootstrapServers",
                    crate::kafka::BOOTSTRAP_SERVERS.to_owned(),
                ),
                ("EorJenkinsJob", EOR_JOB.to_owned()),
                // Without a webhook secret (`up` without --webhook-secret) the local
                // endpoint takes unsigned requests, as a deployed one would refuse to.
                (
                    "AllowUnsigned",
                    options.webhook_secret.is_none().to_string(),
                ),
            ],
        );
        parameters.extend(options.parameters.clone());
        let resources =
            resources::create(&sdk, &template, &options.stack_name, &parameters).await?;

        // The template as it applies here (conditional resources decided).
        let template = resources.template.clone();
        let specs = template.functions()?;
        let aws_env = [
            ("AWS_ENDPOINT_URL", moto.endpoint().to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_DEFAULT_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", ACCESS_KEY.to_owned()),
        ];
        let mut setups = Vec::new();
        for spec in &specs {
            let mut env = resources.function_env(spec)?;
            env.extend(aws_env.iter().map(|(k, v)| (k.to_string(), v.clone())));
            setups.push(FunctionSetup {
                spec: spec.clone(),
                env,
            });
        }
        let functions =
            Arc::new(Functions::start(setups, &options.runtime, options.echo_function_logs).await?);

        let mut tasks = Vec::new();
        let mut subscriptions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        for spec in &specs {
            for event in &spec.events {
                match &event.source {
                    EventSource::Api { .. } => {}
                    EventSource::Schedule { expression, input } => {
                        let schedule = Schedule {
                            function: spec.binary.clone(),
                            name: event.name.clone(),
                            interval: schedules::interval(expression)?,
                            input: input.clone(),
                        };
                        let every =
                            schedules::local_interval(schedule.interval, options.schedule_speedup);
                        tasks.push(tokio::spawn(schedules::run(
                            schedule,
                            every,
                            Arc::clone(&functions),
                        )));
                    }
                    EventSource::Sqs {
                        queue,
                        batch_size,
                        batching_window,
                        report_batch_item_failures,
                    } => {
                        let queue_arn = resources.resolver.resolve_required(queue)?;
                        let queue_url =
                            queue_url_of(&resources, &queue_arn).with_context(|| {
                                format!("{}: no local queue {queue_arn}", spec.logical_id)
                            })?;
                        let source = SqsEventSource {
                            function: spec.binary.clone(),
                            queue_url,
                            queue_arn,
                            batch_size: *batch_size,
                            batching_window: *batching_window,
                            report_batch_item_failures: *report_batch_item_failures,
                        };
                        tasks.push(tokio::spawn(sqs_event_source::run(
                            source,
                            sqs.clone(),
                            Arc::clone(&functions),
                        )));
                    }
                    EventSource::Kafka { topics, .. } => {
                        for topic in topics {
                            subscriptions
                                .entry(resources.resolver.resolve_required(topic)?)
                                .or_default()
                                .push(spec.binary.clone());
                        }
                    }
                }
            }
        }
        let kafka = Arc::new(KafkaInjector::new(subscriptions, Arc::clone(&functions)));
        let routes = Routes::from_template(&template, &specs, &resources)?;
        let info = Arc::new(RwLock::new(Value::Null));
        let front_door = FrontDoor::start(
            options.front_door_port,
            FrontDoorParts {
                routes,
                functions: Arc::clone(&functions),
                apigateway: aws_sdk_apigateway::Client::new(&sdk),
                kafka,
                jenkins: Some(Arc::clone(&jenkins)),
                port: Some(Arc::clone(&port)),
                info: Arc::clone(&info),
            },
        )
        .await?;
        let stack = Stack {
            tasks,
            front_door,
            functions,
            jenkins,
            gitlab,
            port,
            search_proxy,
            search,
            resources,
            sdk,
            options,
            moto,
        };
        *info.write().unwrap_or_else(|p| p.into_inner()) = stack.info();
        Ok(stack)
    }

    /// Base URL of the front door, e.g. `http://127.0.0.1:41000`.
    pub fn url(&self) -> String {
        self.front_door.url()
    }

    /// The URL of an API's stage: `{front door}/{stage}`.
    pub fn api_url(&self, api_logical_id: &str) -> anyhow::Result<String> {
        Ok(format!(
            "{}/{}",
            self.url(),
            self.resources.api(api_logical_id)?.stage
        ))
    }

    pub fn moto(&self) -> &MotoServer {
        &self.moto
    }

    pub fn sdk(&self) -> &SdkConfig {
        &self.sdk
    }

    pub fn jenkins(&self) -> &SandboxJenkins {
        &self.jenkins
    }

    /// The search server itself (the functions go through [`Stack::search_proxy`]).
    pub fn search_url(&self) -> &str {
        self.search.url()
    }

    pub fn search_proxy(&self) -> &SearchProxy {
        &self.search_proxy
    }

    pub fn gitlab(&self) -> &SandboxGitlab {
        &self.gitlab
    }

    pub fn port(&self) -> &SandboxPort {
        &self.port
    }

    pub fn resources(&self) -> &LocalResources {
        &self.resources
    }

    pub fn functions(&self) -> &Functions {
        &self.functions
    }

    pub fn options(&self) -> &StackOptions {
        &self.options
    }

    /// Process ids of every process the stack started (not their own children).
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.moto.pid(), self.search.pid()];
        pids.extend(self.functions.pids());
        pids
    }

    /// The environment that points the operator CLI (`toggle_spigot`) and the AWS SDKs at
    /// this stack.
    pub fn operator_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "AWS_ENDPOINT_URL".to_owned(),
                self.moto.endpoint().to_owned(),
            ),
            ("AWS_REGION".to_owned(), REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID".to_owned(), ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), ACCESS_KEY.to_owned()),
        ];
        if let Ok(spigot) = crate::spigot_resources::SpigotResources::from_local(&self.resources) {
            env.extend([
                ("REST_API_ID".to_owned(), spigot.rest_api_id),
                ("STAGE_NAME".to_owned(), spigot.stage_name),
                ("SPIGOT_QUEUE_URL".to_owned(), spigot.queue_url),
                ("SPIGOT_DLQ_URL".to_owned(), spigot.dlq_url),
                ("PAYLOAD_BUCKET".to_owned(), spigot.payload_bucket),
                ("TARGET_URL".to_owned(), self.jenkins.url()),
            ]);
        }
        env
    }

    /// What runs where, as JSON (also `GET /_local`).
    pub fn info(&self) -> Value {
        let mut info = json!({});
        let apis: BTreeMap<&String, String> = self
            .resources
            .apis
            .iter()
            .map(|(id, api)| (id, format!("{}/{}", self.url(), api.stage)))
            .collect();
        info["front_door"] = json!(self.url());
        info["apis"] = json!(apis);
        info["aws_endpoint"] = json!(self.moto.endpoint());
        info["search"] = json!(self.search.url());
        info["search_proxy"] = json!(self.search_proxy.url());
        info["jenkins"] = json!(self.jenkins.url());
        info["gitlab"] = json!(self.gitlab.url());
        info["port"] = json!(self.port.url());
        info["functions"] = json!(self.functions.names());
        info["cargo_lambda_watch"] = json!(self.functions.watch_url());
        info["operator_env"] = json!(self.operator_env().into_iter().collect::<BTreeMap<_, _>>());
        info["pid"] = json!(std::process::id());
        info
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Local values for the template parameters the template declares.
fn local_parameters(template: &Template, values: &[(&str, String)]) -> HashMap<String, String> {
    let declared = template.parameters();
    values
        .iter()
        .filter(|(name, _)| declared.contains_key(*name))
        .map(|(name, value)| (name.to_string(), value.clone()))
        .collect()
}

/// The credentials bucket the functions read their secrets from, as in AWS.
async fn create_credentials(
    sdk: &SdkConfig,
    bucket: &str,
    options: &StackOptions,
) -> anyhow::Result<()> {
    let s3 = spigot_common::aws::s3_client(sdk);
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .with_context(|| format!("creating the credentials bucket {bucket}"))?;
    let mut objects = vec![
        (
            "gitlab.json",
            json!({"token": LOCAL_GITLAB_TOKEN, "webhook_secret": options.gitlab_webhook_secret}),
        ),
        (
            "port.json",
            json!({"client_id": LOCAL_PORT_CLIENT_ID, "client_secret": LOCAL_PORT_CLIENT_SECRET}),
        ),
    ];
    if let Some(secret) = &options.webhook_secret {
        objects.push(("github.json", json!({"webhook_secrets": [secret]})));
    }
    for (key, value) in objects {
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(value.to_string().into_bytes()))
            .send()
            .await
            .with_context(|| format!("writing {key}"))?;
    }
    Ok(())
}

/// The reference example action's Jenkins job: it deploys a service with the action's
/// inputs as parameters, over a few seconds.
pub fn example_job() -> SandboxJob {
    let lines = [
        "Deploying ${SERVICE_NAME} ${VERSION} to ${ENVIRONMENT} (Port run ${PORT_RUN_ID})",
        "Change reason: ${CHANGE_REASON}",
        "\u{1b}[36m+ docker pull registry.example.com/${SERVICE_NAME}:${VERSION}\u{1b}[0m",
        "${VERSION}: Pulling from ${SERVICE_NAME}",
        "Digest: sha256:4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c",
        "\u{1b}[36m+ kubectl -n ${ENVIRONMENT} set image deployment/${SERVICE_NAME} app=registry.example.com/${SERVICE_NAME}:${VERSION}\u{1b}[0m",
        "deployment.apps/${SERVICE_NAME} image updated",
        "Waiting for deployment \"${SERVICE_NAME}\" rollout to finish: 1 of 3 updated replicas are available...",
        "Waiting for deployment \"${SERVICE_NAME}\" rollout to finish: 2 of 3 updated replicas are available...",
        "deployment \"${SERVICE_NAME}\" successfully rolled out",
        "\u{1b}[32mHealth check passed: https://${SERVICE_NAME}.${ENVIRONMENT}.example.com/health\u{1b}[0m",
        "Deployed ${SERVICE_NAME} ${VERSION} to ${ENVIRONMENT}",
    ];
    SandboxJob::new(
        EXAMPLE_JOB,
        &[
            "SERVICE_NAME",
            "VERSION",
            "ENVIRONMENT",
            "CHANGE_REASON",
            "PORT_RUN_ID",
        ],
        BuildScript {
            lines: lines.iter().map(|l| (*l).to_owned()).collect(),
            line_interval: std::time::Duration::from_millis(400),
            result: "SUCCESS".into(),
        },
    )
}

/// The end-of-run job: post-run checks of the run the parameters name.
pub fn eor_job() -> SandboxJob {
    SandboxJob::new(
        EOR_JOB,
        &["RUN_NUMBER", "RUN_TYPE", "DETECTORS", "ENVIRONMENT_ID"],
        BuildScript {
            lines: vec![
                "Post-run checks of run ${RUN_NUMBER} (${RUN_TYPE}) in environment ${ENVIRONMENT_ID}".into(),
                "Detectors: ${DETECTORS}".into(),
                "All checks passed".into(),
            ],
            line_interval: std::time::Duration::from_millis(100),
            result: "SUCCESS".into(),
        },
    )
}

/// Routes of the example action to the sandbox Jenkins.
pub fn example_routes(jenkins_url: &str) -> String {
    json!({
        "servers": {"sandbox": jenkins_url},
        "routes": {
            EXAMPLE_ACTION: {
                "server": "sandbox",
                "job": EXAMPLE_JOB,
                "intro": "Deploying {{inputs.serviceName}} v{{inputs.version}} to {{inputs.environment}}…",
                "timeout_minutes": 30,
                "abort_on_timeout": true,
                "index_log": true,
                "entity": {
                    "blueprint": "deployment",
                    "identifier": "{{inputs.serviceName}}-{{inputs.environment}}",
                    "title": "{{inputs.serviceName}} in {{inputs.environment}}",
                    "properties": {"version": "{{inputs.version}}", "changeReason": "{{inputs.changeReason}}"},
                },
            }
        }
    })
    .to_string()
}

fn queue_url_of(resources: &LocalResources, arn: &str) -> Option<String> {
    resources
        .resolver
        .resources
        .values()
        .find(|p| {
            p.attributes.get("Arn").map(String::as_str) == Some(arn)
                && p.attributes.contains_key("QueueUrl")
        })
        .map(|p| p.reference.clone())
}
