//! A child's stdout, line by line. A line that is not UTF-8, not JSON, or over
//! the size limit is one bad message: it is reported and skipped, and reading
//! goes on, so one stray byte cannot cut a (possibly shared) child off.

use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Bytes of an over-long line kept to find the request it answers.
const HEAD: usize = 64 * 1024;

/// One line of a child's stdout.
#[derive(Debug)]
pub(super) enum Line {
    /// A complete line within the limit, without its line ending.
    Whole(Vec<u8>),
    /// A line over the limit: its first bytes and its full length.
    TooLong { head: Vec<u8>, len: usize },
}

/// Splits a byte stream into lines of at most `max` bytes without ever holding more.
pub(super) struct LineReader<R> {
    inner: BufReader<R>,
    max: usize,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub(super) fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner: BufReader::new(inner),
            max,
        }
    }

    /// The next line; `None` at the end of the stream.
    pub(super) async fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        let mut buf = Vec::new();
        let mut len = 0usize;
        let mut too_long = false;
        let mut saw_any = false;
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                if !saw_any {
                    return Ok(None);
                }
                break;
            }
            saw_any = true;
            let newline = available.iter().position(|b| *b == b'\n');
            let chunk = &available[..newline.unwrap_or(available.len())];
            len = len.saturating_add(chunk.len());
            if !too_long && len > self.max {
                too_long = true;
                let keep = HEAD.saturating_sub(buf.len()).min(chunk.len());
                buf.extend_from_slice(&chunk[..keep]);
                buf.truncate(HEAD);
            } else if !too_long {
                buf.extend_from_slice(chunk);
            }
            let consumed = chunk.len() + usize::from(newline.is_some());
            self.inner.consume(consumed);
            if newline.is_some() {
                break;
            }
        }
        if too_long {
            return Ok(Some(Line::TooLong { head: buf, len }));
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        Ok(Some(Line::Whole(buf)))
    }
}

/// The top-level `id` of what looks like a JSON-RPC response (an object with an
/// `id` and no `method`) in the first bytes of a message, found without parsing
/// the rest, so that a bad answer can still fail the request it belongs to.
pub(super) fn response_id(head: &[u8]) -> Option<Box<RawValue>> {
    let mut depth = 0usize;
    let mut expect_key = false;
    let mut id = None;
    let mut i = 0;
    while i < head.len() {
        match head[i] {
            b'"' => {
                // The head of a long line usually ends inside a string: what was found stands.
                let Some(end) = string_end(head, i) else {
                    return id;
                };
                if depth == 1 && expect_key {
                    let key = &head[i + 1..end];
                    let value = skip_ws(head, end + 1);
                    if head.get(value) != Some(&b':') {
                        return None;
                    }
                    let value = skip_ws(head, value + 1);
                    if key == b"method" {
                        return None;
                    }
                    if key == b"id" {
                        id = Some(value_at(head, value)?);
                    }
                    expect_key = false;
                    i = value;
                    continue;
                }
                i = end + 1;
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                expect_key = depth == 1 && head[i] == b'{';
            }
            b'}' | b']' => depth = depth.checked_sub(1)?,
            b',' if depth == 1 => expect_key = true,
            _ => {}
        }
        i += 1;
    }
    id
}

/// The index of the quote closing the string that opens at `start`.
fn string_end(s: &[u8], start: usize) -> Option<usize> {
    let mut j = start + 1;
    while j < s.len() {
        match s[j] {
            b'\\' => j += 2,
            b'"' => return Some(j),
            _ => j += 1,
        }
    }
    None
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while s.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// A string or number value starting at `i`, as raw JSON.
fn value_at(s: &[u8], i: usize) -> Option<Box<RawValue>> {
    let end = match s.get(i)? {
        b'"' => string_end(s, i)? + 1,
        b'-' | b'0'..=b'9' => {
            let mut j = i + 1;
            while s.get(j).is_some_and(|b| {
                b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')
            }) {
                j += 1;
            }
            j
        }
        _ => return None,
    };
    let text = std::str::from_utf8(&s[i..end]).ok()?;
    RawValue::from_string(text.to_owned()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_top_level_id_of_a_response() {
        let id = response_id(br#"{"jsonrpc":"2.0","result":{"id":"inner"},"id":7,"x":"#);
        assert_eq!(id.map(|r| r.get().to_owned()).as_deref(), Some("7"));
        let id = response_id(br#"{"jsonrpc":"2.0","id":12,"result":{"pad":"xxxxxxxx"#);
        assert_eq!(id.map(|r| r.get().to_owned()).as_deref(), Some("12"));
        let id = response_id(br#"{ "id" : "a\"b", "result": {"#);
        assert_eq!(id.map(|r| r.get().to_owned()).as_deref(), Some(r#""a\"b""#));
    }

    #[test]
    fn a_request_or_a_nested_id_is_not_a_response_id() {
        assert!(response_id(br#"{"id":3,"method":"sampling/createMessage","params":{"#).is_none());
        assert!(response_id(br#"{"result":{"id":3,"#).is_none());
        assert!(response_id(b"not json at all").is_none());
    }

    #[tokio::test]
    async fn lines_over_the_limit_are_cut_and_reading_goes_on() {
        let input = b"short\r\n0123456789abcdef\nnext\nlast".to_vec();
        let mut r = LineReader::new(&input[..], 10);
        assert!(matches!(r.next_line().await, Ok(Some(Line::Whole(l))) if l == b"short"));
        assert!(
            matches!(r.next_line().await, Ok(Some(Line::TooLong { head, len: 16 })) if head.starts_with(b"0123456789"))
        );
        assert!(matches!(r.next_line().await, Ok(Some(Line::Whole(l))) if l == b"next"));
        assert!(matches!(r.next_line().await, Ok(Some(Line::Whole(l))) if l == b"last"));
        assert!(matches!(r.next_line().await, Ok(None)));
    }
}
