//! JSON logs through `tracing`, and CloudWatch metrics as Embedded Metric Format lines.

use serde_json::{json, Map, Value};

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

/// One EMF record: CloudWatch turns the named fields into metrics without an API call.
pub struct Metrics {
    namespace: String,
    dimensions: Vec<(String, String)>,
    values: Vec<(String, f64, &'static str)>,
}

impl Metrics {
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            dimensions: Vec::new(),
            values: Vec::new(),
        }
    }

    pub fn dimension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.dimensions.push((name.into(), value.into()));
        self
    }

    pub fn count(mut self, name: impl Into<String>, value: u64) -> Self {
        self.values.push((name.into(), value as f64, "Count"));
        self
    }

    pub fn to_json(&self) -> Value {
        let mut record = Map::new();
        for (name, value) in &self.dimensions {
            record.insert(name.clone(), Value::String(value.clone()));
        }
        for (name, value, _) in &self.values {
            record.insert(name.clone(), json!(value));
        }
        let timestamp = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        record.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [self.dimensions.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>()],
                    "Metrics": self.values.iter().map(|(n, _, unit)| json!({"Name": n, "Unit": unit})).collect::<Vec<_>>(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_record_names_every_metric() {
        let record = Metrics::new("Spigot")
            .dimension("Function", "send_from_queue")
            .count("Delivered", 3)
            .count("Poisoned", 1)
            .to_json();
        assert_eq!(record["Delivered"], json!(3.0));
        assert_eq!(record["Function"], json!("send_from_queue"));
        let directive = &record["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], json!("Spigot"));
        assert_eq!(directive["Dimensions"], json!([["Function"]]));
        assert_eq!(directive["Metrics"].as_array().unwrap().len(), 2);
    }
}
