//! `c7sync import FILE`: a one-off CSV import, validated whole before anything is written.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::output::{print_report, ReportFormat};
use super::{admin_error, Context, Exit, UsageError};
use crate::admin::imports::{self, ImportRequest};
use crate::admin::{AdminError, Field};
use crate::config::CsvMode;
use crate::reconcile::RunOptions;
use crate::source::csv::{self, CsvError, ReadOptions};
use crate::sync::csv::ImportOutcome;

/// How many invalid rows the text report lists (JSON lists all).
const INVALID_ROWS_SHOWN: usize = 50;

/// Arguments of `c7sync import`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Accepted files (header row required; names case-insensitive):
  our format      email,oid[,display_name][,tenant_id]
  Entra export    the admin centre's \"Download users\" CSV as is: userPrincipalName, mail,
                  objectId (or id), displayName, accountEnabled, ... (email = mail, else UPN;
                  accountEnabled=false rows are skipped)
  az output       az ad group member list --group G --query \"[].{email:mail, oid:id}\" -o tsv
                  with the header line `email<TAB>oid` added
CSV or TSV (by .tsv or detected), UTF-8 with or without BOM, CRLF or LF, quoted fields.

Every row is checked before anything is written. With invalid rows the import changes nothing
and exits 4, unless --skip-invalid, which applies the valid rows and never removes anyone.
A file with a header and no rows is refused in merge mode; in replace mode it means \"nobody\",
which the empty-snapshot guard holds back for `c7sync runs approve`.

Examples:
  c7sync import developers.csv --teamspace acme --dry-run
  c7sync import users.csv --teamspace acme --source hr --mode replace
  az ad group member list ... -o tsv | c7sync import - --teamspace acme")]
pub struct ImportArgs {
    /// The CSV or TSV file, or `-` for standard input
    file: PathBuf,
    /// Teamspace slug
    #[arg(long)]
    teamspace: String,
    /// The source id: this import's claims are `csv:ID`
    #[arg(long, default_value = "csv", value_name = "ID")]
    source: String,
    /// merge: add and update only; replace: the file is this source's complete list
    #[arg(long, value_enum, default_value_t = CsvMode::Merge)]
    mode: CsvMode,
    /// Plan and record the run; change nothing
    #[arg(long)]
    dry_run: bool,
    /// Apply the valid rows despite invalid ones (then nothing is removed)
    #[arg(long)]
    skip_invalid: bool,
    /// Let the run remove more members than the teamspace's max_removals
    #[arg(long)]
    allow_mass_removal: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
}

pub async fn run(context: &Context, args: &ImportArgs) -> anyhow::Result<Exit> {
    let teamspace = context.config.teamspace(&args.teamspace)?;
    let request = ImportRequest {
        teamspace: &args.teamspace,
        source: &args.source,
        mode: args.mode,
        options: RunOptions { dry_run: args.dry_run, allow_mass_removal: args.allow_mass_removal },
        skip_invalid: args.skip_invalid,
        origin: serde_json::json!({ "file": args.file.display().to_string() }),
    };
    let contents = read_input(args, teamspace.tenant_id)?;
    // A file that cannot be read at all is a usage error with no run; once `imports::run` has
    // started the run, it is on record even if this process is killed.
    let outcome = imports::run(&context.reconciler, &request, contents).await.map_err(|error| match error {
        AdminError::Invalid { field: Field::File, message } => {
            UsageError(format!("{}: {message}", args.file.display())).into()
        }
        other => admin_error(other),
    })?;
    print_outcome(&outcome, args.format)?;
    let exit =
        if outcome.rejected_for_invalid_rows { Exit::InvalidInput } else { Exit::for_outcome(outcome.report.outcome) };
    // The process ends next. Freeing a large plan's strings one at a time, and then glibc
    // consolidating them when SQLite frees its page cache, took a tenth of a 1M-row import's
    // CPU (BENCHMARKS.md); the kernel takes the whole heap back at exit for nothing.
    std::mem::forget(outcome);
    Ok(exit)
}

fn read_input(args: &ImportArgs, tenant: crate::domain::TenantId) -> anyhow::Result<csv::CsvContents> {
    let mut options = ReadOptions::for_path(&args.file, tenant);
    let progress = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} reading: {human_pos} rows ({per_sec})") {
            bar.set_style(style);
        }
        bar
    });
    if let Some(bar) = progress.clone() {
        options.on_progress = Some(Box::new(move |rows| bar.set_position(rows)));
    }
    let result = if args.file.as_os_str() == "-" {
        csv::read(std::io::stdin().lock(), options)
    } else {
        let file = std::fs::File::open(&args.file)
            .map_err(|e| UsageError(format!("cannot open {}: {e}", args.file.display())))?;
        csv::read_file(file, &args.file, options)
    };
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    result.map_err(|error| match error {
        CsvError::Io(_) | CsvError::Parse(_) | CsvError::ChangedWhileRead(_) => {
            anyhow::Error::new(error).context(args.file.display().to_string())
        }
        usage => UsageError(format!("{}: {usage}", args.file.display())).into(),
    })
}

fn print_outcome(outcome: &ImportOutcome, format: ReportFormat) -> anyhow::Result<()> {
    let extra = outcome.report_fields();
    if format == ReportFormat::Text {
        let s = &outcome.summary;
        let format_name =
            s.format.map(|f| serde_json::json!(f).as_str().unwrap_or_default().to_owned()).unwrap_or_default();
        outln!(
            "read {} row(s) ({format_name}): {} member(s), {} duplicate(s) collapsed, {} disabled skipped, {} invalid",
            s.rows,
            s.valid,
            s.duplicates,
            s.disabled,
            s.invalid_rows
        );
        if !outcome.invalid.is_empty() {
            outln!("invalid rows:");
            for problem in outcome.invalid.iter().take(INVALID_ROWS_SHOWN) {
                outln!("  line {}, {}: {}", problem.line, problem.field, problem.message);
            }
            if outcome.invalid.len() > INVALID_ROWS_SHOWN {
                outln!("  … and {} more (--format json lists all)", outcome.invalid.len() - INVALID_ROWS_SHOWN);
            }
        }
        if outcome.mode != outcome.applied_mode {
            outln!("replace mode applied as merge: a file with invalid rows is incomplete, so nobody is removed");
        }
    }
    print_report(&outcome.report, format, extra)
}
