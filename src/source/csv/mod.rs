//! The CSV source: a file (or stdin) → validated claims, streamed, never a whole-file string.
//! Plain CSV or TSV, UTF-8 with or without BOM, CRLF or LF, quoted fields with separators,
//! quotes and newlines.

mod columns;
pub mod formula;
mod line_limit;
mod rows;
mod split;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::Serialize;

use crate::domain::TenantId;
use crate::plan::DesiredClaim;

pub use columns::{CsvFormat, HeaderError};
pub use rows::InvalidRow;

/// A file that cannot be read as members at all (exit 2, or 1 for I/O).
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// The header row does not name the columns we need.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// No header row.
    #[error("the file is empty: a header row is required (e.g. `email,oid,display_name`)")]
    Empty,
    /// The header is not text.
    #[error("the header row is not UTF-8 text; is this a CSV file?")]
    NotText,
    /// A line too long to be a row.
    #[error(transparent)]
    LineTooLong(#[from] line_limit::LineTooLong),
    /// Reading failed.
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    /// The CSV parser gave up (only I/O errors reach here; malformed rows are reported per row).
    #[error("cannot parse the file: {0}")]
    Parse(csv::Error),
    /// Another process wrote the file while it was read: what was read may be half of it.
    #[error("the file changed while it was read ({0}); nothing was applied. Run again once it is written (write to a temporary name, then rename)")]
    ChangedWhileRead(&'static str),
}

impl From<csv::Error> for CsvError {
    fn from(error: csv::Error) -> Self {
        let too_long = match error.kind() {
            csv::ErrorKind::Io(io) => io.get_ref().and_then(|e| e.downcast_ref::<line_limit::LineTooLong>()),
            _ => None,
        };
        match too_long {
            Some(too_long) => CsvError::LineTooLong(line_limit::LineTooLong { start: too_long.start }),
            None => CsvError::Parse(error),
        }
    }
}

/// Counts of what the file held.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReadSummary {
    /// Recognised format.
    pub format: Option<CsvFormat>,
    /// `,` or `\t`.
    pub delimiter: String,
    /// Data rows read (blank lines not counted).
    pub rows: u64,
    /// Distinct valid members.
    pub valid: u64,
    /// Exact repeats collapsed.
    pub duplicates: u64,
    /// Rows skipped because `accountEnabled` is false.
    pub disabled: u64,
    /// Rows with at least one problem.
    pub invalid_rows: u64,
}

/// The file, validated.
#[derive(Debug)]
pub struct CsvContents {
    /// One claim per member, in file order. Not sorted here: an unchanged file is never
    /// planned, and claims freed in the order they were read free a million strings in a
    /// fraction of the time they take in oid order (0.4 s and more of a repeated import).
    pub claims: Vec<DesiredClaim>,
    /// Counts.
    pub summary: ReadSummary,
    /// Every problem, by line.
    pub invalid: Vec<InvalidRow>,
}

/// Reading options.
pub struct ReadOptions {
    /// The teamspace's tenant: a `tenant_id` column must match it.
    pub tenant: TenantId,
    /// Force tab-separated (a `.tsv` file name); otherwise detected from the header.
    pub tab_separated: bool,
    /// Called every few thousand rows with the count so far (progress bars).
    pub on_progress: Option<Box<dyn FnMut(u64)>>,
}

impl ReadOptions {
    /// Options for `path` (`-` is stdin): `.tsv` files are tab-separated.
    pub fn for_path(path: &Path, tenant: TenantId) -> Self {
        let tab_separated = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("tsv"));
        ReadOptions { tenant, tab_separated, on_progress: None }
    }
}

const PROGRESS_EVERY: u64 = 8192;

/// Reads and validates the members of `file`, opened from `path`, and refuses the contents
/// if the file was written while it was read: a replace import of a half-written file would
/// remove everyone in the unwritten half (below the removal guard when the file is large).
pub fn read_file(file: std::fs::File, path: &Path, options: ReadOptions) -> Result<CsvContents, CsvError> {
    let before = Version::of(&file.metadata()?);
    let contents = split::read(split::Whole::File(&file), options)?;
    if Version::of(&file.metadata()?) != before {
        return Err(CsvError::ChangedWhileRead("its size or modification time changed"));
    }
    // Replaced by a rename: what was read is whole, but it is no longer the file at `path`.
    match std::fs::metadata(path) {
        Ok(now) if Version::of(&now) == before => Ok(contents),
        Ok(_) => Err(CsvError::ChangedWhileRead("another file was put in its place")),
        Err(_) => Err(CsvError::ChangedWhileRead("it was deleted")),
    }
}

/// What identifies one version of a file: device, inode, size and modification time.
#[derive(Debug, PartialEq, Eq)]
struct Version(u64, u64, u64, Option<std::time::SystemTime>);

impl Version {
    fn of(metadata: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Version(metadata.dev(), metadata.ino(), metadata.len(), metadata.modified().ok())
    }
}

/// Reads and validates members from `input`, in order (standard input). A file or a buffer
/// is read by [`read_file`] or [`read_bytes`], in two halves at once when it is large.
pub fn read(input: impl Read, mut options: ReadOptions) -> Result<CsvContents, CsvError> {
    let (mut reader, layout) = start(input, options.tab_separated)?;
    let mut part = Part::default();
    part.read(&mut reader, &layout, options.tenant, None, &mut |rows| {
        options.progress(rows);
        true
    })?;
    Ok(part.finish(layout))
}

/// Reads and validates members from a file's contents held in memory.
pub fn read_bytes(bytes: &[u8], options: ReadOptions) -> Result<CsvContents, CsvError> {
    split::read(split::Whole::Bytes(bytes), options)
}

impl ReadOptions {
    fn progress(&mut self, rows: u64) {
        if let Some(progress) = self.on_progress.as_mut() {
            progress(rows);
        }
    }
}

/// The CSV reader over an input, from `offset` in the whole: records end at '\n' only (a
/// '\r' before it is trimmed like any surrounding space), and a final '\n' is appended, so
/// every record is terminated the same way whatever the file's line endings.
type Records<R> = csv::Reader<std::io::Chain<BufReader<line_limit::LineLimit<R>>, &'static [u8]>>;

fn records<R: Read>(input: R, offset: u64, delimiter: u8) -> Records<R> {
    csv_reader(buffered(input, offset), delimiter)
}

fn buffered<R: Read>(input: R, offset: u64) -> BufReader<line_limit::LineLimit<R>> {
    BufReader::with_capacity(1 << 16, line_limit::LineLimit::starting_at(input, offset))
}

fn csv_reader<R: Read>(input: BufReader<line_limit::LineLimit<R>>, delimiter: u8) -> Records<R> {
    csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .has_headers(false)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_reader(input.chain(&b"\n"[..]))
}

/// What the header row says about every row.
struct Layout {
    delimiter: u8,
    /// As written, for naming a column in a message.
    header: Vec<String>,
    columns: columns::Columns,
}

/// Reads up to and including the header row.
fn start<R: Read>(input: R, tab_separated: bool) -> Result<(Records<R>, Layout), CsvError> {
    let mut input = buffered(input, 0);
    let delimiter = if tab_separated || header_looks_tab_separated(input.fill_buf()?) { b'\t' } else { b',' };
    let mut reader = csv_reader(input, delimiter);
    let mut record = csv::ByteRecord::new();
    let header = loop {
        if !reader.read_byte_record(&mut record)? {
            return Err(CsvError::Empty);
        }
        let fields = text_fields(&record).map_err(|_| CsvError::NotText)?;
        if fields.iter().any(|f| !f.is_empty()) {
            break fields.into_iter().map(|f| f.trim_start_matches('\u{feff}').to_owned()).collect::<Vec<_>>();
        }
    };
    let columns = columns::resolve(&header)?;
    Ok((reader, Layout { delimiter, header, columns }))
}

/// Where [`Part::read`] stopped.
enum Reached {
    /// The end of the input.
    End,
    /// The next record starts exactly at the split point, on this line.
    Split { line: u64 },
    /// A record runs across the split point.
    PastSplit,
}

/// The rows of one stretch of the input, checked one by one.
#[derive(Default)]
struct Part {
    claims: Vec<DesiredClaim>,
    /// The line of each claim.
    lines: Vec<u32>,
    invalid: Vec<InvalidRow>,
    rows: u64,
    disabled: u64,
    invalid_rows: u64,
}

impl Part {
    /// Reads records to the end of the input or, with `split`, until the next record would
    /// start at or past it. `progress` hears the rows so far every few thousand, and stops the
    /// reading (as if the input ended) by answering false.
    fn read<R: Read>(
        &mut self,
        reader: &mut Records<R>,
        layout: &Layout,
        tenant: TenantId,
        split: Option<u64>,
        progress: &mut dyn FnMut(u64) -> bool,
    ) -> Result<Reached, CsvError> {
        let mut record = csv::ByteRecord::new();
        loop {
            if let Some(split) = split {
                let next = reader.position();
                if next.byte() == split {
                    return Ok(Reached::Split { line: next.line() });
                }
                if next.byte() > split {
                    return Ok(Reached::PastSplit);
                }
            }
            if !reader.read_byte_record(&mut record)? {
                return Ok(Reached::End);
            }
            if self.take(&record, layout, tenant) && self.rows % PROGRESS_EVERY == 0 && !progress(self.rows) {
                return Ok(Reached::End);
            }
        }
    }

    /// Checks one record; false for a blank one.
    fn take(&mut self, record: &csv::ByteRecord, layout: &Layout, tenant: TenantId) -> bool {
        // Where the record starts, as the parser saw it. (Counting back from where it ends
        // goes wrong for a quote left open, which swallows the final newline: found by
        // fuzzing, fuzz/corpus/csv_rows.)
        let line = record.position().map_or(1, |p| p.line());
        let fields = match text_fields(record) {
            Ok(fields) => fields,
            Err(column) => {
                let field = layout.header.get(column).cloned().unwrap_or_else(|| "row".to_owned());
                self.rows += 1;
                self.invalid_rows += 1;
                self.invalid.push(InvalidRow { line, field, message: "is not valid UTF-8".into() });
                return true;
            }
        };
        if fields.iter().all(|f| f.is_empty()) {
            return false;
        }
        self.rows += 1;
        match rows::check_row(line, &fields, &layout.columns, tenant) {
            rows::RowVerdict::Valid(claim) => {
                self.claims.push(claim);
                // Lines past 4 billion cannot occur in a file we could hold in memory anyway.
                self.lines.push(u32::try_from(line).unwrap_or(u32::MAX));
            }
            rows::RowVerdict::Disabled => self.disabled += 1,
            rows::RowVerdict::Invalid(problems) => {
                self.invalid_rows += 1;
                self.invalid.extend(problems);
            }
        }
        true
    }

    /// Appends the part read after this one, whose reader counted lines from 1 at `line`.
    fn append(&mut self, mut later: Part, line: u64) {
        let offset = line - 1;
        let shift = u32::try_from(offset).unwrap_or(u32::MAX);
        self.claims.append(&mut later.claims);
        self.lines.extend(later.lines.into_iter().map(|l| l.saturating_add(shift)));
        self.invalid.extend(later.invalid.into_iter().map(|row| InvalidRow { line: row.line + offset, ..row }));
        self.rows += later.rows;
        self.disabled += later.disabled;
        self.invalid_rows += later.invalid_rows;
    }

    /// The cross-row checks, and the counts.
    fn finish(mut self, layout: Layout) -> CsvContents {
        let deduplicated = rows::deduplicate(&mut self.claims, &mut self.lines, &mut self.invalid);
        self.invalid.sort_by(|a, b| (a.line, &a.field).cmp(&(b.line, &b.field)));
        let summary = ReadSummary {
            format: Some(layout.columns.format),
            delimiter: if layout.delimiter == b'\t' { "\\t".into() } else { ",".into() },
            rows: self.rows,
            valid: self.claims.len() as u64,
            duplicates: deduplicated.duplicates,
            disabled: self.disabled,
            invalid_rows: self.invalid_rows + deduplicated.conflicting,
        };
        CsvContents { claims: self.claims, summary, invalid: self.invalid }
    }
}

/// Trimmed UTF-8 fields, or the index of the first field that is not UTF-8.
fn text_fields(record: &csv::ByteRecord) -> Result<Vec<&str>, usize> {
    record.iter().enumerate().map(|(i, f)| std::str::from_utf8(f).map(str::trim).map_err(|_| i)).collect()
}

/// A header with tabs and no commas is TSV (the `az … -o tsv` output with a header added).
fn header_looks_tab_separated(start: &[u8]) -> bool {
    let first_line = start.split(|b| *b == b'\n').next().unwrap_or_default();
    first_line.contains(&b'\t') && !first_line.contains(&b',')
}

#[cfg(test)]
mod tests;
