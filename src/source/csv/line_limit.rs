//! A reader that refuses physical lines longer than a limit. A member row is a few hundred
//! bytes, so a megabyte without a newline is a binary file or a broken export, and parsing it
//! as one record would take memory in proportion to the mistake.

use std::io::{self, Read};

/// Longest line accepted, in bytes.
pub const MAX_LINE_BYTES: u64 = 1 << 20;

/// The error inside the `io::Error` a too-long line raises.
#[derive(Debug, thiserror::Error)]
#[error("a line starting at byte {start} is longer than {} MiB; is this a CSV file?", MAX_LINE_BYTES >> 20)]
pub struct LineTooLong {
    /// Offset of the line's first byte in the input.
    pub start: u64,
}

/// Wraps a reader; reads fail once a line grows past [`MAX_LINE_BYTES`].
pub struct LineLimit<R> {
    inner: R,
    offset: u64,
    line_start: u64,
}

impl<R> LineLimit<R> {
    /// Limits `inner`, which starts at `offset` in the whole input (a line starts there).
    pub fn starting_at(inner: R, offset: u64) -> Self {
        LineLimit { inner, offset, line_start: offset }
    }
}

impl<R: Read> Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        // Only the last newline of each chunk matters, and it is usually near the end.
        if let Some(last) = buf[..n].iter().rposition(|b| *b == b'\n') {
            self.line_start = self.offset + last as u64 + 1;
        }
        self.offset += n as u64;
        if self.offset - self.line_start > MAX_LINE_BYTES {
            return Err(io::Error::new(io::ErrorKind::InvalidData, LineTooLong { start: self.line_start }));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_fail_and_many_short_ones_pass() {
        let short = "x".repeat(1000) + "\n";
        let many = short.repeat(5000); // 5 MB in all
        let mut sink = Vec::new();
        LineLimit::starting_at(many.as_bytes(), 0).read_to_end(&mut sink).unwrap();
        assert_eq!(sink.len(), many.len());

        let long = format!("header\n{}", "y".repeat(MAX_LINE_BYTES as usize + 10));
        let error = LineLimit::starting_at(long.as_bytes(), 0).read_to_end(&mut Vec::new()).unwrap_err();
        let inner = error.get_ref().and_then(|e| e.downcast_ref::<LineTooLong>()).unwrap();
        assert_eq!(inner.start, 7);
    }
}
