//! Replays every input the fuzzers kept (`fuzz/corpus/<target>`) through the same harness
//! the fuzz targets run, on stable: a parser change that breaks on an input once found
//! interesting fails here, in `.ci/run`, without needing nightly or cargo-fuzz.

use std::path::Path;

#[path = "../../fuzz/harness.rs"]
mod harness;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        // A panic names the input that caused it.
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            panic!("{target}: {} fails", path.display());
        }
        inputs += 1;
    }
    assert!(inputs >= 5, "{target}: the corpus has only {inputs} inputs");
}

#[test]
fn scim_filter_corpus() {
    replay("scim_filter", harness::scim_filter);
}

#[test]
fn scim_patch_corpus() {
    replay("scim_patch", harness::scim_patch);
}

#[test]
fn csv_rows_corpus() {
    replay("csv_rows", harness::csv_rows);
}
