//! A one-off CSV import: the same request, refusals and run for `c7sync import FILE` and
//! `POST /v1/teamspaces/{t}/imports` (which the console's upload drives).

use super::{AdminError, Field};
use crate::config::CsvMode;
use crate::domain::{SourceKind, SourceName, TenantId, Trigger};
use crate::reconcile::{Reconciler, RunOptions, RunRequest};
use crate::source::csv::{self, CsvContents, CsvError, ReadOptions};
use crate::sync::csv::{self as csv_run, ImportOutcome};

/// What to import, as the caller asked for it.
#[derive(Debug, Clone)]
pub struct ImportRequest<'a> {
    /// Teamspace slug.
    pub teamspace: &'a str,
    /// The source id: the import's claims are `csv:ID`.
    pub source: &'a str,
    /// Merge (add and update) or replace (the file is the source's whole list).
    pub mode: CsvMode,
    /// Dry run, and whether the removal guard may be passed.
    pub options: RunOptions,
    /// Apply the valid rows despite invalid ones (then nobody is removed).
    pub skip_invalid: bool,
    /// Where the rows came from (a path, or "upload"), kept with the run.
    pub origin: serde_json::Value,
}

impl ImportRequest<'_> {
    fn run_request(&self) -> Result<RunRequest, AdminError> {
        let source = SourceName::new(SourceKind::Csv, self.source)
            .map_err(|e| AdminError::Invalid { field: Field::Source, message: e.to_string() })?;
        Ok(RunRequest::new(self.teamspace, source, Trigger::Import)
            .with_options(self.options)
            .with_details(self.origin.clone()))
    }
}

/// Reads an uploaded file held in memory, off the async threads (a big file takes seconds).
/// A tab-separated file is detected by its header unless `tab_separated` says so.
pub async fn read_upload<B>(body: B, tenant: TenantId, tab_separated: bool) -> Result<CsvContents, AdminError>
where
    B: AsRef<[u8]> + Send + 'static,
{
    let read = tokio::task::spawn_blocking(move || {
        let options = ReadOptions { tenant, tab_separated, on_progress: None };
        csv::read_bytes(body.as_ref(), options)
    })
    .await
    .map_err(|e| AdminError::Conflict(format!("reading the file stopped: {e}")))?;
    read.map_err(|error: CsvError| AdminError::Invalid { field: Field::File, message: error.to_string() })
}

/// Records the run and applies (or plans) the rows: every row was checked before this, and
/// nothing is written unless the whole file passes (or `skip_invalid`).
pub async fn run(
    reconciler: &Reconciler,
    request: &ImportRequest<'_>,
    contents: CsvContents,
) -> Result<ImportOutcome, AdminError> {
    let run_request = request.run_request()?;
    if contents.summary.rows == 0 && request.mode == CsvMode::Merge {
        // Merging nothing is a failed export, not an intent. In replace mode an empty file
        // means "nobody", which the empty-snapshot guard holds for approval.
        return Err(AdminError::Invalid {
            field: Field::File,
            message: "the file has a header but no rows; nothing to merge".into(),
        });
    }
    // From here on the run is on record, even if this process is killed.
    let started = reconciler.start(run_request).await?;
    Ok(csv_run::import(reconciler, started, contents, request.mode, request.skip_invalid).await?)
}
