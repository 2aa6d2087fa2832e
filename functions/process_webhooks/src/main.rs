use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use process_webhooks::{handle_request_until, Deps, Senders};
use spigot_common::buffer::WebhookBuffer;
use spigot_common::config::{allow_unsigned, TargetConfig};
use spigot_common::jenkins::JenkinsTarget;
use spigot_common::secrets::SpigotSecrets;
use spigot_common::target_routes::TargetRoutes;
use spigot_common::{aws, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_tracing();
    let sdk = aws::sdk_config().await?;
    let secrets = SpigotSecrets::load(&aws::s3_client(&sdk)).await?;
    let routes = TargetRoutes::from_env()?;
    let senders = Senders::new(secrets.github, allow_unsigned()?);
    for warning in senders.check(&routes)? {
        tracing::warn!("{warning}");
    }
    let deps = Deps {
        buffer: WebhookBuffer::from_env(&sdk)?,
        target: JenkinsTarget::new(TargetConfig::from_env()?, secrets.jenkins)?,
        routes,
        senders,
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayProxyRequest>| async move {
            let deadline = Some(event.context.deadline);
            Ok::<_, Error>(handle_request_until(deps, event.payload, deadline).await)
        },
    ))
    .await
}
