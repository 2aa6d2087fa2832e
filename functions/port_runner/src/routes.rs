//! Which Jenkins job an action runs, and how: `routes.json` in the credentials bucket,
//! or `ROUTES` inline.
//!
//! ```json
//! {
//!   "servers": {"main": "https://jenkins.example.com"},
//!   "unrouted": "fail",
//!   "routes": {
//!     "deploy_microservice_kafka": {
//!       "server": "main",
//!       "job": "deploy/microservice",
//!       "intro": "Deploying {{inputs.serviceName}} v{{inputs.version}} to {{inputs.environment}}…",
//!       "timeout_minutes": 60,
//!       "abort_on_timeout": true,
//!       "abort_when_run_ends": true,
//!       "index_log": false,
//!       "entity": {"blueprint": "deployment", "identifier": "{{inputs.serviceName}}-{{inputs.environment}}",
//!                  "properties": {"version": "{{inputs.version}}"}}
//!     }
//!   }
//! }
//! ```
//!
//! `parameters` maps Jenkins parameter names to templates (`{{inputs.NAME}}`,
//! `{{run.id}}`, `{{action}}`, `{{entity}}`, `{{user}}`); without it every input goes as
//! its UPPER_SNAKE name (`serviceName` → `SERVICE_NAME`) plus `PORT_RUN_ID`, which also
//! keeps two runs with the same inputs from being merged into one build. `{}` triggers
//! `/build`, for jobs without parameters. A parameter whose template names a missing
//! input is left out, so that Jenkins uses its default.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};
use spigot_common::jenkins::builds::JobPath;

use crate::message::RunRequest;

pub const DEFAULT_TIMEOUT_MINUTES: f64 = 60.0;
/// A week: longer is a typo, and a run that long is not being watched.
const MAX_TIMEOUT_MINUTES: f64 = 7.0 * 24.0 * 60.0;
/// The parameter that names the run in every default mapping.
pub const RUN_ID_PARAMETER: &str = "PORT_RUN_ID";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routes {
    /// Server name → base URL.
    pub servers: BTreeMap<String, String>,
    #[serde(default)]
    pub unrouted: Unrouted,
    pub routes: BTreeMap<String, Route>,
}

/// What happens to a run of an action no route names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unrouted {
    /// Left alone: another consumer of the topic owns the action (a shared topic).
    Skip,
    /// Ended FAILURE in Port, saying no route exists: a Kafka run nobody takes would
    /// otherwise stay in progress forever.
    #[default]
    Fail,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub server: String,
    pub job: JobSpec,
    #[serde(default)]
    pub parameters: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub intro: Option<String>,
    /// The watchdog; fractions allowed (`0.5`: 30 s).
    #[serde(default = "default_timeout")]
    pub timeout_minutes: f64,
    #[serde(default)]
    pub abort_on_timeout: bool,
    /// Abort the build when its run is ended in Port before the build ends (a user who
    /// stopped the run in Port's UI, or a run Port no longer knows).
    #[serde(default)]
    pub abort_when_run_ends: bool,
    #[serde(default)]
    pub index_log: bool,
    #[serde(default)]
    pub entity: Option<EntitySpec>,
}

fn default_timeout() -> f64 {
    DEFAULT_TIMEOUT_MINUTES
}

/// `"folder/job"`, or the segments, e.g. `["repo", "feature/x"]` for a branch name
/// with a `/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum JobSpec {
    Path(String),
    Segments(Vec<String>),
}

impl JobSpec {
    pub fn path(&self) -> JobPath {
        match self {
            JobSpec::Path(path) => JobPath::parse(path),
            JobSpec::Segments(segments) => JobPath(segments.clone()),
        }
    }
}

/// The entity upserted, tied to the run, when the build succeeds; values are templates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntitySpec {
    pub blueprint: String,
    pub identifier: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RoutesError {
    #[error("the routes are not valid JSON of the documented shape: {0}")]
    Shape(String),
    #[error("route {action} names server {server:?}, which `servers` does not list")]
    UnknownServer { action: String, server: String },
    #[error("route {action} has an empty job path")]
    EmptyJob { action: String },
    #[error("route {action}: timeout_minutes must be more than 0 and at most a week")]
    Timeout { action: String },
}

impl Routes {
    pub fn parse(text: &str) -> Result<Routes, RoutesError> {
        // Told without quoting the routes: a server URL may carry credentials.
        let routes: Routes = spigot_common::json_shape::parse(text.as_bytes())
            .map_err(|e| RoutesError::Shape(e.to_string()))?;
        for (action, route) in &routes.routes {
            if !routes.servers.contains_key(&route.server) {
                return Err(RoutesError::UnknownServer {
                    action: action.clone(),
                    server: route.server.clone(),
                });
            }
            if !(route.timeout_minutes > 0.0 && route.timeout_minutes <= MAX_TIMEOUT_MINUTES) {
                return Err(RoutesError::Timeout {
                    action: action.clone(),
                });
            }
            if route.job.path().0.is_empty() {
                return Err(RoutesError::EmptyJob {
                    action: action.clone(),
                });
            }
        }
        Ok(routes)
    }

    /// The route of an action: `blueprint/action` when the message names a blueprint and
    /// such a route exists (legacy messages name actions per blueprint), else `action`.
    pub fn find(&self, blueprint: Option<&str>, action: &str) -> Option<&Route> {
        blueprint
            .and_then(|blueprint| self.routes.get(&format!("{blueprint}/{action}")))
            .or_else(|| self.routes.get(action))
    }
}

impl Route {
    pub fn timeout(&self) -> Duration {
        // Checked by Routes::parse: positive and finite.
        Duration::from_secs_f64(self.timeout_minutes * 60.0)
    }

    /// The Jenkins parameters of a run.
    pub fn parameters(&self, run: &RunRequest) -> Vec<(String, String)> {
        match &self.parameters {
            Some(mapping) => mapping
                .iter()
                .filter_map(|(name, template)| Some((name.clone(), render(template, run)?)))
                .collect(),
            None => {
                let mut parameters: Vec<(String, String)> = run
                    .inputs
                    .iter()
                    .map(|(name, value)| (upper_snake(name), value_text(value)))
                    .collect();
                parameters.push((RUN_ID_PARAMETER.into(), run.run_id.clone()));
                parameters
            }
        }
    }

    /// The first log line of the run.
    pub fn intro(&self, run: &RunRequest, job: &JobPath) -> String {
        match self.intro.as_deref().and_then(|t| render(t, run)) {
            Some(intro) => intro,
            None => format!("Starting Jenkins job {} on {}…", job.display(), self.server),
        }
    }

    /// The entity to upsert on success, rendered; `None` when a template names a
    /// missing input.
    pub fn entity(&self, run: &RunRequest) -> Option<(String, Value)> {
        let spec = self.entity.as_ref()?;
        let mut properties = Map::new();
        for (name, template) in &spec.properties {
            properties.insert(name.clone(), Value::String(render(template, run)?));
        }
        let mut entity = serde_json::json!({
            "identifier": render(&spec.identifier, run)?,
            "properties": properties,
        });
        if let Some(title) = &spec.title {
            entity["title"] = Value::String(render(title, run)?);
        }
        Some((spec.blueprint.clone(), entity))
    }
}

/// Fills `{{inputs.NAME}}`, `{{run.id}}`, `{{action}}`, `{{entity}}`, `{{user}}`;
/// `None` when one of them has no value.
pub fn render(template: &str, run: &RunRequest) -> Option<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}")? + start;
        let name = rest[start + 2..end].trim();
        let value = match name {
            "run.id" => Some(run.run_id.clone()),
            "action" => Some(run.action.clone()),
            "entity" => run.entity.clone(),
            "user" => run.user.clone(),
            _ => name
                .strip_prefix("inputs.")
                .and_then(|input| run.inputs.get(input))
                .map(value_text),
        }?;
        out.push_str(&value);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    Some(out)
}

/// `serviceName` → `SERVICE_NAME`, `change-reason` → `CHANGE_REASON`.
pub fn upper_snake(name: &str) -> String {
    let mut out = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() && previous_lower {
            out.push('_');
        }
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_uppercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
    }
    out
}

/// An input as a Jenkins parameter value: strings as they are, anything else as JSON.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run() -> RunRequest {
        RunRequest {
            run_id: "r_42".into(),
            action: "deploy_microservice_kafka".into(),
            blueprint: Some("service".into()),
            inputs: json!({"serviceName": "my-service", "version": "1.2.3", "environment": "dev", "changeReason": "hotfix", "replicas": 3})
                .as_object()
                .unwrap()
                .clone(),
            entity: None,
            user: Some("ana@example.com".into()),
        }
    }

    fn one_route(route: Value) -> Routes {
        Routes::parse(&json!({"servers": {"main": "https://ci.example.com"}, "routes": {"deploy_microservice_kafka": route}}).to_string()).unwrap()
    }

    #[test]
    fn a_blueprint_route_wins_over_the_action_alone() {
        let routes = Routes::parse(
            &json!({"servers": {"m": "https://ci.example.com"}, "routes": {
                "create": {"server": "m", "job": "generic/create"},
                "vm/create": {"server": "m", "job": "vm/create"},
            }})
            .to_string(),
        )
        .unwrap();
        let job = |blueprint, action| {
            routes
                .find(blueprint, action)
                .map(|r| r.job.path().display())
        };
        assert_eq!(job(Some("vm"), "create").as_deref(), Some("vm » create"));
        assert_eq!(
            job(Some("service"), "create").as_deref(),
            Some("generic » create")
        );
        assert_eq!(job(None, "create").as_deref(), Some("generic » create"));
        assert_eq!(job(Some("vm"), "delete"), None);
        assert_eq!(
            routes.unrouted,
            Unrouted::Fail,
            "the default: no run is left hanging"
        );
    }

    #[test]
    fn the_default_mapping_is_the_reference_example() {
        let routes = one_route(json!({"server": "main", "job": "deploy/microservice"}));
        let route = &routes.routes["deploy_microservice_kafka"];
        let parameters: BTreeMap<String, String> = route.parameters(&run()).into_iter().collect();
        assert_eq!(parameters["SERVICE_NAME"], "my-service");
        assert_eq!(parameters["VERSION"], "1.2.3");
        assert_eq!(parameters["ENVIRONMENT"], "dev");
        assert_eq!(parameters["CHANGE_REASON"], "hotfix");
        assert_eq!(parameters["REPLICAS"], "3");
        assert_eq!(parameters["PORT_RUN_ID"], "r_42");
        assert_eq!(route.timeout(), Duration::from_secs(3600));
        assert_eq!(
            route.intro(&run(), &route.job.path()),
            "Starting Jenkins job deploy » microservice on main…"
        );
    }

    #[test]
    fn templates_fill_parameters_intro_and_entity() {
        let routes = one_route(json!({
            "server": "main",
            "job": ["repo", "feature/x"],
            "parameters": {"SERVICE": "{{inputs.serviceName}}", "RUN": "{{run.id}}", "MISSING": "{{inputs.nope}}"},
            "intro": "Deploying {{inputs.serviceName}} v{{inputs.version}} to {{inputs.environment}}…",
            "entity": {"blueprint": "deployment", "identifier": "{{inputs.serviceName}}-{{inputs.environment}}", "properties": {"version": "{{inputs.version}}"}},
        }));
        let route = &routes.routes["deploy_microservice_kafka"];
        assert_eq!(
            route.parameters(&run()),
            [
                ("RUN".to_owned(), "r_42".to_owned()),
                ("SERVICE".to_owned(), "my-service".to_owned())
            ]
        );
        assert_eq!(
            route.intro(&run(), &route.job.path()),
            "Deploying my-service v1.2.3 to dev…"
        );
        assert_eq!(route.job.path().url_path(), "/job/repo/job/feature%252Fx");
        let (blueprint, entity) = route.entity(&run()).unwrap();
        assert_eq!(blueprint, "deployment");
        assert_eq!(
            entity,
            json!({"identifier": "my-service-dev", "properties": {"version": "1.2.3"}})
        );
        let empty = one_route(json!({"server": "main", "job": "x", "parameters": {}}));
        assert!(
            empty.routes["deploy_microservice_kafka"]
                .parameters(&run())
                .is_empty(),
            "/build"
        );
    }

    #[test]
    fn bad_routes_are_refused_with_the_reason() {
        let unknown = Routes::parse(
            &json!({"servers": {}, "routes": {"a": {"server": "x", "job": "j"}}}).to_string(),
        );
        assert!(matches!(unknown, Err(RoutesError::UnknownServer { .. })));
        let typo = Routes::parse(&json!({"servers": {"m": "https://x"}, "routes": {"a": {"server": "m", "job": "j", "timeout": 5}}}).to_string());
        assert!(matches!(typo, Err(RoutesError::Shape(e)) if e.contains("timeout")));
        for minutes in [0.0, -1.0, 20_000.0] {
            let route = json!({"servers": {"m": "https://x"}, "routes": {"a": {"server": "m", "job": "j", "timeout_minutes": minutes}}});
            assert!(
                matches!(
                    Routes::parse(&route.to_string()),
                    Err(RoutesError::Timeout { .. })
                ),
                "{minutes}"
            );
        }
        let half = json!({"servers": {"m": "https://x"}, "routes": {"a": {"server": "m", "job": "j", "timeout_minutes": 0.5}}});
        assert_eq!(
            Routes::parse(&half.to_string()).unwrap().routes["a"].timeout(),
            Duration::from_secs(30)
        );
        assert!(matches!(
            Routes::parse(&json!({"servers": {"m": "https://x"}, "routes": {"a": {"server": "m", "job": "/"}}}).to_string()),
            Err(RoutesError::EmptyJob { .. })
        ));
        assert_eq!(upper_snake("changeReason"), "CHANGE_REASON");
        assert_eq!(upper_snake("change-reason"), "CHANGE_REASON");
        assert_eq!(upper_snake("v2Name"), "V2_NAME");
    }
}
