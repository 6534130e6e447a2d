//! tokenledger: keeps the books on LLM API spend.
//!
//! The pipeline, stage by stage (see `ARCHITECTURE.md` for the map): `sources` parse provider
//! exports (`sources::anthropic`, with the generic `sources::paged` streaming) into canonical
//! rows (`model`, in the words of `vocab` and `money`); `ingest` decides which rows are in force
//! (idempotency, restatement, source precedence) and hands them to `lake`, which owns the
//! Parquet files, the one write transaction and the snapshots readers hold; `pricing` holds the
//! dated price book, `rating` prices every usage row exactly into a derived table; `report`,
//! `reconcile`, `credits` and `anomalies` read it (`freshness` says where its data ends) into typed results; `mail` turns a month into
//! rounded bills and delivers them exactly once; `query` is the only place polars runs.
//! Around them: `settings` resolves flags, environment and `tokenledger.toml` once; `run` is
//! every command as a library function and the nightly pipeline; `present` renders; `flags`
//! is the command-line grammar and `cli` dispatches; `log` is the tracing subscriber; `synth`
//! writes realistic synthetic exports for tests, demos and benchmarks.

pub mod anomalies;
pub mod cli;
pub mod config;
pub mod credits;
pub mod errors;
pub mod export;
pub mod flags;
pub mod freshness;
pub mod grid;
pub mod ingest;
pub mod intern;
pub mod lake;
pub mod learned;
pub mod limits;
pub mod log;
pub mod mail;
pub mod model;
pub mod money;
pub mod par;
pub mod present;
pub mod pricing;
pub mod pull;
pub mod query;
pub mod rating;
pub mod reconcile;
pub mod report;
pub mod run;
pub mod settings;
pub mod sources;
pub mod synth;
pub mod vocab;

/// Exit codes, stable and documented in the README.
pub mod exit {
    /// Everything ran and nothing was quarantined.
    pub const OK: i32 = 0;
    /// Failure: nothing was committed.
    pub const FAILURE: i32 = 1;
    /// Usage error (bad flags or arguments).
    pub const USAGE: i32 = 2;
    /// Completed, but needs review: input was quarantined or skipped, usage is unpriced, or a
    /// difference is unexplained (the reasons are `run::Review`s).
    pub const NEEDS_REVIEW: i32 = 3;
    /// `run` only: completed, needs review, but every finding and review is one an earlier
    /// run already reported (a standing condition); 3 means something is new tonight.
    pub const STANDING: i32 = 4;
}
