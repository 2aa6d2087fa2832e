use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use spigot_common::{aws, lambda, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_tracing();
    let sdk = aws::sdk_config().await?;
    let deps = gitlab_ingest::Deps::from_env(&sdk).await?;
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = lambda::deadline(event.context.deadline, gitlab_ingest::DEADLINE_MARGIN);
        Ok::<_, Error>(gitlab_ingest::handle(deps, event.payload, Some(deadline)).await?)
    }))
    .await
}
