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
    if s.len() <= MAX_FIELD && s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .take(MAX_FIELD)
            .map(|c| if c.is_control() { '?' } else { c })
            .collect(),
    )
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
}
