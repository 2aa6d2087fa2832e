//! Settings read from the environment, once per cold start.

use std::str::FromStr;
use std::time::Duration;

#[derive(thiserror::Error)]
pub enum ConfigError {
    #[error("missing required setting {0}")]
    Missing(&'static str),
    #[error("setting {name} has an invalid value: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// A cold start that fails returns this from `main`, which prints it with `Debug`: the
/// sentence, not the struct.
impl std::fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// A non-empty environment variable.
pub fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

pub fn required(name: &'static str) -> Result<String, ConfigError> {
    optional(name).ok_or(ConfigError::Missing(name))
}

pub fn parse_or<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match optional(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e: T::Err| ConfigError::Invalid {
                name,
                reason: e.to_string(),
            }),
    }
}

/// `ALLOW_UNSIGNED=true`: requests whose sender has no secret configured are taken
/// unchecked. Only the exact word `true` turns it on; anything else but `false` or
/// unset is a configuration error, so a typo cannot open the door.
pub fn allow_unsigned() -> Result<bool, ConfigError> {
    match optional("ALLOW_UNSIGNED").map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "false" => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(_) => Err(ConfigError::Invalid {
            name: "ALLOW_UNSIGNED",
            reason: "must be true or false".into(),
        }),
    }
}

pub const DEFAULT_HEALTH_PATH: &str = "/login";
pub const DEFAULT_STAGE_NAME: &str = "prod";
/// GitHub gives up after 10 s; leave room for queueing after a slow target.
pub const DEFAULT_FORWARD_TIMEOUT_MS: u64 = 8_000;

/// Where webhooks go and how long we wait for the target.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub url: String,
    pub health_path: String,
    pub timeout: Duration,
}

impl TargetConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let url = required("TARGET_URL")?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                name: "TARGET_URL",
                reason: "must start with http:// or https://".into(),
            });
        }
        Ok(Self {
            url: url.trim_end_matches('/').to_string(),
            health_path: optional("TARGET_HEALTH_PATH")
                .unwrap_or_else(|| DEFAULT_HEALTH_PATH.into()),
            timeout: Duration::from_millis(parse_or(
                "FORWARD_TIMEOUT_MS",
                DEFAULT_FORWARD_TIMEOUT_MS,
            )?),
        })
    }
}

/// The webhook buffer: the queue, its DLQ and the payload bucket.
#[derive(Debug, Clone)]
pub struct BufferConfig {
    pub queue_url: String,
    pub dlq_url: Option<String>,
    pub payload_bucket: String,
}

impl BufferConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            queue_url: required("SPIGOT_QUEUE_URL")?,
            dlq_url: optional("SPIGOT_DLQ_URL"),
            payload_bucket: required("PAYLOAD_BUCKET")?,
        })
    }
}

/// The API Gateway stage whose `spigot_state` variable is the switch.
#[derive(Debug, Clone)]
pub struct StageConfig {
    pub rest_api_id: String,
    pub stage_name: String,
}

impl StageConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            rest_api_id: required("REST_API_ID")?,
            stage_name: optional("STAGE_NAME").unwrap_or_else(|| DEFAULT_STAGE_NAME.into()),
        })
    }
}
