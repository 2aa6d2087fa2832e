//! The spigot's switch: the `spigot_state` variable of the API Gateway stage.

use aws_sdk_apigateway::types::{Op, PatchOperation};

use crate::aws::error_text;
use crate::config::{ConfigError, StageConfig};

pub const STATE_VARIABLE: &str = "spigot_state";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SpigotState {
    /// Webhooks go to the target at once.
    On,
    /// Webhooks wait in the queue.
    Off,
    /// The backlog is being replayed; new webhooks queue behind it until it is empty.
    Draining,
}

impl SpigotState {
    pub fn as_str(self) -> &'static str {
        match self {
            SpigotState::On => "ON",
            SpigotState::Off => "OFF",
            SpigotState::Draining => "DRAINING",
        }
    }

    /// The state as the dashboard's `SpigotState` metric plots it: 0 OFF, 1 DRAINING,
    /// 2 ON (higher is more open).
    pub fn metric_value(self) -> u64 {
        match self {
            SpigotState::Off => 0,
            SpigotState::Draining => 1,
            SpigotState::On => 2,
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_uppercase().as_str() {
            "ON" => Some(SpigotState::On),
            "OFF" => Some(SpigotState::Off),
            "DRAINING" => Some(SpigotState::Draining),
            _ => None,
        }
    }

    /// A missing or unknown value is treated as OFF, so no request is lost to a typo;
    /// the caller logs the error.
    pub fn from_variable(value: Option<&str>) -> Result<Self, String> {
        match value {
            None => Err(format!("stage variable {STATE_VARIABLE} is not set; treating as OFF")),
            Some(v) => Self::parse(v).ok_or_else(|| {
                format!("stage variable {STATE_VARIABLE}={v:?} is not ON, OFF or DRAINING; treating as OFF")
            }),
        }
    }
}

impl std::fmt::Display for SpigotState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("stage {stage} of API {api}: {reason}")]
pub struct StageError {
    pub api: String,
    pub stage: String,
    pub reason: String,
}

/// Reads and sets the state on the stage itself.
#[derive(Clone)]
pub struct Stage {
    client: aws_sdk_apigateway::Client,
    config: StageConfig,
}

impl Stage {
    pub fn new(client: aws_sdk_apigateway::Client, config: StageConfig) -> Self {
        Self { client, config }
    }

    /// The stage named by `REST_API_ID` and `STAGE_NAME`.
    pub fn from_env(sdk: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        Ok(Self::new(
            aws_sdk_apigateway::Client::new(sdk),
            StageConfig::from_env()?,
        ))
    }

    pub fn config(&self) -> &StageConfig {
        &self.config
    }

    fn error(&self, reason: String) -> StageError {
        StageError {
            api: self.config.rest_api_id.clone(),
            stage: self.config.stage_name.clone(),
            reason,
        }
    }

    /// The raw variable value (`None` when unset).
    pub async fn variable(&self) -> Result<Option<String>, StageError> {
        let stage = self
            .client
            .get_stage()
            .rest_api_id(&self.config.rest_api_id)
            .stage_name(&self.config.stage_name)
            .send()
            .await
            .map_err(|err| self.error(error_text(&err)))?;
        Ok(stage
            .variables
            .and_then(|mut vars| vars.remove(STATE_VARIABLE)))
    }

    /// The state, with missing or unknown values read as OFF (and logged).
    pub async fn state(&self) -> Result<SpigotState, StageError> {
        let value = self.variable().await?;
        Ok(
            SpigotState::from_variable(value.as_deref()).unwrap_or_else(|problem| {
                tracing::error!("{problem}");
                SpigotState::Off
            }),
        )
    }

    pub async fn set_state(&self, state: SpigotState) -> Result<(), StageError> {
        self.client
            .update_stage()
            .rest_api_id(&self.config.rest_api_id)
            .stage_name(&self.config.stage_name)
            .patch_operations(
                PatchOperation::builder()
                    .op(Op::Replace)
                    .path(format!("/variables/{STATE_VARIABLE}"))
                    .value(state.as_str())
                    .build(),
            )
            .send()
            .await
            .map_err(|err| self.error(error_text(&err)))?;
        tracing::info!(state = state.as_str(), "spigot state set");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_states_and_treats_the_rest_as_off() {
        assert_eq!(SpigotState::from_variable(Some("ON")), Ok(SpigotState::On));
        assert_eq!(
            SpigotState::from_variable(Some("off")),
            Ok(SpigotState::Off)
        );
        assert_eq!(
            SpigotState::from_variable(Some(" Draining ")),
            Ok(SpigotState::Draining)
        );
        assert!(SpigotState::from_variable(None).is_err());
        assert!(SpigotState::from_variable(Some("OPEN")).is_err());
    }
}
