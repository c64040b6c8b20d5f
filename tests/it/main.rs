//! Integration tests: the real store on a real SQLite file, and the real `c7sync` binary.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin_api;
mod cli_config;
mod cli_import;
mod cli_members;
mod cli_serve;
mod concurrency;
mod console;
mod crash_runs;
mod crash_scim;
mod downstream;
mod faults;
mod fuzz_corpus;
mod graph_delta;
mod graph_sync;
mod hostile_input;
mod postgres_schema;
mod reconcile_core;
mod replicas;
mod schema_upgrade;
mod scim_api;
mod serve_surface;
mod support;
mod token_check;
mod token_cli;
