//! Client-chosen strings made safe for logs, labels and the audit trail.

/// The longest value kept from a client-chosen string (ids, names). Sealed
/// `Mcp-Session-Id`s run to about 170 characters and must stay whole: an
/// operator matches the span's `mcp.session.id` against the client's header.
pub(crate) const MAX_FIELD: usize = 256;

/// Bounded to [`MAX_FIELD`] characters, control characters replaced.
pub(crate) fn clean(s: &str) -> String {
    s.chars()
        .take(MAX_FIELD)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
