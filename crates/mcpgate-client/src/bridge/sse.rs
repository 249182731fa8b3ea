//! An incremental `text/event-stream` parser for the bodies the remote server
//! streams: fed byte chunks, it yields complete events. The gateway has its
//! own; this one also keeps `retry:` (the reconnect delay a server may ask
//! for), and keeps the client crate free of the gateway.

use bytes::{Buf, Bytes, BytesMut};

/// One dispatched server-sent event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    /// The `event:` field; empty means "message".
    pub(crate) event: String,
    /// The `data:` lines joined with `\n`.
    pub(crate) data: Bytes,
    /// The `id:` field, if the event had one.
    pub(crate) id: Option<String>,
    /// The `retry:` field in milliseconds, if the event had one.
    pub(crate) retry: Option<u64>,
}

impl Event {
    /// Whether this event carries a JSON-RPC message (`message` type, non-empty data).
    pub(crate) fn is_message(&self) -> bool {
        (self.event.is_empty() || self.event == "message") && !self.data.is_empty()
    }
}

/// Feed it chunks; it yields complete events.
#[derive(Debug)]
pub(crate) struct Parser {
    buf: BytesMut,
    event: String,
    data: BytesMut,
    has_data: bool,
    id: Option<String>,
    retry: Option<u64>,
    max_event: usize,
}

/// An event grew past the size limit.
#[derive(Debug, thiserror::Error)]
#[error("a server-sent event from the remote server exceeded {0} bytes")]
pub(crate) struct TooLarge(pub(crate) usize);

impl Parser {
    /// A parser refusing events larger than `max_event` bytes.
    pub(crate) fn new(max_event: usize) -> Self {
        Parser {
            buf: BytesMut::new(),
            event: String::new(),
            data: BytesMut::new(),
            has_data: false,
            id: None,
            retry: None,
            max_event,
        }
    }

    /// Adds bytes and returns the events they complete.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Event>, TooLarge> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n' || *b == b'\r') {
            let line = self.buf.split_to(pos);
            // \n, \r\n and a lone \r all end a line. A \r at the very end of
            // the buffer may be the first half of \r\n: the \n, when it comes,
            // then reads as an empty line, so wait for the next byte.
            if self.buf.first() == Some(&b'\r') {
                if self.buf.len() == 1 {
                    self.buf.unsplit_front(line);
                    break;
                }
                let skip = if self.buf.get(1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                self.buf.advance(skip);
            } else {
                self.buf.advance(1);
            }
            self.line(&line, &mut out);
        }
        if self.buf.len() + self.data.len() > self.max_event {
            return Err(TooLarge(self.max_event));
        }
        Ok(out)
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
        let (field, value) = match line.iter().position(|b| *b == b':') {
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

trait UnsplitFront {
    fn unsplit_front(&mut self, front: BytesMut);
}

impl UnsplitFront for BytesMut {
    /// Puts `front` back before the buffer's bytes (it was split off them).
    fn unsplit_front(&mut self, mut front: BytesMut) {
        front.unsplit(std::mem::take(self));
        *self = front;
    }
}

#[cfg(test)]
mod tests;
