//! tokenledger: keeps the books on LLM API spend.
//!
//! The pipeline, stage by stage (see `ARCHITECTURE.md` for the map):
//! `sources` parse provider exports into canonical rows; `ingest` decides which rows are in
//! force (idempotency, restatement, source precedence) and hands them to `lake`, which owns the
//! Parquet files and their crash-safe replacement; `query` answers questions over the lake with
//! polars; `pricing` holds the dated price book, `rating` prices every usage row exactly into a
//! derived table, `report` and `reconcile` present it; `synth` writes realistic synthetic exports for tests, demos and benchmarks.

pub mod anomalies;
pub mod cli;
pub mod config;
pub mod credits;
pub mod errors;
pub mod flags;
pub mod grid;
pub mod ingest;
pub mod intern;
pub mod lake;
pub mod log;
pub mod mail;
pub mod model;
pub mod money;
pub mod par;
pub mod present;
pub mod pricing;
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
}
