use lambda_runtime::{service_fn, Error, LambdaEvent};
use spigot_common::kafka::KafkaEvent;
use spigot_common::{aws, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_tracing();
    let sdk = aws::sdk_config().await?;
    let deps = aliecs_ingest::Deps::from_env(&sdk).await?;
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<KafkaEvent>| async move {
            let summary =
                aliecs_ingest::handle(deps, &event.payload, Some(event.context.deadline)).await?;
            Ok::<_, Error>(serde_json::to_value(summary)?)
        },
    ))
    .await
}
