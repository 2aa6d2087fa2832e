//! The CLI binary against a real moto server (SQS, API Gateway, CloudFormation) and the
//! sandbox Jenkins: off, on (DRAINING with a backlog, ON without), the original
//! `--spigot_state`, status numbers, drain (target down, then up), redrive (dry run,
//! then for real), and the API and queues found by name and by stack.
//!
//! moto comes from the project venv (`make venv`, or `SPIGOT_VENV` pointing at one).

use std::process::Output;

use aws_config::SdkConfig;
use aws_sdk_sqs::types::MessageAttributeValue;
use serde_json::Value;
use spigot_common::aws::s3_client;
use spigot_common::buffer::{WebhookBuffer, REASON_ATTRIBUTE, STATUS_ATTRIBUTE};
use spigot_common::config::BufferConfig;
use spigot_common::envelope::Envelope;
use spigot_local::aws_emulator::{MotoServer, REGION};
use spigot_local::jenkins::{JenkinsMode, SandboxJenkins, SandboxJenkinsConfig};
use spigot_local::spigot_resources::{self, SpigotResources};

/// Settings the CLI reads from the environment: the test passes its own or none.
const CLEARED_ENV: [&str; 19] = [
    "REST_API_ID",
    "STAGE_NAME",
    "SPIGOT_QUEUE_URL",
    "SPIGOT_DLQ_URL",
    "PAYLOAD_BUCKET",
    "TARGET_URL",
    "TARGET_PATH",
    "TARGET_ROUTES",
    "EOR_JENKINS_JOB",
    "TARGET_HEALTH_PATH",
    "FORWARD_TIMEOUT_MS",
    "DRAIN_CONCURRENCY",
    "CREDENTIALS_BUCKET",
    "JENKINS_USERNAME",
    "JENKINS_API_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_SESSION_TOKEN",
    "RUST_LOG",
];

#[derive(Clone)]
struct Harness {
    endpoint: String,
    conf: SdkConfig,
    res: SpigotResources,
}

impl Harness {
    /// Runs the CLI with `args`, pointed at moto through AWS_ENDPOINT_URL.
    async fn cli(&self, args: &[&str]) -> Output {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_toggle_spigot"));
        for name in CLEARED_ENV {
            command.env_remove(name);
        }
        command
            .args(args)
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials",
            )
            .env("AWS_EC2_METADATA_DISABLED", "true");
        command.output().await.expect("toggle_spigot runs")
    }

    /// The CLI with the resource flags, expected to succeed.
    async fn ok(&self, args: &[&str]) -> String {
        let output = self.cli(&self.with_resources(args)).await;
        assert!(
            output.status.success(),
            "{args:?} failed: {}",
            describe(&output)
        );
        String::from_utf8(output.stdout).expect("UTF-8 output")
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let stdout = self.ok(&args).await;
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stdout}"))
    }

    fn with_resources<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = args.to_vec();
        all.extend([
            "--api-id",
            &self.res.rest_api_id,
            "--queue-url",
            &self.res.queue_url,
            "--dlq-url",
            &self.res.dlq_url,
            "--payload-bucket",
            &self.res.payload_bucket,
        ]);
        all
    }

    async fn state(&self) -> String {
        aws_sdk_apigateway::Client::new(&self.conf)
            .get_stage()
            .rest_api_id(&self.res.rest_api_id)
            .stage_name(&self.res.stage_name)
            .send()
            .await
            .expect("GetStage")
            .variables
            .and_then(|mut v| v.remove("spigot_state"))
            .unwrap_or_default()
    }

    fn buffer(&self) -> WebhookBuffer {
        WebhookBuffer::new(
            aws_sdk_sqs::Client::new(&self.conf),
            s3_client(&self.conf),
            BufferConfig {
                queue_url: self.res.queue_url.clone(),
                dlq_url: Some(self.res.dlq_url.clone()),
                payload_bucket: self.res.payload_bucket.clone(),
            },
        )
    }
}

fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn hook(n: usize) -> Envelope {
    Envelope::new(
        "POST",
        "/github-webhook/",
        vec![],
        vec![
            ("content-type".into(), "application/json".into()),
            ("x-github-event".into(), "push".into()),
            ("x-github-delivery".into(), format!("delivery-{n}")),
        ],
        format!("{{\"n\":{n}}}").as_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operates_the_spigot_on_the_emulator() {
    let moto = MotoServer::start().await.expect("moto_server starts");
    let conf = moto.sdk_config().await;
    let res = spigot_resources::create(&conf, "toggle-cli")
        .await
        .expect("spigot resources");
    let h = Harness {
        endpoint: moto.endpoint().to_string(),
        conf,
        res,
    };
    let buffer = h.buffer();
    assert_eq!(h.state().await, "ON");

    // off, and the empty status.
    let off = h.json(&["off"]).await;
    assert_eq!(
        (off["state"].as_str(), off["changed"].as_bool()),
        (Some("OFF"), Some(true))
    );
    assert_eq!(h.state().await, "OFF");
    let status = h.json(&["status"]).await;
    assert_eq!(status["state"], "OFF");
    assert_eq!(status["queue"]["total"], 0);
    assert_eq!(status["dlq"]["total"], 0);
    assert_eq!(status["oldest_message_age_secs"], Value::Null);

    // A backlog while OFF: status counts it; the emulator has no CloudWatch, so no age.
    for n in 0..3 {
        buffer.enqueue(hook(n)).await.expect("enqueue");
    }
    let status = h.json(&["status"]).await;
    assert_eq!(status["queue"]["visible"], 3);
    assert_eq!(status["queue"]["in_flight"], 0);
    assert_eq!(status["queue"]["delayed"], 0);
    assert_eq!(status["queue"]["total"], 3);
    assert_eq!(status["oldest_message_age_secs"], Value::Null);
    assert!(
        status["oldest_message_age_note"]
            .as_str()
            .unwrap()
            .contains("CloudWatch"),
        "{status}"
    );
    let table = h.ok(&["status"]).await;
    assert!(
        table.contains("3 (visible 3, in flight 0, delayed 0)"),
        "{table}"
    );
    assert!(table.contains("n/a"), "{table}");

    // on with a backlog: DRAINING; again: unchanged.
    let on = h.json(&["on"]).await;
    assert_eq!(
        (on["state"].as_str(), on["backlog"]["visible"].as_u64()),
        (Some("DRAINING"), Some(3))
    );
    assert_eq!(h.state().await, "DRAINING");
    let again = h.json(&["on"]).await;
    assert_eq!(
        (again["state"].as_str(), again["changed"].as_bool()),
        (Some("DRAINING"), Some(false))
    );

    // The original tool's switch.
    let legacy = h.cli(&h.with_resources(&["--spigot_state", "OFF"])).await;
    assert!(legacy.status.success(), "{}", describe(&legacy));
    assert_eq!(h.state().await, "OFF");

    // drain: OFF does nothing and is not a failure.
    let jenkins = SandboxJenkins::start(SandboxJenkinsConfig::default())
        .await
        .expect("sandbox Jenkins");
    let target = jenkins.url();
    let drain = h.json(&["drain", "--target-url", &target]).await;
    assert_eq!(
        (drain["stopped"].as_str(), drain["delivered"].as_u64()),
        (Some("off"), Some(0))
    );

    // The target down: nothing received, exit status 1 with the reason.
    h.ok(&["on"]).await;
    jenkins.set_mode(JenkinsMode::Unreachable).await.unwrap();
    let down = h
        .cli(&h.with_resources(&["drain", "--target-url", &target, "--json"]))
        .await;
    assert_eq!(down.status.code(), Some(1), "{}", describe(&down));
    let summary: Value = serde_json::from_slice(&down.stdout).unwrap();
    assert_eq!(summary["stopped"], "target_down");
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("did not answer the probe"),
        "{}",
        describe(&down)
    );
    assert_eq!(buffer.depth().await.unwrap().total(), 3);

    // The target up: everything delivered, and DRAINING becomes ON.
    jenkins.set_mode(JenkinsMode::Up).await.unwrap();
    let drain = h.json(&["drain", "--target-url", &target]).await;
    assert_eq!(drain["delivered"], 3, "{drain}");
    assert_eq!(
        (drain["stopped"].as_str(), drain["final_state"].as_str()),
        (Some("queue_empty"), Some("ON"))
    );
    assert_eq!(jenkins.deliveries().len(), 3);
    assert_eq!(h.state().await, "ON");

    // on without a backlog: straight to ON.
    h.ok(&["off"]).await;
    let on = h.json(&["on", "--wait"]).await;
    assert_eq!(
        (on["state"].as_str(), on["backlog"]["total"].as_u64()),
        (Some("ON"), Some(0))
    );
    assert_eq!(on["wait"], Value::Null, "nothing to wait for");
    assert_eq!(h.state().await, "ON");

    // Dead letters with the drain's attributes.
    let sqs = aws_sdk_sqs::Client::new(&h.conf);
    for n in 0..4 {
        let envelope = hook(100 + n);
        sqs.send_message()
            .queue_url(&h.res.dlq_url)
            .message_body(envelope.to_message())
            .message_group_id("webhooks")
            .message_deduplication_id(&envelope.id)
            .message_attributes(
                REASON_ATTRIBUTE,
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(format!("target refused the request with 400: bad {n}"))
                    .build()
                    .unwrap(),
            )
            .message_attributes(
                STATUS_ATTRIBUTE,
                MessageAttributeValue::builder()
                    .data_type("Number")
                    .string_value("400")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("send to the DLQ");
    }

    // Dry run: listed with event, delivery, reason and age, and left where they were.
    let listing = h.json(&["redrive", "--dry-run"]).await;
    let messages = listing["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4, "{listing}");
    assert_eq!(messages[0]["event"], "push");
    assert_eq!(messages[0]["delivery"], "delivery-100");
    assert_eq!(
        messages[0]["reason"],
        "target refused the request with 400: bad 0"
    );
    assert_eq!(messages[0]["status"], "400");
    assert!(messages[0]["age_secs"].as_u64().unwrap() < 600);
    let dlq = buffer.dlq_depth().await.unwrap();
    assert_eq!(
        (dlq.visible, dlq.in_flight),
        (4, 0),
        "released after listing"
    );
    let limited = h.json(&["redrive", "--dry-run", "--max", "2"]).await;
    assert_eq!(limited["messages"].as_array().unwrap().len(), 2);
    let table = h.ok(&["redrive", "--dry-run"]).await;
    assert!(
        table.contains("delivery-103") && table.contains("bad 3"),
        "{table}"
    );

    // Redrive: 4 in the DLQ -> 0, and 4 in the queue, in their order.
    let redrive = h.json(&["redrive"]).await;
    assert_eq!(redrive["moved"], 4, "{redrive}");
    assert_eq!(redrive["dlq_after"]["visible"], 0);
    assert_eq!(buffer.dlq_depth().await.unwrap().total(), 0);
    assert_eq!(buffer.depth().await.unwrap().total(), 4);
    let moved = buffer.receive(10, 5, 0).await.unwrap();
    let deliveries: Vec<_> = moved
        .iter()
        .map(|m| {
            m.envelope
                .as_ref()
                .unwrap()
                .header("x-github-delivery")
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        deliveries,
        [
            "delivery-100",
            "delivery-101",
            "delivery-102",
            "delivery-103"
        ]
    );
    buffer
        .release(&moved.iter().collect::<Vec<_>>())
        .await
        .unwrap();

    // The API by name, and everything from a stack's outputs.
    let by_name = h
        .cli(&[
            "status",
            "--json",
            "--api-name",
            "toggle-cli-SpigotApi",
            "--queue-url",
            &h.res.queue_url,
        ])
        .await;
    assert!(by_name.status.success(), "{}", describe(&by_name));
    let missing = h
        .cli(&[
            "status",
            "--api-name",
            "no-such-api",
            "--queue-url",
            &h.res.queue_url,
        ])
        .await;
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no REST API is named"),
        "{}",
        describe(&missing)
    );

    let template = serde_json::json!({
        "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {
            "RestApiId": {"Value": h.res.rest_api_id},
            "StageName": {"Value": h.res.stage_name},
            "QueueUrl": {"Value": h.res.queue_url},
            "DlqUrl": {"Value": h.res.dlq_url},
            "PayloadBucket": {"Value": h.res.payload_bucket},
        }
    });
    aws_sdk_cloudformation::Client::new(&h.conf)
        .create_stack()
        .stack_name("spigot-test")
        .template_body(template.to_string())
        .send()
        .await
        .expect("create the stack");
    let by_stack = h.cli(&["status", "--json", "--stack", "spigot-test"]).await;
    assert!(by_stack.status.success(), "{}", describe(&by_stack));
    let status: Value = serde_json::from_slice(&by_stack.stdout).unwrap();
    assert_eq!(status["queue"]["total"], 4);
    assert_eq!(status["dlq"]["total"], 0);
    assert_eq!(status["state"], "ON");
    // A flag beats the stack's output.
    let overridden = h
        .cli(&[
            "status",
            "--stack",
            "spigot-test",
            "--queue-url",
            &h.res.dlq_url,
            "--json",
        ])
        .await;
    let status: Value = serde_json::from_slice(&overridden.stdout).unwrap();
    assert_eq!(status["queue"]["url"], h.res.dlq_url.as_str());
    assert_eq!(status["queue"]["total"], 0);

    // on --wait with nobody draining: gives up with exit status 1.
    let waited = h
        .cli(&h.with_resources(&[
            "on",
            "--wait",
            "--timeout",
            "1",
            "--interval",
            "1",
            "--json",
        ]))
        .await;
    assert_eq!(waited.status.code(), Some(1), "{}", describe(&waited));
    let report: Value = serde_json::from_slice(&waited.stdout).unwrap();
    assert_eq!(
        (report["state"].as_str(), report["wait"]["outcome"].as_str()),
        (Some("DRAINING"), Some("timed_out"))
    );
    assert_eq!(report["wait"]["depth"]["total"], 4);
    assert!(
        String::from_utf8_lossy(&waited.stderr).contains("still DRAINING"),
        "{}",
        describe(&waited)
    );

    // on --wait while a drain empties the queue: returns once the drain has set ON.
    h.ok(&["off"]).await;
    let args = h.with_resources(&[
        "on",
        "--wait",
        "--timeout",
        "60",
        "--interval",
        "1",
        "--json",
    ]);
    let waiting = tokio::spawn({
        let h = h.clone();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            h.cli(&args).await
        }
    });
    let started = std::time::Instant::now();
    while h.state().await != "DRAINING" {
        assert!(started.elapsed().as_secs() < 30, "on never set DRAINING");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let drain = h.json(&["drain", "--target-url", &target]).await;
    assert_eq!(
        (drain["delivered"].as_u64(), drain["final_state"].as_str()),
        (Some(4), Some("ON"))
    );
    let waited = waiting.await.unwrap();
    assert!(waited.status.success(), "{}", describe(&waited));
    let report: Value = serde_json::from_slice(&waited.stdout).unwrap();
    assert_eq!(report["wait"]["outcome"], "on", "{report}");
    assert_eq!(h.state().await, "ON");

    // Nothing to find the queue with: a clear error, exit status 1.
    let no_queue = h.cli(&["status", "--api-id", &h.res.rest_api_id]).await;
    assert_eq!(no_queue.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&no_queue.stderr).contains("needs the queue URL"),
        "{}",
        describe(&no_queue)
    );
}

/// A deploy never turns the spigot ON: the template declares no stage variables (so
/// CloudFormation, which writes a stage's declared Variables whenever it updates the
/// stage, has none to write), and `make deploy` restores the state it read before the
/// deploy only where the variable is missing (a first deploy: ON).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_during_maintenance_keeps_the_spigot_off() {
    let template = spigot_local::template::Template::workspace().expect("template.yaml");
    let api = template
        .apis()
        .into_iter()
        .find(|a| a.logical_id == "SpigotApi")
        .expect("SpigotApi");
    assert!(
        api.variables.is_empty(),
        "the stage declares variables CloudFormation would write back: {:?}",
        api.variables
    );

    let moto = MotoServer::start().await.expect("moto_server starts");
    let conf = moto.sdk_config().await;
    let res = spigot_resources::create(&conf, "deploy").await.unwrap();
    let h = Harness {
        endpoint: moto.endpoint().to_string(),
        conf: conf.clone(),
        res,
    };
    let apigateway = aws_sdk_apigateway::Client::new(&conf);
    // What CloudFormation does to the stage: one patch operation.
    let update_stage = |op, path: &'static str, value: Option<String>| {
        let request = apigateway
            .update_stage()
            .rest_api_id(&h.res.rest_api_id)
            .stage_name(&h.res.stage_name)
            .patch_operations(
                aws_sdk_apigateway::types::PatchOperation::builder()
                    .op(op)
                    .path(path)
                    .set_value(value)
                    .build(),
            );
        async move { request.send().await.unwrap() }
    };
    // A first deploy: CloudFormation creates the stage without the variable.
    update_stage(
        aws_sdk_apigateway::types::Op::Remove,
        "/variables/spigot_state",
        None,
    )
    .await;
    assert_eq!(h.state().await, "", "no variable after the first deploy");
    let first = h.json(&["restore", "ON"]).await;
    assert_eq!(
        (first["state"].as_str(), first["changed"].as_bool()),
        (Some("ON"), Some(true))
    );
    assert_eq!(h.state().await, "ON");

    // Maintenance: OFF; then a deploy of a changed API. CloudFormation makes a new
    // deployment and updates the stage with what the template declares for it: the
    // deployment, and no variables.
    h.ok(&["off"]).await;
    let before = h.json(&["status"]).await["variable"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(before, "OFF");
    let deployment = apigateway
        .create_deployment()
        .rest_api_id(&h.res.rest_api_id)
        .send()
        .await
        .unwrap()
        .id
        .unwrap();
    update_stage(
        aws_sdk_apigateway::types::Op::Replace,
        "/deploymentId",
        Some(deployment.clone()),
    )
    .await;
    let after = h.json(&["restore", &before]).await;
    assert_eq!(
        (after["state"].as_str(), after["changed"].as_bool()),
        (Some("OFF"), Some(false))
    );
    assert_eq!(h.state().await, "OFF", "OFF before the deploy, OFF after");

    // A deploy from a template that still declared the variable removes it: restored to
    // what it was before, not to ON.
    update_stage(
        aws_sdk_apigateway::types::Op::Remove,
        "/variables/spigot_state",
        None,
    )
    .await;
    h.ok(&["restore", &before]).await;
    assert_eq!(h.state().await, "OFF");
    let typo = h.cli(&h.with_resources(&["restore", "OPEN"])).await;
    assert!(!typo.status.success());
}
