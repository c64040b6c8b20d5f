//! Output for people (aligned tables) and machines (`--format json`), and the run report
//! every run-producing command prints.

use std::io::Write;

use clap::ValueEnum;
use comfy_table::{presets, ContentArrangement, Table};
use serde::Serialize;

use crate::admin::runs::ReportJson;
use crate::plan::preview::plan_preview;
use crate::reconcile::RunReport;

/// `--format` for listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// JSON for machines (stable field names).
    Json,
}

/// `--format` for run-producing commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// A summary and the first changes, for people.
    Text,
    /// One JSON object.
    Json,
}

/// Renders rows as aligned columns with a header, no borders.
pub fn table<const N: usize>(header: [&str; N], rows: impl IntoIterator<Item = [String; N]>) -> String {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING).set_content_arrangement(ContentArrangement::Disabled).set_header(header);
    for row in rows {
        // A stored value may predate the refusal of control characters; the terminal must
        // never receive one raw.
        table.add_row(row.map(|cell| crate::log::escape_controls(&cell).into_owned()));
    }
    // The preset pads each cell by one space; trim the left edge so output starts at column 0.
    table.lines().map(|l| l.strip_prefix(' ').unwrap_or(&l).trim_end().to_owned()).collect::<Vec<_>>().join("\n")
}

/// Prints a value as one line of JSON on stdout (run reports: one object per run per line).
pub fn print_json_line<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// An optional value for a table cell.
pub fn cell(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

/// Prints a run report; `extra` adds command-specific fields to the JSON (and is ignored in text).
pub fn print_report<E: Serialize>(report: &RunReport, format: ReportFormat, extra: E) -> anyhow::Result<()> {
    if format == ReportFormat::Json {
        return print_json_line(&ReportJson::new(report, extra));
    }
    let preview = plan_preview(&report.plan.changes);
    let c = report.counts;
    let verb = match report.outcome {
        crate::store::Outcome::Applied => "applied",
        crate::store::Outcome::DryRun => "dry run (nothing changed)",
        crate::store::Outcome::Aborted => "ABORTED (nothing changed)",
        crate::store::Outcome::Failed => "FAILED (nothing changed)",
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "run {}: {} {} — {verb}", report.run_id, report.teamspace, report.source)?;
    writeln!(out, "  added {}, removed {}, updated {}, unchanged {}", c.added, c.removed, c.updated, c.unchanged)?;
    if let Some(reason) = &report.reason {
        writeln!(out, "  reason: {reason}")?;
    }
    if !preview.is_empty() {
        writeln!(out)?;
        let rows = preview.iter().map(|r| {
            let detail = r.previous_email.map(|p| format!("was {p}")).unwrap_or_default();
            [r.action.to_owned(), r.oid.clone(), r.email.to_owned(), cell(r.display_name), detail]
        });
        writeln!(out, "{}", table(["ACTION", "OID", "EMAIL", "NAME", "DETAIL"], rows))?;
        let shown = preview.len() as u64;
        let total = c.added + c.removed + c.updated;
        if total > shown {
            writeln!(out, "… and {} more (c7sync runs show {})", total - shown, report.run_id)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_aligned_without_borders() {
        let text = table(["A", "LONGER"], [["x".to_owned(), "y".to_owned()], ["wide".to_owned(), "z".to_owned()]]);
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("A "));
        let column = lines[0].find("LONGER").unwrap();
        assert_eq!(lines[1].find('y'), Some(column));
        assert_eq!(lines[2].find('z'), Some(column));
    }

    #[test]
    fn control_characters_in_cells_reach_the_terminal_escaped() {
        // A name stored before controls were refused: a newline, a screen clear, a NUL.
        let text = table(["NAME"], [["Eve\n\u{1b}[2J\u{0}".to_owned()]]);
        assert_eq!(text.lines().count(), 2, "{text:?}");
        assert!(text.ends_with(r"Eve\u{a}\u{1b}[2J\u{0}"), "{text:?}");
    }
}
