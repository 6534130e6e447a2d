//! The `tokenledger` binary: restores the default SIGPIPE, limits malloc arenas, parses the
//! command line and hands it to [`tokenledger::cli::run`]; prints a failure with each cause
//! once (`{:#}`) and exits with the code `cli` chose. Must not: do anything else.

use clap::Parser;

fn main() {
    // Like any Unix filter: `tokenledger report | head` ends quietly when the reader goes away
    // instead of panicking on a broken pipe.
    // SAFETY: called first thing, before any other thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    tokenledger::par::limit_malloc_arenas();
    let cli = tokenledger::cli::Cli::parse();
    tokenledger::log::init(cli.verbosity(), cli.log_format.parse().unwrap_or_default());
    match tokenledger::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            tokenledger::log::error(&format!("{e:#}"));
            std::process::exit(tokenledger::exit::FAILURE);
        }
    }
}
