//! A lake on object storage: `data_dir = "s3://bucket/prefix"` (or `gs://…`, `az://…`).
//!
//! The tables live in the bucket as Delta tables (their data files and `_delta_log`s); every
//! command works on a local working copy (`[lake] cache_dir`), so the readers, the lock, the
//! journal, the staging and the caches stay what they are on local disk:
//!
//! - **refresh** (`sync`; each command, under the exclusive lock, after recovery): for every table
//!   with a log in the bucket, the newest version is read and *pinned* (`_tokenledger/remote.json`),
//!   missing data files are downloaded and local ones the version does not hold are deleted,
//!   so the working copy is that version, table by table. The lake's markers come down too.
//! - **commit** ([`super::delta::commit`]): the journal's new files are uploaded (under names
//!   no file ever had), then one put-if-absent of the table's next log version, based on the
//!   pinned version: if another machine committed in between, the commit fails as a conflict
//!   (never a silent merge: two runs re-rating one month would otherwise both count).
//!   Replaced files are deleted from the bucket right after their table's commit.
//! - `landing/` (raw pulled pages) is uploaded after each commit, never downloaded: the lake
//!   holds what was ingested; expire it with a bucket lifecycle rule.
//!
//! Credentials come only from the environment and the instance chains `object_store` reads
//! (`AWS_*`, the instance metadata service, web identity; `GOOGLE_*`; `AZURE_*`), never from
//! the config file, argv or a log line.
//!
//! Owns: the object store of a remote lake, paths between the working copy and the bucket,
//! uploads, downloads and deletes, the pinned versions.
//! Must not: decide what a commit adds or removes (the journal says), write or read the log
//! (that is `delta`; the refresh is `sync`'s), or read rows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use delta_kernel::object_store::path::Path as ObjectPath;
use delta_kernel::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use delta_kernel_default_engine::executor::TaskExecutor;
use delta_kernel_default_engine::executor::tokio::TokioMultiThreadExecutor;
use futures::{StreamExt, TryStreamExt};
use url::Url;

use super::error::{LakeError, Result, io_err};
use super::{Layout, Table};

/// Uploads and downloads in flight at once (object stores serve many requests in parallel;
/// one at a time, a new machine's first download of a lake would take minutes).
pub const TRANSFERS: usize = 8;

/// The URL schemes a data dir may have to live on object storage.
pub const SCHEMES: [&str; 5] = ["s3", "s3a", "gs", "az", "abfss"];

/// Whether a `data_dir` names object storage (`s3://…`, `gs://…`, `az://…`, `abfss://…`).
pub fn is_remote(data_dir: &str) -> Option<Url> {
    let url = Url::parse(data_dir).ok()?;
    SCHEMES.contains(&url.scheme()).then_some(url)
}

/// Whether a remote `data_dir` carries credentials (refused: they would be in every message).
/// A password always is one; a user name too, except in Azure's own form
/// `abfss://<filesystem>@<account>.dfs.core.windows.net/…`, where it names the filesystem
/// (object_store's `MicrosoftAzureBuilder::with_url` documents that form).
pub fn has_credentials(url: &Url) -> bool {
    let azure_account = matches!(url.scheme(), "abfss" | "az")
        && url.host_str().is_some_and(|h| {
            [
                ".dfs.core.windows.net",
                ".blob.core.windows.net",
                ".dfs.fabric.microsoft.com",
            ]
            .iter()
            .any(|d| h.ends_with(d))
        });
    url.password().is_some() || (!url.username().is_empty() && !azure_account)
}

/// The lake's root URL, always ending in `/` (so `join` appends).
pub fn root_url(url: &Url) -> Url {
    let mut u = url.clone();
    if !u.path().ends_with('/') {
        u.set_path(&format!("{}/", u.path()));
    }
    u
}

/// The working copy of a remote lake when the config names none:
/// `$XDG_CACHE_HOME/tokenledger/<scheme>/<bucket>/<prefix>` (else `~/.cache/…`); for
/// `abfss://<filesystem>@<account>…` the bucket part is `<filesystem>@<account>…`, so two
/// filesystems of one account never share a working copy.
pub fn default_cache_dir(url: &Url) -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    let mut dir = base
        .join("tokenledger")
        .join(url.scheme())
        .join(match url.username() {
            "" => url.host_str().unwrap_or("_").to_string(),
            fs => format!("{fs}@{}", url.host_str().unwrap_or("_")),
        });
    for seg in url
        .path()
        .split('/')
        .filter(|s| !s.is_empty() && *s != "..")
    {
        dir.push(seg);
    }
    dir
}

/// One runtime for every object-store call and kernel engine of the process (two workers: a
/// checkpoint deadlocks on one, see `delta`).
pub fn executor() -> Result<Arc<TokioMultiThreadExecutor>> {
    static EXEC: OnceLock<Arc<TokioMultiThreadExecutor>> = OnceLock::new();
    if let Some(e) = EXEC.get() {
        return Ok(Arc::clone(e));
    }
    let e = TokioMultiThreadExecutor::new_owned_runtime(Some(2), None).map_err(|e| {
        LakeError::Remote {
            url: String::new(),
            what: format!("cannot start the I/O runtime: {e}"),
        }
    })?;
    Ok(Arc::clone(EXEC.get_or_init(|| Arc::new(e))))
}

/// The object store of a bucket URL, configured from the environment (credentials, region,
/// endpoint) and the instance chains; the URL's path is the key prefix.
pub fn store(url: &Url) -> Result<Arc<dyn ObjectStore>> {
    use delta_kernel::object_store::aws::AmazonS3Builder;
    use delta_kernel::object_store::azure::MicrosoftAzureBuilder;
    use delta_kernel::object_store::gcp::GoogleCloudStorageBuilder;
    let fail = |e: delta_kernel::object_store::Error| LakeError::Remote {
        url: url.to_string(),
        what: format!(
            "cannot open the bucket: {e} (credentials and region come from the environment: \
             AWS_*, GOOGLE_*, AZURE_*)"
        ),
    };
    let s: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" | "s3a" => Arc::new(
            AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .build()
                .map_err(fail)?,
        ),
        "gs" => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_url(url.as_str())
                .build()
                .map_err(fail)?,
        ),
        "az" | "abfss" => Arc::new(
            MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .build()
                .map_err(fail)?,
        ),
        other => {
            return Err(LakeError::Remote {
                url: url.to_string(),
                what: format!("`{other}://` is not object storage tokenledger knows"),
            });
        }
    };
    Ok(s)
}

/// A remote lake opened: its root URL, its store, the runtime.
pub struct Remote {
    pub root: Url,
    store: Arc<dyn ObjectStore>,
    exec: Arc<TokioMultiThreadExecutor>,
}

impl Remote {
    pub fn open(root: &Url) -> Result<Remote> {
        Ok(Remote {
            root: root_url(root),
            store: store(root)?,
            exec: executor()?,
        })
    }

    /// The object key of a path relative to the lake root (`usage/provider=…/part-….parquet`).
    fn key(&self, rel: &str) -> Result<ObjectPath> {
        let url = self.root.join(rel).map_err(|e| self.err(rel, e))?;
        ObjectPath::from_url_path(url.path()).map_err(|e| self.err(rel, e))
    }

    fn err(&self, rel: &str, e: impl std::fmt::Display) -> LakeError {
        LakeError::Remote {
            url: format!("{}{rel}", self.root),
            what: e.to_string(),
        }
    }

    fn run<T: Send + 'static>(
        &self,
        f: impl Future<Output = std::result::Result<T, delta_kernel::object_store::Error>>
        + Send
        + 'static,
    ) -> std::result::Result<T, delta_kernel::object_store::Error> {
        self.exec.block_on(f)
    }

    /// Whether an object exists.
    pub fn exists(&self, rel: &str) -> Result<bool> {
        let (store, key) = (Arc::clone(&self.store), self.key(rel)?);
        match self.run(async move { store.head(&key).await }) {
            Ok(_) => Ok(true),
            Err(delta_kernel::object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.err(rel, e)),
        }
    }

    /// Uploads local files, each to its `rel` (lake files are tens of MB at most: each is
    /// read whole).
    pub fn upload_all(&self, files: &[(PathBuf, String)]) -> Result<()> {
        self.in_parallel(files, |store, key, file, rel| async move {
            let bytes = std::fs::read(&file)
                .map_err(|e| (rel.clone(), format!("{}: {e}", file.display())))?;
            store
                .put(&key, PutPayload::from(bytes))
                .await
                .map(|_| ())
                .map_err(|e| (rel, e.to_string()))
        })
    }

    /// Downloads objects, each `rel` to its local file (atomically: temp file + rename).
    pub fn download_all(&self, files: &[(String, PathBuf)]) -> Result<()> {
        let files: Vec<(PathBuf, String)> =
            files.iter().map(|(r, f)| (f.clone(), r.clone())).collect();
        self.in_parallel(&files, |store, key, file, rel| async move {
            let fail = |e: String| (rel.clone(), format!("{}: {e}", file.display()));
            let bytes = async { store.get(&key).await?.bytes().await }
                .await
                .map_err(|e| fail(e.to_string()))?;
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
            }
            super::io::write_file_atomic(&file, &bytes).map_err(|e| fail(e.to_string()))
        })
    }

    /// Runs `f(store, key, local file, rel)` for each (file, rel), [`TRANSFERS`] at a time; the
    /// first failure (its rel, its reason) is the error.
    fn in_parallel<F, Fut>(&self, files: &[(PathBuf, String)], f: F) -> Result<()>
    where
        F: Fn(Arc<dyn ObjectStore>, ObjectPath, PathBuf, String) -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<(), (String, String)>> + Send + 'static,
    {
        let mut jobs = Vec::with_capacity(files.len());
        for (file, rel) in files {
            jobs.push((self.key(rel)?, file.clone(), rel.clone()));
        }
        let store = Arc::clone(&self.store);
        let done = self.exec.block_on(async move {
            futures::stream::iter(
                jobs.into_iter()
                    .map(move |(key, file, rel)| f(Arc::clone(&store), key, file, rel)),
            )
            .buffer_unordered(TRANSFERS)
            .try_collect::<Vec<()>>()
            .await
        });
        done.map(|_| ()).map_err(|(rel, e)| self.err(&rel, e))
    }

    /// Deletes an object; one already gone is fine (a re-applied journal).
    pub fn delete(&self, rel: &str) -> Result<()> {
        let (store, key) = (Arc::clone(&self.store), self.key(rel)?);
        match self.run(async move { store.delete(&key).await }) {
            Ok(()) | Err(delta_kernel::object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(rel, e)),
        }
    }

    /// Every object under `rel` (a directory), as paths relative to the lake root.
    pub fn list(&self, rel: &str) -> Result<Vec<String>> {
        let (store, key) = (Arc::clone(&self.store), self.key(rel)?);
        let root = self.key("")?;
        let metas = self
            .run(async move { store.list(Some(&key)).try_collect::<Vec<_>>().await })
            .map_err(|e| self.err(rel, e))?;
        let mut out: Vec<String> = metas
            .into_iter()
            .filter_map(|m| {
                let parts: Vec<String> = m
                    .location
                    .prefix_match(&root)?
                    .map(|p| p.as_ref().to_string())
                    .collect();
                Some(parts.join("/"))
            })
            .collect();
        out.sort();
        Ok(out)
    }
}

/// The path of a lake file relative to the lake root, `/`-separated.
pub fn rel_of(layout: &Layout, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(&layout.root).ok()?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Some(parts.join("/"))
}

/// The versions of the bucket's tables the working copy holds (`_tokenledger/remote.json`).
pub type Pins = BTreeMap<String, u64>;

fn pins_file(layout: &Layout) -> PathBuf {
    layout.internal().join("remote.json")
}

pub fn pins(layout: &Layout) -> Pins {
    std::fs::read(pins_file(layout))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Records that the working copy holds `version` of `table` (after a refresh or our commit).
pub fn pin(layout: &Layout, table: Table, version: u64) -> Result<()> {
    let mut p = pins(layout);
    p.insert(table.dir_name().to_string(), version);
    let path = pins_file(layout);
    let text = serde_json::to_vec_pretty(&p).unwrap_or_default();
    super::io::write_file_atomic(&path, &text).map_err(io_err(&path))
}

/// Forgets which versions the working copy holds: the next refresh compares every table's
/// files with the bucket's (after a dropped change left files of no version in place).
pub fn forget(layout: &Layout) {
    let _ = std::fs::remove_file(pins_file(layout));
}
