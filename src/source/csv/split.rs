//! Reading a large file in two halves at once, one per core: checking a million rows is a
//! sixth of a first import, and the machine has a second core idle meanwhile.
//!
//! The second half starts after the first newline past the middle, which is a record boundary
//! unless it falls inside a quoted field. The first half's reader decides: it reads on until
//! its next record would start at or past that point, and only a record starting exactly there
//! proves the boundary. Otherwise the second half's work is thrown away and the first reader
//! goes on to the end alone, so the result is always the one reading in order gives.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{records, start, CsvContents, CsvError, Part, Reached, ReadOptions};

/// Smallest input read in two halves; below it a second thread saves too little to matter.
const SPLIT_FROM: u64 = 4 << 20;

/// How far past the middle the second half's start is looked for: further than any line
/// (`line_limit`) means no split.
const NEWLINE_WITHIN: usize = 1 << 20;

/// An input held whole, so that two readers can read it at once from different offsets.
#[derive(Clone, Copy)]
pub enum Whole<'a> {
    /// A file, read with positioned reads (its cursor is not used).
    File(&'a File),
    /// Bytes in memory (an uploaded file).
    Bytes(&'a [u8]),
}

impl<'a> Whole<'a> {
    fn len(self) -> io::Result<u64> {
        match self {
            Whole::File(file) => Ok(file.metadata()?.len()),
            Whole::Bytes(bytes) => Ok(bytes.len() as u64),
        }
    }

    fn from(self, offset: u64) -> From<'a> {
        From { whole: self, offset }
    }
}

/// A reader of a [`Whole`] from an offset to its end.
pub struct From<'a> {
    whole: Whole<'a>,
    offset: u64,
}

impl Read for From<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.whole {
            Whole::File(file) => file.read_at(buf, self.offset)?,
            Whole::Bytes(bytes) => {
                let rest = bytes.get(usize::try_from(self.offset).unwrap_or(usize::MAX)..).unwrap_or_default();
                let n = rest.len().min(buf.len());
                buf[..n].copy_from_slice(&rest[..n]);
                n
            }
        };
        self.offset += n as u64;
        Ok(n)
    }
}

/// Reads and validates `whole`, in two halves at once when it is large.
pub fn read(whole: Whole<'_>, options: ReadOptions) -> Result<CsvContents, CsvError> {
    let split = match whole.len()? {
        len if len >= SPLIT_FROM => second_half_start(whole, len)?,
        _ => None,
    };
    read_split_at(whole, options, split)
}

/// The first offset past the middle that follows a newline, if there is one near it.
fn second_half_start(whole: Whole<'_>, len: u64) -> io::Result<Option<u64>> {
    let middle = len / 2;
    let mut window = Vec::with_capacity(NEWLINE_WITHIN);
    whole.from(middle).take(NEWLINE_WITHIN as u64).read_to_end(&mut window)?;
    let start = window.iter().position(|b| *b == b'\n').map(|i| middle + i as u64 + 1);
    Ok(start.filter(|start| *start < len))
}

/// Reads `whole` with the second half starting at `split` (tests choose it).
pub(super) fn read_split_at(
    whole: Whole<'_>,
    mut options: ReadOptions,
    split: Option<u64>,
) -> Result<CsvContents, CsvError> {
    let Some(split) = split else {
        return super::read(whole.from(0), options);
    };
    let (mut reader, layout) = start(whole.from(0), options.tab_separated)?;
    let mut first = Part::default();
    let cancelled = AtomicBool::new(false);
    let second_rows = AtomicU64::new(0);
    let tenant = options.tenant;
    let read = std::thread::scope(|scope| {
        let second = scope.spawn(|| {
            let mut reader = records(whole.from(split), split, layout.delimiter);
            let mut part = Part::default();
            part.read(&mut reader, &layout, tenant, None, &mut |rows| {
                second_rows.store(rows, Ordering::Relaxed);
                !cancelled.load(Ordering::Relaxed)
            })?;
            Ok::<_, CsvError>(part)
        });
        let mut progress = |rows: u64| {
            options.progress(rows + second_rows.load(Ordering::Relaxed));
            true
        };
        let reached = first.read(&mut reader, &layout, tenant, Some(split), &mut progress);
        if !matches!(reached, Ok(Reached::Split { .. })) {
            // An error, or the boundary was inside a quoted field, so the second half read
            // from the middle of a row: its work is not wanted.
            cancelled.store(true, Ordering::Relaxed);
        }
        match reached? {
            Reached::Split { line } => {
                let second = second.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
                first.append(second, line);
            }
            Reached::PastSplit => {
                first.read(&mut reader, &layout, tenant, None, &mut progress)?;
            }
            Reached::End => {}
        }
        Ok::<_, CsvError>(first)
    });
    Ok(read?.finish(layout))
}
