//! JSON documents read into types with errors that never quote the document: the
//! credentials files hold secrets, and serde's own messages quote the value they trip
//! on (`invalid type: string "hunter2", expected a sequence`).
//!
//! The document is first read as a value tree: serde_json's syntax errors name the
//! problem and its position, never the text. The type is then filled from the tree
//! through an error type that keeps apart what serde tells it (where, what was expected,
//! what kind of value was found) and drops the value itself. What could still come from
//! the document (the object keys on the path, an unknown field's name, the text of a
//! `Deserialize` impl) is shown only when it holds none of the document's values.

use std::fmt::{self, Write as _};

use serde::de::{self, DeserializeOwned, Unexpected};
use serde_path_to_error::{Path, Segment};
use serde_value::{Value, ValueDeserializer};

/// Why a document is not of its type's shape, told without any of its values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("not JSON: {0}")]
    Syntax(String),
    /// `path`: where in the document (`servers.main.api_token`, `webhook_secrets[1]`).
    #[error("{path}: {problem}")]
    Shape { path: String, problem: String },
}

/// Shown instead of a text that would quote the document.
const WITHHELD: &str = "…";

/// `bytes` as a `T`.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ShapeError> {
    let tree: Value = serde_json::from_slice(bytes).map_err(syntax_error)?;
    let values = document_values(&tree);
    serde_path_to_error::deserialize(ValueDeserializer::<Problem>::new(tree)).map_err(|error| {
        ShapeError::Shape {
            path: shown_path(error.path(), &values),
            problem: error.into_inner().describe(&values),
        }
    })
}

fn syntax_error(error: serde_json::Error) -> ShapeError {
    match error.classify() {
        // serde_json's fixed texts, e.g. "trailing comma at line 1 column 26".
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            ShapeError::Syntax(error.to_string())
        }
        // A value tree takes any JSON, so this is not expected; said without its text.
        _ => ShapeError::Syntax(format!(
            "unreadable at line {} column {}",
            error.line(),
            error.column()
        )),
    }
}

/// The text of every string and number in the document.
fn document_values(tree: &Value) -> Vec<String> {
    let mut values = Vec::new();
    let mut stack = vec![tree];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(text) if !text.is_empty() => values.push(text.clone()),
            Value::U64(n) => values.push(n.to_string()),
            Value::I64(n) => values.push(n.to_string()),
            Value::F64(n) => values.push(n.to_string()),
            Value::Seq(items) => stack.extend(items),
            Value::Map(members) => stack.extend(members.values()),
            Value::Option(Some(inner)) | Value::Newtype(inner) => stack.push(inner),
            _ => {}
        }
    }
    values
}

/// Values shorter than this withhold only a text equal to them: they are inside most
/// words (`ok` in `tokens`), and no secret is that short.
const SHORT_VALUE_CHARS: usize = 4;

/// `text` unless it holds one of the document's values.
fn checked<'a>(text: &'a str, values: &[String]) -> &'a str {
    let quotes = |value: &String| {
        if value.chars().count() < SHORT_VALUE_CHARS {
            text == value
        } else {
            text.contains(value.as_str())
        }
    };
    if values.iter().any(quotes) {
        WITHHELD
    } else {
        text
    }
}

fn shown_path(path: &Path, values: &[String]) -> String {
    let mut shown = String::new();
    for segment in path {
        let name = match segment {
            Segment::Seq { index } => {
                let _ = write!(shown, "[{index}]");
                continue;
            }
            Segment::Map { key } => checked(key, values),
            Segment::Enum { variant } => checked(variant, values),
            _ => "?",
        };
        if !shown.is_empty() {
            shown.push('.');
        }
        shown.push_str(name);
    }
    if shown.is_empty() {
        "the top level".into()
    } else {
        shown
    }
}

/// What serde reports, minus the values it would quote.
#[derive(Debug)]
enum Problem {
    Type {
        found: &'static str,
        expected: String,
    },
    Value {
        found: &'static str,
        expected: String,
    },
    Length {
        found: usize,
        expected: String,
    },
    Variant {
        expected: &'static [&'static str],
    },
    /// The path ends with the field's name.
    Field {
        expected: &'static [&'static str],
    },
    Missing(&'static str),
    Duplicate(&'static str),
    Other(String),
}

impl Problem {
    fn describe(self, values: &[String]) -> String {
        match self {
            Problem::Type { found, expected } => {
                format!("expected {}, found {found}", checked(&expected, values))
            }
            Problem::Value { found, expected } => format!(
                "expected {}, found {found} that is not one",
                checked(&expected, values)
            ),
            Problem::Length { found, expected } => format!(
                "expected {}, found an array of {found}",
                checked(&expected, values)
            ),
            Problem::Variant { expected } => {
                format!("expected {}, found another string", one_of(expected))
            }
            Problem::Field { expected } => {
                format!("unknown field, expected {}", one_of(expected))
            }
            Problem::Missing(field) => format!("missing field `{field}`"),
            Problem::Duplicate(field) => format!("duplicate field `{field}`"),
            Problem::Other(text) => checked(&text, values).to_owned(),
        }
    }
}

/// `` one of `a`, `b` ``, from the type's own names.
fn one_of(names: &[&str]) -> String {
    match names {
        [] => "nothing here".into(),
        [name] => format!("`{name}`"),
        _ => {
            let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            format!("one of {}", quoted.join(", "))
        }
    }
}

/// The kind of a value, never the value.
fn kind(unexpected: &Unexpected<'_>) -> &'static str {
    match unexpected {
        Unexpected::Bool(_) => "a boolean",
        Unexpected::Unsigned(_) | Unexpected::Signed(_) | Unexpected::Float(_) => "a number",
        Unexpected::Char(_) | Unexpected::Str(_) => "a string",
        Unexpected::Unit | Unexpected::Option => "null",
        Unexpected::Seq => "an array",
        Unexpected::Map => "an object",
        _ => "another kind of value",
    }
}

impl de::Error for Problem {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Problem::Other(message.to_string())
    }
    fn invalid_type(unexpected: Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Problem::Type {
            found: kind(&unexpected),
            expected: expected.to_string(),
        }
    }
    fn invalid_value(unexpected: Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Problem::Value {
            found: kind(&unexpected),
            expected: expected.to_string(),
        }
    }
    fn invalid_length(found: usize, expected: &dyn de::Expected) -> Self {
        Problem::Length {
            found,
            expected: expected.to_string(),
        }
    }
    fn unknown_variant(_variant: &str, expected: &'static [&'static str]) -> Self {
        Problem::Variant { expected }
    }
    fn unknown_field(_name: &str, expected: &'static [&'static str]) -> Self {
        Problem::Field { expected }
    }
    fn missing_field(field: &'static str) -> Self {
        Problem::Missing(field)
    }
    fn duplicate_field(field: &'static str) -> Self {
        Problem::Duplicate(field)
    }
}

/// Never shown (see [`Problem::describe`]); says nothing in case it is.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not of the expected shape")
    }
}

impl std::error::Error for Problem {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    #[serde(deny_unknown_fields)]
    struct Server {
        username: String,
        token: String,
        #[serde(default)]
        mode: Option<Mode>,
        #[serde(default)]
        port: Option<u16>,
        #[serde(default)]
        pair: Option<(String, String)>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Fast,
        Slow,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Servers {
        servers: BTreeMap<String, Server>,
    }

    fn problem(document: &str) -> ShapeError {
        parse::<Servers>(document.as_bytes()).expect_err(document)
    }

    #[test]
    fn every_kind_of_problem_is_told_without_the_value() {
        let cases = [
            (
                r#"{"servers": {"main": {"username": "ci", "token": 31415926535}}}"#,
                "servers.main.token: expected a string, found a number",
            ),
            (
                r#"{"servers": {"main": {"username": "ci", "token": {"v": "s3cr3t-obj"}}}}"#,
                "servers.main.token: expected a string, found an object",
            ),
            (
                r#"{"servers": {"main": {"username": "ci", "token": "t0k", "mode": "s3cr3t-variant"}}}"#,
                "servers.main.mode: expected one of `fast`, `slow`, found another string",
            ),
            (
                r#"{"servers": {"main": {"username": "ci", "token": "t0k", "port": 99999}}}"#,
                "servers.main.port: expected u16, found a number that is not one",
            ),
            (
                r#"{"servers": {"main": {"username": "ci", "token": "t0k", "pair": ["a-s3cr3t"]}}}"#,
                "servers.main.pair: expected a tuple of size 2, found an array of 1",
            ),
            (
                r#"{"servers": {"main": {"username": "ci", "token": "t0k", "tokn": "s3cr3t-typo"}}}"#,
                "servers.main.tokn: unknown field, expected one of `username`, `token`, `mode`, `port`, `pair`",
            ),
            (
                r#"{"servers": {"main": {"username": "s3cr3t-user"}}}"#,
                "servers.main: missing field `token`",
            ),
            (
                r#"{"servers": ["s3cr3t-in-a-list"]}"#,
                "servers: expected a map, found an array",
            ),
            (r#""s3cr3t-top""#, "the top level: expected struct Servers, found a string"),
        ];
        for (document, expected) in cases {
            let error = problem(document);
            assert_eq!(error.to_string(), expected, "{document}");
            let debug = format!("{error:?}");
            for secret in ["31415926535", "s3cr3t", "t0k"] {
                assert!(!debug.contains(secret), "{debug}");
            }
        }
    }

    #[test]
    fn syntax_errors_name_the_position_only() {
        for (document, expected) in [
            (r#"{"token": "s3cr3t-1",}"#, "not JSON: trailing comma at line 1 column 22"),
            (r#"{"token": "s3cr3t-2"#, "not JSON: EOF while parsing a string at line 1 column 19"),
            ("{\"token\": \"s3cr3t\u{1}3\"}", "not JSON: control character (\\u0000-\\u001F) found while parsing a string at line 1 column 18"),
            (r#"{"token": s3cr3t-4}"#, "not JSON: expected value at line 1 column 11"),
        ] {
            let error = problem(document);
            assert_eq!(error.to_string(), expected, "{document}");
            assert!(!format!("{error:?}").contains("s3cr3t"));
        }
    }

    #[test]
    fn a_key_or_a_text_that_holds_a_value_is_withheld() {
        // The server's name is also a value of the document, and so is the unknown
        // field's name: neither is shown.
        let error =
            problem(r#"{"servers": {"hunter2": {"username": "hunter2", "token": 7, "x": 1}}}"#);
        assert_eq!(
            error.to_string(),
            "servers.….token: expected a string, found a number"
        );
        let error = problem(
            r#"{"servers": {"main": {"username": "ci", "token": "t", "mode-s3": "mode-s3"}}}"#,
        );
        assert_eq!(
            error.to_string(),
            "servers.main.…: unknown field, expected one of `username`, `token`, `mode`, `port`, `pair`"
        );
        // A short value withholds only its equal: `ok` is inside `tokens`.
        let error = problem(r#"{"servers": {"main": {"username": "ok", "token": 7}}}"#);
        assert_eq!(
            error.to_string(),
            "servers.main.token: expected a string, found a number"
        );
        let error = problem(r#"{"servers": {"ok": {"username": "ok", "token": 7}}}"#);
        assert_eq!(
            error.to_string(),
            "servers.….token: expected a string, found a number"
        );
        // A Deserialize impl's own message is shown only when it quotes nothing.
        #[derive(Debug)]
        struct Picky;
        impl<'de> Deserialize<'de> for Picky {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Err(de::Error::custom(format!("{text} is not picky enough")))
            }
        }
        let error = parse::<Picky>(br#""s3cr3t-picky""#).unwrap_err();
        assert_eq!(error.to_string(), "the top level: …");
    }

    #[test]
    fn a_document_of_the_right_shape_reads() {
        let servers: Servers = parse(
            br#"{"servers": {"main": {"username": "ci", "token": "t", "mode": "fast", "port": 8080, "pair": ["a", "b"]}}}"#,
        )
        .unwrap();
        assert_eq!(servers.servers["main"].port, Some(8080));
    }
}
