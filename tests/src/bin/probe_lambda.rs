//! A test function for the local stack's event-source glue. For an SQS event it reports
//! the messages whose body contains `fail` in `batchItemFailures`, fails the invocation
//! when a body contains `crash`, and exits the process when one contains `exit`. Any
//! other event is answered with itself.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        let Some(records) = event.payload["Records"].as_array() else {
            return Ok::<_, Error>(event.payload);
        };
        let body = |r: &Value| r["body"].as_str().unwrap_or_default().to_owned();
        if records.iter().any(|r| body(r).contains("exit")) {
            std::process::exit(3);
        }
        if records.iter().any(|r| body(r).contains("crash")) {
            return Err("a message asked for a crash".into());
        }
        let failures: Vec<Value> = records
            .iter()
            .filter(|r| body(r).contains("fail"))
            .map(|r| json!({"itemIdentifier": r["messageId"]}))
            .collect();
        Ok(json!({ "batchItemFailures": failures }))
    }))
    .await
}
