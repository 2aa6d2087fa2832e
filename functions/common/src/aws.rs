//! AWS SDK configuration shared by every function and the CLI.
//!
//! The SDK sends its requests through our reqwest client ([`ReqwestTransport`]): one HTTP
//! and TLS stack per process instead of two. The SDK's own client loads and parses the
//! system certificate store at client construction, which was most of a cold start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;

use crate::config::ConfigError;

/// The config loader with our transport: the standard chain for region and credentials;
/// `AWS_ENDPOINT_URL` points it at the local emulator. Callers may set more (region,
/// endpoint, credentials) before `load()`.
pub fn sdk_loader() -> Result<aws_config::ConfigLoader, ConfigError> {
    Ok(aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http_client()?))
}

/// The SDK config from the standard chain.
pub async fn sdk_config() -> Result<aws_config::SdkConfig, ConfigError> {
    Ok(sdk_loader()?.load().await)
}

/// The SDK's HTTP client: our reqwest client, one per distinct timeout setting.
pub fn http_client() -> Result<SharedHttpClient, ConfigError> {
    // Built once here so that a bad TLS setting fails the cold start, not a request.
    let _checked = crate::http::client_builder()?;
    Ok(SharedHttpClient::new(ReqwestTransport::default()))
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

/// Creates the object `key` with `body` only if none is there (S3 `If-None-Match: *`):
/// `true` when this call created it, `false` when it existed.
pub async fn put_if_absent(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<bool, String> {
    put_conditional(s3.put_object().if_none_match("*"), bucket, key, body).await
}

/// Replaces `key` only if it is still the version `etag` names (S3 `If-Match`); `false`
/// when another writer changed or removed it first.
pub async fn put_if_match(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    etag: &str,
    body: Vec<u8>,
) -> Result<bool, String> {
    put_conditional(s3.put_object().if_match(etag), bucket, key, body).await
}

async fn put_conditional(
    request: aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<bool, String> {
    let result = request
        .bucket(bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from(body))
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        // 412: the condition failed; 404: gone (If-Match); 409: a concurrent put of the
        // same key is in flight.
        Err(err)
            if matches!(
                err.raw_response().map(|r| r.status().as_u16()),
                Some(412 | 404 | 409)
            ) =>
        {
            Ok(false)
        }
        Err(err) => Err(error_text(&err)),
    }
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

/// Connect and read timeouts, as the SDK asks for them.
type TimeoutKey = (Option<Duration>, Option<Duration>);

/// The SDK's [`HttpClient`] over reqwest. The SDK does retries, operation timeouts and
/// signing; this only moves bytes. Redirects are not followed (the SDK expects to see
/// them) and bodies are not decompressed (the SDK checks the checksums of what was sent).
#[derive(Debug, Default)]
struct ReqwestTransport {
    clients: Mutex<HashMap<TimeoutKey, reqwest::Client>>,
}

impl ReqwestTransport {
    fn client_for(&self, settings: &HttpConnectorSettings) -> Result<reqwest::Client, String> {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let mut builder = crate::http::client_builder()
            .map_err(|err| err.to_string())?
            .redirect(reqwest::redirect::Policy::none());
        if let Some(timeout) = key.0 {
            builder = builder.connect_timeout(timeout);
        }
        if let Some(timeout) = key.1 {
            builder = builder.read_timeout(timeout);
        }
        let client = builder.build().map_err(|err| err.to_string())?;
        clients.insert(key, client.clone());
        Ok(client)
    }
}

impl HttpClient for ReqwestTransport {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(ReqwestConnector {
            client: self.client_for(settings).map_err(Arc::new),
        })
    }
}

#[derive(Debug)]
struct ReqwestConnector {
    /// The error is kept and returned by every call: `http_connector` cannot fail.
    client: Result<reqwest::Client, Arc<String>>,
}

impl HttpConnector for ReqwestConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        HttpConnectorFuture::new(async move {
            let client = client.map_err(|err| ConnectorError::user(err.to_string().into()))?;
            let request = to_reqwest(request)?;
            let response = client.execute(request).await.map_err(connector_error)?;
            let response = http::Response::from(response).map(SdkBody::from_body_1_x);
            aws_smithy_runtime_api::http::Response::try_from(response)
                .map_err(|err| ConnectorError::other(err.into(), None))
        })
    }
}

fn to_reqwest(request: HttpRequest) -> Result<reqwest::Request, ConnectorError> {
    let request = request
        .try_into_http1x()
        .map_err(|err| ConnectorError::user(err.into()))?
        // Wrapped, not copied: an 8 MiB upload part stays one buffer. The SDK sets
        // Content-Length itself, and the body's size hint is exact when it is in memory.
        .map(reqwest::Body::wrap);
    reqwest::Request::try_from(request).map_err(|err| ConnectorError::user(err.into()))
}

/// Maps reqwest's errors onto the kinds the SDK's retry rules know: a timeout or a
/// broken connection is transient; a request that never connected is safe to resend.
fn connector_error(err: reqwest::Error) -> ConnectorError {
    if err.is_timeout() {
        ConnectorError::timeout(err.into())
    } else if err.is_connect() {
        ConnectorError::io(err.into()).never_connected()
    } else if err.is_builder() {
        ConnectorError::user(err.into())
    } else {
        ConnectorError::io(err.into())
    }
}
