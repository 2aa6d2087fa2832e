//! Which API stage, queues and bucket the CLI works on.
//!
//! Values come in three layers, the first that has a value wins:
//! 1. flags on the command line;
//! 2. the outputs of the CloudFormation stack named by `--stack`;
//! 3. the environment (`REST_API_ID`, `STAGE_NAME`, ...; the names the functions use),
//!    then the defaults (`--stage prod`).
//!
//! The stack sits above the environment because `--stack` is asked for on the command
//! line, while the environment may hold leftovers of another setup; and a default
//! (`prod`) must never hide the stack's `StageName`.

use std::future::Future;

use anyhow::{bail, Context};

/// The CloudFormation outputs read by `--stack` (template.yaml keeps these names).
pub const OUTPUT_REST_API_ID: &str = "RestApiId";
pub const OUTPUT_STAGE_NAME: &str = "StageName";
pub const OUTPUT_QUEUE_URL: &str = "QueueUrl";
pub const OUTPUT_DLQ_URL: &str = "DlqUrl";
pub const OUTPUT_PAYLOAD_BUCKET: &str = "PayloadBucket";

/// GetRestApis returns at most 500 items per page.
const API_PAGE_LIMIT: i32 = 500;
/// A guard against a server that keeps handing out positions.
const MAX_API_PAGES: usize = 1_000;

/// How the REST API is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiRef {
    Id(String),
    /// Looked up with GetRestApis; exactly one API must have this name.
    Name(String),
}

/// One layer of settings; `None` means "this layer does not say".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layer {
    pub api: Option<ApiRef>,
    pub stage: Option<String>,
    pub queue_url: Option<String>,
    pub dlq_url: Option<String>,
    pub payload_bucket: Option<String>,
}

/// The settings after merging the layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub api: Option<ApiRef>,
    pub stage: String,
    pub queue_url: Option<String>,
    pub dlq_url: Option<String>,
    pub payload_bucket: Option<String>,
}

impl Settings {
    /// The queue URL, or an error saying how to give it.
    pub fn queue_url(&self, command: &str) -> anyhow::Result<String> {
        required(
            &self.queue_url,
            command,
            "the queue URL",
            "--queue-url",
            "SPIGOT_QUEUE_URL",
            OUTPUT_QUEUE_URL,
        )
    }

    pub fn dlq_url(&self, command: &str) -> anyhow::Result<String> {
        required(
            &self.dlq_url,
            command,
            "the DLQ URL",
            "--dlq-url",
            "SPIGOT_DLQ_URL",
            OUTPUT_DLQ_URL,
        )
    }

    pub fn payload_bucket(&self, command: &str) -> anyhow::Result<String> {
        required(
            &self.payload_bucket,
            command,
            "the payload bucket",
            "--payload-bucket",
            "PAYLOAD_BUCKET",
            OUTPUT_PAYLOAD_BUCKET,
        )
    }

    pub fn api(&self) -> anyhow::Result<&ApiRef> {
        self.api.as_ref().with_context(|| {
            format!(
                "which REST API? pass --api-id or --api-name, set REST_API_ID, or use --stack \
                 (output {OUTPUT_REST_API_ID})"
            )
        })
    }
}

fn required(
    value: &Option<String>,
    command: &str,
    what: &str,
    flag: &str,
    env: &str,
    output: &str,
) -> anyhow::Result<String> {
    value.clone().with_context(|| {
        format!(
            "`{command}` needs {what}: pass {flag}, set {env}, or use --stack (output {output})"
        )
    })
}

/// Command line over stack outputs over environment and defaults, field by field.
pub fn merge(command_line: Layer, stack: Layer, environment: Layer) -> Settings {
    let layers = [command_line, stack, environment];
    let pick = |get: fn(&Layer) -> Option<String>| layers.iter().find_map(get);
    Settings {
        api: layers.iter().find_map(|l| l.api.clone()),
        stage: pick(|l| l.stage.clone())
            .unwrap_or_else(|| spigot_common::config::DEFAULT_STAGE_NAME.to_string()),
        queue_url: pick(|l| l.queue_url.clone()),
        dlq_url: pick(|l| l.dlq_url.clone()),
        payload_bucket: pick(|l| l.payload_bucket.clone()),
    }
}

/// The settings layer given by a stack's outputs (key, value); empty values are ignored.
pub fn stack_layer<'a>(outputs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Layer {
    let mut layer = Layer::default();
    for (key, value) in outputs {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let value = value.to_string();
        match key {
            OUTPUT_REST_API_ID => layer.api = Some(ApiRef::Id(value)),
            OUTPUT_STAGE_NAME => layer.stage = Some(value),
            OUTPUT_QUEUE_URL => layer.queue_url = Some(value),
            OUTPUT_DLQ_URL => layer.dlq_url = Some(value),
            OUTPUT_PAYLOAD_BUCKET => layer.payload_bucket = Some(value),
            _ => {}
        }
    }
    layer
}

/// Reads the outputs of `stack` with DescribeStacks.
pub async fn read_stack(
    cloudformation: &aws_sdk_cloudformation::Client,
    stack: &str,
) -> anyhow::Result<Layer> {
    let output = cloudformation
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|err| anyhow::anyhow!(spigot_common::aws::error_text(&err)))
        .with_context(|| format!("reading the outputs of stack {stack}"))?;
    let Some(found) = output.stacks().first() else {
        bail!("stack {stack} not found");
    };
    let layer = stack_layer(
        found
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?, o.output_value()?))),
    );
    if layer == Layer::default() {
        bail!(
            "stack {stack} has none of the outputs {OUTPUT_REST_API_ID}, {OUTPUT_STAGE_NAME}, \
             {OUTPUT_QUEUE_URL}, {OUTPUT_DLQ_URL}, {OUTPUT_PAYLOAD_BUCKET}: is it the spigot stack?"
        );
    }
    Ok(layer)
}

/// One REST API as GetRestApis lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSummary {
    pub id: String,
    pub name: String,
}

/// One page of GetRestApis: its items and the position of the next page, if any.
#[derive(Debug, Clone, Default)]
pub struct ApiPage {
    pub items: Vec<ApiSummary>,
    pub next_position: Option<String>,
}

/// Finds the one REST API named `name`, reading every page (`fetch` gets the position
/// of the page to read, `None` for the first). The original tool read only the first
/// page, so an API beyond it was "not found".
pub async fn find_api_id<F, Fut>(name: &str, mut fetch: F) -> anyhow::Result<String>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = anyhow::Result<ApiPage>>,
{
    let mut position: Option<String> = None;
    let mut matches = Vec::new();
    let mut seen = 0usize;
    for _ in 0..MAX_API_PAGES {
        let page = fetch(position.clone()).await?;
        seen += page.items.len();
        matches.extend(page.items.into_iter().filter(|api| api.name == name));
        match page.next_position.filter(|p| !p.is_empty()) {
            // A server that hands back the same position would loop forever.
            Some(next) if Some(&next) != position.as_ref() => position = Some(next),
            _ => return pick_api(name, matches, seen),
        }
    }
    bail!("GetRestApis returned more than {MAX_API_PAGES} pages; pass --api-id instead")
}

fn pick_api(name: &str, mut matches: Vec<ApiSummary>, seen: usize) -> anyhow::Result<String> {
    match matches.len() {
        0 => bail!("no REST API is named {name:?} (looked through {seen}); check --api-name and --region, or pass --api-id"),
        1 => Ok(matches.remove(0).id),
        n => {
            let ids = matches
                .iter()
                .map(|api| api.id.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            bail!("{n} REST APIs are named {name:?} (ids {ids}); pass --api-id to pick one")
        }
    }
}

/// The REST API id: as given, or looked up by name through every page of GetRestApis.
pub async fn resolve_api_id(
    apigateway: &aws_sdk_apigateway::Client,
    api: &ApiRef,
) -> anyhow::Result<String> {
    match api {
        ApiRef::Id(id) => Ok(id.clone()),
        ApiRef::Name(name) => {
            find_api_id(name, |position| async move {
                let output = apigateway
                    .get_rest_apis()
                    .set_position(position)
                    .limit(API_PAGE_LIMIT)
                    .send()
                    .await
                    .map_err(|err| anyhow::anyhow!(spigot_common::aws::error_text(&err)))
                    .context("listing REST APIs (GetRestApis)")?;
                Ok(ApiPage {
                    items: output
                        .items()
                        .iter()
                        .filter_map(|api| {
                            Some(ApiSummary {
                                id: api.id()?.to_string(),
                                name: api.name()?.to_string(),
                            })
                        })
                        .collect(),
                    next_position: output.position().map(str::to_string),
                })
            })
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn api(id: &str, name: &str) -> ApiSummary {
        ApiSummary {
            id: id.into(),
            name: name.into(),
        }
    }

    /// Serves `pages` by position "p1", "p2", ... and records the positions asked for.
    async fn lookup(
        name: &str,
        pages: Vec<Vec<ApiSummary>>,
    ) -> (anyhow::Result<String>, Vec<Option<String>>) {
        let asked = RefCell::new(Vec::new());
        let count = pages.len();
        let result = find_api_id(name, |position| {
            asked.borrow_mut().push(position.clone());
            let index = match position.as_deref() {
                None => 0,
                Some(p) => p.trim_start_matches('p').parse::<usize>().unwrap(),
            };
            let items = pages[index].clone();
            async move {
                Ok(ApiPage {
                    items,
                    next_position: (index + 1 < count).then(|| format!("p{}", index + 1)),
                })
            }
        })
        .await;
        (result, asked.into_inner())
    }

    #[tokio::test]
    async fn finds_an_api_on_a_later_page() {
        let pages = vec![
            vec![api("a1", "other"), api("a2", "more")],
            vec![api("b1", "unrelated")],
            vec![api("c1", "spigot"), api("c2", "spigot-staging")],
        ];
        let (result, asked) = lookup("spigot", pages).await;
        assert_eq!(result.unwrap(), "c1");
        assert_eq!(asked, vec![None, Some("p1".into()), Some("p2".into())]);
    }

    #[tokio::test]
    async fn refuses_a_name_used_twice_across_pages() {
        let pages = vec![
            vec![api("a1", "spigot")],
            vec![api("b1", "x")],
            vec![api("c1", "spigot")],
        ];
        let error = lookup("spigot", pages).await.0.unwrap_err().to_string();
        assert!(
            error.contains("2 REST APIs") && error.contains("a1, c1"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn says_how_many_were_searched_when_none_matches() {
        let pages = vec![vec![api("a1", "Spigot")], vec![api("b1", "spigot ")]];
        let error = lookup("spigot", pages).await.0.unwrap_err().to_string();
        assert!(
            error.contains("no REST API") && error.contains("looked through 2"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn stops_when_the_position_repeats() {
        let mut calls = 0;
        let result = find_api_id("x", |_| {
            calls += 1;
            async {
                Ok(ApiPage {
                    items: vec![api("i", "x")],
                    next_position: Some("same".into()),
                })
            }
        })
        .await;
        // Page 1 (no position) and page "same" once; then the repeat ends the loop.
        assert_eq!(calls, 2);
        assert!(result.unwrap_err().to_string().contains("2 REST APIs"));
    }

    #[test]
    fn command_line_beats_stack_beats_environment() {
        let command_line = Layer {
            queue_url: Some("cli-queue".into()),
            ..Layer::default()
        };
        let stack = stack_layer([
            (OUTPUT_REST_API_ID, "stack-api"),
            (OUTPUT_STAGE_NAME, "live"),
            (OUTPUT_QUEUE_URL, "stack-queue"),
            (OUTPUT_DLQ_URL, ""),
            ("ApiUrl", "https://example"),
        ]);
        let environment = Layer {
            api: Some(ApiRef::Id("env-api".into())),
            stage: Some("prod".into()),
            dlq_url: Some("env-dlq".into()),
            payload_bucket: Some("env-bucket".into()),
            ..Layer::default()
        };
        let settings = merge(command_line, stack, environment);
        assert_eq!(
            settings,
            Settings {
                api: Some(ApiRef::Id("stack-api".into())),
                stage: "live".into(),
                queue_url: Some("cli-queue".into()),
                // The stack's empty output does not hide the environment's value.
                dlq_url: Some("env-dlq".into()),
                payload_bucket: Some("env-bucket".into()),
            }
        );
    }

    #[test]
    fn stage_defaults_to_prod() {
        let settings = merge(Layer::default(), Layer::default(), Layer::default());
        assert_eq!(settings.stage, "prod");
        assert_eq!(settings.api, None);
    }
}
