//! How a human log line writes its fields: byte for byte what
//! `tracing-subscriber`'s `DefaultFields` writes, with a shortcut for the
//! usual string value (printable ASCII, nothing to escape), which it copies
//! as `name="value"` instead of going through `Debug` one character at a
//! time. The access log writes a dozen such fields per request. Everything
//! else (the message, numbers, errors, strings that need escaping, ANSI
//! colours) is written by `DefaultFields`' own visitor.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

/// The human format's fields (see the module's text).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LogFields;

impl<'writer> FormatFields<'writer> for LogFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut v = Visitor {
            writer,
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

struct Visitor<'a> {
    writer: Writer<'a>,
    /// Nothing written yet: the next field needs no separating space.
    is_empty: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    /// One field written by `DefaultFields`' visitor, told whether a field
    /// came before so that it separates this one the same way.
    fn default_visitor(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let mut v = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut v);
        self.result = tracing_subscriber::field::VisitOutput::finish(v);
        // It skips `log.*` fields (metadata of `log` records) and writes the rest.
        if !field.name().starts_with("log.") {
            self.is_empty = false;
        }
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let name = field.name();
        if self.result.is_ok()
            && name != "message"
            && !name.starts_with("r#")
            && !name.starts_with("log.")
            && !self.writer.has_ansi_escapes()
            && needs_no_escape(value)
        {
            // What `{name}={value:?}` gives for such a value.
            let sep = if std::mem::take(&mut self.is_empty) {
                ""
            } else {
                " "
            };
            self.result = (|| {
                self.writer.write_str(sep)?;
                self.writer.write_str(name)?;
                self.writer.write_str("=\"")?;
                self.writer.write_str(value)?;
                self.writer.write_char('"')
            })();
            return;
        }
        self.default_visitor(field, |v| v.record_str(field, value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.default_visitor(field, |v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.default_visitor(field, |v| v.record_debug(field, value));
    }
}

/// Printable ASCII but `"` and `\`: what `str`'s `Debug` writes unchanged.
fn needs_no_escape(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\')
}

#[cfg(test)]
mod tests;
