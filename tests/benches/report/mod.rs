//! What the benchmarks share: percentiles and the result table. scripts/bench.sh merges
//! the rows of every benchmark into one table, so the row format is its interface: one
//! markdown row per line, after the header line below.

use std::time::Duration;

pub const HEADER: &str = "| benchmark | value | target | verdict |\n| --- | --- | --- | --- |";
/// Target and verdict of a row that only reports a number.
pub const NO_TARGET: &str = "-";

pub struct Row {
    pub benchmark: String,
    pub value: String,
    pub target: String,
    pub verdict: String,
}

impl Row {
    /// A measurement without a target.
    pub fn info(benchmark: impl Into<String>, value: impl Into<String>) -> Row {
        Row {
            benchmark: benchmark.into(),
            value: value.into(),
            target: NO_TARGET.into(),
            verdict: NO_TARGET.into(),
        }
    }

    /// A benchmark that could not measure: the reason is the verdict.
    pub fn failed(benchmark: impl Into<String>, target: impl Into<String>, reason: &str) -> Row {
        Row {
            benchmark: benchmark.into(),
            value: NO_TARGET.into(),
            target: target.into(),
            verdict: format!("FAILED: {reason}"),
        }
    }

    /// `ok` when `met`, else `MISSED`.
    pub fn judged(
        benchmark: impl Into<String>,
        value: impl Into<String>,
        target: impl Into<String>,
        met: bool,
    ) -> Row {
        Row {
            benchmark: benchmark.into(),
            value: value.into(),
            target: target.into(),
            verdict: if met { "ok" } else { "MISSED" }.into(),
        }
    }
}

pub fn print_table(rows: &[Row]) {
    println!("{HEADER}");
    for row in rows {
        // A `|` inside a cell (e.g. in an error message) would split it.
        let cells = [&row.benchmark, &row.value, &row.target, &row.verdict]
            .map(|cell| cell.replace('|', "/").replace('\n', " "));
        println!("| {} |", cells.join(" | "));
    }
}

/// The nearest-rank percentile `p` (0-100] of `samples`, which must not be empty.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn millis(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}
