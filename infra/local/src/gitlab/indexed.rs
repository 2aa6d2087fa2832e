//! The documents gitlab_ingest indexed for a job, held to what GitLab's job log page shows
//! for its trace ([`super::TraceShape::expected_lines`]): the same count, in order, each with
//! its section path, text and a footer's duration. The page's reading of a trace is
//! gitlabhq's lib/gitlab/ci/ansi2json/converter.rb (and its spec,
//! spec/lib/gitlab/ci/ansi2json_spec.rb); where the ingest departs from it on purpose
//! (blank and marker-only lines are documents, an end closes inner sections left open),
//! the expected view says so where it is built.

use serde_json::{json, Value};
use spigot_common::search::SearchClient;
use spigot_common::text::truncate;

use super::ExpectedLine;

/// Documents read per search request.
const PAGE: u64 = 1000;
/// Differences spelled out in a mismatch; the rest are counted.
const SHOWN_DIFFERENCES: usize = 10;
/// Characters of a text shown in a difference.
const SHOWN_TEXT_CHARS: usize = 80;

/// One indexed line, in the expected lines' terms.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IndexedLine {
    sequence: u64,
    line: ExpectedLine,
    /// Tagged `line_truncated`: the ingest cut the text at its cap.
    truncated: bool,
}

/// Reads the documents of job `job_id` in `index` (a pattern) in line order and compares
/// them with `expected`. `Err` holds a diff a person can read.
pub async fn check_indexed(
    search: &SearchClient,
    index: &str,
    job_id: u64,
    expected: &[ExpectedLine],
) -> anyhow::Result<Result<(), String>> {
    search.refresh(index).await?;
    let mut indexed = Vec::with_capacity(expected.len());
    let mut next = 1;
    loop {
        let page = search
            .search(
                index,
                &json!({
                    "size": PAGE,
                    "sort": [{"event.sequence": "asc"}],
                    "query": {"bool": {"filter": [
                        {"term": {"ci.job.id": job_id.to_string()}},
                        {"range": {"event.sequence": {"gte": next}}},
                    ]}},
                }),
            )
            .await?;
        let hits = page["hits"]["hits"].as_array().cloned().unwrap_or_default();
        for hit in &hits {
            let line = indexed_line(&hit["_source"])
                .ok_or_else(|| anyhow::anyhow!("an unreadable document: {hit}"))?;
            next = line.sequence + 1;
            indexed.push(line);
        }
        if (hits.len() as u64) < PAGE {
            break;
        }
    }
    Ok(compare(&indexed, expected))
}

fn indexed_line(doc: &Value) -> Option<IndexedLine> {
    let section = &doc["ci"]["section"];
    Some(IndexedLine {
        sequence: doc["event"]["sequence"].as_u64()?,
        line: ExpectedLine {
            path: section["path"].as_str().unwrap_or("").to_owned(),
            text: doc["message"].as_str()?.to_owned(),
            duration_s: section["duration_s"].as_u64(),
        },
        truncated: doc["tags"]
            .as_array()
            .is_some_and(|tags| tags.iter().any(|t| t == "line_truncated")),
    })
}

/// The differences between what was indexed and what was expected, line by line.
fn compare(indexed: &[IndexedLine], expected: &[ExpectedLine]) -> Result<(), String> {
    let mut differences = Vec::new();
    if indexed.len() != expected.len() {
        differences.push(format!(
            "{} lines indexed, {} expected",
            indexed.len(),
            expected.len()
        ));
    }
    for (number, (got, want)) in (1..).zip(indexed.iter().zip(expected)) {
        let text_matches =
            got.line.text == want.text || (got.truncated && want.text.starts_with(&got.line.text));
        if got.sequence != number
            || got.line.path != want.path
            || got.line.duration_s != want.duration_s
            || !text_matches
        {
            differences.push(format!(
                "line {number}: indexed #{} [{}] {:?} {:?}, expected [{}] {:?} {:?}",
                got.sequence,
                got.line.path,
                truncate(&got.line.text, SHOWN_TEXT_CHARS),
                got.line.duration_s,
                want.path,
                truncate(&want.text, SHOWN_TEXT_CHARS),
                want.duration_s,
            ));
        }
    }
    if differences.is_empty() {
        return Ok(());
    }
    let more = differences.len().saturating_sub(SHOWN_DIFFERENCES);
    differences.truncate(SHOWN_DIFFERENCES);
    if more > 0 {
        differences.push(format!("… and {more} more"));
    }
    Err(differences.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(path: &str, text: &str, duration_s: Option<u64>) -> ExpectedLine {
        ExpectedLine {
            path: path.into(),
            text: text.into(),
            duration_s,
        }
    }

    fn indexed(lines: &[ExpectedLine]) -> Vec<IndexedLine> {
        (1..)
            .zip(lines)
            .map(|(sequence, line)| IndexedLine {
                sequence,
                line: line.clone(),
                truncated: false,
            })
            .collect()
    }

    #[test]
    fn a_diff_names_each_line_that_differs_and_the_counts() {
        let expected = [
            line("step_script", "Running build", None),
            line("step_script/build", "ok", None),
            line("step_script/build", "", Some(3)),
        ];
        assert_eq!(compare(&indexed(&expected), &expected), Ok(()));

        let mut wrong = indexed(&expected);
        wrong[1].line.path = "get_sources".into();
        wrong[2].line.duration_s = None;
        wrong.pop();
        let diff = compare(&wrong, &expected).unwrap_err();
        assert_eq!(
            diff,
            "2 lines indexed, 3 expected\n\
             line 2: indexed #2 [get_sources] \"ok\" None, expected [step_script/build] \"ok\" None"
        );

        // A text cut at the ingest's cap matches the start of the whole one.
        let mut cut = indexed(&expected);
        cut[0].line.text = "Running".into();
        assert!(compare(&cut, &expected).is_err());
        cut[0].truncated = true;
        assert_eq!(compare(&cut, &expected), Ok(()));
    }
}
