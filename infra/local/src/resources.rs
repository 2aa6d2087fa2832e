//! The template's AWS resources, created on the emulator: queues (with their redrive
//! policies), buckets, and the REST APIs with their routes, stage and stage variables.
//! Names follow `{stack}-{logical-id}`, as CloudFormation derives them.

use std::collections::{BTreeMap, HashMap};

use anyhow::{ensure, Context};
use aws_config::SdkConfig;
use aws_sdk_apigateway::types::IntegrationType;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;
use spigot_common::state::STATE_VARIABLE;

use spigot_common::aws::s3_client;

use crate::aws_emulator::REGION;
use crate::template::{EventSource, FunctionSpec, Physical, Resolver, Template, ACCOUNT};

/// Longest stack name for which every derived name is valid (S3's 63 characters leave
/// room for the longest logical id suffix we use).
const MAX_STACK_NAME_LEN: usize = 30;

/// A REST API on the emulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalApi {
    pub id: String,
    pub stage: String,
}

/// What [`create`] made, and how the template's references resolve to it.
#[derive(Debug, Clone)]
pub struct LocalResources {
    /// The template as it applies locally: resources whose condition is false left out.
    pub template: Template,
    pub resolver: Resolver,
    /// By logical id.
    pub apis: BTreeMap<String, LocalApi>,
}

impl LocalResources {
    pub fn stack_name(&self) -> &str {
        &self.resolver.stack_name
    }

    /// `Ref` of a resource: a queue's URL, a bucket's name, an API's id.
    pub fn reference(&self, logical_id: &str) -> anyhow::Result<&str> {
        self.resolver
            .resources
            .get(logical_id)
            .map(|p| p.reference.as_str())
            .with_context(|| format!("no local resource {logical_id}"))
    }

    pub fn api(&self, logical_id: &str) -> anyhow::Result<&LocalApi> {
        self.apis
            .get(logical_id)
            .with_context(|| format!("no local API {logical_id}"))
    }

    /// The function's environment as the template sets it, resolved locally; variables
    /// that resolve to no value (`AWS::NoValue`) are left out.
    pub fn function_env(&self, function: &FunctionSpec) -> anyhow::Result<Vec<(String, String)>> {
        let mut env = Vec::new();
        for (name, value) in &function.environment {
            if let Some(value) = self
                .resolver
                .resolve(value)
                .with_context(|| format!("{}: variable {name}", function.logical_id))?
            {
                env.push((name.clone(), value));
            }
        }
        Ok(env)
    }
}

/// Creates the template's resources for stack `stack_name`. `parameters` override the
/// template's defaults.
pub async fn create(
    sdk: &SdkConfig,
    template: &Template,
    stack_name: &str,
    parameters: &HashMap<String, String>,
) -> anyhow::Result<LocalResources> {
    validate_stack_name(stack_name)?;
    let mut resolver = Resolver {
        stack_name: stack_name.to_owned(),
        parameters: resolve_parameters(template, parameters)?,
        resources: HashMap::new(),
        conditions: template.conditions(),
    };
    let template = &template.enabled(&resolver)?;
    let functions = template.functions()?;
    // Functions first: API integrations and the outputs refer to them.
    for function in &functions {
        let name = format!("{stack_name}-{}", function.logical_id);
        let arn = format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}");
        resolver.resources.insert(
            function.logical_id.clone(),
            Physical::new(name).with("Arn", arn),
        );
    }
    create_queues(sdk, template, &mut resolver).await?;
    create_buckets(sdk, template, &mut resolver).await?;
    let apis = create_apis(sdk, template, &functions, &mut resolver).await?;
    Ok(LocalResources {
        template: template.clone(),
        resolver,
        apis,
    })
}

fn validate_stack_name(name: &str) -> anyhow::Result<()> {
    let valid = name.len() <= MAX_STACK_NAME_LEN
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    ensure!(
        valid,
        "stack name {name:?} must be 1 to {MAX_STACK_NAME_LEN} lower-case letters, digits or \
         '-', starting with a letter (it names queues and buckets)"
    );
    Ok(())
}

/// The template's defaults, overridden by `given`. A parameter with neither stays
/// unset: resolving a reference to it is an error then.
fn resolve_parameters(
    template: &Template,
    given: &HashMap<String, String>,
) -> anyhow::Result<HashMap<String, String>> {
    let declared = template.parameters();
    for name in given.keys() {
        ensure!(
            declared.contains_key(name),
            "the template has no parameter {name}"
        );
    }
    Ok(declared
        .into_iter()
        .filter_map(|(name, default)| {
            let value = given.get(&name).cloned().or(default)?;
            Some((name, value))
        })
        .collect())
}

/// `DeadLetterQueue` → `dead-letter-queue`.
fn kebab(logical_id: &str) -> String {
    let mut out = String::new();
    for (i, c) in logical_id.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// CloudFormation queue properties that are SQS attributes of the same name.
const QUEUE_ATTRIBUTES: &[&str] = &[
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
];

async fn create_queues(
    sdk: &SdkConfig,
    template: &Template,
    resolver: &mut Resolver,
) -> anyhow::Result<()> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let queues = template.queues();
    for queue in &queues {
        let fifo = queue
            .properties
            .get("FifoQueue")
            .is_some_and(|v| v == true || v == "true");
        let name = match queue.properties.get("QueueName") {
            Some(name) => resolver.resolve_required(name)?,
            None => format!(
                "{}-{}{}",
                resolver.stack_name,
                kebab(&queue.logical_id),
                if fifo { ".fifo" } else { "" }
            ),
        };
        let mut request = sqs.create_queue().queue_name(&name);
        for attribute in QUEUE_ATTRIBUTES {
            if let Some(value) = queue.properties.get(*attribute) {
                if let Some(value) = resolver.resolve(value)? {
                    request = request.attributes(QueueAttributeName::from(*attribute), value);
                }
            }
        }
        let url = request
            .send()
            .await
            .with_context(|| format!("creating queue {name}"))?
            .queue_url
            .with_context(|| format!("no URL returned for queue {name}"))?;
        let arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}");
        resolver.resources.insert(
            queue.logical_id.clone(),
            Physical::new(&url)
                .with("Arn", arn)
                .with("QueueName", name)
                .with("QueueUrl", &url),
        );
    }
    // Redrive policies last: they name other queues' ARNs.
    for queue in &queues {
        let Some(policy) = queue.properties.get("RedrivePolicy") else {
            continue;
        };
        let mut resolved = serde_json::Map::new();
        for (key, value) in policy.as_object().context("RedrivePolicy is an object")? {
            let text = resolver.resolve_required(value)?;
            // maxReceiveCount is a number in the policy JSON.
            let value = text
                .parse::<u64>()
                .map(Value::from)
                .unwrap_or(Value::String(text));
            resolved.insert(key.clone(), value);
        }
        let url = resolver.resources[&queue.logical_id].reference.clone();
        sqs.set_queue_attributes()
            .queue_url(&url)
            .attributes(
                QueueAttributeName::RedrivePolicy,
                Value::Object(resolved).to_string(),
            )
            .send()
            .await
            .with_context(|| format!("setting the redrive policy of {}", queue.logical_id))?;
    }
    Ok(())
}

async fn create_buckets(
    sdk: &SdkConfig,
    template: &Template,
    resolver: &mut Resolver,
) -> anyhow::Result<()> {
    let s3 = s3_client(sdk);
    for (logical_id, properties) in template.buckets() {
        let name = match properties.get("BucketName") {
            Some(name) => resolver.resolve_required(name)?,
            None => format!("{}-{}", resolver.stack_name, kebab(&logical_id)),
        };
        s3.create_bucket()
            .bucket(&name)
            .send()
            .await
            .with_context(|| format!("creating bucket {name}"))?;
        resolver.resources.insert(
            logical_id,
            Physical::new(&name)
                .with("Arn", format!("arn:aws:s3:::{name}"))
                .with("DomainName", format!("{name}.s3.amazonaws.com")),
        );
    }
    Ok(())
}

/// Creates every REST API with the routes the functions' Api events give it, deploys it,
/// and creates its stage with the template's stage variables.
async fn create_apis(
    sdk: &SdkConfig,
    template: &Template,
    functions: &[FunctionSpec],
    resolver: &mut Resolver,
) -> anyhow::Result<BTreeMap<String, LocalApi>> {
    let apigateway = aws_sdk_apigateway::Client::new(sdk);
    let mut apis = BTreeMap::new();
    for api in template.apis() {
        let name = format!("{}-{}", resolver.stack_name, api.logical_id);
        let created = apigateway
            .create_rest_api()
            .name(&name)
            .send()
            .await
            .with_context(|| format!("creating REST API {name}"))?;
        let api_id = created.id.context("no id returned for the REST API")?;
        let mut paths: HashMap<String, String> = apigateway
            .get_resources()
            .rest_api_id(&api_id)
            .send()
            .await
            .context("listing the REST API resources")?
            .items
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| Some((r.path?, r.id?)))
            .collect();
        ensure!(paths.contains_key("/"), "the REST API has no root resource");

        for function in functions {
            let function_arn = resolver.resources[&function.logical_id].attributes["Arn"].clone();
            let uri = format!(
                "arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{function_arn}/invocations"
            );
            for event in &function.events {
                let EventSource::Api {
                    api: target,
                    path,
                    method,
                } = &event.source
                else {
                    continue;
                };
                if target != &api.logical_id {
                    continue;
                }
                let resource_id = ensure_path(&apigateway, &api_id, &mut paths, path).await?;
                apigateway
                    .put_method()
                    .rest_api_id(&api_id)
                    .resource_id(&resource_id)
                    .http_method(method)
                    .authorization_type("NONE")
                    .send()
                    .await
                    .with_context(|| format!("creating method {method} on {path}"))?;
                // Lambda proxy integration, as SAM makes it. The emulator only stores
                // it: the local front door is what calls the function.
                apigateway
                    .put_integration()
                    .rest_api_id(&api_id)
                    .resource_id(&resource_id)
                    .http_method(method)
                    .r#type(IntegrationType::AwsProxy)
                    .integration_http_method("POST")
                    .uri(&uri)
                    .send()
                    .await
                    .with_context(|| format!("creating the integration of {path}"))?;
            }
        }

        let deployment_id = apigateway
            .create_deployment()
            .rest_api_id(&api_id)
            .send()
            .await
            .context("deploying the REST API")?
            .id
            .context("no id returned for the deployment")?;
        let mut stage = apigateway
            .create_stage()
            .rest_api_id(&api_id)
            .stage_name(&api.stage_name)
            .deployment_id(deployment_id);
        for (name, value) in &api.variables {
            if let Some(value) = resolver.resolve(value)? {
                stage = stage.variables(name, value);
            }
        }
        if !api.variables.contains_key(STATE_VARIABLE) {
            // The template leaves the switch to the operator; this is what `make deploy`
            // does on a first deploy (`toggle_spigot restore ON`).
            stage = stage.variables(STATE_VARIABLE, "ON");
        }
        stage
            .send()
            .await
            .with_context(|| format!("creating stage {}", api.stage_name))?;
        resolver.resources.insert(
            api.logical_id.clone(),
            Physical::new(&api_id).with("RootResourceId", paths["/"].clone()),
        );
        apis.insert(
            api.logical_id.clone(),
            LocalApi {
                id: api_id,
                stage: api.stage_name.clone(),
            },
        );
    }
    for function in functions {
        for event in &function.events {
            if let EventSource::Api { api, .. } = &event.source {
                ensure!(
                    apis.contains_key(api),
                    "function {} routes to API {api}, which the template does not declare",
                    function.logical_id
                );
            }
        }
    }
    Ok(apis)
}

/// The resource id of `path`, creating the missing resources along it.
async fn ensure_path(
    apigateway: &aws_sdk_apigateway::Client,
    api_id: &str,
    paths: &mut HashMap<String, String>,
    path: &str,
) -> anyhow::Result<String> {
    let mut current = String::new();
    let mut parent_id = paths["/"].clone();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        current = format!("{current}/{part}");
        parent_id = match paths.get(&current) {
            Some(id) => id.clone(),
            None => {
                let id = apigateway
                    .create_resource()
                    .rest_api_id(api_id)
                    .parent_id(&parent_id)
                    .path_part(part)
                    .send()
                    .await
                    .with_context(|| format!("creating resource {current}"))?
                    .id
                    .with_context(|| format!("no id returned for resource {current}"))?;
                paths.insert(current.clone(), id.clone());
                id
            }
        };
    }
    Ok(parent_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_logical_ids() {
        assert_eq!(kebab("DeadLetterQueue"), "dead-letter-queue");
        assert_eq!(kebab("Queue"), "queue");
    }

    #[test]
    fn stack_names_that_would_make_invalid_names_are_refused() {
        assert!(validate_stack_name("spigot-test-1").is_ok());
        for bad in [
            "",
            "-x",
            "1x",
            "a.b",
            "a b",
            "A",
            "é",
            &"a".repeat(MAX_STACK_NAME_LEN + 1),
        ] {
            assert!(validate_stack_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
