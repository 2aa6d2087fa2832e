//! The sandbox Jenkins' jobs, queue and builds, as `reference/jenkins-api.md` describes
//! them, pitfalls included:
//! - `POST …/buildWithParameters` answers 201 with the queue item in `Location`, or 303
//!   to an identical item already waiting (merged); undeclared parameters are dropped;
//!   on a job without parameters it is a 500; a disabled job is a 409; a GET shows the
//!   form and starts nothing;
//! - queue items wait, then get their build; a cancelled one never does; five minutes
//!   (configurable) after leaving the queue an item is a 404;
//! - builds write their log line by line over time and end with a result (UNSTABLE and
//!   ABORTED included); `stop` aborts;
//! - `progressiveText`: `X-Text-Size` is the next raw offset, `X-More-Data` is there
//!   while the build runs, a running build gives only complete lines and at most 10,000
//!   of them (every `\r` and `\n` ends one), a finished build everything from `start`
//!   whatever its size, an offset past the end starts again at 0, and line ends go out
//!   as CRLF (Stapler's LargeText.doProgressText and LineEndNormalizingWriter).
//!
//! Time is read lazily: a build's log is whatever its script has written by now.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// What Jenkins puts before a build's own output.
const FIRST_LINE: &str = "Started by remote host 127.0.0.1";
const MAX_LINES_PER_READ: usize = 10_000;
const DEFAULT_QUEUE_TTL: Duration = Duration::from_secs(300);

/// A job of the sandbox.
#[derive(Debug, Clone)]
pub struct SandboxJob {
    /// Folders, job, branch: `["deploy", "microservice"]`.
    pub path: Vec<String>,
    /// Declared parameters; none: only `/build` works.
    pub parameters: Vec<String>,
    pub disabled: bool,
    /// Time a queue item waits before its build starts.
    pub queue_delay: Duration,
    pub script: BuildScript,
}

/// What a build of the job writes, and how it ends.
#[derive(Debug, Clone)]
pub struct BuildScript {
    /// Lines of output; `${NAME}` is replaced by the parameter's value.
    pub lines: Vec<String>,
    /// Time between two lines; zero: the whole log at once, the build finished as it
    /// starts.
    pub line_interval: Duration,
    /// `SUCCESS`, `UNSTABLE`, `FAILURE`, `NOT_BUILT`, `ABORTED`.
    pub result: String,
}

impl SandboxJob {
    pub fn new(path: &str, parameters: &[&str], script: BuildScript) -> SandboxJob {
        SandboxJob {
            path: path.split('/').map(str::to_owned).collect(),
            parameters: parameters.iter().map(|p| (*p).to_owned()).collect(),
            disabled: false,
            queue_delay: Duration::from_millis(200),
            script,
        }
    }
}

/// A build, as tests look at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSummary {
    pub number: u64,
    pub parameters: Vec<(String, String)>,
    /// When the build started: line `i` (1-based) of the script is written
    /// `i × line_interval` later.
    pub started_at: Instant,
    pub building: bool,
    pub result: Option<String>,
    /// The raw log written so far.
    pub log: String,
}

struct QueueItem {
    job: Vec<String>,
    parameters: Vec<(String, String)>,
    queued_at: Instant,
    cancelled: bool,
    build: Option<u64>,
    left_at: Option<Instant>,
}

struct Build {
    number: u64,
    parameters: Vec<(String, String)>,
    started_at: Instant,
    /// `started_at` as wall-clock milliseconds.
    timestamp_ms: u64,
    script: BuildScript,
    aborted_at: Option<Instant>,
}

impl Build {
    fn lines_written(&self, now: Instant) -> usize {
        let until = self.aborted_at.unwrap_or(now).min(now);
        if self.script.line_interval.is_zero() {
            return self.script.lines.len();
        }
        let elapsed = until.saturating_duration_since(self.started_at);
        ((elapsed.as_nanos() / self.script.line_interval.as_nanos()) as usize)
            .min(self.script.lines.len())
    }

    fn finished(&self, now: Instant) -> bool {
        self.aborted_at.is_some_and(|at| at <= now)
            || self.lines_written(now) == self.script.lines.len()
    }

    fn result(&self, now: Instant) -> Option<String> {
        match self.aborted_at {
            Some(at) if at <= now => Some("ABORTED".into()),
            _ if self.finished(now) => Some(self.script.result.clone()),
            _ => None,
        }
    }

    /// The raw log as of `now` (LF line ends).
    fn log(&self, now: Instant) -> String {
        let mut log = format!("{FIRST_LINE}\n");
        for line in &self.script.lines[..self.lines_written(now)] {
            let mut line = line.clone();
            for (name, value) in &self.parameters {
                line = line.replace(&format!("${{{name}}}"), value);
            }
            log.push_str(&line);
            log.push('\n');
        }
        if let Some(result) = self.result(now) {
            if result == "ABORTED" {
                log.push_str("Aborted by user anonymous\n");
            }
            log.push_str(&format!("Finished: {result}\n"));
        }
        log
    }

    fn duration_ms(&self, now: Instant) -> u64 {
        if !self.finished(now) {
            return 0;
        }
        let end = self.aborted_at.unwrap_or(
            self.started_at + self.script.line_interval * self.script.lines.len() as u32,
        );
        end.saturating_duration_since(self.started_at).as_millis() as u64
    }
}

/// The jobs, the queue and the builds.
pub(crate) struct Builds {
    jobs: HashMap<Vec<String>, SandboxJob>,
    queue: BTreeMap<u64, QueueItem>,
    builds: HashMap<Vec<String>, Vec<Build>>,
    next_queue_id: u64,
    queue_ttl: Duration,
    /// Wall-clock milliseconds at `epoch`, for build timestamps.
    epoch: (Instant, u64),
}

impl Default for Builds {
    fn default() -> Self {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        Builds {
            jobs: HashMap::new(),
            queue: BTreeMap::new(),
            builds: HashMap::new(),
            next_queue_id: 1,
            queue_ttl: DEFAULT_QUEUE_TTL,
            epoch: (Instant::now(), wall),
        }
    }
}

/// A request on a job's or the queue's API.
enum Target {
    Job { job: Vec<String>, rest: Vec<String> },
    Queue { id: u64, rest: Vec<String> },
}

impl Builds {
    pub fn add_job(&mut self, job: SandboxJob) {
        self.jobs.insert(job.path.clone(), job);
    }

    pub fn set_queue_ttl(&mut self, ttl: Duration) {
        self.queue_ttl = ttl;
    }

    /// Cancels queue item `id` if it still waits.
    pub fn cancel(&mut self, id: u64) -> bool {
        self.advance(Instant::now());
        match self.queue.get_mut(&id) {
            Some(item) if item.build.is_none() && !item.cancelled => {
                item.cancelled = true;
                item.left_at = Some(Instant::now());
                true
            }
            _ => false,
        }
    }

    pub fn builds_of(&mut self, job: &str) -> Vec<BuildSummary> {
        let now = Instant::now();
        self.advance(now);
        let key: Vec<String> = job.split('/').map(str::to_owned).collect();
        self.builds
            .get(&key)
            .map(|builds| {
                builds
                    .iter()
                    .map(|b| BuildSummary {
                        number: b.number,
                        parameters: b.parameters.clone(),
                        started_at: b.started_at,
                        building: !b.finished(now),
                        result: b.result(now),
                        log: b.log(now),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Queue items whose wait is over get their build.
    fn advance(&mut self, now: Instant) {
        for item in self.queue.values_mut() {
            if item.cancelled || item.build.is_some() {
                continue;
            }
            let Some(job) = self.jobs.get(&item.job) else {
                continue;
            };
            if now.saturating_duration_since(item.queued_at) >= job.queue_delay {
                let builds = self.builds.entry(item.job.clone()).or_default();
                let number = builds.len() as u64 + 1;
                let started_at = item.queued_at + job.queue_delay;
                let since_epoch = started_at
                    .saturating_duration_since(self.epoch.0)
                    .as_millis() as u64;
                builds.push(Build {
                    number,
                    parameters: item.parameters.clone(),
                    started_at,
                    timestamp_ms: self.epoch.1 + since_epoch,
                    script: job.script.clone(),
                    aborted_at: None,
                });
                item.build = Some(number);
                item.left_at = Some(item.queued_at + job.queue_delay);
            }
        }
    }

    /// The answer to a request on the build API, or `None` for other paths.
    pub fn answer(
        &mut self,
        root: &str,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Option<Response> {
        let target = parse_target(path)?;
        let now = Instant::now();
        self.advance(now);
        Some(match target {
            Target::Queue { id, rest } if rest == ["api", "json"] => {
                self.queue_item_json(root, id, now)
            }
            Target::Queue { .. } => not_found(),
            Target::Job { job, rest } => {
                let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
                match rest.as_slice() {
                    ["buildWithParameters"] | ["build"] if *method == Method::POST => self.trigger(
                        root,
                        &job,
                        rest[0] == "buildWithParameters",
                        query,
                        headers,
                        body,
                        now,
                    ),
                    ["buildWithParameters"] | ["build"] => (
                        StatusCode::OK,
                        [("content-type", "text/html")],
                        "<form method=\"post\">Build with parameters</form>",
                    )
                        .into_response(),
                    ["api", "json"] => self.job_json(root, &job, now),
                    [number, tail @ ..] => match number.parse::<u64>() {
                        Ok(number) => {
                            self.build_request(root, &job, number, tail, method, query, now)
                        }
                        Err(_) => not_found(),
                    },
                    _ => not_found(),
                }
            }
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn trigger(
        &mut self,
        root: &str,
        job: &[String],
        with_parameters: bool,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
        now: Instant,
    ) -> Response {
        let Some(spec) = self.jobs.get(job) else {
            return not_found();
        };
        if spec.disabled {
            return (StatusCode::CONFLICT, "Job is disabled\n").into_response();
        }
        if with_parameters && spec.parameters.is_empty() {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "java.lang.IllegalStateException: This build is not parameterized!\n",
            )
                .into_response();
        }
        let form = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        let mut given: Vec<(String, String)> =
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        if form {
            given.extend(form_urlencoded::parse(body).into_owned());
        }
        // Only declared parameters count; a missing one takes its (empty) default.
        let parameters: Vec<(String, String)> = spec
            .parameters
            .iter()
            .map(|name| {
                let value = given
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                (name.clone(), value)
            })
            .collect();
        // An identical request while one waits is merged into it.
        if let Some((id, _)) = self.queue.iter().find(|(_, item)| {
            item.job == job
                && item.build.is_none()
                && !item.cancelled
                && item.parameters == parameters
        }) {
            let location = format!("{root}/queue/item/{id}/");
            return (StatusCode::SEE_OTHER, [("location", location)]).into_response();
        }
        let id = self.next_queue_id;
        self.next_queue_id += 1;
        self.queue.insert(
            id,
            QueueItem {
                job: job.to_vec(),
                parameters,
                queued_at: now,
                cancelled: false,
                build: None,
                left_at: None,
            },
        );
        (
            StatusCode::CREATED,
            [("location", format!("{root}/queue/item/{id}/"))],
        )
            .into_response()
    }

    fn queue_item_json(&self, root: &str, id: u64, now: Instant) -> Response {
        let Some(item) = self.queue.get(&id) else {
            return not_found();
        };
        if item
            .left_at
            .is_some_and(|left| now.saturating_duration_since(left) > self.queue_ttl)
        {
            return not_found();
        }
        let task =
            json!({"name": item.job.last(), "url": format!("{root}{}/", job_url_path(&item.job))});
        let body = match (item.cancelled, item.build) {
            (true, _) => {
                json!({"_class": "hudson.model.Queue$LeftItem", "id": id, "cancelled": true, "executable": null, "task": task})
            }
            (false, Some(number)) => json!({
                "_class": "hudson.model.Queue$LeftItem", "id": id, "cancelled": false, "task": task,
                "executable": {"_class": "hudson.model.FreeStyleBuild", "number": number, "url": format!("{root}{}/{number}/", job_url_path(&item.job))},
            }),
            (false, None) => {
                json!({"_class": "hudson.model.Queue$WaitingItem", "id": id, "why": "In the quiet period.", "cancelled": false, "executable": null, "task": task})
            }
        };
        (StatusCode::OK, axum::Json(body)).into_response()
    }

    fn job_json(&self, root: &str, job: &[String], now: Instant) -> Response {
        if !self.jobs.contains_key(job) {
            return not_found();
        }
        let builds: Vec<Value> = self
            .builds
            .get(job)
            .into_iter()
            .flatten()
            .rev()
            .take(50)
            .map(|b| build_json(root, job, b, now))
            .collect();
        (
            StatusCode::OK,
            axum::Json(json!({"_class": "hudson.model.FreeStyleProject", "builds": builds})),
        )
            .into_response()
    }

    #[allow(clippy::too_many_arguments)]
    fn build_request(
        &mut self,
        root: &str,
        job: &[String],
        number: u64,
        tail: &[&str],
        method: &Method,
        query: Option<&str>,
        now: Instant,
    ) -> Response {
        let Some(build) = self
            .builds
            .get_mut(job)
            .and_then(|builds| builds.iter_mut().find(|b| b.number == number))
        else {
            return not_found();
        };
        match tail {
            ["api", "json"] => (
                StatusCode::OK,
                axum::Json(build_json(root, job, build, now)),
            )
                .into_response(),
            ["consoleText"] => (
                StatusCode::OK,
                [("content-type", "text/plain;charset=UTF-8")],
                build.log(now),
            )
                .into_response(),
            ["logText", "progressiveText"] => progressive_text(build, query, now),
            ["stop"] if *method == Method::POST => {
                if !build.finished(now) {
                    build.aborted_at = Some(now);
                }
                (
                    StatusCode::FOUND,
                    [("location", format!("{root}{}/{number}/", job_url_path(job)))],
                )
                    .into_response()
            }
            _ => not_found(),
        }
    }
}

fn build_json(root: &str, job: &[String], build: &Build, now: Instant) -> Value {
    json!({
        "_class": "hudson.model.FreeStyleBuild",
        "number": build.number,
        "url": format!("{root}{}/{}/", job_url_path(job), build.number),
        "building": !build.finished(now),
        "result": build.result(now),
        "duration": build.duration_ms(now),
        "timestamp": build.timestamp_ms,
        "estimatedDuration": (build.script.line_interval * build.script.lines.len() as u32).as_millis() as u64,
        "actions": [{"_class": "hudson.model.ParametersAction", "parameters": build.parameters.iter().map(|(name, value)| json!({"name": name, "value": value})).collect::<Vec<_>>()}],
    })
}

/// `GET …/logText/progressiveText?start=N`, as Stapler's LargeText answers it.
fn progressive_text(build: &Build, query: Option<&str>, now: Instant) -> Response {
    let start: u64 = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "start")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let log = build.log(now);
    let bytes = log.as_bytes();
    let finished = build.finished(now);
    // Past the end: Jenkins starts again from 0.
    let start = if start as usize > bytes.len() {
        0
    } else {
        start as usize
    };
    let end = if finished {
        bytes.len()
    } else {
        // Only complete lines, at most 10,000 of them; LargeText's TailMark ends a line
        // at every `\r` and every `\n`, so a CRLF counts twice.
        let mut end = start;
        let mut line_ends = 0;
        for (i, b) in bytes[start..].iter().enumerate() {
            if *b == b'\n' || *b == b'\r' {
                end = start + i + 1;
                line_ends += 1;
                if line_ends == MAX_LINES_PER_READ {
                    break;
                }
            }
        }
        end
    };
    let text = String::from_utf8_lossy(&bytes[start..end]);
    // LineEndNormalizingWriter: a bare LF goes out as CRLF.
    let mut body = String::with_capacity(text.len() + text.len() / 16);
    let mut previous = '\0';
    for c in text.chars() {
        if c == '\n' && previous != '\r' {
            body.push('\r');
        }
        body.push(c);
        previous = c;
    }
    let mut response = (
        StatusCode::OK,
        [("content-type", "text/plain;charset=UTF-8")],
        body,
    )
        .into_response();
    response
        .headers_mut()
        .insert("x-text-size", end.to_string().parse().expect("digits"));
    if !finished {
        response
            .headers_mut()
            .insert("x-more-data", "true".parse().expect("ascii"));
    }
    response
}

/// `/job/a/job/b/rest…` or `/queue/item/N/rest…`.
fn parse_target(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if segments.first() == Some(&"queue") && segments.get(1) == Some(&"item") {
        let id = segments.get(2)?.parse().ok()?;
        return Some(Target::Queue {
            id,
            rest: segments[3..].iter().map(|s| (*s).to_owned()).collect(),
        });
    }
    let mut job = Vec::new();
    let mut i = 0;
    while segments.get(i) == Some(&"job") {
        let name = segments.get(i + 1)?;
        // Stapler decodes once; a branch name's `/` arrives encoded twice.
        let once: String =
            form_urlencoded::parse(format!("x={}", name.replace('+', "%2B")).as_bytes())
                .next()?
                .1
                .into_owned();
        let name = if once.contains("%2F") || once.contains("%2f") {
            form_urlencoded::parse(format!("x={once}").as_bytes())
                .next()?
                .1
                .into_owned()
        } else {
            once
        };
        job.push(name);
        i += 2;
    }
    if job.is_empty() {
        return None;
    }
    Some(Target::Job {
        job,
        rest: segments[i..]
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| (*s).to_owned())
            .collect(),
    })
}

/// `/job/a/job/b` for a job's path, branch names encoded twice.
fn job_url_path(job: &[String]) -> String {
    job.iter()
        .map(|name| {
            let once: String = form_urlencoded::byte_serialize(name.as_bytes()).collect();
            let encoded = if name.contains('/') {
                form_urlencoded::byte_serialize(once.as_bytes()).collect()
            } else {
                once
            };
            format!("/job/{encoded}")
        })
        .collect()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "Not Found\n").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(lines: usize, interval_ms: u64, result: &str) -> BuildScript {
        BuildScript {
            lines: (0..lines)
                .map(|i| format!("step {i} for ${{SERVICE}}"))
                .collect(),
            line_interval: Duration::from_millis(interval_ms),
            result: result.into(),
        }
    }

    #[test]
    fn paths_name_jobs_folders_and_branches() {
        let Some(Target::Job { job, rest }) =
            parse_target("/job/repo/job/feature%252Fx/12/logText/progressiveText")
        else {
            panic!()
        };
        assert_eq!(job, ["repo", "feature/x"]);
        assert_eq!(rest, ["12", "logText", "progressiveText"]);
        assert_eq!(job_url_path(&job), "/job/repo/job/feature%252Fx");
        assert!(matches!(
            parse_target("/queue/item/7/api/json"),
            Some(Target::Queue { id: 7, .. })
        ));
        assert!(parse_target("/login").is_none());
    }

    #[test]
    fn a_build_writes_its_log_over_time_and_ends_with_its_result() {
        let build = Build {
            number: 1,
            parameters: vec![("SERVICE".into(), "svc".into())],
            started_at: Instant::now(),
            timestamp_ms: 0,
            script: script(3, 100, "UNSTABLE"),
            aborted_at: None,
        };
        let start = build.started_at;
        assert_eq!(build.log(start), format!("{FIRST_LINE}\n"));
        assert!(build
            .log(start + Duration::from_millis(150))
            .ends_with("step 0 for svc\n"));
        let done = start + Duration::from_millis(300);
        assert!(build.finished(done));
        assert_eq!(build.result(done).as_deref(), Some("UNSTABLE"));
        assert!(build
            .log(done)
            .ends_with("step 2 for svc\nFinished: UNSTABLE\n"));
        assert_eq!(build.duration_ms(done), 300);
    }

    /// The answer's body, `X-Text-Size` and whether `X-More-Data` is there.
    async fn answer(build: &Build, start: usize, now: Instant) -> (String, usize, bool) {
        let response = progressive_text(build, Some(&format!("start={start}")), now);
        let size = response.headers()["x-text-size"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let more = response.headers().contains_key("x-more-data");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (String::from_utf8(body.to_vec()).unwrap(), size, more)
    }

    #[tokio::test]
    async fn progressive_text_answers_as_large_text_does() {
        // Each line redraws once: a `\r` and a `\n`, two line ends for LargeText.
        let build = Build {
            number: 1,
            parameters: Vec::new(),
            started_at: Instant::now(),
            timestamp_ms: 0,
            script: BuildScript {
                lines: (0..7_000).map(|i| format!("{i}: 10%\r{i}: 100%")).collect(),
                line_interval: Duration::from_millis(1),
                result: "SUCCESS".into(),
            },
            aborted_at: None,
        };
        let running = build.started_at + Duration::from_millis(6_000);
        let log = build.log(running);

        // Running: 10,000 line ends (the first line's, then 4,999 lines and a half).
        let (body, size, more) = answer(&build, 0, running).await;
        assert!(more);
        let raw = &log[..size];
        assert_eq!(
            raw.bytes().filter(|b| *b == b'\r' || *b == b'\n').count(),
            10_000
        );
        assert!(raw.ends_with("4999: 10%\r"), "{}", &raw[raw.len() - 20..]);
        // Bare LF goes out as CRLF, a CR stays as it is.
        assert_eq!(body, raw.replace('\n', "\r\n"));
        let (next, _, _) = answer(&build, size, running).await;
        assert!(
            next.starts_with("4999: 100%\r\n5000: 10%\r"),
            "{}",
            &next[..30]
        );

        // Finished: everything from start, however much; past the end: from 0.
        let done = build.started_at + Duration::from_secs(60);
        let whole = build.log(done);
        let (body, size, more) = answer(&build, 10, done).await;
        assert!(!more);
        assert_eq!(
            (body, size),
            (whole[10..].replace('\n', "\r\n"), whole.len())
        );
        let (body, size, _) = answer(&build, whole.len() + 1, done).await;
        assert_eq!(
            (body.len(), size),
            (whole.len() + whole.matches('\n').count(), whole.len())
        );
    }
}
