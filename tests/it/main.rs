//! Integration tests: one binary (links polars once). Each module is one capability.

mod anomalies;
mod apiserver;
mod architecture;
mod common;
mod crash;
mod credits;
mod docs;
mod duckdb;
mod engines;
mod focus;
mod formats;
mod hostile;
mod ingest;
mod lake;
mod ledger;
mod mail;
mod money;
mod openai;
mod pricing;
mod pull;
mod quarantine;
mod reading;
mod reconcile;
mod report;
mod settings;
mod timezone;
