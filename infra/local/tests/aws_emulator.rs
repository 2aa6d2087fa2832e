//! The moto emulator starts from the venv (`SPIGOT_VENV`, else `<workspace>/.venv`),
//! holds the resources template.yaml declares, and leaves no process behind.

use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::QueueAttributeName;
use spigot_common::aws::s3_client;
use spigot_common::config::DEFAULT_STAGE_NAME as STAGE_NAME;
use spigot_common::state::STATE_VARIABLE;
use spigot_local::aws_emulator::MotoServer;
use spigot_local::spigot_resources;

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test(flavor = "multi_thread")]
async fn moto_holds_the_spigot_resources_and_dies_with_its_handle() {
    let moto = MotoServer::start().await.unwrap();
    let pid = moto.pid();
    assert!(process_exists(pid));
    assert!(moto.endpoint().starts_with("http://127.0.0.1:"));
    let conf = moto.sdk_config().await;

    let resources = spigot_resources::create(&conf, "spigot-test")
        .await
        .unwrap();
    assert_eq!(resources.stage_name, STAGE_NAME);
    assert_eq!(resources.payload_bucket, "spigot-test-payload-bucket");
    assert!(resources.queue_url.ends_with("/spigot-test-queue.fifo"));
    assert!(resources
        .dlq_url
        .ends_with("/spigot-test-dead-letter-queue.fifo"));

    let sqs = aws_sdk_sqs::Client::new(&conf);
    let attributes = |url: String| {
        let sqs = sqs.clone();
        async move {
            sqs.get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::All)
                .send()
                .await
                .unwrap()
                .attributes
                .unwrap()
        }
    };
    let dlq = attributes(resources.dlq_url.clone()).await;
    let queue = attributes(resources.queue_url.clone()).await;
    for attributes in [&dlq, &queue] {
        let attribute = |name| attributes.get(&name).map(String::as_str);
        assert_eq!(attribute(QueueAttributeName::FifoQueue), Some("true"));
        assert_eq!(
            attribute(QueueAttributeName::MaximumMessageSize),
            Some("1048576")
        );
        assert_eq!(
            attribute(QueueAttributeName::MessageRetentionPeriod),
            Some("1209600")
        );
        assert_eq!(
            attribute(QueueAttributeName::ContentBasedDeduplication),
            Some("true")
        );
    }
    assert_eq!(
        queue[&QueueAttributeName::VisibilityTimeout],
        "120",
        "template.yaml: one batch of replays"
    );
    let redrive: serde_json::Value =
        serde_json::from_str(&queue[&QueueAttributeName::RedrivePolicy]).unwrap();
    assert_eq!(
        redrive["deadLetterTargetArn"].as_str(),
        dlq.get(&QueueAttributeName::QueueArn).map(String::as_str)
    );
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "10"
    );

    // A message just under 1 MiB fits, without a deduplication id.
    let large_body = "x".repeat(1024 * 1024 - 1024);
    sqs.send_message()
        .queue_url(&resources.queue_url)
        .message_body(&large_body)
        .message_group_id("g")
        .send()
        .await
        .unwrap();

    // Path-style S3 works, put-if-absent included.
    let s3 = s3_client(&conf);
    let put_if_absent = || {
        s3.put_object()
            .bucket(&resources.payload_bucket)
            .key("marker")
            .if_none_match("*")
            .body(ByteStream::from_static(b"1"))
            .send()
    };
    put_if_absent().await.unwrap();
    assert!(put_if_absent().await.is_err());

    let apigateway = aws_sdk_apigateway::Client::new(&conf);
    let stage = apigateway
        .get_stage()
        .rest_api_id(&resources.rest_api_id)
        .stage_name(STAGE_NAME)
        .send()
        .await
        .unwrap();
    assert_eq!(
        stage
            .variables
            .unwrap()
            .get(STATE_VARIABLE)
            .map(String::as_str),
        Some("ON")
    );
    let mut paths: Vec<_> = apigateway
        .get_resources()
        .rest_api_id(&resources.rest_api_id)
        .send()
        .await
        .unwrap()
        .items
        .unwrap()
        .into_iter()
        .filter_map(|resource| resource.path)
        .collect();
    paths.sort();
    assert_eq!(paths, ["/", "/gitlab", "/webhook", "/webhook/{proxy+}"]);

    drop(moto);
    assert!(
        !process_exists(pid),
        "moto_server {pid} outlived its handle"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_emulators_run_side_by_side() {
    let (first, second) = tokio::join!(MotoServer::start(), MotoServer::start());
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_ne!(first.endpoint(), second.endpoint());
    let conf = second.sdk_config().await;
    spigot_resources::create(&conf, "side-by-side")
        .await
        .unwrap();
}
