//! The webhook buffer's resources (the spigot part of template.yaml) on the emulator,
//! by the names the spigot's code and tests use: the FIFO queue and its DLQ, the payload
//! bucket, and the REST API whose stage carries the `spigot_state` variable.

use std::collections::HashMap;

use aws_config::SdkConfig;

use crate::resources::{self, LocalResources};
use crate::template::Template;

/// Names and ids of the created resources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpigotResources {
    pub queue_url: String,
    pub dlq_url: String,
    pub payload_bucket: String,
    pub rest_api_id: String,
    pub stage_name: String,
}

impl SpigotResources {
    /// The spigot's part of resources created from template.yaml.
    pub fn from_local(local: &LocalResources) -> anyhow::Result<SpigotResources> {
        let api = local.api("SpigotApi")?;
        Ok(SpigotResources {
            queue_url: local.reference("Queue")?.to_owned(),
            dlq_url: local.reference("DeadLetterQueue")?.to_owned(),
            payload_bucket: local.reference("PayloadBucket")?.to_owned(),
            rest_api_id: api.id.clone(),
            stage_name: api.stage.clone(),
        })
    }
}

/// Creates every resource of template.yaml for stack `stack_name` (lower-case letters,
/// digits and `-`) and returns the spigot's.
pub async fn create(conf: &SdkConfig, stack_name: &str) -> anyhow::Result<SpigotResources> {
    let template = Template::workspace()?;
    let local = resources::create(conf, &template, stack_name, &HashMap::new()).await?;
    SpigotResources::from_local(&local)
}
