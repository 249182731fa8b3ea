//! Client-chosen strings made safe for logs, labels and the audit trail.

use std::borrow::Cow;

/// The longest value kept from a client-chosen string (ids, names). Sealed
/// `Mcp-Session-Id`s run to about 170 characters and must stay whole: an
/// operator matches the span's `mcp.session.id` against the client's header.
pub(crate) const MAX_FIELD: usize = 256;

/// Bounded to [`MAX_FIELD`] characters, control characters replaced.
pub(crate) fn clean(s: &str) -> String {
    clean_cow(s).into_owned()
}

/// [`clean`], borrowing the usual value (a method, an id, a session id:
/// short printable ASCII) instead of copying it.
pub(crate) fn clean_cow(s: &str) -> Cow<'_, str> {
    if s.len() <= MAX_FIELD && printable_ascii(s.as_bytes()) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .take(MAX_FIELD)
            .map(|c| if c.is_control() { '?' } else { c })
            .collect(),
    )
}

/// Whether every byte is printable ASCII (0x20 to 0x7e). A traced request
/// checks its ~170-byte session id and a few shorter values: 16 bytes at a
/// time with no exit inside a chunk, which the compiler turns into a few
/// vector instructions, instead of a compare and a branch per byte.
fn printable_ascii(s: &[u8]) -> bool {
    let mut chunks = s.chunks_exact(16);
    for chunk in &mut chunks {
        // Printable bytes map to 0..0x5f; a control byte wraps above it.
        let bad = chunk
            .iter()
            .fold(0u8, |bad, b| bad | u8::from(b.wrapping_sub(0x20) >= 0x5f));
        if bad != 0 {
            return false;
        }
    }
    chunks.remainder().iter().all(|b| (0x20..0x7f).contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_ascii_is_kept_and_the_rest_bounded_and_replaced() {
        assert_eq!(clean("tools/call"), "tools/call");
        assert_eq!(clean("a\u{7}b\nc"), "a?b?c");
        assert_eq!(clean("é\u{1b}"), "é?");
        assert_eq!(clean(&"x".repeat(300)).len(), MAX_FIELD);
        assert_eq!(clean(&"é".repeat(300)).chars().count(), MAX_FIELD);
    }

    #[test]
    fn the_chunked_check_agrees_with_the_byte_by_byte_one_everywhere() {
        // Every byte value at every position of a run longer than two chunks,
        // so that both the chunks and the remainder meet each.
        for len in [1, 15, 16, 17, 33, 170] {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut s = vec![b'a'; len];
                    s[at] = b;
                    let simple = s.iter().all(|b| (0x20..0x7f).contains(b));
                    assert_eq!(
                        printable_ascii(&s),
                        simple,
                        "len {len}, byte {b:#x} at {at}"
                    );
                }
            }
        }
        assert!(printable_ascii(b""));
    }
}
