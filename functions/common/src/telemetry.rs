//! JSON logs through `tracing`, and CloudWatch metrics as Embedded Metric Format lines.
//!
//! Every metric spigot emits is named once, in [`catalogue`]: the functions emit only
//! those, and the template's dashboard shows only those (tests/tests/alarms.rs checks
//! the dashboard against [`catalogue::ALL`]; tests/tests/lambda_smoke.rs checks what the
//! function binaries print against it).

use serde_json::{json, Map, Value};

/// The namespace of every metric spigot emits.
pub const NAMESPACE: &str = "Spigot";
/// The one dimension of every metric: the function (binary) that emits it.
pub const FUNCTION_DIMENSION: &str = "Function";

/// JSON log lines; level from `RUST_LOG` (default `info`). Lambda adds its own timestamps.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .init();
}

/// CloudWatch's unit of a metric (the EMF `Unit` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Bytes,
    Milliseconds,
    /// A plain number, e.g. a state code.
    None,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Bytes => "Bytes",
            Unit::Milliseconds => "Milliseconds",
            Unit::None => "None",
        }
    }
}

/// One metric of the catalogue: who emits it, its name and unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// The emitting function's binary name: the value of the `Function` dimension.
    pub function: &'static str,
    pub name: &'static str,
    pub unit: Unit,
}

const fn metric(function: &'static str, name: &'static str, unit: Unit) -> Metric {
    Metric {
        function,
        name,
        unit,
    }
}

const fn count(function: &'static str, name: &'static str) -> Metric {
    metric(function, name, Unit::Count)
}

/// Every metric spigot emits, by function.
pub mod catalogue {
    use super::{count, metric, Metric, Unit};

    pub mod process_webhooks {
        use super::*;
        const F: &str = "process_webhooks";
        /// A request the target accepted at once.
        pub const DELIVERED: Metric = count(F, "Delivered");
        /// A request stored in the queue (spigot not ON, or the target down).
        pub const QUEUED: Metric = count(F, "Queued");
        /// A delivery id already delivered or queued (dropped), or being handled by another
        /// request (the sender is told to redeliver if that one fails).
        pub const DUPLICATES: Metric = count(F, "Duplicates");
        /// A request refused before it was sent on (bad signature, path, body...).
        pub const REJECTED: Metric = count(F, "Rejected");
        /// A request the target answered with a 4xx.
        pub const TARGET_REFUSED: Metric = count(F, "TargetRefused");
        /// A request neither delivered nor stored (the sender was told to try again).
        pub const NOT_STORED: Metric = count(F, "NotStored");
    }

    pub mod send_from_queue {
        use super::*;
        const F: &str = "send_from_queue";
        /// The spigot's state as the drain found it: 0 OFF, 1 DRAINING, 2 ON.
        pub const SPIGOT_STATE: Metric = metric(F, "SpigotState", Unit::None);
        pub const DELIVERED: Metric = count(F, "Delivered");
        /// Messages moved to the DLQ.
        pub const POISONED: Metric = count(F, "Poisoned");
        /// Received but not replayed, made visible again.
        pub const RELEASED: Metric = count(F, "Released");
        /// Messages left in the queue after the drain (when the queue could be read).
        pub const REMAINING: Metric = count(F, "Remaining");
    }

    pub mod gitlab_ingest {
        use super::*;
        const F: &str = "gitlab_ingest";
        pub const JOBS_INGESTED: Metric = count(F, "JobsIngested");
        pub const JOBS_NOT_FINISHED: Metric = count(F, "JobsNotFinished");
        pub const JOBS_FAILED: Metric = count(F, "JobsFailed");
        /// Search documents written: one per log line.
        pub const LINES_INDEXED: Metric = count(F, "LinesIndexed");
        /// Raw log bytes archived in S3.
        pub const BYTES_ARCHIVED: Metric = metric(F, "BytesArchived", Unit::Bytes);
    }

    pub mod port_runner {
        use super::*;
        const F: &str = "port_runner";
        pub const RUNS_STARTED: Metric = count(F, "RunsStarted");
        pub const RUNS_DUPLICATE: Metric = count(F, "RunsDuplicate");
        pub const RUNS_SKIPPED: Metric = count(F, "RunsSkipped");
        /// Runs ended FAILURE because no build could be started.
        pub const RUNS_FAILED: Metric = count(F, "RunsFailed");
        pub const RECORDS_REJECTED: Metric = count(F, "RecordsRejected");
        pub const RUNS_OTHER_INVOCATION: Metric = count(F, "RunsOtherInvocation");
    }

    pub mod log_tailer {
        use super::*;
        const F: &str = "log_tailer";
        /// Runs no longer followed (ended here, by a user, or already).
        pub const RUNS_FINISHED: Metric = count(F, "RunsFinished");
        /// Runs this function ended SUCCESS.
        pub const RUNS_SUCCEEDED: Metric = count(F, "RunsSucceeded");
        /// Runs this function ended FAILURE (the build failed, timed out, vanished).
        pub const RUNS_ENDED_FAILURE: Metric = count(F, "RunsEndedFailure");
        pub const CHECKPOINTS_HANDED_ON: Metric = count(F, "CheckpointsHandedOn");
        pub const CHECKPOINTS_FAILED: Metric = count(F, "CheckpointsFailed");
        /// Console log posts made to Port runs.
        pub const LOG_POSTS: Metric = count(F, "LogPosts");
        /// The longest a post's lines took from Jenkins' answer to Port's acceptance, in
        /// an invocation that posted (a line also waits up to PollIntervalMs to be read).
        pub const LOG_LATENCY_MAX: Metric = metric(F, "LogLatencyMax", Unit::Milliseconds);
    }

    pub mod aliecs_ingest {
        use super::*;
        const F: &str = "aliecs_ingest";
        pub const RECORDS_INDEXED: Metric = count(F, "RecordsIndexed");
        pub const RECORDS_REPEATED: Metric = count(F, "RecordsRepeated");
        pub const RECORDS_UNDECODABLE: Metric = count(F, "RecordsUndecodable");
        pub const RUNS_UPDATED: Metric = count(F, "RunsUpdated");
        pub const EOR_BUILDS_QUEUED: Metric = count(F, "EorBuildsQueued");
    }

    /// The whole catalogue.
    pub const ALL: &[Metric] = &[
        process_webhooks::DELIVERED,
        process_webhooks::QUEUED,
        process_webhooks::DUPLICATES,
        process_webhooks::REJECTED,
        process_webhooks::TARGET_REFUSED,
        process_webhooks::NOT_STORED,
        send_from_queue::SPIGOT_STATE,
        send_from_queue::DELIVERED,
        send_from_queue::POISONED,
        send_from_queue::RELEASED,
        send_from_queue::REMAINING,
        gitlab_ingest::JOBS_INGESTED,
        gitlab_ingest::JOBS_NOT_FINISHED,
        gitlab_ingest::JOBS_FAILED,
        gitlab_ingest::LINES_INDEXED,
        gitlab_ingest::BYTES_ARCHIVED,
        port_runner::RUNS_STARTED,
        port_runner::RUNS_DUPLICATE,
        port_runner::RUNS_SKIPPED,
        port_runner::RUNS_FAILED,
        port_runner::RECORDS_REJECTED,
        port_runner::RUNS_OTHER_INVOCATION,
        log_tailer::RUNS_FINISHED,
        log_tailer::RUNS_SUCCEEDED,
        log_tailer::RUNS_ENDED_FAILURE,
        log_tailer::CHECKPOINTS_HANDED_ON,
        log_tailer::CHECKPOINTS_FAILED,
        log_tailer::LOG_POSTS,
        log_tailer::LOG_LATENCY_MAX,
        aliecs_ingest::RECORDS_INDEXED,
        aliecs_ingest::RECORDS_REPEATED,
        aliecs_ingest::RECORDS_UNDECODABLE,
        aliecs_ingest::RUNS_UPDATED,
        aliecs_ingest::EOR_BUILDS_QUEUED,
    ];

    /// The catalogue's metrics of one function.
    pub fn of(function: &str) -> impl Iterator<Item = &'static Metric> + '_ {
        ALL.iter().filter(move |m| m.function == function)
    }
}

/// One EMF record of one function: CloudWatch turns the named fields into metrics of
/// [`NAMESPACE`] with the `Function` dimension, without an API call.
pub struct Metrics {
    function: &'static str,
    values: Vec<(Metric, f64)>,
}

impl Metrics {
    pub fn new(function: &'static str) -> Self {
        Self {
            function,
            values: Vec::new(),
        }
    }

    /// Adds `metric`'s value. A metric of another function would be emitted under the
    /// wrong dimension, where no dashboard looks: it is a bug, caught in debug builds
    /// and left out in release ones.
    pub fn put(mut self, metric: Metric, value: u64) -> Self {
        debug_assert_eq!(metric.function, self.function, "{}", metric.name);
        if metric.function == self.function {
            self.values.push((metric, value as f64));
        }
        self
    }

    pub fn to_json(&self) -> Value {
        let mut record = Map::new();
        record.insert(
            FUNCTION_DIMENSION.into(),
            Value::String(self.function.into()),
        );
        for (metric, value) in &self.values {
            record.insert(metric.name.into(), json!(value));
        }
        let timestamp = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        record.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [[FUNCTION_DIMENSION]],
                    "Metrics": self.values.iter()
                        .map(|(m, _)| json!({"Name": m.name, "Unit": m.unit.as_str()}))
                        .collect::<Vec<_>>(),
                }],
            }),
        );
        Value::Object(record)
    }

    /// EMF must be a top-level JSON line on stdout, not nested in a log record.
    pub fn emit(&self) {
        println!("{}", self.to_json());
    }
}

/// The metrics an EMF record names, as `(namespace, dimension names, metric name,
/// dimension values)`; `None` when the line is not an EMF record. For the tests that
/// hold what the functions print to the catalogue.
pub fn emf_metrics(line: &str) -> Option<Vec<EmfMetric>> {
    let record: Value = serde_json::from_str(line).ok()?;
    let directives = record.get("_aws")?.get("CloudWatchMetrics")?.as_array()?;
    let mut metrics = Vec::new();
    for directive in directives {
        let namespace = directive.get("Namespace")?.as_str()?.to_owned();
        let dimension_sets = directive.get("Dimensions")?.as_array()?;
        for set in dimension_sets {
            let dimensions: Vec<(String, String)> = set
                .as_array()?
                .iter()
                .map(|name| {
                    let name = name.as_str()?;
                    Some((name.to_owned(), record.get(name)?.as_str()?.to_owned()))
                })
                .collect::<Option<_>>()?;
            for metric in directive.get("Metrics")?.as_array()? {
                let name = metric.get("Name")?.as_str()?.to_owned();
                let unit = metric
                    .get("Unit")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let value = record.get(&name)?.as_f64()?;
                metrics.push(EmfMetric {
                    namespace: namespace.clone(),
                    dimensions: dimensions.clone(),
                    name,
                    unit,
                    value,
                });
            }
        }
    }
    Some(metrics)
}

/// One metric of an EMF record, read back.
#[derive(Debug, Clone, PartialEq)]
pub struct EmfMetric {
    pub namespace: String,
    pub dimensions: Vec<(String, String)>,
    pub name: String,
    pub unit: Option<String>,
    pub value: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn emf_record_names_every_metric() {
        let record = Metrics::new("send_from_queue")
            .put(catalogue::send_from_queue::DELIVERED, 3)
            .put(catalogue::send_from_queue::POISONED, 1)
            .to_json();
        assert_eq!(record["Delivered"], json!(3.0));
        assert_eq!(record["Function"], json!("send_from_queue"));
        let directive = &record["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], json!("Spigot"));
        assert_eq!(directive["Dimensions"], json!([["Function"]]));
        assert_eq!(directive["Metrics"].as_array().unwrap().len(), 2);
        let read = emf_metrics(&record.to_string()).expect("an EMF record");
        assert_eq!(read.len(), 2);
        assert_eq!(read[1].name, "Poisoned");
        assert_eq!(read[1].value, 1.0);
        assert_eq!(read[1].unit.as_deref(), Some("Count"));
        assert_eq!(
            read[1].dimensions,
            vec![("Function".to_owned(), "send_from_queue".to_owned())]
        );
    }

    #[test]
    fn units_are_written_as_cloudwatch_names_them() {
        let record = Metrics::new("gitlab_ingest")
            .put(catalogue::gitlab_ingest::BYTES_ARCHIVED, 10)
            .to_json();
        let read = emf_metrics(&record.to_string()).unwrap();
        assert_eq!(read[0].unit.as_deref(), Some("Bytes"));
    }

    #[test]
    fn a_log_line_is_not_an_emf_record() {
        assert_eq!(emf_metrics(r#"{"level":"INFO","fields":{}}"#), None);
        assert_eq!(emf_metrics("not json"), None);
    }

    #[test]
    fn the_catalogue_names_each_metric_of_a_function_once() {
        let mut seen = HashSet::new();
        for metric in catalogue::ALL {
            assert!(
                seen.insert((metric.function, metric.name)),
                "{} {} twice",
                metric.function,
                metric.name
            );
        }
        assert_eq!(catalogue::of("log_tailer").count(), 7);
    }
}
