//! AWS SDK configuration shared by every function and the CLI.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};

/// The SDK config from the standard chain; `AWS_ENDPOINT_URL` points it at the local
/// emulator.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// S3 with path-style addressing when an endpoint override is set: the local emulator
/// serves buckets by path, not by virtual host.
pub fn s3_client(conf: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let path_style = conf.endpoint_url().is_some();
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(path_style)
            .build(),
    )
}

/// A one-line description of an SDK error: the service's code and message when there is
/// one, else the whole error chain.
pub fn error_text<E>(err: &E) -> String
where
    E: ProvideErrorMetadata + std::error::Error,
{
    match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        _ => DisplayErrorContext(err).to_string(),
    }
}
