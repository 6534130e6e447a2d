//! Manual: shell completions and man pages, generated from the command line's grammar
//! (`flags`), written where the user asks.
//!
//! Owns: `tokenledger completions SHELL` and `tokenledger man --out DIR`. Must not: read the
//! config or the lake (both run without either).

use anyhow::{Context, Result};

/// `tokenledger completions SHELL`: the script on stdout.
pub fn completions(shell: crate::flags::Shell) -> Result<i32> {
    use std::io::Write;
    std::io::stdout().write_all(&crate::flags::completion_script(shell))?;
    Ok(crate::exit::OK)
}

/// `tokenledger man --out DIR`: tokenledger.1 and one page per command.
pub fn man_pages(out: &std::path::Path) -> Result<i32> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let pages = crate::flags::man_pages().context("cannot render the man pages")?;
    for (name, page) in &pages {
        let path = out.join(name);
        crate::lake::io::write_file_atomic(&path, page)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    eprintln!("{} man pages written to {}", pages.len(), out.display());
    Ok(crate::exit::OK)
}
