//! An incremental parser for `text/event-stream` bodies.
//!
//! Path: a body arrives in byte chunks → [`Parser::feed`] scans them for
//! line ends (`\n`, `\r\n`, a lone `\r`, including a `\r\n` split between
//! two chunks) → each line sets a field of the pending event → an empty line
//! dispatches it as an [`Event`].
//!
//! The gateway reads upstream streams with it and the client bridge reads
//! remote ones. It sits on the proxy's hot path, so it is a line scanner of
//! our own rather than a general SSE crate: a data line is copied once, into
//! the event's buffer, and the event hands that buffer on as [`Bytes`]
//! without copying again or decoding it as UTF-8.

use bytes::{Buf, Bytes, BytesMut};

/// One dispatched server-sent event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field; empty means "message".
    pub event: String,
    /// The `data:` lines joined with `\n`, as sent (not decoded).
    pub data: Bytes,
    /// The `id:` field, if the event had one.
    pub id: Option<String>,
    /// The `retry:` field in milliseconds, if the event had one.
    pub retry: Option<u64>,
}

impl Event {
    /// Whether this event carries a message: `message` type and non-empty data.
    pub fn is_message(&self) -> bool {
        (self.event.is_empty() || self.event == "message") && !self.data.is_empty()
    }
}

/// Feed it chunks; it yields complete events.
#[derive(Debug)]
pub struct Parser {
    buf: BytesMut,
    event: String,
    data: BytesMut,
    has_data: bool,
    id: Option<String>,
    retry: Option<u64>,
    max_event: usize,
    /// The last line ended in `\r` at the end of a chunk: a `\n` opening the
    /// next chunk belongs to that line end, not to an empty line (which would
    /// dispatch the event early). Remembering this, rather than holding the
    /// `\r` back, dispatches an event ended by a lone `\r` without waiting for
    /// the next chunk.
    after_cr: bool,
}

/// An event grew past the size limit.
#[derive(Debug, thiserror::Error)]
#[error("a server-sent event exceeded {0} bytes")]
pub struct TooLarge(pub usize);

impl Parser {
    /// A parser refusing events larger than `max_event` bytes.
    pub fn new(max_event: usize) -> Self {
        Parser {
            buf: BytesMut::new(),
            event: String::new(),
            data: BytesMut::new(),
            has_data: false,
            id: None,
            retry: None,
            max_event,
            after_cr: false,
        }
    }

    /// Adds bytes and returns the events they complete.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Event>, TooLarge> {
        let mut out = Vec::new();
        if self.buf.is_empty() {
            // The usual case, a chunk that starts a line: its lines are read
            // where they are, and only an unfinished last one is kept.
            let rest = self.lines(chunk, &mut out);
            self.buf.extend_from_slice(rest);
        } else {
            self.buf.extend_from_slice(chunk);
            let mut buf = std::mem::take(&mut self.buf);
            let done = buf.len() - self.lines(&buf, &mut out).len();
            buf.advance(done);
            self.buf = buf;
        }
        if self.buf.len() + self.data.len() > self.max_event {
            return Err(TooLarge(self.max_event));
        }
        Ok(out)
    }

    /// Reads the complete lines of `bytes` into the pending event (and
    /// `out`); returns what follows the last line end.
    fn lines<'a>(&mut self, mut bytes: &'a [u8], out: &mut Vec<Event>) -> &'a [u8] {
        if self.after_cr && !bytes.is_empty() {
            if bytes[0] == b'\n' {
                bytes = &bytes[1..];
            }
            self.after_cr = false;
        }
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', bytes) {
            let (line, end) = bytes.split_at(pos);
            if end.starts_with(b"\r\n") {
                bytes = &end[2..];
            } else {
                self.after_cr = end == b"\r";
                bytes = &end[1..];
            }
            self.line(line, out);
        }
        bytes
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<Event>) {
        if line.is_empty() {
            if self.has_data || self.id.is_some() || self.retry.is_some() {
                out.push(Event {
                    event: std::mem::take(&mut self.event),
                    data: self.data.split().freeze(),
                    id: self.id.take(),
                    retry: self.retry.take(),
                });
            }
            self.event.clear();
            self.data.clear();
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.extend_from_slice(b"\n");
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.event = String::from_utf8_lossy(value).into_owned(),
            // An id containing NUL is ignored, as the SSE standard says.
            b"id" if !value.contains(&0) => {
                self.id = Some(String::from_utf8_lossy(value).into_owned());
            }
            b"retry" => {
                if let Ok(ms) = std::str::from_utf8(value).unwrap_or("").parse() {
                    self.retry = Some(ms);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
