//! An incremental parser for `text/event-stream` bodies from upstreams.
//! It is on the proxy's hot path, so it is ours: a line scanner over byte chunks.

use bytes::{Buf, BytesMut};

/// One dispatched server-sent event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    /// The `event:` field; empty means "message".
    pub(crate) event: String,
    /// The `data:` lines joined with `\n`.
    pub(crate) data: String,
    /// The `id:` field, if any.
    pub(crate) id: Option<String>,
}

/// Feed it chunks; it yields complete events.
#[derive(Debug, Default)]
pub(crate) struct Parser {
    buf: BytesMut,
    current: Event,
    has_data: bool,
    max_event: usize,
    /// The last line ended in `\r` at the end of a chunk: a `\n` opening the
    /// next chunk belongs to that line end, not to an empty line (which would
    /// dispatch the event early).
    after_cr: bool,
}

/// An event grew past the size limit.
#[derive(Debug, thiserror::Error)]
#[error("an upstream server-sent event exceeded {0} bytes")]
pub(crate) struct TooLarge(pub(crate) usize);

impl Parser {
    pub(crate) fn new(max_event: usize) -> Self {
        Parser {
            max_event,
            ..Default::default()
        }
    }

    /// Adds bytes and returns the events they complete.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Event>, TooLarge> {
        self.buf.extend_from_slice(chunk);
        if self.after_cr && !self.buf.is_empty() {
            if self.buf[0] == b'\n' {
                self.buf.advance(1);
            }
            self.after_cr = false;
        }
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n' || *b == b'\r') {
            let line = self.buf.split_to(pos);
            // Accept \n, \r\n and a lone \r as line ends.
            if self.buf.first() == Some(&b'\r') && self.buf.get(1) == Some(&b'\n') {
                self.buf.advance(2);
            } else {
                self.after_cr = self.buf.first() == Some(&b'\r') && self.buf.len() == 1;
                self.buf.advance(1);
            }
            self.line(&line, &mut out);
        }
        if self.buf.len() + self.current.data.len() > self.max_event {
            return Err(TooLarge(self.max_event));
        }
        Ok(out)
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<Event>) {
        if line.is_empty() {
            if self.has_data || self.current.id.is_some() {
                out.push(std::mem::take(&mut self.current));
            }
            self.current = Event::default();
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.current.event = value.to_owned(),
            "id" => self.current.id = Some(value.to_owned()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_across_chunks_and_line_endings() {
        let mut p = Parser::new(1024);
        assert!(
            p.feed(b"event: endpoint\r\ndata: /messages?s")
                .unwrap()
                .is_empty()
        );
        let ev = p
            .feed(b"=1\r\n\r\n: comment\nid: 4\ndata: a\ndata: b\n\n")
            .unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].event, "endpoint");
        assert_eq!(ev[0].data, "/messages?s=1");
        assert_eq!(
            ev[1],
            Event {
                event: String::new(),
                data: "a\nb".into(),
                id: Some("4".into())
            }
        );
    }

    #[test]
    fn refuses_oversized_events() {
        let mut p = Parser::new(8);
        assert!(p.feed(b"data: 0123456789").is_err());
    }
}
