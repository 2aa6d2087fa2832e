//! The AWS resources of the webhook buffer, as template.yaml declares them, created on
//! the emulator: the FIFO queue and its DLQ, the payload bucket, and the REST API whose
//! `prod` stage carries the `spigot_state` variable. Keep the queue settings in step with
//! template.yaml.

use anyhow::{ensure, Context};
use aws_config::SdkConfig;
use aws_sdk_apigateway::types::IntegrationType;
use aws_sdk_sqs::types::QueueAttributeName;

use spigot_common::aws::s3_client;
use spigot_common::config::DEFAULT_STAGE_NAME as STAGE_NAME;
use spigot_common::state::STATE_VARIABLE;

use crate::aws_emulator::REGION;

/// SQS' largest message (1 MiB); anything bigger goes to the payload bucket.
const MAX_MESSAGE_BYTES: &str = "1048576";
/// 14 days, SQS' longest retention: a backlog must survive a long Jenkins outage.
const RETENTION_SECONDS: &str = "1209600";
/// Main queue only: one batch of replays by send_from_queue.
const VISIBILITY_TIMEOUT_SECONDS: &str = "120";
/// Receives before a message is parked in the DLQ.
const MAX_RECEIVE_COUNT: u32 = 10;
/// Longest prefix for which every derived name is valid: `{prefix}-payloads` must fit
/// S3's 63 characters (the queue names allow 80).
const MAX_PREFIX_LEN: usize = 63 - "-payloads".len();
/// The account moto puts every resource in.
const EMULATOR_ACCOUNT: &str = "123456789012";

/// Names and ids of the created resources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpigotResources {
    pub queue_url: String,
    pub dlq_url: String,
    pub payload_bucket: String,
    pub rest_api_id: String,
    pub stage_name: String,
}

/// Creates the resources named after `prefix` (ASCII letters, digits, `-` and `_`,
/// starting with a letter or digit, at most 54 characters): queues `{prefix}-queue.fifo`
/// and `{prefix}-dlq.fifo`, bucket `{prefix}-payloads` (lowercased, `_` as `-`), and REST
/// API `{prefix}` with `/webhook` and `/webhook/{proxy+}` deployed to stage `prod` with
/// `spigot_state=ON`. Queue settings are template.yaml's: FIFO with content-based
/// deduplication, 1 MiB messages, 14 days' retention, 120 s visibility on the queue, and
/// redrive to the DLQ after 10 receives.
pub async fn create(conf: &SdkConfig, prefix: &str) -> anyhow::Result<SpigotResources> {
    validate_prefix(prefix)?;
    let sqs = aws_sdk_sqs::Client::new(conf);

    let dlq_url = create_fifo_queue(&sqs, &format!("{prefix}-dlq.fifo"), Vec::new()).await?;
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .context("reading the DLQ ARN")?
        .attributes
        .and_then(|mut attributes| attributes.remove(&QueueAttributeName::QueueArn))
        .context("the DLQ has no QueueArn attribute")?;
    let redrive_policy = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": MAX_RECEIVE_COUNT,
    })
    .to_string();
    let queue_settings = vec![
        (
            QueueAttributeName::VisibilityTimeout,
            VISIBILITY_TIMEOUT_SECONDS.to_owned(),
        ),
        (QueueAttributeName::RedrivePolicy, redrive_policy),
    ];
    let queue_url =
        create_fifo_queue(&sqs, &format!("{prefix}-queue.fifo"), queue_settings).await?;

    let payload_bucket = format!("{}-payloads", prefix.to_ascii_lowercase().replace('_', "-"));
    s3_client(conf)
        .create_bucket()
        .bucket(&payload_bucket)
        .send()
        .await
        .with_context(|| format!("creating bucket {payload_bucket}"))?;

    let rest_api_id = create_webhook_api(conf, prefix).await?;

    Ok(SpigotResources {
        queue_url,
        dlq_url,
        payload_bucket,
        rest_api_id,
        stage_name: STAGE_NAME.to_owned(),
    })
}

fn validate_prefix(prefix: &str) -> anyhow::Result<()> {
    let starts_alphanumeric = prefix
        .chars()
        .next()
        .is_some_and(|first| first.is_ascii_alphanumeric());
    let allowed_chars = prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    ensure!(
        starts_alphanumeric && allowed_chars && prefix.len() <= MAX_PREFIX_LEN,
        "resource prefix {prefix:?} must be 1 to {MAX_PREFIX_LEN} ASCII letters, digits, \
         '-' or '_', starting with a letter or digit (it names queues and a bucket)"
    );
    Ok(())
}

/// Creates a FIFO queue with the settings both spigot queues share, plus `settings`;
/// returns its URL.
async fn create_fifo_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    settings: Vec<(QueueAttributeName, String)>,
) -> anyhow::Result<String> {
    let mut request = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        // The template's safety net for senders that set no MessageDeduplicationId.
        .attributes(QueueAttributeName::ContentBasedDeduplication, "true")
        .attributes(QueueAttributeName::MaximumMessageSize, MAX_MESSAGE_BYTES)
        .attributes(
            QueueAttributeName::MessageRetentionPeriod,
            RETENTION_SECONDS,
        );
    for (attribute, value) in settings {
        request = request.attributes(attribute, value);
    }
    request
        .send()
        .await
        .with_context(|| format!("creating queue {name}"))?
        .queue_url
        .with_context(|| format!("no URL returned for queue {name}"))
}

/// Creates the REST API with the webhook resources, deploys it and creates the `prod`
/// stage; returns the API id.
async fn create_webhook_api(conf: &SdkConfig, name: &str) -> anyhow::Result<String> {
    let apigateway = aws_sdk_apigateway::Client::new(conf);
    let api_id = apigateway
        .create_rest_api()
        .name(name)
        .send()
        .await
        .with_context(|| format!("creating REST API {name}"))?
        .id
        .context("no id returned for the REST API")?;
    let root_id = apigateway
        .get_resources()
        .rest_api_id(&api_id)
        .send()
        .await
        .context("listing the REST API resources")?
        .items
        .unwrap_or_default()
        .into_iter()
        .find(|resource| resource.path.as_deref() == Some("/"))
        .and_then(|root| root.id)
        .context("the REST API has no root resource")?;

    // Lambda proxy integration, as in template.yaml. The emulator only stores it: the
    // local front door is what calls the function.
    let function_arn =
        format!("arn:aws:lambda:{REGION}:{EMULATOR_ACCOUNT}:function:{name}-process-webhooks");
    let integration_uri = format!(
        "arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{function_arn}/invocations"
    );
    let mut parent_id = root_id;
    for path_part in ["webhook", "{proxy+}"] {
        let resource_id = apigateway
            .create_resource()
            .rest_api_id(&api_id)
            .parent_id(&parent_id)
            .path_part(path_part)
            .send()
            .await
            .with_context(|| format!("creating resource {path_part}"))?
            .id
            .with_context(|| format!("no id returned for resource {path_part}"))?;
        apigateway
            .put_method()
            .rest_api_id(&api_id)
            .resource_id(&resource_id)
            .http_method("ANY")
            .authorization_type("NONE")
            .send()
            .await
            .with_context(|| format!("creating method ANY on {path_part}"))?;
        apigateway
            .put_integration()
            .rest_api_id(&api_id)
            .resource_id(&resource_id)
            .http_method("ANY")
            .r#type(IntegrationType::AwsProxy)
            .integration_http_method("POST")
            .uri(&integration_uri)
            .send()
            .await
            .with_context(|| format!("creating the integration of {path_part}"))?;
        parent_id = resource_id;
    }

    let deployment_id = apigateway
        .create_deployment()
        .rest_api_id(&api_id)
        .send()
        .await
        .context("deploying the REST API")?
        .id
        .context("no id returned for the deployment")?;
    apigateway
        .create_stage()
        .rest_api_id(&api_id)
        .stage_name(STAGE_NAME)
        .deployment_id(deployment_id)
        .variables(STATE_VARIABLE, "ON")
        .send()
        .await
        .with_context(|| format!("creating stage {STAGE_NAME}"))?;
    Ok(api_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_that_would_make_invalid_names_are_refused() {
        assert!(validate_prefix("spigot-test_1").is_ok());
        assert!(validate_prefix(&"a".repeat(MAX_PREFIX_LEN)).is_ok());
        for bad in [
            "",
            "-x",
            "_x",
            "a.b",
            "a b",
            "é",
            &"a".repeat(MAX_PREFIX_LEN + 1),
        ] {
            assert!(validate_prefix(bad).is_err(), "{bad:?} accepted");
        }
    }
}
