use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use spigot_common::{aws, lambda, telemetry};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_tracing();
    let sdk = aws::sdk_config().await?;
    let deps = log_tailer::Deps::from_env(&sdk).await?;
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        // The handler keeps its own margin (log_tailer::DEADLINE_MARGIN) before this.
        let deadline = lambda::deadline(event.context.deadline, Duration::ZERO);
        let response = log_tailer::handle_batch(deps, event.payload, deadline).await;
        Ok::<_, Error>(response)
    }))
    .await
}
