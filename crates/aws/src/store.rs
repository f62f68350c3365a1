//! Object storage behind a small trait: S3 through the SDK, or memory for unit tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use pipeline_core::payload::SourceObject;
use thiserror::Error;

/// One object, optionally one version of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectLocation<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub version_id: Option<&'a str>,
}

impl<'a> ObjectLocation<'a> {
    pub fn latest(bucket: &'a str, key: &'a str) -> Self {
        ObjectLocation {
            bucket,
            key,
            version_id: None,
        }
    }
}

impl<'a> From<&'a SourceObject> for ObjectLocation<'a> {
    fn from(s: &'a SourceObject) -> Self {
        ObjectLocation {
            bucket: &s.bucket,
            key: &s.key,
            version_id: s
                .version_id
                .as_deref()
                .filter(|v| !v.is_empty() && *v != "null"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    pub size: u64,
    pub etag: Option<String>,
    pub version_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    #[error("s3://{bucket}/{key} not found")]
    NotFound { bucket: String, key: String },
    #[error("s3://{bucket}/{key} is larger than {limit} bytes")]
    TooLarge {
        bucket: String,
        key: String,
        limit: u64,
    },
    #[error("{operation} failed: {message}")]
    Failed {
        operation: &'static str,
        message: String,
    },
}

#[async_trait]
pub trait ObjectStore: Send + Sync {
    async fn head(&self, at: ObjectLocation<'_>) -> Result<ObjectHead, StoreError>;
    /// The first `len` bytes (fewer when the object is shorter).
    async fn get_prefix(&self, at: ObjectLocation<'_>, len: u64) -> Result<Vec<u8>, StoreError>;
    /// The whole object, refusing to hold more than `max_bytes`.
    async fn get(&self, at: ObjectLocation<'_>, max_bytes: u64) -> Result<Vec<u8>, StoreError>;
    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StoreError>;
    async fn copy(
        &self,
        from: ObjectLocation<'_>,
        to_bucket: &str,
        to_key: &str,
    ) -> Result<(), StoreError>;
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ListedObject>, StoreError>;
}

/// [`ObjectStore`] over S3.
#[derive(Clone, Debug)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
}

impl S3Store {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        S3Store { client }
    }

    /// Creates the bucket unless it already exists (owned by the caller).
    pub async fn ensure_bucket(&self, bucket: &str) -> Result<(), StoreError> {
        match self.client.create_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.code(),
                    Some("BucketAlreadyOwnedByYou") | Some("BucketAlreadyExists")
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(failed("CreateBucket", e)),
        }
    }
}

fn failed<E: ProvideErrorMetadata + std::error::Error + 'static>(
    operation: &'static str,
    e: SdkError<E, HttpResponse>,
) -> StoreError {
    let message = match e.code() {
        Some(code) => format!("{code}: {}", e.message().unwrap_or_default()),
        None => error_chain(&e),
    };
    StoreError::Failed { operation, message }
}

/// The full chain of causes: the SDK's top-level Display ("dispatch failure") hides them.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn is_not_found<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    matches!(
        e.code(),
        Some("NoSuchKey" | "NotFound" | "NoSuchVersion" | "404")
    ) || e.raw_response().map(|r| r.status().as_u16()) == Some(404)
}

async fn read_body(
    mut body: ByteStream,
    at: ObjectLocation<'_>,
    max_bytes: u64,
) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| StoreError::Failed {
            operation: "GetObject (body)",
            message: error_chain(&e),
        })?;
        out.extend_from_slice(&chunk);
        if out.len() as u64 > max_bytes {
            return Err(StoreError::TooLarge {
                bucket: at.bucket.to_string(),
                key: at.key.to_string(),
                limit: max_bytes,
            });
        }
    }
    Ok(out)
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn head(&self, at: ObjectLocation<'_>) -> Result<ObjectHead, StoreError> {
        let out = self
            .client
            .head_object()
            .bucket(at.bucket)
            .key(at.key)
            .set_version_id(at.version_id.map(str::to_string))
            .send()
            .await
            .map_err(|e| not_found_or(at, "HeadObject", e))?;
        Ok(ObjectHead {
            size: out
                .content_length()
                .and_then(|l| u64::try_from(l).ok())
                .unwrap_or(0),
            etag: out.e_tag().map(str::to_string),
            version_id: out.version_id().map(str::to_string),
        })
    }

    async fn get_prefix(&self, at: ObjectLocation<'_>, len: u64) -> Result<Vec<u8>, StoreError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .get_object()
            .bucket(at.bucket)
            .key(at.key)
            .set_version_id(at.version_id.map(str::to_string))
            .range(format!("bytes=0-{}", len - 1))
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            // An empty object has no satisfiable range.
            Err(e) if e.code() == Some("InvalidRange") => return Ok(Vec::new()),
            Err(e) => return Err(not_found_or(at, "GetObject (range)", e)),
        };
        let mut bytes = read_body(out.body, at, u64::MAX).await?;
        // Some servers ignore Range; never hand back more than asked.
        bytes.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        Ok(bytes)
    }

    async fn get(&self, at: ObjectLocation<'_>, max_bytes: u64) -> Result<Vec<u8>, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(at.bucket)
            .key(at.key)
            .set_version_id(at.version_id.map(str::to_string))
            .send()
            .await
            .map_err(|e| not_found_or(at, "GetObject", e))?;
        read_body(out.body, at, max_bytes).await
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failed("PutObject", e))
    }

    async fn copy(
        &self,
        from: ObjectLocation<'_>,
        to_bucket: &str,
        to_key: &str,
    ) -> Result<(), StoreError> {
        // CopySource is `bucket/key[?versionId=..]` with the key URL-encoded.
        let mut source = format!(
            "{}/{}",
            from.bucket,
            pipeline_core::key::ObjectKey::from_decoded(from.key)
                .map(|k| k.encode_for_event().replace('+', "%20"))
                .unwrap_or_default()
        );
        if let Some(v) = from.version_id {
            source.push_str("?versionId=");
            source.push_str(v);
        }
        self.client
            .copy_object()
            .copy_source(source)
            .bucket(to_bucket)
            .key(to_key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| not_found_or(from, "CopyObject", e))
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ListedObject>, StoreError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| failed("ListObjectsV2", e))?;
            for o in page.contents() {
                out.push(ListedObject {
                    key: o.key().unwrap_or_default().to_string(),
                    size: o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    etag: o.e_tag().map(str::to_string),
                });
            }
        }
        Ok(out)
    }
}

fn not_found_or<E: ProvideErrorMetadata + std::error::Error + 'static>(
    at: ObjectLocation<'_>,
    operation: &'static str,
    e: SdkError<E, HttpResponse>,
) -> StoreError {
    if is_not_found(&e) {
        StoreError::NotFound {
            bucket: at.bucket.to_string(),
            key: at.key.to_string(),
        }
    } else {
        failed(operation, e)
    }
}

/// `(bucket, key)` -> `(body, content type)`.
type MemoryObjects = BTreeMap<(String, String), (Vec<u8>, String)>;

/// In-memory [`ObjectStore`] for unit tests. Versions are not modelled: the latest wins.
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<MemoryObjects>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, bucket: &str, key: &str, body: impl Into<Vec<u8>>) {
        if let Ok(mut m) = self.objects.lock() {
            m.insert(
                (bucket.into(), key.into()),
                (body.into(), "application/octet-stream".into()),
            );
        }
    }

    /// Body and content type of an object, if present.
    pub fn object(&self, bucket: &str, key: &str) -> Option<(Vec<u8>, String)> {
        self.objects
            .lock()
            .ok()?
            .get(&(bucket.to_string(), key.to_string()))
            .cloned()
    }

    pub fn keys(&self, bucket: &str) -> Vec<String> {
        self.objects
            .lock()
            .map(|m| {
                m.keys()
                    .filter(|(b, _)| b == bucket)
                    .map(|(_, k)| k.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn read(&self, at: ObjectLocation<'_>) -> Result<Vec<u8>, StoreError> {
        self.object(at.bucket, at.key)
            .map(|(b, _)| b)
            .ok_or_else(|| StoreError::NotFound {
                bucket: at.bucket.to_string(),
                key: at.key.to_string(),
            })
    }
}

fn poisoned() -> StoreError {
    StoreError::Failed {
        operation: "memory store",
        message: "lock poisoned".into(),
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    async fn head(&self, at: ObjectLocation<'_>) -> Result<ObjectHead, StoreError> {
        let body = self.read(at)?;
        Ok(ObjectHead {
            size: body.len() as u64,
            etag: None,
            version_id: None,
        })
    }

    async fn get_prefix(&self, at: ObjectLocation<'_>, len: u64) -> Result<Vec<u8>, StoreError> {
        let mut body = self.read(at)?;
        body.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        Ok(body)
    }

    async fn get(&self, at: ObjectLocation<'_>, max_bytes: u64) -> Result<Vec<u8>, StoreError> {
        let body = self.read(at)?;
        if body.len() as u64 > max_bytes {
            return Err(StoreError::TooLarge {
                bucket: at.bucket.into(),
                key: at.key.into(),
                limit: max_bytes,
            });
        }
        Ok(body)
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StoreError> {
        self.objects
            .lock()
            .map_err(|_| poisoned())?
            .insert((bucket.into(), key.into()), (body, content_type.into()));
        Ok(())
    }

    async fn copy(
        &self,
        from: ObjectLocation<'_>,
        to_bucket: &str,
        to_key: &str,
    ) -> Result<(), StoreError> {
        let body = self.read(from)?;
        self.put(to_bucket, to_key, body, "application/octet-stream")
            .await
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ListedObject>, StoreError> {
        let m = self.objects.lock().map_err(|_| poisoned())?;
        Ok(m.iter()
            .filter(|((b, k), _)| b == bucket && k.starts_with(prefix))
            .map(|((_, k), (body, _))| ListedObject {
                key: k.clone(),
                size: body.len() as u64,
                etag: None,
            })
            .collect())
    }
}
