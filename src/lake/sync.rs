//! Sync of a lake on object storage with its local working copy ([`super::remote`]): the
//! refresh every command starts with, and the lake's small files going up after each commit.
//!
//! Owns: making the working copy the bucket's newest version of every table (downloads,
//! deletes, pins), uploading the markers and `landing/`.
//! Must not: commit (that is `delta`), or talk to the bucket but through [`super::remote`].

use std::path::{Path, PathBuf};

use super::error::{Result, io_err};
use super::remote::{Remote, pin, pins, rel_of};
use super::{Layout, Table};

/// The small files that say what a lake is (its marker, precedence, Delta marker): they go up
/// after every commit and come down on refresh, so a new machine sees the same lake.
fn meta_files(layout: &Layout) -> [PathBuf; 3] {
    [
        layout.marker(),
        layout.precedence_file(),
        layout.delta_marker(),
    ]
}

/// Makes the working copy the bucket's newest version of every table (see the module docs):
/// call under the exclusive lock, after recovery. Returns the files downloaded.
pub fn refresh(layout: &Layout) -> Result<usize> {
    let Some(url) = layout.remote_url() else {
        return Ok(0);
    };
    let remote = Remote::open(url)?;
    let mut meta = Vec::new();
    for f in meta_files(layout) {
        if let Some(rel) = rel_of(layout, &f)
            && !f.is_file()
            && remote.exists(&rel)?
        {
            meta.push((rel, f));
        }
    }
    remote.download_all(&meta)?;
    let mut downloaded = 0;
    let held = pins(layout);
    for t in Table::ALL {
        // The version held is still the newest when its successor does not exist: one
        // request per table on a command that finds nothing new.
        if let Some(v) = held.get(t.dir_name())
            && !remote.exists(&format!(
                "{}/{}/{:020}.json",
                t.dir_name(),
                super::delta::LOG_DIR,
                v + 1
            ))?
        {
            continue;
        }
        let Some((version, files)) = super::delta::files(layout, t)? else {
            continue;
        };
        let dir = layout.table_dir(t);
        let local = super::parquet_files(&dir)?;
        let want: std::collections::HashSet<PathBuf> = files.iter().map(|r| dir.join(r)).collect();
        for f in &local {
            if !want.contains(f) {
                std::fs::remove_file(f).map_err(io_err(f))?;
            }
        }
        let missing: Vec<(String, PathBuf)> = files
            .iter()
            .map(|rel| (format!("{}/{rel}", t.dir_name()), dir.join(rel)))
            .filter(|(_, f)| !f.is_file())
            .collect();
        remote.download_all(&missing)?;
        downloaded += missing.len();
        pin(layout, t, version)?;
    }
    if downloaded > 0 {
        tracing::info!(
            stage = "lake",
            files = downloaded,
            "downloaded {downloaded} file(s) of {url}"
        );
    }
    Ok(downloaded)
}

/// Uploads the lake's markers and whatever of `landing/` the bucket lacks: after each commit.
pub fn push_meta(layout: &Layout) -> Result<()> {
    let Some(url) = layout.remote_url() else {
        return Ok(());
    };
    let remote = Remote::open(url)?;
    let mut up: Vec<(PathBuf, String)> = meta_files(layout)
        .into_iter()
        .filter(|f| f.is_file())
        .filter_map(|f| rel_of(layout, &f).map(|r| (f, r)))
        .collect();
    let landing = layout.landing();
    if landing.is_dir() {
        let there: std::collections::HashSet<String> =
            remote.list(super::LANDING_DIR)?.into_iter().collect();
        up.extend(
            walk_files(&landing)
                .into_iter()
                .filter_map(|f| rel_of(layout, &f).map(|r| (f, r)))
                .filter(|(_, r)| !there.contains(r)),
        );
    }
    remote.upload_all(&up)
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}
