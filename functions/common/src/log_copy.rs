//! A CI log streamed once into its two copies: byte for byte into the archive bucket,
//! and (when asked) as one search document per line. Used for GitLab job traces and
//! Jenkins console logs alike. Memory stays flat: one chunk, one bulk request and one
//! archive part at a time.

use crate::archive::{ArchiveError, ArchiveUpload};
use crate::log_index::LogSource;
use crate::logline::{LineParser, LogLine};
use crate::search::{BulkStats, BulkWriter, SearchClient, SearchError, MAX_BULK_BYTES};

/// Where the documents go.
pub struct IndexTarget<'a> {
    pub search: &'a SearchClient,
    pub index: &'a str,
    pub source: &'a LogSource,
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Search(#[from] SearchError),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CopyStats {
    pub lines: u64,
    pub bytes: u64,
    /// The runner cut the log at its size limit.
    pub log_truncated: bool,
    /// `None` when the lines were not indexed.
    pub bulk: Option<BulkStats>,
}

pub struct LogCopy<'a> {
    archive: ArchiveUpload,
    parser: LineParser,
    sink: Option<DocumentSink<'a>>,
    log_truncated: bool,
}

/// Turns parsed lines into bulk `create`s.
struct DocumentSink<'a> {
    target: IndexTarget<'a>,
    bulk: BulkWriter<'a>,
    /// Reused for every document.
    document: Vec<u8>,
}

impl<'a> LogCopy<'a> {
    pub fn new(
        archive: ArchiveUpload,
        index: Option<IndexTarget<'a>>,
        max_line_bytes: usize,
    ) -> Self {
        LogCopy {
            archive,
            parser: LineParser::new(max_line_bytes),
            sink: index.map(|target| DocumentSink {
                bulk: BulkWriter::new(target.search, MAX_BULK_BYTES),
                target,
                document: Vec::new(),
            }),
            log_truncated: false,
        }
    }

    /// The next bytes of the log.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), CopyError> {
        self.archive.write(chunk).await?;
        let (sink, truncated) = (&mut self.sink, &mut self.log_truncated);
        self.parser
            .feed(chunk, &mut |line| add(sink, truncated, line));
        if let Some(sink) = &mut self.sink {
            sink.bulk.send_full().await?;
        }
        Ok(())
    }

    /// Ends the log: the last documents and the archive are written.
    pub async fn finish(mut self) -> Result<CopyStats, CopyError> {
        let (sink, truncated) = (&mut self.sink, &mut self.log_truncated);
        self.parser.finish(&mut |line| add(sink, truncated, line));
        let bulk = match self.sink {
            Some(sink) => match sink.bulk.finish().await {
                Ok(stats) => Some(stats),
                Err(error) => {
                    self.archive.abort().await;
                    return Err(error.into());
                }
            },
            None => None,
        };
        let bytes = self.archive.finish().await?;
        Ok(CopyStats {
            lines: self.parser.lines(),
            bytes,
            log_truncated: self.log_truncated,
            bulk,
        })
    }

    /// Gives up: a multipart upload started is aborted.
    pub async fn abort(self) {
        self.archive.abort().await;
    }
}

fn add(sink: &mut Option<DocumentSink<'_>>, truncated: &mut bool, line: &LogLine<'_>) {
    *truncated |= line.log_limit_exceeded;
    if let Some(sink) = sink {
        sink.document.clear();
        sink.target.source.write_document(line, &mut sink.document);
        let id = sink.target.source.document_id(line.number);
        sink.bulk.create(sink.target.index, &id, &sink.document);
    }
}
