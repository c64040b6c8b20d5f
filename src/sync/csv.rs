//! A validated CSV file → one reconcile run. Holds the policy shared by `import`, `sync` and
//! the scheduler: invalid rows fail the run unless skipped, and a file with skipped rows is
//! incomplete knowledge, so it never removes anyone (DESIGN §2.2).

use serde::Serialize;

use crate::config::CsvMode;
use crate::plan::{Delta, Desired};
use crate::reconcile::{ReconcileError, Reconciler, RunReport, RunRequest};
use crate::source::csv::{CsvContents, InvalidRow, ReadSummary};
use crate::store::RunInput;

/// What an import did, beyond the run report.
#[derive(Debug, Serialize)]
pub struct ImportOutcome {
    /// The run.
    #[serde(flatten)]
    pub report: RunReport,
    /// The mode asked for.
    pub mode: CsvMode,
    /// The mode applied: `replace` falls back to `merge` when invalid rows were skipped.
    pub applied_mode: CsvMode,
    /// What the file held.
    pub summary: ReadSummary,
    /// Rows not applied: disabled accounts, and invalid rows when skipped.
    pub skipped: u64,
    /// Every problem, by line.
    pub invalid: Vec<InvalidRow>,
    /// True when the run failed because of invalid rows (exit 4).
    #[serde(skip)]
    pub rejected_for_invalid_rows: bool,
}

impl ImportOutcome {
    /// What an import adds to its run report in JSON (CLI `--format json` and the API).
    pub fn report_fields(&self) -> serde_json::Value {
        serde_json::json!({
            "mode": self.mode,
            "applied_mode": self.applied_mode,
            "summary": self.summary,
            "skipped": self.skipped,
            "invalid": self.invalid,
        })
    }
}

/// Runs one import of already-read contents. `request.details` is extended with the file facts.
pub async fn import(
    reconciler: &Reconciler,
    mut request: RunRequest,
    contents: CsvContents,
    mode: CsvMode,
    skip_invalid: bool,
) -> Result<ImportOutcome, ReconcileError> {
    let CsvContents { claims, summary, invalid } = contents;
    let has_invalid = !invalid.is_empty();
    let applied_mode = if has_invalid && skip_invalid { CsvMode::Merge } else { mode };
    let mut details = request.details.take().unwrap_or_else(|| serde_json::json!({}));
    if let Some(object) = details.as_object_mut() {
        object.insert("mode".into(), serde_json::json!(mode));
        object.insert("applied_mode".into(), serde_json::json!(applied_mode));
        object.insert("skip_invalid".into(), serde_json::json!(skip_invalid));
        object.insert("summary".into(), serde_json::json!(summary));
        if has_invalid {
            object.insert("invalid_sample".into(), serde_json::json!(&invalid[..invalid.len().min(50)]));
        }
    }
    request.details = Some(details);

    if has_invalid && !skip_invalid {
        let reason = format!(
            "{} invalid row(s) ({} problem(s)); nothing changed. Fix the file, or pass --skip-invalid to apply the valid rows",
            summary.invalid_rows,
            invalid.len()
        );
        let input = if mode == CsvMode::Replace { RunInput::Snapshot } else { RunInput::Deltas };
        let report = reconciler.record_failure(&request, input, &reason).await?;
        let skipped = summary.disabled;
        return Ok(ImportOutcome {
            report,
            mode,
            applied_mode,
            summary,
            skipped,
            invalid,
            rejected_for_invalid_rows: true,
        });
    }
    let desired = match applied_mode {
        CsvMode::Replace => Desired::Snapshot(claims),
        CsvMode::Merge => Desired::Deltas(claims.into_iter().map(Delta::Upsert).collect()),
    };
    let report = reconciler.run(&request, desired).await?;
    let skipped = summary.disabled + if skip_invalid { summary.invalid_rows } else { 0 };
    Ok(ImportOutcome { report, mode, applied_mode, summary, skipped, invalid, rejected_for_invalid_rows: false })
}

/// Runs a configured `csv` source: reads its file (off the async threads) and imports it.
/// A file that cannot be read is a `failed` run that changes nothing.
pub async fn run_configured(
    reconciler: &Reconciler,
    request: RunRequest,
    settings: &crate::config::CsvSettings,
    tenant: crate::domain::TenantId,
) -> Result<ImportOutcome, ReconcileError> {
    let path = settings.path.clone();
    let read = tokio::task::spawn_blocking(move || -> Result<CsvContents, String> {
        let file = std::fs::File::open(&path).map_err(|e| {
            // The path as resolved (relative paths follow the config file's folder).
            let shown = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
            format!("cannot open {}: {e}; set this source's `path` in the config to your CSV export", shown.display())
        })?;
        crate::source::csv::read_file(file, &path, crate::source::csv::ReadOptions::for_path(&path, tenant))
            .map_err(|e| format!("{}: {e}", path.display()))
    })
    .await
    .unwrap_or_else(|e| Err(format!("the reader stopped: {e}")));
    match read {
        Ok(contents) => import(reconciler, request, contents, settings.mode, false).await,
        Err(reason) => {
            let report = reconciler.record_failure(&request, RunInput::Snapshot, &reason).await?;
            Ok(ImportOutcome {
                report,
                mode: settings.mode,
                applied_mode: settings.mode,
                summary: ReadSummary::default(),
                skipped: 0,
                invalid: Vec::new(),
                rejected_for_invalid_rows: false,
            })
        }
    }
}
