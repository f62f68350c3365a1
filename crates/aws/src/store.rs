//! Object storage behind a small trait: S3 through the SDK, or memory for unit tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use pipeline_core::payload::SourceObject;
use pipeline_core::reconcile::InputObject;
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
    /// Milliseconds since the epoch, when the listing says.
    pub last_modified_ms: Option<i64>,
}

/// One version as ListObjectVersions lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedVersion {
    /// S3's `IsLatest`: the key's current version.
    pub is_latest: bool,
    pub object: InputObject,
}

/// A whole object with the ETag it was read at, for a conditional write back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub body: Vec<u8>,
    pub etag: Option<String>,
}

/// The precondition of a conditional `PutObject` (S3 conditional writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    /// `If-None-Match: *`: only when no object exists at the key.
    IfAbsent,
    /// `If-Match: <etag>`: only when the object is still the one read at that ETag.
    IfMatch(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    /// A conditional write lost to a concurrent writer: read again and decide again.
    #[error("s3://{bucket}/{key} changed since it was read (conditional write refused)")]
    PreconditionFailed { bucket: String, key: String },
    #[error("s3://{bucket}/{key} not found")]
    NotFound { bucket: String, key: String },
    /// Refused (HTTP 403). S3 also answers a read of a missing key this way when the caller may not list
    /// the bucket (`s3:ListBucket`), so a role that reads keys which may not exist needs
    /// that grant to tell the two apart.
    #[error("{operation} on s3://{bucket}/{key}: access denied")]
    AccessDenied {
        operation: &'static str,
        bucket: String,
        key: String,
    },
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
    /// The latest version of every object under `prefix` (delete markers left out), for
    /// the reconciler. In a bucket that was never versioned the version id is `None`.
    async fn list_latest_versions(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<InputObject>, StoreError>;
    /// The latest version of an object with its ETag, `None` when there is none.
    async fn read_current(
        &self,
        bucket: &str,
        key: &str,
        max_bytes: u64,
    ) -> Result<Option<StoredObject>, StoreError>;
    /// A write that happens only if `condition` holds, else `PreconditionFailed`.
    async fn put_if(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        condition: WriteCondition,
    ) -> Result<(), StoreError>;
    /// Deletes the latest version of an object (no error when it does not exist).
    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError>;
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

    /// Every version under `prefix` (delete markers left out), all pages of
    /// ListObjectVersions, newest first within a key as S3 lists them.
    pub async fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<ListedVersion>, StoreError> {
        let mut out = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut version_marker: Option<String> = None;
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| {
                    denied_or(ObjectLocation::latest(bucket, ""), "ListObjectVersions", e)
                })?;
            for v in page.versions() {
                out.push(ListedVersion {
                    is_latest: v.is_latest() == Some(true),
                    object: InputObject {
                        key: v.key().unwrap_or_default().to_string(),
                        version_id: v
                            .version_id()
                            .filter(|id| !id.is_empty() && *id != "null")
                            .map(str::to_string),
                        etag: v.e_tag().map(str::to_string),
                        size: v.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                        last_modified_ms: v.last_modified().and_then(epoch_ms).unwrap_or(0),
                    },
                });
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
            if key_marker.is_none() {
                break;
            }
        }
        Ok(out)
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

fn is_access_denied<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    matches!(e.code(), Some("AccessDenied" | "Forbidden" | "403"))
        || e.raw_response().map(|r| r.status().as_u16()) == Some(403)
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
            .map_err(|e| denied_or(ObjectLocation::latest(bucket, key), "PutObject", e))
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
            let page = page
                .map_err(|e| denied_or(ObjectLocation::latest(bucket, ""), "ListObjectsV2", e))?;
            for o in page.contents() {
                out.push(ListedObject {
                    key: o.key().unwrap_or_default().to_string(),
                    size: o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    etag: o.e_tag().map(str::to_string),
                    last_modified_ms: o.last_modified().and_then(epoch_ms),
                });
            }
        }
        Ok(out)
    }

    async fn list_latest_versions(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<InputObject>, StoreError> {
        Ok(self
            .list_versions(bucket, prefix)
            .await?
            .into_iter()
            .filter(|v| v.is_latest)
            .map(|v| v.object)
            .collect())
    }

    async fn read_current(
        &self,
        bucket: &str,
        key: &str,
        max_bytes: u64,
    ) -> Result<Option<StoredObject>, StoreError> {
        let at = ObjectLocation::latest(bucket, key);
        let out = match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(not_found_or(at, "GetObject", e)),
        };
        let etag = out.e_tag().map(str::to_string);
        let body = read_body(out.body, at, max_bytes).await?;
        Ok(Some(StoredObject { body, etag }))
    }

    async fn put_if(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        condition: WriteCondition,
    ) -> Result<(), StoreError> {
        let request = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body));
        let request = match condition {
            WriteCondition::IfAbsent => request.if_none_match("*"),
            WriteCondition::IfMatch(etag) => request.if_match(etag),
        };
        match request.send().await {
            Ok(_) => Ok(()),
            // 412 when the condition fails; 409 when a concurrent conditional write to
            // the key is in flight (AWS); 404 for If-Match on a key deleted meanwhile.
            Err(e) if is_precondition_failure(&e) => Err(StoreError::PreconditionFailed {
                bucket: bucket.to_string(),
                key: key.to_string(),
            }),
            Err(e) => Err(denied_or(
                ObjectLocation::latest(bucket, key),
                "PutObject (conditional)",
                e,
            )),
        }
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| denied_or(ObjectLocation::latest(bucket, key), "DeleteObject", e))
    }
}

fn epoch_ms(t: &aws_sdk_s3::primitives::DateTime) -> Option<i64> {
    t.to_millis().ok()
}

fn is_precondition_failure<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    matches!(
        e.code(),
        Some("PreconditionFailed" | "ConditionalRequestConflict" | "NoSuchKey")
    ) || matches!(
        e.raw_response().map(|r| r.status().as_u16()),
        Some(412 | 409 | 404)
    )
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
        denied_or(at, operation, e)
    }
}

fn denied_or<E: ProvideErrorMetadata + std::error::Error + 'static>(
    at: ObjectLocation<'_>,
    operation: &'static str,
    e: SdkError<E, HttpResponse>,
) -> StoreError {
    if is_access_denied(&e) {
        StoreError::AccessDenied {
            operation,
            bucket: at.bucket.to_string(),
            key: at.key.to_string(),
        }
    } else {
        failed(operation, e)
    }
}

/// One version of an object in [`MemoryStore`].
#[derive(Debug, Clone)]
struct MemoryVersion {
    /// `None` is S3's `"null"` version (unversioned or suspended bucket).
    id: Option<String>,
    body: Vec<u8>,
    content_type: String,
    last_modified_ms: i64,
    /// A delete marker (versioned buckets): the key reads as missing.
    delete_marker: bool,
}

/// `(bucket, key)` -> versions, oldest first.
type MemoryObjects = BTreeMap<(String, String), Vec<MemoryVersion>>;

/// In-memory [`ObjectStore`] for unit tests, answering as S3 documents:
/// - buckets are unversioned until [`MemoryStore::enable_versioning`]; then every write is
///   a new version with its own id, a delete leaves a delete marker, and reads by version
///   id find that version (an unversioned bucket has only the `"null"` version);
/// - ETags are content hashes (equal bytes, equal ETag), quoted as S3 quotes them;
/// - conditional writes (`If-None-Match: *`, `If-Match`) hold or fail atomically.
///
/// It enforces no permissions: [`crate::iam`] wraps any store with a role's policy.
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<MemoryObjects>,
    versioned: Mutex<std::collections::BTreeSet<String>>,
    /// The fake's clock: every write is one millisecond after the previous one.
    clock: std::sync::atomic::AtomicI64,
    /// Version ids handed out so far.
    versions: std::sync::atomic::AtomicU64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Turns versioning on for `bucket` (as the template does for the input bucket).
    pub fn enable_versioning(&self, bucket: &str) {
        if let Ok(mut v) = self.versioned.lock() {
            v.insert(bucket.to_string());
        }
    }

    fn is_versioned(&self, bucket: &str) -> bool {
        self.versioned
            .lock()
            .map(|v| v.contains(bucket))
            .unwrap_or(false)
    }

    /// Writes an object as a PutObject would and returns its version id (`None` in an
    /// unversioned bucket).
    pub fn insert(&self, bucket: &str, key: &str, body: impl Into<Vec<u8>>) -> Option<String> {
        self.write(bucket, key, body.into(), "application/octet-stream", false)
    }

    /// Writes a version with the given id, as in a versioned bucket (for fixtures whose
    /// version ids are fixed).
    pub fn insert_version(
        &self,
        bucket: &str,
        key: &str,
        body: impl Into<Vec<u8>>,
        version_id: &str,
    ) {
        self.enable_versioning(bucket);
        if let Ok(mut m) = self.objects.lock() {
            let version = MemoryVersion {
                id: Some(version_id.to_string()),
                body: body.into(),
                content_type: "application/octet-stream".into(),
                last_modified_ms: self.tick(),
                delete_marker: false,
            };
            m.entry((bucket.into(), key.into()))
                .or_default()
                .push(version);
        }
    }

    /// The fake's clock: every write is one millisecond after the previous one.
    fn tick(&self) -> i64 {
        self.clock.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
    }

    fn write(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        delete_marker: bool,
    ) -> Option<String> {
        let mut m = self.objects.lock().ok()?;
        self.write_locked(&mut m, bucket, key, body, content_type, delete_marker)
    }

    fn write_locked(
        &self,
        m: &mut MemoryObjects,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        delete_marker: bool,
    ) -> Option<String> {
        let now = self.tick();
        let id = self.is_versioned(bucket).then(|| {
            let n = self
                .versions
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                + 1;
            format!("mem-v{n:06}")
        });
        let version = MemoryVersion {
            id: id.clone(),
            body,
            content_type: content_type.to_string(),
            last_modified_ms: now,
            delete_marker,
        };
        let versions = m.entry((bucket.into(), key.into())).or_default();
        if id.is_none() {
            // The null version is replaced in place.
            versions.retain(|v| v.id.is_some());
        }
        versions.push(version);
        id
    }

    /// Sets the latest version's LastModified (milliseconds), e.g. to age it past a grace
    /// period.
    pub fn set_last_modified(&self, bucket: &str, key: &str, ms: i64) {
        if let Ok(mut m) = self.objects.lock() {
            if let Some(v) = m
                .get_mut(&(bucket.to_string(), key.to_string()))
                .and_then(|v| v.last_mut())
            {
                v.last_modified_ms = ms;
            }
        }
    }

    fn latest(&self, bucket: &str, key: &str) -> Option<MemoryVersion> {
        self.objects
            .lock()
            .ok()?
            .get(&(bucket.to_string(), key.to_string()))?
            .last()
            .filter(|v| !v.delete_marker)
            .cloned()
    }

    /// Body and content type of an object's current version, if it has one.
    pub fn object(&self, bucket: &str, key: &str) -> Option<(Vec<u8>, String)> {
        self.latest(bucket, key).map(|v| (v.body, v.content_type))
    }

    /// The current version of every key, as ListObjectVersions reports it.
    pub fn latest_versions(&self, bucket: &str) -> Vec<InputObject> {
        let Ok(m) = self.objects.lock() else {
            return Vec::new();
        };
        m.iter()
            .filter(|((b, _), _)| b == bucket)
            .filter_map(|((_, k), versions)| {
                let v = versions.last().filter(|v| !v.delete_marker)?;
                Some(InputObject {
                    key: k.clone(),
                    version_id: v.id.clone(),
                    etag: Some(memory_etag(&v.body)),
                    size: v.body.len() as u64,
                    last_modified_ms: v.last_modified_ms,
                })
            })
            .collect()
    }

    /// Keys with a current version.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        self.objects
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|((b, _), v)| b == bucket && v.last().is_some_and(|v| !v.delete_marker))
                    .map(|((_, k), _)| k.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The version `at` names: a version id finds that version (missing in an unversioned
    /// bucket, where only `"null"` exists), no id the current one.
    fn read(&self, at: ObjectLocation<'_>) -> Result<MemoryVersion, StoreError> {
        let not_found = || StoreError::NotFound {
            bucket: at.bucket.to_string(),
            key: at.key.to_string(),
        };
        let Some(version_id) = at.version_id else {
            return self.latest(at.bucket, at.key).ok_or_else(not_found);
        };
        let m = self.objects.lock().map_err(|_| poisoned())?;
        m.get(&(at.bucket.to_string(), at.key.to_string()))
            .and_then(|versions| {
                versions
                    .iter()
                    .find(|v| v.id.as_deref() == Some(version_id) && !v.delete_marker)
            })
            .cloned()
            .ok_or_else(not_found)
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
        let v = self.read(at)?;
        Ok(ObjectHead {
            size: v.body.len() as u64,
            etag: Some(memory_etag(&v.body)),
            version_id: v.id,
        })
    }

    async fn get_prefix(&self, at: ObjectLocation<'_>, len: u64) -> Result<Vec<u8>, StoreError> {
        let mut body = self.read(at)?.body;
        body.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        Ok(body)
    }

    async fn get(&self, at: ObjectLocation<'_>, max_bytes: u64) -> Result<Vec<u8>, StoreError> {
        let body = self.read(at)?.body;
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
        self.write(bucket, key, body, content_type, false);
        Ok(())
    }

    async fn copy(
        &self,
        from: ObjectLocation<'_>,
        to_bucket: &str,
        to_key: &str,
    ) -> Result<(), StoreError> {
        let v = self.read(from)?;
        self.write(to_bucket, to_key, v.body, &v.content_type, false);
        Ok(())
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ListedObject>, StoreError> {
        let m = self.objects.lock().map_err(|_| poisoned())?;
        Ok(m.iter()
            .filter(|((b, k), _)| b == bucket && k.starts_with(prefix))
            .filter_map(|((_, k), versions)| {
                let v = versions.last().filter(|v| !v.delete_marker)?;
                Some(ListedObject {
                    key: k.clone(),
                    size: v.body.len() as u64,
                    etag: Some(memory_etag(&v.body)),
                    last_modified_ms: Some(v.last_modified_ms),
                })
            })
            .collect())
    }

    async fn list_latest_versions(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<InputObject>, StoreError> {
        Ok(self
            .latest_versions(bucket)
            .into_iter()
            .filter(|o| o.key.starts_with(prefix))
            .collect())
    }

    async fn read_current(
        &self,
        bucket: &str,
        key: &str,
        max_bytes: u64,
    ) -> Result<Option<StoredObject>, StoreError> {
        let Some(v) = self.latest(bucket, key) else {
            return Ok(None);
        };
        if v.body.len() as u64 > max_bytes {
            return Err(StoreError::TooLarge {
                bucket: bucket.into(),
                key: key.into(),
                limit: max_bytes,
            });
        }
        let etag = Some(memory_etag(&v.body));
        Ok(Some(StoredObject { body: v.body, etag }))
    }

    async fn put_if(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        condition: WriteCondition,
    ) -> Result<(), StoreError> {
        // The check and the write under one lock: S3 conditional writes are atomic.
        let mut m = self.objects.lock().map_err(|_| poisoned())?;
        let slot = (bucket.to_string(), key.to_string());
        let current = m
            .get(&slot)
            .and_then(|v| v.last())
            .filter(|v| !v.delete_marker);
        let holds = match (&condition, current) {
            (WriteCondition::IfAbsent, existing) => existing.is_none(),
            (WriteCondition::IfMatch(etag), Some(v)) => *etag == memory_etag(&v.body),
            (WriteCondition::IfMatch(_), None) => false,
        };
        if !holds {
            return Err(StoreError::PreconditionFailed {
                bucket: bucket.into(),
                key: key.into(),
            });
        }
        self.write_locked(&mut m, bucket, key, body, content_type, false);
        Ok(())
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        if self.is_versioned(bucket) {
            // S3 adds a delete marker whether or not the key has a current version.
            self.write(bucket, key, Vec::new(), "", true);
        } else {
            self.objects
                .lock()
                .map_err(|_| poisoned())?
                .remove(&(bucket.to_string(), key.to_string()));
        }
        Ok(())
    }
}

/// A content hash standing in for S3's ETag of a single-part upload (the MD5 of the
/// bytes): 32 hex digits in quotes, equal bytes giving an equal tag.
fn memory_etag(body: &[u8]) -> String {
    let mut hex = pipeline_core::image_info::sha256_hex(body);
    hex.truncate(32);
    format!("\"{hex}\"")
}

/// What tests in this crate need of the fake's internals.
#[cfg(test)]
pub(crate) mod tests_support {
    /// The unquoted ETag the fake gives `body`.
    pub fn etag(body: &[u8]) -> String {
        super::memory_etag(body).trim_matches('"').to_string()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// DeleteObject without a version id, as S3 documents it: a versioned bucket gets a
    /// delete marker (also for a key with no current version) and keeps every version,
    /// readable by id; an unversioned bucket loses the object.
    #[tokio::test]
    async fn memory_store_delete_leaves_markers_in_a_versioned_bucket() {
        let store = MemoryStore::new();
        store.enable_versioning("in");
        let v1 = store.insert("in", "a.jpg", b"one".to_vec()).unwrap();
        store.delete("in", "a.jpg").await.unwrap();
        assert!(matches!(
            store.head(ObjectLocation::latest("in", "a.jpg")).await,
            Err(StoreError::NotFound { .. })
        ));
        let old = ObjectLocation {
            bucket: "in",
            key: "a.jpg",
            version_id: Some(&v1),
        };
        assert_eq!(store.get(old, 10).await.unwrap(), b"one");
        store.delete("in", "never.jpg").await.unwrap();
        let markers = |key: &str| {
            store.objects.lock().unwrap()[&("in".to_string(), key.to_string())]
                .iter()
                .filter(|v| v.delete_marker)
                .count()
        };
        assert_eq!((markers("a.jpg"), markers("never.jpg")), (1, 1));
        assert!(store.latest_versions("in").is_empty());

        store.insert("plain", "b.jpg", b"x".to_vec());
        store.delete("plain", "b.jpg").await.unwrap();
        assert!(store
            .objects
            .lock()
            .unwrap()
            .get(&("plain".into(), "b.jpg".into()))
            .is_none());
    }
}
