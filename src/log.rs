//! The text log's field formatting: every value has its control characters escaped, so a
//! `userName` with a newline and an ESC in a SCIM body (or any other value a client chose)
//! cannot forge a log line or drive the terminal. The JSON log is escaped by JSON itself.

use std::fmt::Write as _;

use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::{debug_fn, Writer};
use tracing_subscriber::fmt::FormatFields;

/// Field formatting for the text log: `name=value` pairs (the message bare), escaped.
pub fn text_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    debug_fn(|writer: &mut Writer<'_>, field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
        let text = format!("{value:?}");
        if field.name() == "message" {
            writer.write_str(&escape_controls(&text))
        } else {
            write!(writer, "{}={}", field.name(), escape_controls(&text))
        }
    })
    .delimited(" ")
}

/// `text` with each control character (C0, DEL, C1, and the Unicode line and paragraph
/// separators) written as `\u{..}`; borrowed when there is none.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    let is_control = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}');
    if !text.chars().any(is_control) {
        return text.into();
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_control(c) {
            let _ = write!(escaped, "\\u{{{:x}}}", c as u32);
        } else {
            escaped.push(c);
        }
    }
    escaped.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_value_with_a_newline_and_escapes_stays_on_its_own_line() {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .with_target(false)
            .fmt_fields(text_fields())
            .finish();
        let forged = "eve@contoso.com\n2026-12-01T00:00:00Z  INFO forged: all is well\u{1b}[2J\u{7}";
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(user_name = %forged, external_id = forged, "SCIM user stored but not a member");
            tracing::info!("shown as {}", forged);
        });
        let text = String::from_utf8(buffer.0.lock().map(|b| b.clone()).unwrap_or_default()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(!text.contains('\u{1b}') && !text.contains('\u{7}'), "{text:?}");
        assert!(lines[0].contains(r"user_name=eve@contoso.com\u{a}2026-12-01"), "{}", lines[0]);
        assert!(lines[0].contains(r"\u{1b}[2J\u{7}"), "{}", lines[0]);
        assert!(
            lines[1].ends_with(
                r"shown as eve@contoso.com\u{a}2026-12-01T00:00:00Z  INFO forged: all is well\u{1b}[2J\u{7}"
            ),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn plain_text_is_borrowed_untouched() {
        assert!(matches!(escape_controls("ada@contoso.com"), std::borrow::Cow::Borrowed("ada@contoso.com")));
        assert_eq!(escape_controls("a\tb\u{2028}"), r"a\u{9}b\u{2028}");
    }
}
