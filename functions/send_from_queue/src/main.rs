use std::time::Duration;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use send_from_queue::{handle_event, Deps};
use serde_json::Value;
use spigot_common::buffer::WebhookBuffer;
use spigot_common::config::{parse_or, TargetConfig};
use spigot_common::jenkins::JenkinsTarget;
use spigot_common::secrets::SpigotSecrets;
use spigot_common::state::Stage;
use spigot_common::target_routes::TargetRoutes;
use spigot_common::{aws, lambda, telemetry};

/// Time kept back from the invocation's deadline for the final delete, release and report.
const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_tracing();
    let sdk = aws::sdk_config().await?;
    let secrets = SpigotSecrets::load(&aws::s3_client(&sdk)).await?;
    let deps = Deps {
        stage: Stage::from_env(&sdk)?,
        buffer: WebhookBuffer::from_env(&sdk)?,
        target: JenkinsTarget::new(TargetConfig::from_env()?, secrets.jenkins)?,
        routes: TargetRoutes::from_env()?,
        concurrency: parse_or("DRAIN_CONCURRENCY", 1usize)?,
        down_streak: Default::default(),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = Some(lambda::deadline(event.context.deadline, DEADLINE_MARGIN));
        let summary = handle_event(deps, event.payload, deadline).await?;
        Ok::<_, Error>(serde_json::to_value(summary)?)
    }))
    .await
}
