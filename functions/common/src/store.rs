//! The run store: the plan and per-stack records in the artifact bucket.

use aws_sdk_s3::primitives::ByteStream;
use futures::{stream, StreamExt, TryStreamExt};
use serde::{de::DeserializeOwned, Serialize};
use stackwave_core::io::RunContext;
use stackwave_core::plan::Plan;
use stackwave_core::record::StackRecord;
use stackwave_core::Error;

use crate::errors::aws_error;

/// Reads and writes a run's data in S3.
#[derive(Debug, Clone)]
pub struct RunStore {
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl RunStore {
    pub fn new(s3: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        RunStore {
            s3,
            bucket: bucket.into(),
        }
    }

    pub fn for_run(s3: &aws_sdk_s3::Client, run: &RunContext) -> Self {
        RunStore::new(s3.clone(), run.bucket.clone())
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub async fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), Error> {
        let body = serde_json::to_vec(value)
            .map_err(|e| Error::Internal(format!("serialize {key}: {e}")))?;
        self.put_bytes(key, body, "application/json").await
    }

    pub async fn put_bytes(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), Error> {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| aws_error("s3:PutObject", e))?;
        Ok(())
    }

    /// The object's bytes, or `None` when there is no such key.
    pub async fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.get_version_bytes(key, None).await
    }

    /// One version of an object (the current one when `version` is `None`). `None` when the key
    /// or that version does not exist.
    pub async fn get_version_bytes(
        &self,
        key: &str,
        version: Option<&str>,
    ) -> Result<Option<Vec<u8>>, Error> {
        match self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_version_id(version.map(str::to_string))
            .send()
            .await
        {
            Ok(out) => {
                let data = out.body.collect().await.map_err(|e| {
                    Error::Internal(format!("read s3://{}/{key}: {e}", self.bucket))
                })?;
                Ok(Some(data.into_bytes().to_vec()))
            }
            Err(e) => {
                let e = e.into_service_error();
                if e.is_no_such_key() {
                    Ok(None)
                } else {
                    Err(aws_error_meta("s3:GetObject", &e))
                }
            }
        }
    }

    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        match self.get_bytes(key).await? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Internal(format!("parse s3://{}/{key}: {e}", self.bucket))),
        }
    }

    /// Delete the key (S3 answers success when there is none).
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        self.s3
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| aws_error("s3:DeleteObject", e))?;
        Ok(())
    }

    /// Does the key exist?
    pub async fn exists(&self, key: &str) -> Result<bool, Error> {
        match self
            .s3
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = e.into_service_error();
                if e.is_not_found() {
                    Ok(false)
                } else {
                    Err(aws_error_meta("s3:HeadObject", &e))
                }
            }
        }
    }

    /// Every key under a prefix (paginated).
    pub async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("s3:ListObjectsV2", e))?;
            keys.extend(
                page.contents
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|o| o.key),
            );
        }
        Ok(keys)
    }

    pub async fn plan(&self, run: &RunContext) -> Result<Plan, Error> {
        self.get_json(&run.plan_key()).await?.ok_or_else(|| {
            Error::Internal(format!(
                "plan missing at s3://{}/{}",
                self.bucket,
                run.plan_key()
            ))
        })
    }

    pub async fn put_plan(&self, run: &RunContext, plan: &Plan) -> Result<(), Error> {
        self.put_json(&run.plan_key(), plan).await
    }

    pub async fn record(
        &self,
        run: &RunContext,
        stack: &str,
    ) -> Result<Option<StackRecord>, Error> {
        self.get_json(&run.record_key(stack)).await
    }

    pub async fn put_record(&self, run: &RunContext, record: &StackRecord) -> Result<(), Error> {
        self.put_json(&run.record_key(&record.stack), record).await
    }

    /// Records of the named stacks (absent ones are skipped), read 16 at a time, in input order.
    pub async fn records(
        &self,
        run: &RunContext,
        stacks: &[String],
    ) -> Result<Vec<StackRecord>, Error> {
        let found: Vec<Option<StackRecord>> = stream::iter(stacks.iter())
            .map(|s| self.record(run, s))
            .buffered(16)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// Every record of the run.
    pub async fn all_records(&self, run: &RunContext) -> Result<Vec<StackRecord>, Error> {
        let keys = self.list_keys(&run.records_prefix()).await?;
        let found: Vec<Option<StackRecord>> = stream::iter(keys.iter())
            .map(|k| self.get_json::<StackRecord>(k))
            .buffered(16)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }
}

/// Map an already-unwrapped service error.
pub fn aws_error_meta<E>(operation: &str, e: &E) -> Error
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::fmt::Display,
{
    let code = e.code().map(str::to_string);
    let message = e
        .message()
        .map(str::to_string)
        .unwrap_or_else(|| e.to_string());
    if crate::errors::classify_code(code.as_deref()) {
        Error::Throttled {
            operation: operation.to_string(),
            message,
        }
    } else {
        Error::AwsService {
            operation: operation.to_string(),
            code: code.unwrap_or_else(|| "Unknown".into()),
            message,
        }
    }
}
