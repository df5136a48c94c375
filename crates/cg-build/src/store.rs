//! Object storage: a build's inputs and outputs at `s3://bucket/key` on an S3-compatible store,
//! through the `object_store` crate DataFusion reads with.
//!
//! Where the data goes:
//! - **Content** is read in place: DataFusion scans the object through the store (on the client,
//!   the scheduler and every executor — each builds its store from its own environment, so no
//!   credential travels in a plan), and its digest is computed by streaming it through the store.
//! - **Member-side tables** (members, consent, residences, notices, erasures) are small beside
//!   the content and read whole by the fact loader: each is streamed to a private (0600) local
//!   copy, its digest computed on the way, read, and removed; errors name the object, not the copy.
//! - **The dataset** is written as on a local path into a private staging directory (the
//!   build's `staging`, else `$TMPDIR`), then uploaded under `s3://bucket/prefix/<dataset_id>/`:
//!   every file but the manifest, each read back through the store and its digest compared with
//!   the local file's, then `manifest.json` last and only if absent (an S3 conditional put,
//!   `If-None-Match: *`). A dataset on a store is one whose manifest is there: a failed or
//!   interrupted upload leaves objects without a manifest, which are not a dataset (and are
//!   removed when the upload fails in this process).
//! - **A distributed build's shards** never pass through the client: each executor puts the
//!   shards it writes under its attempt's own prefix (`prefix/.<dataset_id>.attempts-…/<attempt>/`,
//!   [`put_checked`]: read back, digest compared), and the client copies the kept attempts'
//!   objects into the dataset on the store (S3 `CopyObject`, [`StoredShard`]) before the
//!   manifest, then removes the attempts' prefix ([`remove_prefix`]).
//!
//! The store is configured from the environment, as AWS's tools read it: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL` (an
//! S3-compatible server) and `AWS_ALLOW_HTTP=true` for one without TLS. A URL with a user or
//! password in it is refused: secrets never appear in a path, a plan or a log.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use futures_lite::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use url::Url;

use crate::BuildError;
use crate::layout::hex;

/// The URL scheme of an S3-compatible store.
pub const S3_SCHEME: &str = "s3";

/// Files at least this large are uploaded in parts of this size (S3's parts are 5 MiB at least).
const PART_BYTES: usize = 8 << 20;
/// Parts of one file in flight at once.
const PARTS_IN_FLIGHT: usize = 4;
/// The largest object one S3 `CopyObject` request copies (5 GiB); a larger one is streamed
/// through this process instead.
const COPY_LIMIT: u64 = 5 << 30;

/// An object (or a prefix) on an S3-compatible store: `s3://bucket/key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectUrl {
    bucket: String,
    key: ObjectPath,
}

impl ObjectUrl {
    /// Parses `s3://bucket/key` (the key may be empty for a bucket's root). Refuses other
    /// schemes, a user or password, a port, a query or a fragment, and keys with empty
    /// segments (`.` and `..` segments are resolved, as in any URL).
    pub fn parse(s: &str) -> Result<ObjectUrl, BuildError> {
        let bad = |why: &str| BuildError::Input(format!("`{}`: {why}", redact(s)));
        let url = Url::parse(s).map_err(|e| bad(&format!("not a URL: {e}")))?;
        if url.scheme() != S3_SCHEME {
            return Err(bad(
                "only s3:// object URLs are supported (an S3-compatible store; other paths are files)",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "a URL must not hold credentials: give them as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment",
            ));
        }
        if url.port().is_some() || url.query().is_some() || url.fragment().is_some() {
            return Err(bad(
                "expected s3://bucket/key (the endpoint is AWS_ENDPOINT_URL, not part of the URL)",
            ));
        }
        let bucket = url
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| bad("no bucket"))?
            .to_owned();
        let key = url.path().trim_start_matches('/').trim_end_matches('/');
        if key
            .split('/')
            .any(|seg| seg == "." || seg == ".." || (seg.is_empty() && !key.is_empty()))
        {
            return Err(bad("a key with an empty, `.` or `..` segment"));
        }
        let key = ObjectPath::parse(key).map_err(|e| bad(&e.to_string()))?;
        Ok(ObjectUrl { bucket, key })
    }

    /// The object URL a path names, if it names one (`s3://…`); `None` for a file path.
    pub fn of_path(p: &Path) -> Option<Result<ObjectUrl, BuildError>> {
        let s = p.to_str()?;
        is_object_url(s).then(|| ObjectUrl::parse(s))
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key within the bucket.
    pub fn key(&self) -> &ObjectPath {
        &self.key
    }

    /// `s3://bucket`: what DataFusion registers a store under.
    pub fn bucket_url(&self) -> Result<Url, BuildError> {
        Url::parse(&format!("{S3_SCHEME}://{}", self.bucket))
            .map_err(|e| BuildError::Input(format!("bucket `{}`: {e}", self.bucket)))
    }

    /// The object `name` under this prefix (`name` may hold `/`).
    pub fn join(&self, name: &str) -> ObjectUrl {
        let key = self
            .key
            .parts()
            .chain(ObjectPath::from(name).parts())
            .collect();
        ObjectUrl {
            bucket: self.bucket.clone(),
            key,
        }
    }

    /// The last segment of the key (the object's file name).
    pub fn file_name(&self) -> Option<&str> {
        self.key.filename()
    }

    /// The store holding the bucket (made once per bucket and process, from the environment).
    pub fn store(&self) -> Result<Arc<dyn ObjectStore>, BuildError> {
        store_of_bucket(&self.bucket)
    }
}

impl std::fmt::Display for ObjectUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.as_ref().is_empty() {
            write!(f, "{S3_SCHEME}://{}", self.bucket)
        } else {
            write!(f, "{S3_SCHEME}://{}/{}", self.bucket, self.key)
        }
    }
}

/// Whether `s` names an object (`s3://…`) rather than a file.
pub fn is_object_url(s: &str) -> bool {
    s.get(..S3_SCHEME.len() + 3)
        .is_some_and(|p| p.eq_ignore_ascii_case("s3://"))
}

/// `s` with any password in it replaced, for messages.
fn redact(s: &str) -> String {
    match Url::parse(s) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => s.to_owned(),
    }
}

fn store_error(url: &ObjectUrl, e: impl std::fmt::Display) -> BuildError {
    BuildError::Store {
        url: url.to_string(),
        message: e.to_string(),
    }
}

/// Stores made in this process, by bucket.
static STORES: Mutex<Option<HashMap<String, Arc<dyn ObjectStore>>>> = Mutex::new(None);

fn store_of_bucket(bucket: &str) -> Result<Arc<dyn ObjectStore>, BuildError> {
    let mut stores = STORES
        .lock()
        .map_err(|_| BuildError::Engine("the object-store cache is poisoned".into()))?;
    let stores = stores.get_or_insert_with(HashMap::new);
    if let Some(s) = stores.get(bucket) {
        return Ok(s.clone());
    }
    // Credentials, region, endpoint and TLS from the environment. Every wait is bounded:
    // object_store's request timeout (30 s, connecting 5 s) and at most 3 retries within 30 s
    // (its default would keep a build waiting up to 3 min on a wrong endpoint).
    let retry = object_store::RetryConfig {
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(30),
        ..Default::default()
    };
    let store: Arc<dyn ObjectStore> = Arc::new(
        AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(retry)
            .build()
            .map_err(|e| BuildError::Store {
                url: format!("{S3_SCHEME}://{bucket}"),
                message: e.to_string(),
            })?,
    );
    stores.insert(bucket.to_owned(), store.clone());
    Ok(store)
}

/// DataFusion's object-store registry for processes that plan or run a build's scans without
/// being told where the content is (a Ballista scheduler and its executors): a store for
/// `s3://bucket` is made from this process's environment the first time a plan names it.
#[derive(Debug, Default)]
pub struct EnvObjectStores {
    inner: DefaultObjectStoreRegistry,
}

impl ObjectStoreRegistry for EnvObjectStores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        self.inner.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.inner.get_store(url) {
            return Ok(store);
        }
        match url.host_str() {
            Some(bucket) if url.scheme() == S3_SCHEME => {
                let store = store_of_bucket(bucket)
                    .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
                self.inner.register_store(url, store.clone());
                Ok(store)
            }
            _ => self.inner.get_store(url),
        }
    }
}

/// Runs `fut` to completion on a runtime of its own, on a thread of its own: callable from
/// synchronous code whether or not it runs inside another runtime.
pub(crate) fn blocking<T: Send>(
    fut: impl std::future::Future<Output = Result<T, BuildError>> + Send,
) -> Result<T, BuildError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(BuildError::Runtime)?
                .block_on(fut)
        })
        .join()
        .map_err(|_| BuildError::Engine("an object-store transfer panicked".into()))?
    })
}

/// Streams an object's bytes to `sink`, returning its SHA-256 (hex) and size.
async fn stream_object(
    store: &dyn ObjectStore,
    url: &ObjectUrl,
    mut sink: impl FnMut(&[u8]) -> Result<(), BuildError>,
) -> Result<(String, u64), BuildError> {
    let got = store
        .get(url.key())
        .await
        .map_err(|e| store_error(url, e))?;
    let mut stream = got.into_stream();
    let mut h = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| store_error(url, e))?;
        h.update(&chunk);
        size += chunk.len() as u64;
        sink(&chunk)?;
    }
    Ok((hex(&h.finalize()), size))
}

/// SHA-256 (hex) of a file or an object, the object's computed by streaming it through the store.
pub fn sha256_of(path: &Path) -> Result<String, BuildError> {
    match ObjectUrl::of_path(path) {
        None => crate::layout::sha256_file(path),
        Some(url) => {
            let url = url?;
            let store = url.store()?;
            blocking(async {
                stream_object(&*store, &url, |_| Ok(()))
                    .await
                    .map(|(sha, _)| sha)
            })
        }
    }
}

/// The size in bytes of a file or an object (the object's from a `HEAD` request).
pub(crate) fn size_of(path: &Path) -> Result<u64, BuildError> {
    match ObjectUrl::of_path(path) {
        None => std::fs::metadata(path)
            .map(|m| m.len())
            .map_err(|e| BuildError::io(path, e)),
        Some(url) => {
            let url = url?;
            let store = url.store()?;
            blocking(object_size(&*store, &url))
        }
    }
}

/// The size in bytes of an object.
async fn object_size(store: &dyn ObjectStore, url: &ObjectUrl) -> Result<u64, BuildError> {
    store
        .head(url.key())
        .await
        .map(|meta| meta.size)
        .map_err(|e| store_error(url, e))
}

/// The bytes of a file or an object.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, BuildError> {
    match ObjectUrl::of_path(path) {
        None => std::fs::read(path).map_err(|e| BuildError::io(path, e)),
        Some(url) => {
            let url = url?;
            let store = url.store()?;
            let mut bytes = Vec::new();
            blocking(async {
                stream_object(&*store, &url, |chunk| {
                    bytes.extend_from_slice(chunk);
                    Ok(())
                })
                .await
            })?;
            Ok(bytes)
        }
    }
}

/// Checks that a CSV file or object is UTF-8 (see [`cg_io::check_utf8`]), an object's by
/// streaming it.
pub(crate) fn check_utf8(path: &Path) -> Result<(), BuildError> {
    match ObjectUrl::of_path(path) {
        None => cg_io::check_utf8(path).map_err(BuildError::from),
        Some(url) => {
            let url = url?;
            let mut check = cg_io::Utf8Check::new(path);
            let store = url.store()?;
            blocking(async {
                stream_object(&*store, &url, |chunk| {
                    check.feed(chunk).map_err(BuildError::from)
                })
                .await
            })?;
            check.finish().map_err(BuildError::from)
        }
    }
}

/// A private directory (0700) removed with everything in it when dropped.
#[derive(Debug)]
pub(crate) struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    /// A new directory `consentgate-<what>-<pid>-<unique>` under `parent` (default `$TMPDIR`),
    /// which must exist.
    pub(crate) fn new(parent: Option<&Path>, what: &str) -> Result<PrivateDir, BuildError> {
        use std::os::unix::fs::DirBuilderExt;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_owned);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = parent.join(format!(
            "consentgate-{what}-{}-{nanos:x}{n}",
            std::process::id()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(false)
            .create(&path)
            .map_err(|e| BuildError::io(&path, e))?;
        Ok(PrivateDir { path })
    }

    /// Its path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Runs `read` on a local file holding `path`'s bytes and returns its result with their
/// SHA-256: a file is read where it is; an object is streamed to a private local copy first
/// (its digest computed on the way), and errors that name the copy are made to name the object.
pub(crate) fn with_local<T>(
    path: &Path,
    read: impl FnOnce(&Path) -> Result<T, BuildError>,
) -> Result<(T, String), BuildError> {
    let Some(url) = ObjectUrl::of_path(path) else {
        let value = read(path)?;
        return Ok((value, crate::layout::sha256_file(path)?));
    };
    let url = url?;
    let dir = PrivateDir::new(None, "input")?;
    // The copy keeps the object's name: its extension chooses the reader.
    let copy = dir.path().join(url.file_name().unwrap_or("object"));
    let sha256 = download(&url, &copy)?;
    let value = read(&copy).map_err(|e| e.renamed(&copy, path))?;
    Ok((value, sha256))
}

/// Streams an object into a new private (0600) file; returns its SHA-256.
fn download(url: &ObjectUrl, dest: &Path) -> Result<String, BuildError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .map_err(|e| BuildError::io(dest, e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let store = url.store()?;
    let (sha256, _) = blocking(async {
        stream_object(&*store, url, |chunk| {
            w.write_all(chunk).map_err(|e| BuildError::io(dest, e))
        })
        .await
    })?;
    w.flush().map_err(|e| BuildError::io(dest, e))?;
    Ok(sha256)
}

/// Whether a dataset is published at `prefix` (its `manifest.json` is there).
pub(crate) fn dataset_exists(prefix: &ObjectUrl) -> Result<bool, BuildError> {
    let manifest = prefix.join(crate::MANIFEST_FILE);
    blocking(async {
        match manifest.store()?.head(manifest.key()).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(store_error(&manifest, e)),
        }
    })
}

/// A shard an executor put on the store for the attempt the client kept, to be copied into the
/// dataset there: its bytes never pass through the client (but see [`COPY_LIMIT`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredShard {
    /// The object the executor put (under its attempt's prefix).
    pub from: ObjectUrl,
    /// Its name in the dataset (`shards/part-NNNNN.parquet`).
    pub name: String,
    /// Its size, as the executor reported it and the client checked with a `HEAD`.
    pub bytes: u64,
    /// Its SHA-256 (hex), as the executor computed it while writing and reading it back.
    pub sha256: String,
}

/// What publishing a dataset to a store moved, by this process's own counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Uploaded {
    /// Files this process put from its staging directory (each read back for its digest).
    pub files: u64,
    /// Their bytes (each crossed the network twice: put, then read back).
    pub bytes: u64,
    /// Shards copied on the store from the executors' objects.
    pub copied: u64,
    /// Their bytes (none through this process, but `streamed_bytes`).
    pub copied_bytes: u64,
    /// Bytes of copied shards that were streamed through this process (an object over
    /// S3's 5 GiB `CopyObject` limit; read once, written once, digest checked).
    pub streamed_bytes: u64,
}

/// Uploads the dataset published in the local directory `dir` under `prefix`: every file but
/// the manifest (each read back through the store and compared with the local file's digest),
/// then the executors' shards copied in place on the store, then the manifest, only if none is
/// there. On failure the objects uploaded or copied are removed and an already-published
/// dataset is [`BuildError::Exists`].
pub(crate) fn upload_dataset(
    dir: &Path,
    prefix: &ObjectUrl,
    shards: &[StoredShard],
) -> Result<Uploaded, BuildError> {
    let mut files = Vec::new();
    list_files(dir, dir, &mut files)?;
    files.sort();
    if !files.iter().any(|f| f == crate::MANIFEST_FILE) {
        return Err(BuildError::Engine(format!(
            "`{}` has no manifest to upload",
            dir.display()
        )));
    }
    if let Some(twice) = shards.iter().find(|s| files.contains(&s.name)) {
        return Err(BuildError::Engine(format!(
            "`{}` is both in `{}` and on the store",
            twice.name,
            dir.display()
        )));
    }
    upload_dataset_to(prefix.store()?, dir, &files, prefix, shards, COPY_LIMIT)
}

fn upload_dataset_to(
    store: Arc<dyn ObjectStore>,
    dir: &Path,
    files: &[String],
    prefix: &ObjectUrl,
    shards: &[StoredShard],
    copy_limit: u64,
) -> Result<Uploaded, BuildError> {
    let manifest_name = crate::MANIFEST_FILE;
    let mut moved = Uploaded::default();
    blocking(async {
        let mut uploaded = Vec::new();
        let result = async {
            for name in files.iter().filter(|f| *f != manifest_name) {
                let url = prefix.join(name);
                uploaded.push(url.clone());
                let local = upload_file(&*store, &dir.join(name), &url).await?;
                let (remote, size) = stream_object(&*store, &url, |_| Ok(())).await?;
                if remote != local {
                    return Err(store_error(
                        &url,
                        format!("read back with SHA-256 {remote}, uploaded {local}"),
                    ));
                }
                moved.files += 1;
                moved.bytes += size;
            }
            // Copies are requests without a body: several in flight at once. An object over
            // the copy limit is streamed through this process instead, one at a time (each
            // holds its parts in flight).
            let copies: Vec<(StoredShard, ObjectUrl)> = shards
                .iter()
                .map(|shard| (shard.clone(), prefix.join(&shard.name)))
                .collect();
            uploaded.extend(copies.iter().map(|(_, url)| url.clone()));
            let (streamed, copied): (Vec<_>, Vec<_>) = copies
                .into_iter()
                .partition(|(shard, _)| shard.bytes > copy_limit);
            concurrently(copied, |(shard, url)| {
                let store = store.clone();
                async move { copy_object(&*store, &shard, &url, copy_limit).await }
            })
            .await?;
            for (shard, url) in &streamed {
                copy_object(&*store, shard, url, copy_limit).await?;
                moved.streamed_bytes += shard.bytes;
            }
            moved.copied = shards.len() as u64;
            moved.copied_bytes = shards.iter().map(|s| s.bytes).sum();
            let manifest = prefix.join(manifest_name);
            let bytes = std::fs::read(dir.join(manifest_name))
                .map_err(|e| BuildError::io(&dir.join(manifest_name), e))?;
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            match store
                .put_opts(manifest.key(), PutPayload::from(bytes), opts)
                .await
            {
                Ok(_) => Ok(()),
                Err(object_store::Error::AlreadyExists { .. }) => {
                    // Another build published it first: its objects are the same bytes (the
                    // dataset id names the inputs), but ours are not removed blindly either.
                    uploaded.clear();
                    Err(BuildError::Exists(PathBuf::from(prefix.to_string())))
                }
                Err(e) => Err(store_error(&manifest, e)),
            }
        }
        .await;
        if result.is_err() {
            for url in &uploaded {
                let _ = store.delete(url.key()).await;
            }
        }
        result
    })?;
    Ok(moved)
}

/// Copies `shard` to `to` on the store and checks the copy's size; returns whether its bytes
/// were streamed through this process (an object larger than `limit`, which one `CopyObject`
/// cannot copy: read and written in parts, its digest compared with the executor's).
async fn copy_object(
    store: &dyn ObjectStore,
    shard: &StoredShard,
    to: &ObjectUrl,
    limit: u64,
) -> Result<bool, BuildError> {
    let streamed = shard.bytes > limit;
    if streamed {
        let got = store
            .get(shard.from.key())
            .await
            .map_err(|e| store_error(&shard.from, e))?;
        let mut chunks = got.into_stream();
        let upload = store
            .put_multipart(to.key())
            .await
            .map_err(|e| store_error(to, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut h = Sha256::new();
        let copied = async {
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(|e| store_error(&shard.from, e))?;
                h.update(&chunk);
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| store_error(to, e))?;
                writer.write(&chunk);
            }
            Ok(())
        }
        .await;
        match copied {
            Ok(()) => writer
                .finish()
                .await
                .map(|_| ())
                .map_err(|e| store_error(to, e))?,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(e);
            }
        }
        let sha256 = hex(&h.finalize());
        if sha256 != shard.sha256 {
            return Err(store_error(
                &shard.from,
                format!(
                    "holds SHA-256 {sha256}, its executor wrote {}",
                    shard.sha256
                ),
            ));
        }
    } else {
        store
            .copy(shard.from.key(), to.key())
            .await
            .map_err(|e| store_error(to, format!("copying `{}`: {e}", shard.from)))?;
    }
    let size = object_size(store, to).await?;
    if size != shard.bytes {
        return Err(store_error(
            to,
            format!("holds {size} bytes, its executor wrote {}", shard.bytes),
        ));
    }
    Ok(streamed)
}

/// Puts the finished local file `path` at `url` and reads it back: both digests must be
/// `sha256` (the one computed while the file was written). Returns its size. An object that
/// does not match is removed. (A distributed build's executor, for each shard it writes.)
pub(crate) fn put_checked(path: &Path, url: &ObjectUrl, sha256: &str) -> Result<u64, BuildError> {
    let store = url.store()?;
    blocking(async {
        let checked = async {
            let put = upload_file(&*store, path, url).await?;
            let (remote, size) = stream_object(&*store, url, |_| Ok(())).await?;
            if put != sha256 || remote != sha256 {
                return Err(store_error(
                    url,
                    format!("read back with SHA-256 {remote}, put {put}, written {sha256}"),
                ));
            }
            Ok(size)
        }
        .await;
        if checked.is_err() {
            let _ = store.delete(url.key()).await;
        }
        checked
    })
}

/// The sizes of objects (a `HEAD` each), in order.
pub(crate) fn sizes_of_objects(urls: &[ObjectUrl]) -> Result<Vec<u64>, BuildError> {
    let Some(first) = urls.first() else {
        return Ok(Vec::new());
    };
    if let Some(other) = urls.iter().find(|u| u.bucket != first.bucket) {
        return Err(store_error(other, "not in the bucket of the others"));
    }
    let store = first.store()?;
    blocking(concurrently(urls.to_vec(), move |url| {
        let store = store.clone();
        async move { object_size(&*store, &url).await }
    }))
}

/// Requests without a body (`HEAD`, `CopyObject`) this process has in flight at once.
const REQUESTS_IN_FLIGHT: usize = 16;

/// `each` of `items`, at most [`REQUESTS_IN_FLIGHT`] at a time, on the current runtime; the
/// results in the items' order. The first error is returned and the requests still in flight
/// are cancelled.
async fn concurrently<T, R, Fut>(
    items: Vec<T>,
    each: impl Fn(T) -> Fut,
) -> Result<Vec<R>, BuildError>
where
    R: Send + 'static,
    Fut: std::future::Future<Output = Result<R, BuildError>> + Send + 'static,
{
    let joined = |done: Result<Result<(usize, R), BuildError>, tokio::task::JoinError>| {
        done.map_err(|_| BuildError::Engine("an object-store request panicked".into()))?
    };
    let mut results: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    let mut in_flight = tokio::task::JoinSet::new();
    for (i, item) in items.into_iter().enumerate() {
        if in_flight.len() >= REQUESTS_IN_FLIGHT
            && let Some(done) = in_flight.join_next().await
        {
            let (j, r) = joined(done)?;
            results[j] = Some(r);
        }
        let request = each(item);
        in_flight.spawn(async move { request.await.map(|r| (i, r)) });
    }
    while let Some(done) = in_flight.join_next().await {
        let (j, r) = joined(done)?;
        results[j] = Some(r);
    }
    results
        .into_iter()
        .map(|r| r.ok_or_else(|| BuildError::Engine("an object-store request was lost".into())))
        .collect()
}

/// Removes every object under `prefix` (as a directory: `prefix/…`); returns how many.
pub(crate) fn remove_prefix(prefix: &ObjectUrl) -> Result<u64, BuildError> {
    remove_prefix_in(&*prefix.store()?, prefix)
}

fn remove_prefix_in(store: &dyn ObjectStore, prefix: &ObjectUrl) -> Result<u64, BuildError> {
    blocking(async {
        let mut listed = store.list(Some(prefix.key()));
        let mut keys = Vec::new();
        while let Some(meta) = listed.next().await {
            keys.push(meta.map_err(|e| store_error(prefix, e))?.location);
        }
        for key in &keys {
            match store.delete(key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_error(prefix, e)),
            }
        }
        Ok(keys.len() as u64)
    })
}

/// Uploads one file (in parts when large); returns the SHA-256 of the bytes read.
async fn upload_file(
    store: &dyn ObjectStore,
    path: &Path,
    url: &ObjectUrl,
) -> Result<String, BuildError> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| BuildError::io(path, e))?;
    let size = file.metadata().map_err(|e| BuildError::io(path, e))?.len();
    let mut h = Sha256::new();
    if size < PART_BYTES as u64 {
        let mut bytes = Vec::with_capacity(size as usize);
        file.read_to_end(&mut bytes)
            .map_err(|e| BuildError::io(path, e))?;
        h.update(&bytes);
        store
            .put(url.key(), PutPayload::from(bytes))
            .await
            .map_err(|e| store_error(url, e))?;
        return Ok(hex(&h.finalize()));
    }
    let upload = store
        .put_multipart(url.key())
        .await
        .map_err(|e| store_error(url, e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
    let mut buf = vec![0u8; PART_BYTES];
    let copied = async {
        loop {
            let n = file.read(&mut buf).map_err(|e| BuildError::io(path, e))?;
            if n == 0 {
                return Ok(());
            }
            h.update(&buf[..n]);
            writer
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(|e| store_error(url, e))?;
            writer.write(&buf[..n]);
        }
    }
    .await;
    match copied {
        Ok(()) => {
            writer.finish().await.map_err(|e| store_error(url, e))?;
            Ok(hex(&h.finalize()))
        }
        Err(e) => {
            let _ = writer.abort().await;
            Err(e)
        }
    }
}

/// The files under `dir`, as `/`-separated paths relative to `root`.
fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), BuildError> {
    for entry in std::fs::read_dir(dir).map_err(|e| BuildError::io(dir, e))? {
        let entry = entry.map_err(|e| BuildError::io(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| BuildError::io(&path, e))?;
        if kind.is_dir() {
            list_files(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root).map_err(|_| {
                BuildError::Engine(format!("`{}` outside its dataset", path.display()))
            })?;
            let rel = rel
                .to_str()
                .ok_or_else(|| BuildError::Engine(format!("`{}` is not UTF-8", path.display())))?;
            out.push(rel.replace(std::path::MAIN_SEPARATOR, "/"));
        }
    }
    Ok(())
}

/// Downloads the dataset published at `prefix` (the manifest, then the files it names) into
/// the local directory `dest`, for commands that read a whole dataset as files.
pub fn download_dataset(prefix: &ObjectUrl, dest: &Path) -> Result<(), BuildError> {
    download_dataset_files(prefix, dest, |m| {
        let mut names: Vec<String> = m.shards.iter().map(|s| s.file.clone()).collect();
        names.push(m.decisions.file.clone());
        names.extend(m.member_commitment.iter().map(|c| c.file.clone()));
        names.extend(m.card.iter().map(|c| c.file.clone()));
        names
    })
}

/// Downloads the manifest of the dataset published at `prefix`, then the files `pick` names
/// from it, into the local directory `dest` (made if missing). A name that would leave the
/// dataset (`..`, empty or `.` segments) is refused.
fn download_dataset_files(
    prefix: &ObjectUrl,
    dest: &Path,
    pick: impl FnOnce(&crate::manifest::Manifest) -> Vec<String>,
) -> Result<(), BuildError> {
    let manifest_url = prefix.join(crate::MANIFEST_FILE);
    let manifest_path = dest.join(crate::MANIFEST_FILE);
    if !dataset_exists(prefix)? {
        return Err(BuildError::Input(format!(
            "no dataset at `{prefix}` (no {})",
            crate::MANIFEST_FILE
        )));
    }
    std::fs::create_dir_all(dest).map_err(|e| BuildError::io(dest, e))?;
    download(&manifest_url, &manifest_path)?;
    let bytes = std::fs::read(&manifest_path).map_err(|e| BuildError::io(&manifest_path, e))?;
    let manifest: crate::manifest::Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| BuildError::Input(format!("`{manifest_url}` is not a manifest: {e}")))?;
    for name in pick(&manifest) {
        if name
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        {
            return Err(BuildError::Input(format!(
                "`{manifest_url}` names the file `{name}`, outside its dataset"
            )));
        }
        let path = dest.join(&name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| BuildError::io(parent, e))?;
        }
        download(&prefix.join(&name), &path)?;
    }
    Ok(())
}

/// A published dataset as local files, for commands that read a few of its files: a dataset
/// directory is used where it is; of a dataset on a store (`s3://bucket/prefix/<dataset_id>`)
/// the manifest and the files a command names are streamed into a private directory, removed
/// when this is dropped. Messages of readers given [`LocalDataset::dir`] are made to name the
/// dataset with [`LocalDataset::rename`].
#[derive(Debug)]
pub struct LocalDataset {
    /// Where the files are read.
    dir: PathBuf,
    /// What the caller named.
    origin: PathBuf,
    /// The private copy's directory, when there is one.
    _copy: Option<PrivateDir>,
}

impl LocalDataset {
    /// The dataset at `dataset`, with (for one on a store) the manifest and the files `pick`
    /// names from it downloaded.
    pub fn open(
        dataset: &Path,
        pick: impl FnOnce(&crate::manifest::Manifest) -> Vec<String>,
    ) -> Result<LocalDataset, BuildError> {
        let Some(url) = ObjectUrl::of_path(dataset) else {
            return Ok(LocalDataset {
                dir: dataset.to_owned(),
                origin: dataset.to_owned(),
                _copy: None,
            });
        };
        let url = url?;
        let copy = PrivateDir::new(None, "dataset")?;
        let dir = copy.path().join("dataset");
        download_dataset_files(&url, &dir, pick).map_err(|e| e.renamed(&dir, dataset))?;
        Ok(LocalDataset {
            dir,
            origin: dataset.to_owned(),
            _copy: Some(copy),
        })
    }

    /// The local directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `text` (a message about files under [`LocalDataset::dir`]) naming the dataset instead.
    pub fn rename(&self, text: &str) -> String {
        text.replace(
            &self.dir.display().to_string(),
            &self.origin.display().to_string(),
        )
    }
}

/// Makes the test server `s3` this process's store of `bucket` (as if the environment named
/// it), without changing the environment.
#[cfg(test)]
pub(crate) fn use_test_server(s3: &cg_test_support::S3Server, bucket: &str) {
    let store = tests::client_of(s3, bucket);
    if let Ok(mut stores) = STORES.lock() {
        stores
            .get_or_insert_with(HashMap::new)
            .insert(bucket.to_owned(), store);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_and_key() {
        let u = ObjectUrl::parse("s3://data-lake/corpus/content.parquet").unwrap();
        assert_eq!(u.bucket(), "data-lake");
        assert_eq!(u.key().as_ref(), "corpus/content.parquet");
        assert_eq!(u.file_name(), Some("content.parquet"));
        assert_eq!(u.to_string(), "s3://data-lake/corpus/content.parquet");
        assert_eq!(u.bucket_url().unwrap().as_str(), "s3://data-lake");
        let root = ObjectUrl::parse("s3://data-lake").unwrap();
        assert_eq!(root.to_string(), "s3://data-lake");
        assert_eq!(
            root.join("ds-1/shards/part-00000.parquet").to_string(),
            "s3://data-lake/ds-1/shards/part-00000.parquet"
        );
        assert_eq!(
            ObjectUrl::parse("s3://b/out/")
                .unwrap()
                .join("ds-1")
                .to_string(),
            "s3://b/out/ds-1"
        );
    }

    #[test]
    fn refuses_credentials_other_schemes_and_odd_keys() {
        for (s, says) in [
            ("s3://AKIA:secret@bucket/k", "credentials"),
            ("s3://user@bucket/k", "credentials"),
            ("gs://bucket/k", "only s3://"),
            ("s3://bucket:9000/k", "AWS_ENDPOINT_URL"),
            ("s3://bucket/k?versionId=1", "AWS_ENDPOINT_URL"),
            ("s3://bucket/a//b", "segment"),
            ("s3:///k", "bucket"),
        ] {
            let e = ObjectUrl::parse(s).unwrap_err().to_string();
            assert!(e.contains(says), "{s}: {e}");
            assert!(!e.contains("secret"), "{s}: {e}");
        }
    }

    #[test]
    fn tells_object_urls_from_paths() {
        assert!(is_object_url("s3://b/k"));
        assert!(is_object_url("S3://b/k"));
        assert!(!is_object_url("/data/s3://x"));
        assert!(!is_object_url("s3:/b"));
        assert!(ObjectUrl::of_path(Path::new("content.parquet")).is_none());
        assert!(ObjectUrl::of_path(Path::new("s3://b/content.parquet")).is_some());
    }

    #[test]
    fn private_dirs_are_0700_and_removed_when_dropped() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let dir = PrivateDir::new(Some(parent.path()), "test").unwrap();
        let path = dir.path().to_owned();
        std::fs::write(path.join("x"), b"1").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn blocking_runs_inside_and_outside_a_runtime() {
        assert_eq!(blocking(async { Ok(1) }).unwrap(), 1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(async { blocking(async { Ok(2) }) }).unwrap(), 2);
    }

    /// A client of the test server, made from its environment the way `store_of_bucket` makes
    /// one from the process's.
    pub(super) fn client_of(s3: &cg_test_support::S3Server, bucket: &str) -> Arc<dyn ObjectStore> {
        let env: HashMap<String, String> = s3.env().into_iter().collect();
        Arc::new(
            AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_region(&env["AWS_REGION"])
                .with_access_key_id(&env["AWS_ACCESS_KEY_ID"])
                .with_secret_access_key(&env["AWS_SECRET_ACCESS_KEY"])
                .with_endpoint(&env["AWS_ENDPOINT_URL"])
                .with_allow_http(true)
                .build()
                .unwrap(),
        )
    }

    #[test]
    fn uploads_in_parts_reads_back_and_puts_the_manifest_last_and_once() {
        let s3 = cg_test_support::S3Server::start("cg-upload");
        let store = client_of(&s3, "cg-upload");
        let dir = tempfile::tempdir().unwrap();
        // 20 MiB and a bit: three parts, the last short.
        let big: Vec<u8> = (0..(20 << 20) + 12_345u32)
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::create_dir(dir.path().join("shards")).unwrap();
        std::fs::write(dir.path().join("shards/part-00000.parquet"), &big).unwrap();
        std::fs::write(dir.path().join("decisions.parquet"), b"small").unwrap();
        std::fs::write(dir.path().join(crate::MANIFEST_FILE), b"{\"first\": true}").unwrap();
        let mut files = Vec::new();
        list_files(dir.path(), dir.path(), &mut files).unwrap();
        files.sort();
        assert_eq!(
            files,
            [
                "decisions.parquet",
                "manifest.json",
                "shards/part-00000.parquet"
            ]
        );
        let prefix = ObjectUrl::parse("s3://cg-upload/datasets/ds-1").unwrap();
        upload_dataset_to(store.clone(), dir.path(), &files, &prefix, &[], COPY_LIMIT).unwrap();
        assert_eq!(
            s3.get("datasets/ds-1/shards/part-00000.parquet").unwrap(),
            big
        );
        assert_eq!(s3.get("datasets/ds-1/decisions.parquet").unwrap(), b"small");
        assert_eq!(
            s3.get("datasets/ds-1/manifest.json").unwrap(),
            b"{\"first\": true}"
        );

        // A second upload to the same prefix: the conditional put refuses the manifest, and
        // the first dataset's manifest is untouched.
        std::fs::write(dir.path().join(crate::MANIFEST_FILE), b"{\"second\": true}").unwrap();
        let err = upload_dataset_to(store.clone(), dir.path(), &files, &prefix, &[], COPY_LIMIT)
            .unwrap_err();
        assert!(matches!(err, BuildError::Exists(_)), "{err}");
        assert_eq!(
            s3.get("datasets/ds-1/manifest.json").unwrap(),
            b"{\"first\": true}"
        );
    }

    #[test]
    fn a_failed_upload_removes_what_it_wrote_and_publishes_no_manifest() {
        let s3 = cg_test_support::S3Server::start("cg-upload");
        let store = client_of(&s3, "cg-upload");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a-decisions.parquet"), b"rows").unwrap();
        std::fs::write(dir.path().join(crate::MANIFEST_FILE), b"{}").unwrap();
        // Listed after the first file, unreadable when its turn comes.
        std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("b-shard")).unwrap();
        let mut files = Vec::new();
        list_files(dir.path(), dir.path(), &mut files).unwrap();
        files.sort();
        let prefix = ObjectUrl::parse("s3://cg-upload/datasets/ds-2").unwrap();
        let err =
            upload_dataset_to(store, dir.path(), &files, &prefix, &[], COPY_LIMIT).unwrap_err();
        assert!(err.to_string().contains("b-shard"), "{err}");
        assert_eq!(s3.list("datasets"), Vec::<String>::new());
    }

    #[test]
    fn executors_shards_are_copied_in_place_and_their_attempts_removed() {
        let s3 = cg_test_support::S3Server::start("cg-copy");
        let store = client_of(&s3, "cg-copy");
        // Two shards an executor put for its attempt (9 MiB and a bit: a multipart object).
        let big: Vec<u8> = (0..(9 << 20) + 77u32).map(|i| (i % 13) as u8).collect();
        let small = b"a small shard".to_vec();
        s3.put(
            "datasets/.ds-3.attempts-1/12-ab/part-00000.parquet",
            big.clone(),
        );
        s3.put(
            "datasets/.ds-3.attempts-1/12-ab/part-00001.parquet",
            small.clone(),
        );
        let shard = |i: u32, bytes: &[u8]| StoredShard {
            from: ObjectUrl::parse(&format!(
                "s3://cg-copy/datasets/.ds-3.attempts-1/12-ab/part-{i:05}.parquet"
            ))
            .unwrap(),
            name: format!("shards/part-{i:05}.parquet"),
            bytes: bytes.len() as u64,
            sha256: hex(&Sha256::digest(bytes)),
        };
        let shards = [shard(0, &big), shard(1, &small)];
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("decisions.parquet"), b"records").unwrap();
        std::fs::write(dir.path().join(crate::MANIFEST_FILE), b"{}").unwrap();
        let files = vec!["decisions.parquet".to_owned(), "manifest.json".to_owned()];
        // A limit below the big shard's size: it is streamed through, the small one copied.
        let prefix = ObjectUrl::parse("s3://cg-copy/datasets/ds-3").unwrap();
        let moved = upload_dataset_to(store.clone(), dir.path(), &files, &prefix, &shards, 1 << 20)
            .unwrap();
        assert_eq!(
            moved,
            Uploaded {
                files: 1,
                bytes: 7,
                copied: 2,
                copied_bytes: (big.len() + small.len()) as u64,
                streamed_bytes: big.len() as u64,
            }
        );
        assert_eq!(
            s3.get("datasets/ds-3/shards/part-00000.parquet").unwrap(),
            big
        );
        assert_eq!(
            s3.get("datasets/ds-3/shards/part-00001.parquet").unwrap(),
            small
        );
        assert_eq!(s3.get("datasets/ds-3/manifest.json").unwrap(), b"{}");
        // The attempts' prefix goes, and only it.
        let attempts = ObjectUrl::parse("s3://cg-copy/datasets/.ds-3.attempts-1").unwrap();
        assert_eq!(remove_prefix_in(&*store, &attempts).unwrap(), 2);
        assert_eq!(remove_prefix_in(&*store, &attempts).unwrap(), 0);
        assert_eq!(s3.list("datasets").len(), 4, "{:?}", s3.list("datasets"));

        // A shard whose object is not what its executor reported publishes nothing.
        s3.put(
            "datasets/.ds-4.attempts-1/1-a/part-00000.parquet",
            small.clone(),
        );
        let mut wrong = shard(0, &small);
        wrong.from =
            ObjectUrl::parse("s3://cg-copy/datasets/.ds-4.attempts-1/1-a/part-00000.parquet")
                .unwrap();
        wrong.bytes += 1;
        let prefix = ObjectUrl::parse("s3://cg-copy/datasets/ds-4").unwrap();
        let err = upload_dataset_to(
            store.clone(),
            dir.path(),
            &files,
            &prefix,
            &[wrong.clone()],
            1 << 20,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("its executor wrote"), "{err}");
        wrong.bytes -= 1;
        wrong.sha256 = "00".repeat(32);
        let err = upload_dataset_to(store.clone(), dir.path(), &files, &prefix, &[wrong], 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("its executor wrote"), "{err}");
        assert!(
            s3.list("datasets/ds-4").is_empty(),
            "{:?}",
            s3.list("datasets/ds-4")
        );
    }

    #[test]
    fn an_executors_put_is_read_back_and_a_mismatch_removed() {
        let s3 = cg_test_support::S3Server::start("cg-put");
        // `put_checked` takes the process's store of the bucket (an executor's is made from its
        // environment): this test's server's, under a bucket name no other test uses.
        use_test_server(&s3, "cg-put");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part-00002.parquet");
        std::fs::write(&path, b"shard bytes").unwrap();
        let sha = hex(&Sha256::digest(b"shard bytes"));
        let url =
            ObjectUrl::parse("s3://cg-put/out/.ds-5.attempts-9/3-c/part-00002.parquet").unwrap();
        assert_eq!(put_checked(&path, &url, &sha).unwrap(), 11);
        assert_eq!(
            s3.get("out/.ds-5.attempts-9/3-c/part-00002.parquet")
                .unwrap(),
            b"shard bytes"
        );
        assert_eq!(
            sizes_of_objects(std::slice::from_ref(&url)).unwrap(),
            vec![11]
        );
        // A digest other than the one written: refused, and the object removed.
        let err = put_checked(&path, &url, &"11".repeat(32))
            .unwrap_err()
            .to_string();
        assert!(err.contains("read back with SHA-256"), "{err}");
        assert!(
            s3.get("out/.ds-5.attempts-9/3-c/part-00002.parquet")
                .is_none()
        );
        let missing = url.join("nope");
        assert!(sizes_of_objects(&[missing]).is_err());
    }

    #[test]
    fn requests_in_flight_answer_in_order_and_the_first_error_wins() {
        // Later items finish first: the results still come back in the items' order.
        let items: Vec<u64> = (0..40).collect();
        let got = blocking(concurrently(items.clone(), |i| async move {
            tokio::time::sleep(std::time::Duration::from_millis(40 - i)).await;
            Ok(i * 2)
        }))
        .unwrap();
        assert_eq!(got, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        let err = blocking(concurrently(items, |i| async move {
            if i == 23 {
                Err(BuildError::Engine(format!("request {i} failed")))
            } else {
                Ok(i)
            }
        }))
        .unwrap_err();
        assert!(err.to_string().contains("request 23 failed"), "{err}");
        assert!(
            blocking(concurrently(Vec::<u64>::new(), |i| async move { Ok(i) }))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn sizes_of_files() {
        let dir = cg_test_support::tempdir();
        let path = dir.path().join("content.csv");
        std::fs::write(&path, vec![b'x'; 12_345]).unwrap();
        assert_eq!(size_of(&path).unwrap(), 12_345);
        let missing = dir.path().join("nope.csv");
        assert!(
            size_of(&missing)
                .unwrap_err()
                .to_string()
                .contains("nope.csv")
        );
    }

    #[test]
    fn objects_stream_with_their_digest() {
        let s3 = cg_test_support::S3Server::start("cg-read");
        let store = client_of(&s3, "cg-read");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 7) as u8).collect();
        s3.put("in/content.csv", bytes.clone());
        let url = ObjectUrl::parse("s3://cg-read/in/content.csv").unwrap();
        let mut seen = Vec::new();
        let (sha, size) = blocking(async {
            stream_object(&*store, &url, |c| {
                seen.extend_from_slice(c);
                Ok(())
            })
            .await
        })
        .unwrap();
        assert_eq!(seen, bytes);
        assert_eq!(size, bytes.len() as u64);
        assert_eq!(sha, hex(&Sha256::digest(&bytes)));
        assert_eq!(
            blocking(object_size(&*store, &url)).unwrap(),
            bytes.len() as u64
        );
        let missing = ObjectUrl::parse("s3://cg-read/in/nope.csv").unwrap();
        let err = blocking(object_size(&*store, &missing))
            .unwrap_err()
            .to_string();
        assert!(err.contains("s3://cg-read/in/nope.csv"), "{err}");
        let err = blocking(async { stream_object(&*store, &missing, |_| Ok(())).await })
            .unwrap_err()
            .to_string();
        assert!(err.contains("s3://cg-read/in/nope.csv"), "{err}");
    }
}
