//! Raw logs archived to S3 as they stream by, never held whole: bytes collect into one
//! part at a time; a log that fits one part is a plain PutObject, a larger one a
//! multipart upload (aborted if the copy fails half-way, so no stray parts are billed).

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::aws::error_text;

/// S3's smallest part (but the last) is 5 MiB.
pub const PART_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("archiving to s3://{bucket}/{key}: {reason}")]
pub struct ArchiveError {
    pub bucket: String,
    pub key: String,
    pub reason: String,
}

pub struct ArchiveUpload {
    s3: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    content_type: String,
    part: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    bytes: u64,
}

impl ArchiveUpload {
    pub fn new(s3: aws_sdk_s3::Client, bucket: &str, key: &str, content_type: &str) -> Self {
        ArchiveUpload {
            s3,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            content_type: content_type.to_owned(),
            part: Vec::new(),
            upload_id: None,
            parts: Vec::new(),
            bytes: 0,
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Adds bytes; a full part goes up at once.
    pub async fn write(&mut self, mut bytes: &[u8]) -> Result<(), ArchiveError> {
        self.bytes += bytes.len() as u64;
        while !bytes.is_empty() {
            let room = PART_BYTES - self.part.len();
            let take = room.min(bytes.len());
            self.part.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.part.len() == PART_BYTES {
                self.upload_part().await?;
            }
        }
        Ok(())
    }

    /// Stores what was written; the object's size.
    pub async fn finish(mut self) -> Result<u64, ArchiveError> {
        match self.upload_id.clone() {
            None => {
                let body = std::mem::take(&mut self.part);
                self.s3
                    .put_object()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .content_type(&self.content_type)
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .map_err(|e| self.error(error_text(&e)))?;
            }
            Some(upload_id) => {
                if !self.part.is_empty() {
                    self.upload_part().await?;
                }
                let completed = CompletedMultipartUpload::builder()
                    .set_parts(Some(std::mem::take(&mut self.parts)))
                    .build();
                let result = self
                    .s3
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .upload_id(&upload_id)
                    .multipart_upload(completed)
                    .send()
                    .await;
                if let Err(e) = result {
                    let error = self.error(error_text(&e));
                    self.abort().await;
                    return Err(error);
                }
            }
        }
        Ok(self.bytes)
    }

    /// Gives up: a multipart upload started is aborted.
    pub async fn abort(self) {
        if let Some(upload_id) = &self.upload_id {
            let result = self
                .s3
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(upload_id)
                .send()
                .await;
            if let Err(e) = result {
                // The bucket's lifecycle rule removes it later.
                tracing::warn!(key = %self.key, error = %error_text(&e), "cannot abort a multipart upload");
            }
        }
    }

    async fn upload_part(&mut self) -> Result<(), ArchiveError> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let created = self
                    .s3
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .content_type(&self.content_type)
                    .send()
                    .await
                    .map_err(|e| self.error(error_text(&e)))?;
                let id = created
                    .upload_id
                    .ok_or_else(|| self.error("no upload id returned".into()))?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = self.parts.len() as i32 + 1;
        let body = std::mem::take(&mut self.part);
        let uploaded = self
            .s3
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.error(error_text(&e)))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(uploaded.e_tag)
                .build(),
        );
        self.part = Vec::with_capacity(PART_BYTES);
        Ok(())
    }

    fn error(&self, reason: String) -> ArchiveError {
        ArchiveError {
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            reason,
        }
    }
}
