//! Walk: the files an ingest reads, from the paths it was given.
//!
//! Owns: expanding directories (recursively, in path order), and refusing what is not an
//! export file: FIFOs, sockets and devices (reading one could block forever), symlinks that
//! lead out of the input tree (their content is not the operator's to ingest), and the lake's
//! own data dir — but for its landing directory (`<data dir>/landing/`, where pulled pages are
//! written), which is input like any other export folder. Must not: open or read the files it
//! lists.

use std::collections::HashSet;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// A path the walk did not list, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
    /// `false` for what is expected to be there (the data dir inside an input dir).
    pub needs_review: bool,
}

/// The result of a walk: files to read, in order, without repeats; and what was skipped.
#[derive(Debug, Default)]
pub struct Walk {
    pub files: Vec<PathBuf>,
    pub skipped: Vec<Skipped>,
}

fn kind(ft: &std::fs::FileType) -> Option<&'static str> {
    if ft.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if ft.is_socket() {
        Some("a socket")
    } else if ft.is_block_device() || ft.is_char_device() {
        Some("a device")
    } else {
        None
    }
}

struct Walker<'a> {
    root: PathBuf,
    data_dir: Option<&'a Path>,
    out: Walk,
}

impl Walker<'_> {
    fn skip(&mut self, path: &Path, reason: String, needs_review: bool) {
        self.out.skipped.push(Skipped {
            path: path.to_path_buf(),
            reason,
            needs_review,
        });
    }

    fn dir(&mut self, dir: &Path) {
        if let Some(d) = self.data_dir.filter(|d| same(d, dir)) {
            let reason = "the lake's own data dir is not input (but for its landing/); skipped";
            self.skip(dir, reason.to_string(), false);
            // Pulled pages land inside the data dir; they are input, the lake never is.
            let landing = d.join(crate::lake::LANDING_DIR);
            if landing.is_dir() {
                self.dir(&dir.join(crate::lake::LANDING_DIR));
            }
            return;
        }
        let mut entries: Vec<_> = match std::fs::read_dir(dir).and_then(|rd| rd.collect()) {
            Ok(e) => e,
            Err(e) => {
                self.skip(dir, format!("cannot read directory: {e}"), true);
                return;
            }
        };
        entries.sort_by_key(|e: &std::fs::DirEntry| e.file_name());
        for e in entries {
            let p = e.path();
            match e.file_type() {
                Ok(ft) if ft.is_dir() => self.dir(&p),
                Ok(ft) if ft.is_file() => self.out.files.push(p),
                Ok(ft) if ft.is_symlink() => self.symlink(&p),
                Ok(ft) => {
                    let what = kind(&ft).unwrap_or("not a regular file");
                    self.skip(&p, format!("{what}, not an export file; skipped"), true);
                }
                Err(e) => self.skip(&p, format!("cannot stat: {e}"), true),
            }
        }
    }

    fn symlink(&mut self, p: &Path) {
        let target = match std::fs::canonicalize(p) {
            Ok(t) => t,
            Err(e) => return self.skip(p, format!("broken symlink ({e}); skipped"), true),
        };
        if !target.starts_with(&self.root) {
            let reason = format!(
                "symlink to {} leads out of the input tree {}; not followed",
                target.display(),
                self.root.display()
            );
            return self.skip(p, reason, true);
        }
        match std::fs::metadata(&target) {
            Ok(m) if m.is_file() => self.out.files.push(p.to_path_buf()),
            // Inside the tree its content is reached directly; following it could loop.
            Ok(m) if m.is_dir() => {}
            Ok(m) => {
                let what = kind(&m.file_type()).unwrap_or("not a regular file");
                self.skip(p, format!("symlink to {what}; skipped"), true)
            }
            Err(e) => self.skip(p, format!("cannot stat: {e}"), true),
        }
    }
}

fn same(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Expands `paths` into files. A path that does not exist is an error (a usage error: the
/// operator named it); everything else that cannot be read is skipped with a reason.
pub fn walk(paths: &[PathBuf], data_dir: Option<&Path>) -> Result<Walk, PathBuf> {
    let mut all = Walk::default();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|_| p.clone())?;
        let mut w = Walker {
            root: std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()),
            data_dir,
            out: Walk::default(),
        };
        if meta.is_dir() {
            w.dir(p);
        } else if meta.is_file() {
            w.out.files.push(p.clone());
        } else {
            let what = kind(&meta.file_type()).unwrap_or("not a regular file");
            w.skip(p, format!("{what}, not an export file; skipped"), true);
        }
        all.files.extend(w.out.files);
        all.skipped.extend(w.out.skipped);
    }
    let mut seen = HashSet::new();
    all.files = all
        .files
        .into_iter()
        .map(|p| std::path::absolute(&p).unwrap_or(p))
        .filter(|p| seen.insert(p.clone()))
        .collect();
    Ok(all)
}
