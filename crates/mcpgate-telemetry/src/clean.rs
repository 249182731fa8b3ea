//! Client-chosen strings made safe for logs, labels and the audit trail.

/// The longest value kept from a client-chosen string (ids, names).
pub(crate) const MAX_FIELD: usize = 128;

/// Bounded to [`MAX_FIELD`] characters, control characters replaced.
pub(crate) fn clean(s: &str) -> String {
    s.chars()
        .take(MAX_FIELD)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
