//! The local stack's event-source glue with the real function binaries: the front door
//! (API Gateway's proxy events, live stage variables, its own error answers), the SQS
//! event source (partial batch responses, redrive left to the queue), the Kafka injector,
//! and `cargo lambda watch` as the runtime.
//!
//! The binaries come from `cargo build --workspace --bins` (`make test` runs it first).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{json, Value};
use spigot_common::state::STATE_VARIABLE;
use spigot_local::aws_emulator::MotoServer;
use spigot_local::functions::{FunctionSetup, Functions, Runtime};
use spigot_local::kafka::{KafkaInjector, Record};
use spigot_local::runtime_api::Outcome;
use spigot_local::sqs_event_source::{poll_once, SqsEventSource};
use spigot_local::stack::{Stack, StackOptions};
use spigot_local::template::{FunctionSpec, Template};

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn probe_spec(name: &str) -> FunctionSpec {
    FunctionSpec {
        logical_id: "Probe".into(),
        binary: name.into(),
        timeout: Duration::from_secs(10),
        memory_mb: 128,
        environment: Default::default(),
        events: vec![],
    }
}

async fn probe_functions() -> Arc<Functions> {
    let setup = FunctionSetup {
        spec: probe_spec("probe_lambda"),
        env: vec![],
    };
    Arc::new(
        Functions::start(vec![setup], &Runtime::function_binaries(), false)
            .await
            .expect("probe_lambda starts (cargo build --workspace --bins)"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_front_door_is_api_gateway_with_live_stage_variables() {
    let stack = Stack::start(StackOptions {
        stack_name: "front-door".into(),
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let webhook = format!("{}/webhook", stack.api_url("SpigotApi").unwrap());
    let post = |url: String, body: Vec<u8>| async move {
        let response = http()
            .post(url)
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.json::<Value>().await.unwrap_or(Value::Null),
        )
    };

    let (status, answer) = post(webhook.clone(), b"{\"ref\":\"a\"}".to_vec()).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("delivered")),
        "{answer}"
    );
    assert_eq!(stack.jenkins().deliveries().len(), 1);
    assert_eq!(stack.jenkins().deliveries()[0].body, "{\"ref\":\"a\"}");

    // The operator's switch, straight on the emulator's stage: the next request sees it.
    let spigot =
        spigot_local::spigot_resources::SpigotResources::from_local(stack.resources()).unwrap();
    aws_sdk_apigateway::Client::new(stack.sdk())
        .update_stage()
        .rest_api_id(&spigot.rest_api_id)
        .stage_name(&spigot.stage_name)
        .patch_operations(
            aws_sdk_apigateway::types::PatchOperation::builder()
                .op(aws_sdk_apigateway::types::Op::Replace)
                .path(format!("/variables/{STATE_VARIABLE}"))
                .value("OFF")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (status, answer) = post(webhook.clone(), b"{\"ref\":\"b\"}".to_vec()).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (202, Some("queued")),
        "{answer}"
    );
    assert_eq!(
        stack.jenkins().deliveries().len(),
        1,
        "not forwarded while OFF"
    );

    // The proxy route takes the rest of the path to the same path on the target.
    let (status, _) = post(
        format!("{webhook}/generic-webhook-trigger/invoke"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 202);

    // API Gateway's own answers.
    let (status, answer) = post(format!("{}/prod/nowhere", stack.url()), b"{}".to_vec()).await;
    assert_eq!(
        (status, answer["message"].as_str()),
        (403, Some("Missing Authentication Token"))
    );
    let (status, _) = post(format!("{}/webhook", stack.url()), b"{}".to_vec()).await;
    assert_eq!(status, 403, "no stage in the path");
    let (status, _) = post(webhook.clone(), vec![b'x'; 10 * 1024 * 1024 + 1]).await;
    assert_eq!(status, 413);
    // A malformed event for the function is its own 400, passed through.
    let (status, answer) = post(webhook.clone(), Vec::new()).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("no body"));

    let (status, answer) = post(
        format!("{}/kafka/no.such.topic", stack.url()),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 404);
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("no function subscribes"));

    let get = |path: &str| {
        let url = format!("{}{path}", stack.url());
        async move {
            http()
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let info = get("/_local").await;
    assert_eq!(
        info["functions"],
        json!([
            "aliecs_ingest",
            "gitlab_ingest",
            "log_tailer",
            "port_runner",
            "process_webhooks",
            "send_from_queue"
        ])
    );
    assert_eq!(
        info["operator_env"]["REST_API_ID"],
        spigot.rest_api_id.as_str()
    );

    // A message written by hand, as the README's three commands do: the sandbox Port
    // takes a run it did not create, and /_local shows the outcome.
    let message = json!({
        "action": spigot_local::stack::EXAMPLE_ACTION,
        "port_context": {"runId": "r_byHand1"},
        "inputs": {"serviceName": "billing", "version": "1.0.0", "environment": "dev", "changeReason": "try"},
    });
    let injected = http()
        .post(format!(
            "{}/kafka/{}.runs",
            stack.url(),
            spigot_local::stack::LOCAL_PORT_ORG
        ))
        .body(message.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        injected.status().as_u16(),
        200,
        "{:?}",
        injected.text().await
    );
    let mut run = Value::Null;
    for _ in 0..120 {
        let runs = get("/_local/port/runs").await;
        run = runs
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["run_id"] == "r_byHand1")
            .cloned()
            .unwrap_or(Value::Null);
        if run["status"] == "SUCCESS" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert!(run["logs"].as_array().unwrap().iter().any(|l| l
        .as_str()
        .unwrap()
        .contains("Deployed billing 1.0.0 to dev")));
    let requests = get("/_local/jenkins/requests").await;
    assert!(
        requests
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["method"] == "POST"
                && r["path"]
                    .as_str()
                    .unwrap()
                    .ends_with("/buildWithParameters")),
        "{requests}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sqs_event_source_deletes_what_the_function_finished() {
    let moto = MotoServer::start().await.unwrap();
    let sdk = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let dlq = sqs
        .create_queue()
        .queue_name("probe-dlq")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq_arn = "arn:aws:sqs:us-east-1:123456789012:probe-dlq";
    let queue = sqs
        .create_queue()
        .queue_name("probe")
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}).to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let functions = probe_functions().await;
    let source = SqsEventSource {
        function: "probe_lambda".into(),
        queue_url: queue.clone(),
        queue_arn: "arn:aws:sqs:us-east-1:123456789012:probe".into(),
        batch_size: 10,
        batching_window: Duration::ZERO,
        report_batch_item_failures: true,
    };
    let send = |body: &'static str| {
        let sqs = sqs.clone();
        let queue = queue.clone();
        async move {
            sqs.send_message()
                .queue_url(queue)
                .message_body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let depth = |url: String| {
        let sqs = sqs.clone();
        async move {
            let attributes = sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .send()
                .await
                .unwrap()
                .attributes
                .unwrap();
            let n = |name| attributes[&name].parse::<u64>().unwrap();
            n(QueueAttributeName::ApproximateNumberOfMessages)
                + n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        }
    };

    for body in ["ok 1", "ok 2", "fail 3"] {
        send(body).await;
    }
    assert_eq!(poll_once(&source, &sqs, &functions).await.unwrap(), 3);
    assert_eq!(
        depth(queue.clone()).await,
        1,
        "the two finished messages are deleted"
    );
    // The failed one comes back after its visibility timeout, fails again, and the queue
    // moves it to the DLQ after two receives.
    let mut received = 0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        received += poll_once(&source, &sqs, &functions).await.unwrap();
        if depth(dlq.clone()).await == 1 {
            break;
        }
    }
    assert_eq!(received, 1, "received once more before the redrive");
    assert_eq!(depth(dlq.clone()).await, 1);
    assert_eq!(depth(queue.clone()).await, 0);

    // A failed invocation deletes nothing.
    send("crash 4").await;
    send("ok 5").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(poll_once(&source, &sqs, &functions).await.unwrap(), 2);
    assert_eq!(depth(queue.clone()).await, 2);

    // A function that exits is started again; what it had taken fails, as in Lambda.
    let before = functions.pids();
    let exit_event = json!({"Records": [{"messageId": "m", "body": "exit now"}]});
    match functions.invoke("probe_lambda", &exit_event).await.unwrap() {
        Outcome::Error(error) => assert_eq!(error.error_type, "Runtime.ExitError"),
        other => panic!("expected an exit error, got {other:?}"),
    }
    let echo = functions
        .invoke("probe_lambda", &json!({"hello": 1}))
        .await
        .unwrap();
    assert_eq!(
        echo,
        Outcome::Response(bytes::Bytes::from_static(b"{\"hello\":1}"))
    );
    assert_ne!(functions.pids(), before, "a new process answers");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kafka_injector_delivers_records_with_increasing_offsets() {
    let functions = probe_functions().await;
    let injector = KafkaInjector::new(
        [("org.runs".to_owned(), vec!["probe_lambda".to_owned()])].into(),
        Arc::clone(&functions),
    );
    let record = |value: &'static [u8]| Record {
        topic: "org.runs".into(),
        partition: 0,
        key: Some(bytes::Bytes::from_static(b"run-1")),
        value: bytes::Bytes::from_static(value),
        headers: vec![("trace".into(), b"abc".to_vec())],
    };
    let (first, deliveries) = injector.inject(record(b"{\"n\":1}")).await.unwrap();
    let (second, _) = injector.inject(record(b"{\"n\":2}")).await.unwrap();
    assert_eq!((first, second), (0, 1));
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].outcome, "ok");
    // The probe echoes the event it got: Lambda's Kafka event shape.
    let event = &deliveries[0].answer;
    let records = &event["records"]["org.runs-0"];
    assert_eq!(records[0]["value"], "eyJuIjoxfQ==");
    assert_eq!(records[0]["key"], "cnVuLTE=");
    assert_eq!(records[0]["headers"][0]["trace"], json!([97, 98, 99]));
    assert!(injector
        .inject(Record {
            topic: "other".into(),
            ..record(b"x")
        })
        .await
        .is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn cargo_lambda_watch_runs_the_function_binaries() {
    let template = Template::workspace().unwrap();
    let spec = template
        .functions()
        .unwrap()
        .into_iter()
        .find(|f| f.binary == "send_from_queue")
        .unwrap();
    let env: HashMap<&str, &str> = HashMap::from([
        ("TARGET_URL", "http://127.0.0.1:9"),
        ("SPIGOT_QUEUE_URL", "http://127.0.0.1:9/q"),
        ("PAYLOAD_BUCKET", "b"),
        ("REST_API_ID", "a"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ]);
    let setup = FunctionSetup {
        spec,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let functions = Functions::start(
        vec![setup],
        &Runtime::CargoLambdaWatch {
            port: 0,
            reload: false,
        },
        false,
    )
    .await
    .unwrap();
    assert!(functions.watch_url().is_some());
    // The first invocation builds the function; an unknown action is refused before any
    // call out.
    let outcome = functions
        .invoke("send_from_queue", &json!({"action": "bogus"}))
        .await
        .unwrap();
    let Outcome::Error(error) = outcome else {
        panic!("expected the function's error, got {outcome:?}")
    };
    assert!(String::from_utf8_lossy(&error.body).contains("unknown action"));
}
