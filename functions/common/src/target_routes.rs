//! Which Jenkins endpoints the spigot may reach: an allowlist of routes, one place.
//!
//! A signature covers only the body (GitHub's HMAC), so whoever holds one validly signed
//! delivery could replay it to any path, method or query. Nothing of the request's own
//! path is trusted: a route maps one spigot path (below `/webhook`) to one Jenkins
//! endpoint, with the methods it takes, the query names passed on, whether the Jenkins
//! credentials go with it, and how its sender is verified. A request no route takes is
//! answered 404 and reaches nothing; a queued request is replayed only while a route
//! still takes it.
//!
//! The defaults cover the usual Jenkins webhook receivers, each from its own docs:
//! - GitHub plugin: `POST /github-webhook/`, no Jenkins authentication (an unprotected
//!   root action; `reference/github-webhooks.md` §3);
//! - Generic Webhook Trigger: `POST /generic-webhook-trigger/invoke?token=…`, the token
//!   selects the jobs and "allows invocations without any other authentication"
//!   (plugins.jenkins.io/generic-webhook-trigger);
//! - Multibranch Scan Webhook Trigger: `POST /multibranch-webhook-trigger/invoke?token=…`,
//!   the same token rule (plugins.jenkins.io/multibranch-scan-webhook-trigger);
//! - GitLab plugin: `POST /project/<job full name>`, authenticated by default with a
//!   Jenkins user's API token (`http://USERID:APITOKEN@JENKINS_URL/project/YOUR_JOB`,
//!   jenkinsci/gitlab-plugin README "GitLab-to-Jenkins authentication"); its sender is
//!   GitLab, checked by its `X-Gitlab-Token`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::{optional, ConfigError};
use crate::jenkins::builds::JobPath;
use crate::text::truncate;

/// The API Gateway resource every route lives under (`/webhook`, `/webhook/{proxy+}`).
pub const SPIGOT_PREFIX: &str = "/webhook";
/// A route path or target ending in this takes a validated remainder.
const REMAINDER: &str = "/*";
pub const DEFAULT_ROOT_TARGET: &str = "/github-webhook/";
/// The name of the route aliecs_ingest's end-of-run builds take.
pub const END_OF_RUN_ROUTE: &str = "aliecs-end-of-run";
/// The parameters of an end-of-run build (aliecs_ingest sends them as the query).
pub const END_OF_RUN_PARAMETERS: [&str; 4] =
    ["RUN_NUMBER", "RUN_TYPE", "DETECTORS", "ENVIRONMENT_ID"];

/// How a route's sender proves who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verify {
    /// `X-Hub-Signature-256`, HMAC-SHA256 of the body with a webhook secret.
    GithubSignature,
    /// `X-Gitlab-Token`, the hook's secret token sent verbatim.
    GitlabToken,
}

/// One allowed target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRoute {
    pub name: String,
    /// Below `/webhook`, without a leading `/` ("" is `/webhook` itself); with
    /// `remainder`, the prefix the remainder follows (ends in `/`).
    spigot_path: String,
    /// The Jenkins path; with `remainder`, the prefix the remainder is appended to.
    target: String,
    remainder: bool,
    pub methods: Vec<String>,
    /// Query names passed on; every other query pair is dropped.
    pub query: Vec<String>,
    /// Whether the Jenkins credentials (Basic auth) are sent.
    pub credentials: bool,
    pub verify: Verify,
    /// Only for requests our own functions queue: never matched from the API.
    pub internal: bool,
}

/// A request matched to its route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved<'a> {
    pub route: &'a TargetRoute,
    /// The Jenkins path the request goes to.
    pub target_path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("the path {0} holds {1}")]
    BadPath(String, &'static str),
    #[error("no route takes {0}")]
    NotFound(String),
    #[error("{method} is not allowed on {path}; allowed: {allowed}")]
    Method {
        method: String,
        path: String,
        allowed: String,
    },
}

impl RouteError {
    /// The HTTP status for the sender.
    pub fn status(&self) -> u16 {
        match self {
            RouteError::BadPath(..) => 400,
            RouteError::NotFound(_) => 404,
            RouteError::Method { .. } => 405,
        }
    }
}

/// Characters of a refused path quoted in the answer and the log.
const MAX_SHOWN_PATH_CHARS: usize = 200;

/// The configured routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRoutes {
    routes: Vec<TargetRoute>,
}

/// One route as `TARGET_ROUTES` spells it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSpec {
    path: String,
    target: String,
    #[serde(default = "default_methods")]
    methods: Vec<String>,
    #[serde(default)]
    query: Vec<String>,
    #[serde(default)]
    credentials: bool,
    #[serde(default = "default_verify")]
    verify: Verify,
}

fn default_methods() -> Vec<String> {
    vec!["POST".into()]
}

fn default_verify() -> Verify {
    Verify::GithubSignature
}

impl TargetRoutes {
    /// `TARGET_ROUTES` (JSON object of routes by name) when set, else the defaults with
    /// `TARGET_PATH` as the target of `/webhook`; plus the end-of-run route when
    /// `EOR_JENKINS_JOB` is set.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_settings(
            optional("TARGET_ROUTES").as_deref(),
            optional("TARGET_PATH").as_deref(),
            optional("EOR_JENKINS_JOB").as_deref(),
        )
    }

    /// The same from explicit values (the CLI's flags, tests).
    pub fn from_settings(
        routes_json: Option<&str>,
        root_target: Option<&str>,
        end_of_run_job: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            name: "TARGET_ROUTES",
            reason,
        };
        let mut routes = match routes_json {
            Some(json) => Self::parse(json).map_err(invalid)?,
            None => Self::defaults(root_target.unwrap_or(DEFAULT_ROOT_TARGET)).map_err(invalid)?,
        };
        if let Some(job) = end_of_run_job {
            routes.routes.push(end_of_run_route(&JobPath::parse(job)));
        }
        Ok(routes)
    }

    /// Routes from their JSON form: `{"name": {"path", "target", "methods", "query",
    /// "credentials", "verify"}}`.
    pub fn parse(json: &str) -> Result<Self, String> {
        let specs: BTreeMap<String, RouteSpec> =
            serde_json::from_str(json).map_err(|e| format!("not a JSON object of routes: {e}"))?;
        if specs.is_empty() {
            return Err("no routes: nothing could be forwarded".into());
        }
        let routes = specs
            .into_iter()
            .map(|(name, spec)| route_from_spec(name, spec))
            .collect::<Result<Vec<_>, _>>()?;
        let mut seen = std::collections::HashSet::new();
        for route in &routes {
            if !seen.insert((&route.spigot_path, route.remainder)) {
                return Err(format!(
                    "two routes share the path {}",
                    route.display_path()
                ));
            }
        }
        Ok(TargetRoutes { routes })
    }

    /// The usual Jenkins webhook receivers (see the module's docs), `/webhook` going to
    /// `root_target`.
    pub fn defaults(root_target: &str) -> Result<Self, String> {
        let route = |path: &str, target: &str| RouteSpec {
            path: path.into(),
            target: target.into(),
            methods: default_methods(),
            query: Vec::new(),
            credentials: false,
            verify: Verify::GithubSignature,
        };
        let with_token = |mut spec: RouteSpec| {
            spec.query = vec!["token".into()];
            spec
        };
        let gitlab = RouteSpec {
            credentials: true,
            verify: Verify::GitlabToken,
            ..route("/webhook/project/*", "/project/*")
        };
        let specs = [
            ("github", route(SPIGOT_PREFIX, root_target)),
            (
                "generic-webhook-trigger",
                with_token(route(
                    "/webhook/generic-webhook-trigger/invoke",
                    "/generic-webhook-trigger/invoke",
                )),
            ),
            (
                "multibranch-scan-webhook-trigger",
                with_token(route(
                    "/webhook/multibranch-webhook-trigger/invoke",
                    "/multibranch-webhook-trigger/invoke",
                )),
            ),
            ("gitlab-plugin", gitlab),
        ];
        let routes = specs
            .into_iter()
            .map(|(name, spec)| route_from_spec(name.into(), spec))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TargetRoutes { routes })
    }

    pub fn iter(&self) -> impl Iterator<Item = &TargetRoute> {
        self.routes.iter()
    }

    pub fn get(&self, name: &str) -> Option<&TargetRoute> {
        self.routes.iter().find(|r| r.name == name)
    }

    /// The route of a request from the API: `remainder` is what follows `/webhook/`
    /// (`None` or empty for `/webhook` itself).
    pub fn for_request(
        &self,
        method: &str,
        remainder: Option<&str>,
    ) -> Result<Resolved<'_>, RouteError> {
        let remainder = remainder.unwrap_or("");
        // Quoted back to the sender and into the log: a path of any length stays short.
        let shown = || {
            truncate(
                &format!("{SPIGOT_PREFIX}/{remainder}"),
                MAX_SHOWN_PATH_CHARS,
            )
        };
        check_remainder(remainder).map_err(|what| RouteError::BadPath(shown(), what))?;
        let (route, tail) = self
            .routes
            .iter()
            .filter(|r| !r.internal)
            .find_map(|r| r.match_spigot(remainder).map(|tail| (r, tail)))
            .ok_or_else(|| RouteError::NotFound(shown()))?;
        route.check_method(method, &shown())?;
        Ok(Resolved {
            route,
            target_path: route.target_path(tail),
        })
    }

    /// The route a queued request may still be replayed through: one whose target
    /// takes its path and method now (internal routes included).
    pub fn for_replay(&self, method: &str, target_path: &str) -> Result<&TargetRoute, RouteError> {
        let route = self
            .routes
            .iter()
            .find(|r| r.takes_target(target_path))
            .ok_or_else(|| RouteError::NotFound(target_path.to_owned()))?;
        route.check_method(method, target_path)?;
        Ok(route)
    }
}

/// The route end-of-run builds of `job` take: its `buildWithParameters`, POST, with the
/// Jenkins credentials and the run's parameters as the query.
pub fn end_of_run_route(job: &JobPath) -> TargetRoute {
    TargetRoute {
        name: END_OF_RUN_ROUTE.into(),
        spigot_path: String::new(),
        target: end_of_run_target(job),
        remainder: false,
        methods: vec!["POST".into()],
        query: END_OF_RUN_PARAMETERS
            .iter()
            .map(|p| p.to_string())
            .collect(),
        credentials: true,
        verify: Verify::GithubSignature,
        internal: true,
    }
}

/// The Jenkins path of `job`'s end-of-run builds: what aliecs_ingest queues and the
/// drain's end-of-run route takes, from one place.
pub fn end_of_run_target(job: &JobPath) -> String {
    format!("{}/buildWithParameters", job.url_path())
}

fn route_from_spec(name: String, spec: RouteSpec) -> Result<TargetRoute, String> {
    let problem = |what: String| format!("route {name:?}: {what}");
    let path = spec.path.trim();
    let below = path
        .strip_prefix(SPIGOT_PREFIX)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        .ok_or_else(|| problem(format!("path {path:?} is not under {SPIGOT_PREFIX}")))?;
    let (below, remainder) = match below.strip_suffix(REMAINDER) {
        Some(prefix) => (format!("{}/", prefix.trim_start_matches('/')), true),
        None => (
            below
                .trim_start_matches('/')
                .trim_end_matches('/')
                .to_owned(),
            false,
        ),
    };
    if remainder && below == "/" {
        return Err(problem(
            "a remainder directly under /webhook would take every path".into(),
        ));
    }
    check_remainder(below.trim_end_matches('/'))
        .map_err(|what| problem(format!("path {path:?} holds {what}")))?;
    let target = match spec.target.strip_suffix(REMAINDER) {
        Some(prefix) if remainder => format!("{prefix}/"),
        None if !remainder => spec.target.clone(),
        _ => {
            return Err(problem(
                "path and target must both end in /* or neither".into(),
            ))
        }
    };
    if !target.starts_with('/') {
        return Err(problem(format!(
            "target {:?} must start with /",
            spec.target
        )));
    }
    check_remainder(target.trim_matches('/'))
        .map_err(|what| problem(format!("target {:?} holds {what}", spec.target)))?;
    if spec.methods.is_empty() {
        return Err(problem("no methods".into()));
    }
    let methods = spec
        .methods
        .iter()
        .map(|m| {
            let m = m.trim().to_ascii_uppercase();
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
                Err(problem(format!("{m:?} is not an HTTP method")))
            } else {
                Ok(m)
            }
        })
        .collect::<Result<_, _>>()?;
    Ok(TargetRoute {
        name,
        spigot_path: below,
        target,
        remainder,
        methods,
        query: spec.query,
        credentials: spec.credentials,
        verify: spec.verify,
        internal: false,
    })
}

impl TargetRoute {
    /// `/webhook/...` as a sender calls it.
    pub fn display_path(&self) -> String {
        let mut path = SPIGOT_PREFIX.to_owned();
        if !self.spigot_path.is_empty() {
            path.push('/');
            path.push_str(&self.spigot_path);
        }
        if self.remainder {
            path.push('*');
        }
        path
    }

    /// The Jenkins path as configured (`…/*` when it takes a remainder).
    pub fn display_target(&self) -> String {
        if self.remainder {
            format!("{}*", self.target)
        } else {
            self.target.clone()
        }
    }

    /// What of `remainder` follows this route's path: `Some("")` for an exact route.
    fn match_spigot<'r>(&self, remainder: &'r str) -> Option<&'r str> {
        if self.remainder {
            remainder
                .strip_prefix(self.spigot_path.as_str())
                .filter(|tail| !tail.is_empty())
        } else {
            // One trailing slash is the same endpoint (`/webhook/` is `/webhook`).
            let bare = remainder.strip_suffix('/').unwrap_or(remainder);
            (bare == self.spigot_path).then_some("")
        }
    }

    fn target_path(&self, tail: &str) -> String {
        format!("{}{tail}", self.target)
    }

    fn takes_target(&self, target_path: &str) -> bool {
        if self.remainder {
            target_path
                .strip_prefix(self.target.as_str())
                .is_some_and(|tail| !tail.is_empty() && check_remainder(tail).is_ok())
        } else {
            target_path == self.target
        }
    }

    fn check_method(&self, method: &str, path: &str) -> Result<(), RouteError> {
        if self.methods.iter().any(|m| m == method) {
            Ok(())
        } else {
            Err(RouteError::Method {
                method: method.chars().take(16).collect(),
                path: path.to_owned(),
                allowed: self.methods.join(", "),
            })
        }
    }

    /// The query pairs this route passes on.
    pub fn filter_query(&self, pairs: &[(String, String)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .filter(|(name, _)| self.query.contains(name))
            .cloned()
            .collect()
    }
}

/// Characters Jenkins refuses in an item name (jenkinsci/jenkins core
/// `jenkins.model.Jenkins#checkGoodName`: `?*/\%!@#$^&|<>[]:;`); `/` separates
/// segments and `%` starts an encoding, both checked on their own.
const UNSAFE: &[u8] = b"?*\\!@#$^&|<>[]:;";

/// Why a path (or its remainder) could leave its route, if it could: dot segments,
/// empty segments, backslashes, `?` / `#` / `@` / `:` / `;`, and any of those, `/` or `.`
/// percent-encoded (Jenkins decodes once more), and anything a URL must encode.
pub fn check_remainder(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Ok(());
    }
    if path.starts_with('/') || path.contains("//") {
        return Err("an empty segment ('//')");
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        // REST API events keep the path percent-encoded (hotsock/voker#8, live
        // captures): a raw space, control or non-ASCII byte is not what API Gateway sends.
        if b <= 0x20 || b >= 0x7f || matches!(b, b'"' | b'`' | b'{' | b'}') {
            return Err("a character that must be percent-encoded");
        }
        if b == b'\\' {
            return Err("a backslash");
        }
        if UNSAFE.contains(&b) {
            return Err("a character Jenkins refuses in a name (?*\\!@#$^&|<>[]:;)");
        }
        if b == b'%' {
            let decoded = bytes
                .get(i + 1..i + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or("a '%' that starts no encoding")?;
            if decoded < 0x20
                || decoded == 0x7f
                || matches!(decoded, b'/' | b'.' | b'%')
                || UNSAFE.contains(&decoded)
            {
                return Err("an encoded '/', '\\', '.', '%' or other reserved character");
            }
            i += 3;
            continue;
        }
        i += 1;
    }
    if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err("a dot segment");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_path_is_quoted_short() {
        let routes = defaults();
        for path in ["x/".repeat(5_000), format!("{}/..", "y".repeat(10_000))] {
            let error = routes.for_request("POST", Some(&path)).unwrap_err();
            let text = error.to_string();
            assert!(text.len() < 300, "{} bytes", text.len());
            assert!(text.contains("/webhook/"), "{text}");
        }
    }

    fn defaults() -> TargetRoutes {
        TargetRoutes::defaults(DEFAULT_ROOT_TARGET).unwrap()
    }

    #[test]
    fn the_defaults_reach_the_usual_receivers_only() {
        let routes = defaults();
        let target = |method, rest: Option<&str>| {
            routes
                .for_request(method, rest)
                .map(|r| (r.route.name.clone(), r.target_path))
        };
        assert_eq!(
            target("POST", None),
            Ok(("github".into(), "/github-webhook/".into()))
        );
        assert_eq!(
            target("POST", Some("")),
            Ok(("github".into(), "/github-webhook/".into()))
        );
        assert_eq!(
            target("POST", Some("generic-webhook-trigger/invoke")),
            Ok((
                "generic-webhook-trigger".into(),
                "/generic-webhook-trigger/invoke".into()
            ))
        );
        assert_eq!(
            target("POST", Some("multibranch-webhook-trigger/invoke/")),
            Ok((
                "multibranch-scan-webhook-trigger".into(),
                "/multibranch-webhook-trigger/invoke".into()
            ))
        );
        assert_eq!(
            target("POST", Some("project/folder/my%20job")),
            Ok(("gitlab-plugin".into(), "/project/folder/my%20job".into()))
        );
        for rest in [
            "scriptText",
            "script",
            "job/x/build",
            "project",
            "project/",
            "github-webhook",
        ] {
            assert!(
                matches!(target("POST", Some(rest)), Err(RouteError::NotFound(_))),
                "{rest}"
            );
        }
        let wrong = routes.for_request("GET", None).unwrap_err();
        assert_eq!(wrong.status(), 405);
        assert!(wrong.to_string().contains("allowed: POST"), "{wrong}");
        let gitlab = routes.get("gitlab-plugin").unwrap();
        assert!(gitlab.credentials && gitlab.verify == Verify::GitlabToken);
        assert!(!routes.get("github").unwrap().credentials);
    }

    #[test]
    fn no_spelling_of_an_escape_leaves_its_route() {
        let routes = defaults();
        for rest in [
            "project/../scriptText",
            "project/a/../../scriptText",
            "project/./x",
            "project/%2e%2e/scriptText",
            "project/%2E%2E/scriptText",
            "project/.%2e/scriptText",
            "project/a%2fb",
            "project/a%2F..%2Fb",
            "project/a%5cb",
            "project/a\\..\\b",
            "project//scriptText",
            "project/a@evil.example",
            "project/a?script=x",
            "project/a%3fscript=x",
            "project/a#frag",
            "project/a%23frag",
            "project/http://evil.example/x",
            "project/a;jsessionid=x",
            "project/a%252e%252e",
            "project/a%zz",
            "project/a%",
            "project/a\nb",
            "project/a%00b",
            "../scriptText",
            "/scriptText",
        ] {
            let refused = routes.for_request("POST", Some(rest)).unwrap_err();
            assert_eq!(refused.status(), 400, "{rest}: {refused}");
            assert!(matches!(refused, RouteError::BadPath(..)), "{rest}");
        }
    }

    #[test]
    fn queries_pass_only_where_the_route_says() {
        let routes = defaults();
        let pairs = vec![
            ("token".to_owned(), "t".to_owned()),
            ("script".to_owned(), "x".to_owned()),
        ];
        let generic = routes.get("generic-webhook-trigger").unwrap();
        assert_eq!(
            generic.filter_query(&pairs),
            [("token".to_owned(), "t".to_owned())]
        );
        assert!(routes
            .get("github")
            .unwrap()
            .filter_query(&pairs)
            .is_empty());
    }

    #[test]
    fn a_replay_needs_a_route_that_still_takes_it() {
        let routes = TargetRoutes::from_settings(None, None, Some("ops/post-run")).unwrap();
        assert_eq!(
            routes.for_replay("POST", "/github-webhook/").unwrap().name,
            "github"
        );
        assert_eq!(
            routes.for_replay("POST", "/project/a/b").unwrap().name,
            "gitlab-plugin"
        );
        let eor = routes
            .for_replay("POST", "/job/ops/job/post-run/buildWithParameters")
            .unwrap();
        assert_eq!(eor.name, END_OF_RUN_ROUTE);
        assert!(eor.internal && eor.credentials);
        // Internal routes are never reachable from the API.
        assert!(routes
            .for_request("POST", Some("job/ops/job/post-run/buildWithParameters"))
            .is_err());
        for (method, path) in [
            ("POST", "/scriptText"),
            ("POST", "/job/ops/job/other/buildWithParameters"),
            ("POST", "/project/../scriptText"),
            ("POST", "/project/"),
            ("GET", "/github-webhook/"),
        ] {
            assert!(routes.for_replay(method, path).is_err(), "{method} {path}");
        }
        let without_eor = TargetRoutes::from_settings(None, None, None).unwrap();
        assert!(without_eor
            .for_replay("POST", "/job/ops/job/post-run/buildWithParameters")
            .is_err());
    }

    #[test]
    fn routes_are_configured_as_json() {
        let routes = TargetRoutes::parse(
            r#"{"hooks": {"path": "/webhook/gwt", "target": "/generic-webhook-trigger/invoke",
                          "methods": ["post", "GET"], "query": ["token"]},
                "root": {"path": "/webhook", "target": "/github-webhook/"}}"#,
        )
        .unwrap();
        let hooks = routes.for_request("GET", Some("gwt")).unwrap();
        assert_eq!(hooks.target_path, "/generic-webhook-trigger/invoke");
        assert_eq!(hooks.route.display_path(), "/webhook/gwt");
        assert!(routes.for_request("POST", Some("project/x")).is_err());
        for (bad, why) in [
            ("[]", "not a JSON object"),
            ("{}", "no routes"),
            (
                r#"{"a": {"path": "/hooks", "target": "/x"}}"#,
                "not under /webhook",
            ),
            (
                r#"{"a": {"path": "/webhook/*", "target": "/x/*"}}"#,
                "every path",
            ),
            (
                r#"{"a": {"path": "/webhook/p/*", "target": "/x"}}"#,
                "both end in /*",
            ),
            (
                r#"{"a": {"path": "/webhook/p", "target": "x"}}"#,
                "must start with /",
            ),
            (
                r#"{"a": {"path": "/webhook/p", "target": "/a/../b"}}"#,
                "dot segment",
            ),
            (
                r#"{"a": {"path": "/webhook/p", "target": "/x", "methods": []}}"#,
                "no methods",
            ),
            (
                r#"{"a": {"path": "/webhook/p", "target": "/x", "creds": true}}"#,
                "unknown field",
            ),
            (
                r#"{"a": {"path": "/webhook/p", "target": "/x"}, "b": {"path": "/webhook/p/", "target": "/y"}}"#,
                "share the path",
            ),
        ] {
            let err = TargetRoutes::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn target_path_sets_the_root_route() {
        let routes = TargetRoutes::from_settings(None, Some("/ghprbhook/"), None).unwrap();
        assert_eq!(
            routes.for_request("POST", None).unwrap().target_path,
            "/ghprbhook/"
        );
    }
}
