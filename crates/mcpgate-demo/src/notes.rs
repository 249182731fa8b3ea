//! Secure notes: the rules a note must follow and the URIs that name notes.
//!
//! Parsing happens once, here, so the store and the tools only ever handle
//! values that are already known to be valid.

use crate::error::DemoError;

/// Longest title, in characters (not bytes, so every script gets the same room).
pub(crate) const MAX_TITLE_CHARS: usize = 200;
/// Largest content, in bytes of UTF-8.
pub(crate) const MAX_CONTENT_BYTES: usize = 64 * 1024;
/// The URI template under which a caller's notes are readable.
pub(crate) const NOTE_URI_TEMPLATE: &str = "user://notes/{id}";
const NOTE_URI_PREFIX: &str = "user://notes/";

/// A note title: not blank, at most [`MAX_TITLE_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NoteTitle(String);

impl NoteTitle {
    /// Checks a title, trimming surrounding whitespace.
    pub(crate) fn parse(raw: &str) -> Result<Self, DemoError> {
        let title = raw.trim();
        if title.is_empty() {
            return Err(DemoError::InvalidInput(
                "the title is empty: give the note a title of 1 to 200 characters".to_owned(),
            ));
        }
        let chars = title.chars().count();
        if chars > MAX_TITLE_CHARS {
            return Err(DemoError::InvalidInput(format!(
                "the title has {chars} characters; shorten it to at most {MAX_TITLE_CHARS}"
            )));
        }
        Ok(Self(title.to_owned()))
    }

    /// The title as text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Note content: any text up to [`MAX_CONTENT_BYTES`] bytes, kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NoteContent(String);

impl NoteContent {
    /// Checks the size of the content.
    pub(crate) fn parse(raw: String) -> Result<Self, DemoError> {
        if raw.len() > MAX_CONTENT_BYTES {
            return Err(DemoError::InvalidInput(format!(
                "the content is {} bytes; the limit is {MAX_CONTENT_BYTES} bytes (64 KiB)",
                raw.len()
            )));
        }
        Ok(Self(raw))
    }

    /// The content as text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// The URI of note `id`.
pub(crate) fn note_uri(id: i64) -> String {
    format!("{NOTE_URI_PREFIX}{id}")
}

/// The note id in a `user://notes/{id}` URI, or `None` if `uri` is not one.
pub(crate) fn parse_note_uri(uri: &str) -> Option<i64> {
    let id = uri.strip_prefix(NOTE_URI_PREFIX)?;
    // `i64::from_str` accepts a leading `+`; a URI with one is not ours.
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok().filter(|id| *id > 0)
}

/// A note id given as a prompt argument or elsewhere as text.
pub(crate) fn parse_note_id(raw: &str) -> Result<i64, DemoError> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            DemoError::InvalidInput(format!(
                "{raw:?} is not a note id: use the number shown by list_secure_notes"
            ))
        })
}

#[cfg(test)]
mod tests;
