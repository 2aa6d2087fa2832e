//! template.yaml as the source of the local wiring: the functions, their environment and
//! event sources, the queues, buckets and APIs. It is read by the SAM CLI's own YAML
//! reader (from the project venv), which turns the short forms (`!Ref`, `!GetAtt`, ...)
//! into their JSON forms, exactly as `sam build` sees them.
//!
//! [`Resolver`] evaluates the intrinsic functions the template uses against the local
//! resources, so a function runs locally with the environment the template gives it in
//! AWS.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::{Map, Value};

use crate::aws_emulator::REGION;
use crate::venv::try_venv_bin;

/// The account the emulator puts every resource in.
pub const ACCOUNT: &str = "123456789012";

/// SAM's default function timeout, in seconds.
const DEFAULT_TIMEOUT_SECS: u64 = 3;
const DEFAULT_MEMORY_MB: u64 = 128;

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    root: Value,
}

/// A function and how it is wired.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    pub logical_id: String,
    /// The cargo binary (`Metadata.BuildProperties.Binary`): also its local name.
    pub binary: String,
    pub timeout: Duration,
    pub memory_mb: u64,
    /// `Environment.Variables`, not yet resolved.
    pub environment: BTreeMap<String, Value>,
    pub events: Vec<EventSpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventSpec {
    pub name: String,
    pub source: EventSource,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventSource {
    /// An API Gateway REST route (Lambda proxy integration).
    Api {
        /// Logical id of the `AWS::Serverless::Api`.
        api: String,
        path: String,
        method: String,
    },
    /// An EventBridge schedule.
    Schedule {
        expression: String,
        input: Option<Value>,
    },
    /// An SQS event source mapping.
    Sqs {
        /// The queue, as the template refers to it (`!GetAtt Queue.Arn`).
        queue: Value,
        batch_size: u32,
        batching_window: Duration,
        report_batch_item_failures: bool,
    },
    /// A self-managed Kafka or MSK event source mapping.
    Kafka { topics: Vec<Value>, batch_size: u32 },
}

/// An `AWS::SQS::Queue`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSpec {
    pub logical_id: String,
    pub properties: Map<String, Value>,
}

/// An `AWS::Serverless::Api` (REST).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiSpec {
    pub logical_id: String,
    pub stage_name: String,
    /// Stage variables, not yet resolved.
    pub variables: BTreeMap<String, Value>,
    pub binary_media_types: Vec<String>,
}

impl Template {
    /// template.yaml at the workspace root, read once per process.
    pub fn workspace() -> anyhow::Result<Template> {
        static PARSED: OnceLock<Result<Template, String>> = OnceLock::new();
        PARSED
            .get_or_init(|| Template::load(&workspace_template()).map_err(|e| format!("{e:#}")))
            .clone()
            .map_err(|e| anyhow!(e))
    }

    /// Reads `path` with the SAM CLI's YAML reader.
    pub fn load(path: &Path) -> anyhow::Result<Template> {
        let python = try_venv_bin("python")?;
        let output = std::process::Command::new(&python)
            .args([
                "-c",
                "import json, sys\n\
                 from samcli.yamlhelper import yaml_parse\n\
                 print(json.dumps(yaml_parse(open(sys.argv[1]).read())))",
            ])
            .arg(path)
            .output()
            .with_context(|| format!("running {}", python.display()))?;
        if !output.status.success() {
            bail!(
                "reading {} failed: {}",
                path.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let root: Value = serde_json::from_slice(&output.stdout)
            .with_context(|| format!("{} did not read as a template", path.display()))?;
        Self::from_json(root)
    }

    pub fn from_json(root: Value) -> anyhow::Result<Template> {
        if !root.get("Resources").is_some_and(Value::is_object) {
            bail!("the template has no Resources section");
        }
        Ok(Template { root })
    }

    /// The whole template, as read (e.g. to check a changed copy of it).
    pub fn root(&self) -> &Value {
        &self.root
    }

    /// Parameter names with their defaults.
    pub fn parameters(&self) -> BTreeMap<String, Option<String>> {
        self.section("Parameters")
            .map(|(name, spec)| (name.clone(), spec.get("Default").map(scalar_text)))
            .collect()
    }

    /// The template's condition definitions.
    pub fn conditions(&self) -> HashMap<String, Value> {
        self.section("Conditions")
            .map(|(name, spec)| (name.clone(), spec.clone()))
            .collect()
    }

    /// `(logical id, resource)` of every resource of type `kind`.
    pub fn resources_of_type<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
        self.section("Resources")
            .filter(move |(_, resource)| resource.get("Type").and_then(Value::as_str) == Some(kind))
    }

    /// The template without the resources whose `Condition` is false for `resolver`
    /// (e.g. the Port flow when `PortOrgId` is empty).
    pub fn enabled(&self, resolver: &Resolver) -> anyhow::Result<Template> {
        let mut root = self.root.clone();
        let resources = root["Resources"].as_object_mut().expect("checked at load");
        let mut disabled = Vec::new();
        for (id, resource) in resources.iter() {
            if let Some(condition) = resource.get("Condition").and_then(Value::as_str) {
                if !resolver
                    .condition(condition)
                    .with_context(|| format!("the condition of {id}"))?
                {
                    disabled.push(id.clone());
                }
            }
        }
        for id in disabled {
            resources.remove(&id);
        }
        Ok(Template { root })
    }

    pub fn resource_type(&self, logical_id: &str) -> Option<&str> {
        self.root["Resources"]
            .get(logical_id)?
            .get("Type")?
            .as_str()
    }

    pub fn queues(&self) -> Vec<QueueSpec> {
        self.resources_of_type("AWS::SQS::Queue")
            .map(|(id, resource)| QueueSpec {
                logical_id: id.clone(),
                properties: resource
                    .get("Properties")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect()
    }

    pub fn buckets(&self) -> Vec<(String, Map<String, Value>)> {
        self.resources_of_type("AWS::S3::Bucket")
            .map(|(id, resource)| {
                (
                    id.clone(),
                    resource
                        .get("Properties")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default(),
                )
            })
            .collect()
    }

    pub fn apis(&self) -> Vec<ApiSpec> {
        self.resources_of_type("AWS::Serverless::Api")
            .map(|(id, resource)| {
                let properties = &resource["Properties"];
                ApiSpec {
                    logical_id: id.clone(),
                    stage_name: properties
                        .get("StageName")
                        .map(scalar_text)
                        .unwrap_or_else(|| "Prod".into()),
                    variables: properties
                        .get("Variables")
                        .and_then(Value::as_object)
                        .map(|vars| vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                        .unwrap_or_default(),
                    binary_media_types: properties
                        .get("BinaryMediaTypes")
                        .and_then(Value::as_array)
                        .map(|types| types.iter().map(scalar_text).collect())
                        .unwrap_or_default(),
                }
            })
            .collect()
    }

    /// Every `AWS::Serverless::Function`, with `Globals.Function` applied.
    pub fn functions(&self) -> anyhow::Result<Vec<FunctionSpec>> {
        let globals = self.root["Globals"]["Function"].clone();
        self.resources_of_type("AWS::Serverless::Function")
            .map(|(id, resource)| function_spec(id, resource, &globals))
            .collect()
    }

    fn section<'a>(&'a self, name: &str) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
        self.root
            .get(name)
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|section| section.iter())
    }
}

fn function_spec(id: &str, resource: &Value, globals: &Value) -> anyhow::Result<FunctionSpec> {
    let properties = &resource["Properties"];
    let property = |name: &str| {
        properties
            .get(name)
            .or_else(|| globals.get(name))
            .filter(|v| !v.is_null())
    };
    let binary = resource["Metadata"]["BuildProperties"]["Binary"]
        .as_str()
        .with_context(|| format!("function {id} names no Metadata.BuildProperties.Binary"))?
        .to_owned();
    let mut environment: BTreeMap<String, Value> = BTreeMap::new();
    for source in [
        &globals["Environment"]["Variables"],
        &properties["Environment"]["Variables"],
    ] {
        if let Some(vars) = source.as_object() {
            environment.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    let events = properties
        .get("Events")
        .and_then(Value::as_object)
        .map(|events| {
            events
                .iter()
                .map(|(name, event)| {
                    event_source(event)
                        .map(|source| EventSpec {
                            name: name.clone(),
                            source,
                        })
                        .with_context(|| format!("event {name} of function {id}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .transpose()?
        .unwrap_or_default();
    Ok(FunctionSpec {
        logical_id: id.to_owned(),
        binary,
        timeout: Duration::from_secs(
            property("Timeout")
                .and_then(number)
                .unwrap_or(DEFAULT_TIMEOUT_SECS),
        ),
        memory_mb: property("MemorySize")
            .and_then(number)
            .unwrap_or(DEFAULT_MEMORY_MB),
        environment,
        events,
    })
}

fn event_source(event: &Value) -> anyhow::Result<EventSource> {
    let properties = &event["Properties"];
    let text = |name: &str| properties.get(name).map(scalar_text);
    let kind = event["Type"].as_str().context("no Type")?;
    Ok(match kind {
        "Api" => EventSource::Api {
            api: properties["RestApiId"]["Ref"]
                .as_str()
                .unwrap_or("ServerlessRestApi")
                .to_owned(),
            path: text("Path").context("an Api event needs a Path")?,
            method: text("Method")
                .context("an Api event needs a Method")?
                .to_ascii_uppercase(),
        },
        "Schedule" | "ScheduleV2" => EventSource::Schedule {
            expression: text("Schedule")
                .or_else(|| text("ScheduleExpression"))
                .context("a schedule needs an expression")?,
            input: properties.get("Input").map(|input| match input {
                Value::String(json) => serde_json::from_str(json).unwrap_or(input.clone()),
                other => other.clone(),
            }),
        },
        "SQS" => EventSource::Sqs {
            queue: properties
                .get("Queue")
                .cloned()
                .context("an SQS event needs a Queue")?,
            batch_size: properties.get("BatchSize").and_then(number).unwrap_or(10) as u32,
            batching_window: Duration::from_secs(
                properties
                    .get("MaximumBatchingWindowInSeconds")
                    .and_then(number)
                    .unwrap_or(0),
            ),
            report_batch_item_failures: properties["FunctionResponseTypes"]
                .as_array()
                .is_some_and(|types| types.iter().any(|t| t == "ReportBatchItemFailures")),
        },
        "SelfManagedKafka" | "MSK" => EventSource::Kafka {
            topics: properties["Topics"]
                .as_array()
                .cloned()
                .context("a Kafka event needs Topics")?,
            batch_size: properties.get("BatchSize").and_then(number).unwrap_or(100) as u32,
        },
        other => bail!("event type {other} is not run locally"),
    })
}

/// A number given as a number or as a string.
fn number(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

/// A scalar as CloudFormation passes it on: strings as they are, numbers and booleans as
/// their text.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `<workspace>/template.yaml`.
pub fn workspace_template() -> PathBuf {
    crate::venv::workspace_root().join("template.yaml")
}

/// What a `Ref` and a `GetAtt` of a local resource give.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Physical {
    pub reference: String,
    pub attributes: HashMap<String, String>,
}

impl Physical {
    pub fn new(reference: impl Into<String>) -> Self {
        Physical {
            reference: reference.into(),
            attributes: HashMap::new(),
        }
    }

    pub fn with(mut self, attribute: &str, value: impl Into<String>) -> Self {
        self.attributes.insert(attribute.to_owned(), value.into());
        self
    }
}

/// Evaluates the intrinsic functions of template values against local resources.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    pub stack_name: String,
    pub parameters: HashMap<String, String>,
    pub resources: HashMap<String, Physical>,
    pub conditions: HashMap<String, Value>,
}

impl Resolver {
    /// The value as a string; `None` for `AWS::NoValue` (the property is left out).
    pub fn resolve(&self, value: &Value) -> anyhow::Result<Option<String>> {
        Ok(match value {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(_) | Value::Bool(_) => Some(scalar_text(value)),
            Value::Object(object) if object.len() == 1 => {
                let (function, argument) = object.iter().next().expect("one entry");
                self.intrinsic(function, argument)?
            }
            other => bail!("cannot resolve {other} to a string"),
        })
    }

    /// Like [`Resolver::resolve`], for values that must be there.
    pub fn resolve_required(&self, value: &Value) -> anyhow::Result<String> {
        self.resolve(value)?
            .with_context(|| format!("{value} resolves to no value"))
    }

    fn intrinsic(&self, function: &str, argument: &Value) -> anyhow::Result<Option<String>> {
        match function {
            "Ref" => self.reference(argument.as_str().context("Ref takes a name")?),
            "Fn::GetAtt" => {
                let (resource, attribute) = match argument {
                    Value::String(dotted) => dotted
                        .split_once('.')
                        .context("GetAtt takes Resource.Attribute")?,
                    Value::Array(parts) if parts.len() == 2 => (
                        parts[0].as_str().context("GetAtt resource")?,
                        parts[1].as_str().context("GetAtt attribute")?,
                    ),
                    other => bail!("GetAtt cannot take {other}"),
                };
                self.attribute(resource, attribute).map(Some)
            }
            "Fn::Sub" => {
                let (text, variables) = match argument {
                    Value::String(text) => (text.as_str(), None),
                    Value::Array(parts) if parts.len() == 2 => (
                        parts[0].as_str().context("Sub takes a string")?,
                        parts[1].as_object(),
                    ),
                    other => bail!("Sub cannot take {other}"),
                };
                self.substitute(text, variables).map(Some)
            }
            "Fn::Join" => {
                let parts = argument
                    .as_array()
                    .context("Join takes [separator, list]")?;
                let separator = parts
                    .first()
                    .and_then(Value::as_str)
                    .context("Join separator")?;
                let items = parts
                    .get(1)
                    .and_then(Value::as_array)
                    .context("Join list")?;
                let mut texts = Vec::new();
                for item in items {
                    if let Some(text) = self.resolve(item)? {
                        texts.push(text);
                    }
                }
                Ok(Some(texts.join(separator)))
            }
            "Fn::If" => {
                let parts = argument
                    .as_array()
                    .filter(|p| p.len() == 3)
                    .context("If takes 3 items")?;
                let condition = parts[0].as_str().context("If names a condition")?;
                let branch = if self.condition(condition)? {
                    &parts[1]
                } else {
                    &parts[2]
                };
                self.resolve(branch)
            }
            other => bail!("{other} is not evaluated locally"),
        }
    }

    fn reference(&self, name: &str) -> anyhow::Result<Option<String>> {
        Ok(Some(match name {
            "AWS::NoValue" => return Ok(None),
            "AWS::Region" => REGION.to_owned(),
            "AWS::AccountId" => ACCOUNT.to_owned(),
            "AWS::Partition" => "aws".to_owned(),
            "AWS::URLSuffix" => "amazonaws.com".to_owned(),
            "AWS::StackName" => self.stack_name.clone(),
            _ => {
                if let Some(value) = self.parameters.get(name) {
                    value.clone()
                } else if let Some(physical) = self.resources.get(name) {
                    physical.reference.clone()
                } else {
                    bail!("Ref {name}: no such local resource, and no value for a parameter of that name")
                }
            }
        }))
    }

    fn attribute(&self, resource: &str, attribute: &str) -> anyhow::Result<String> {
        self.resources
            .get(resource)
            .with_context(|| format!("GetAtt {resource}.{attribute}: no such local resource"))?
            .attributes
            .get(attribute)
            .cloned()
            .with_context(|| format!("GetAtt {resource}.{attribute}: not known locally"))
    }

    fn substitute(
        &self,
        text: &str,
        variables: Option<&Map<String, Value>>,
    ) -> anyhow::Result<String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            // `${!Literal}` stays as `${Literal}`.
            if let Some(literal) = after.strip_prefix('!') {
                out.push_str("${");
                rest = literal;
                continue;
            }
            let end = after.find('}').context("Sub: unclosed ${")?;
            let name = &after[..end];
            let value = match variables.and_then(|vars| vars.get(name)) {
                Some(value) => self.resolve_required(value)?,
                None => match name.split_once('.') {
                    Some((resource, attribute)) if !name.starts_with("AWS::") => {
                        self.attribute(resource, attribute)?
                    }
                    _ => self.reference(name)?.unwrap_or_default(),
                },
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Evaluates the named condition.
    pub fn condition(&self, name: &str) -> anyhow::Result<bool> {
        let definition = self
            .conditions
            .get(name)
            .with_context(|| format!("no condition {name}"))?;
        self.truth(definition)
    }

    fn truth(&self, value: &Value) -> anyhow::Result<bool> {
        let object = value
            .as_object()
            .filter(|o| o.len() == 1)
            .context("a condition is one function")?;
        let (function, argument) = object.iter().next().expect("one entry");
        let items = || argument.as_array().context("a list of conditions");
        Ok(match function.as_str() {
            "Fn::Equals" => {
                let items = items()?;
                anyhow::ensure!(items.len() == 2, "Equals takes two values");
                self.resolve(&items[0])? == self.resolve(&items[1])?
            }
            "Fn::Not" => !self.truth(items()?.first().context("Not takes one condition")?)?,
            "Fn::And" => items()?
                .iter()
                .map(|c| self.truth(c))
                .collect::<anyhow::Result<Vec<_>>>()?
                .into_iter()
                .all(|b| b),
            "Fn::Or" => items()?
                .iter()
                .map(|c| self.truth(c))
                .collect::<anyhow::Result<Vec<_>>>()?
                .into_iter()
                .any(|b| b),
            "Condition" => self.condition(argument.as_str().context("Condition names one")?)?,
            other => bail!("{other} is not a condition function"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resolver() -> Resolver {
        Resolver {
            stack_name: "local".into(),
            parameters: HashMap::from([
                ("TargetUrl".into(), "http://127.0.0.1:1".into()),
                ("Bucket".into(), "".into()),
            ]),
            resources: HashMap::from([(
                "Queue".into(),
                Physical::new("http://sqs/queue").with("Arn", "arn:aws:sqs:us-east-1:1:queue"),
            )]),
            conditions: HashMap::from([(
                "HasBucket".into(),
                json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "Bucket"}, ""]}]}),
            )]),
        }
    }

    #[test]
    fn resolves_the_intrinsics_the_template_uses() {
        let r = resolver();
        assert_eq!(
            r.resolve(&json!({"Ref": "TargetUrl"})).unwrap().unwrap(),
            "http://127.0.0.1:1"
        );
        assert_eq!(
            r.resolve(&json!({"Ref": "Queue"})).unwrap().unwrap(),
            "http://sqs/queue"
        );
        assert_eq!(
            r.resolve(&json!({"Fn::GetAtt": ["Queue", "Arn"]}))
                .unwrap()
                .unwrap(),
            "arn:aws:sqs:us-east-1:1:queue"
        );
        assert_eq!(
            r.resolve(&json!({"Fn::Sub": "${Queue.Arn}/x/${AWS::Region}/${!Keep}"}))
                .unwrap()
                .unwrap(),
            "arn:aws:sqs:us-east-1:1:queue/x/us-east-1/${Keep}"
        );
        assert_eq!(r.resolve(&json!(300)).unwrap().unwrap(), "300");
        assert_eq!(r.resolve(&json!({"Ref": "AWS::NoValue"})).unwrap(), None);
        assert_eq!(
            r.resolve(&json!({"Fn::If": ["HasBucket", "yes", {"Ref": "AWS::NoValue"}]}))
                .unwrap(),
            None
        );
        assert!(r.resolve(&json!({"Ref": "Missing"})).is_err());
        assert!(r.resolve(&json!({"Fn::GetAtt": "Queue.Nope"})).is_err());
    }

    #[test]
    fn reads_functions_events_and_globals() {
        let template = Template::from_json(json!({
            "Globals": {"Function": {"Timeout": 30, "Environment": {"Variables": {"RUST_LOG": "info"}}}},
            "Resources": {
                "F": {
                    "Type": "AWS::Serverless::Function",
                    "Metadata": {"BuildProperties": {"Binary": "f"}},
                    "Properties": {
                        "MemorySize": 256,
                        "Environment": {"Variables": {"A": {"Ref": "Queue"}}},
                        "Events": {
                            "Web": {"Type": "Api", "Properties": {"RestApiId": {"Ref": "Api"}, "Path": "/x/{proxy+}", "Method": "any"}},
                            "Tick": {"Type": "Schedule", "Properties": {"Schedule": "rate(1 minute)"}},
                            "Work": {"Type": "SQS", "Properties": {"Queue": {"Fn::GetAtt": ["Queue", "Arn"]}, "BatchSize": 5, "FunctionResponseTypes": ["ReportBatchItemFailures"]}},
                            "Runs": {"Type": "SelfManagedKafka", "Properties": {"Topics": ["org.runs"]}}
                        }
                    }
                }
            }
        }))
        .unwrap();
        let functions = template.functions().unwrap();
        let f = &functions[0];
        assert_eq!(f.binary, "f");
        assert_eq!(f.timeout, Duration::from_secs(30));
        assert_eq!(f.memory_mb, 256);
        assert_eq!(f.environment.keys().collect::<Vec<_>>(), ["A", "RUST_LOG"]);
        assert_eq!(f.events.len(), 4);
        assert!(f.events.iter().any(|e| e.source
            == EventSource::Api {
                api: "Api".into(),
                path: "/x/{proxy+}".into(),
                method: "ANY".into()
            }));
        assert!(f.events.iter().any(|e| matches!(
            &e.source,
            EventSource::Sqs {
                batch_size: 5,
                report_batch_item_failures: true,
                ..
            }
        )));
        assert!(f.events.iter().any(|e| matches!(&e.source, EventSource::Kafka { topics, .. } if topics == &[json!("org.runs")])));
    }
}
