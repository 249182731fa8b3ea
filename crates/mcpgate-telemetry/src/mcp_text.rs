//! The MCP request's own strings in a request's note (upstream, method,
//! JSON-RPC id, session id, tool), cleaned and kept one after another in one
//! string: one allocation per request instead of one per value. The access
//! log, the metrics, the span and the audit trail borrow them from there.

/// Which of the request's strings.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Field {
    Upstream = 0,
    Method = 1,
    JsonrpcId = 2,
    SessionId = 3,
    Tool = 4,
}

/// The strings, each set at most once (a second set wins, appended).
#[derive(Debug, Default)]
pub(crate) struct McpText {
    text: String,
    /// Each field's start and end in `text`, when set.
    at: [Option<(usize, usize)>; 5],
}

impl McpText {
    /// Room for `len` more bytes, so that the next sets do not reallocate.
    pub(crate) fn reserve(&mut self, len: usize) {
        self.text.reserve(len);
    }

    /// `field` is `value`, cleaned ([`crate::clean::clean`]).
    pub(crate) fn set(&mut self, field: Field, value: &str) {
        let start = self.text.len();
        self.text.push_str(&crate::clean::clean_cow(value));
        self.at[field as usize] = Some((start, self.text.len()));
    }

    pub(crate) fn get(&self, field: Field) -> Option<&str> {
        let (start, end) = self.at[field as usize]?;
        self.text.get(start..end)
    }

    pub(crate) fn is_set(&self, field: Field) -> bool {
        self.at[field as usize].is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_field_reads_back_cleaned_and_unset_ones_are_none() {
        let mut t = McpText::default();
        t.reserve(16);
        t.set(Field::Upstream, "echo");
        t.set(Field::SessionId, "s\u{7}1");
        t.set(Field::Tool, "");
        assert_eq!(t.get(Field::Upstream), Some("echo"));
        assert_eq!(t.get(Field::SessionId), Some("s?1"));
        assert_eq!(t.get(Field::Tool), Some(""));
        assert_eq!(t.get(Field::Method), None);
        assert!(!t.is_set(Field::JsonrpcId));
        t.set(Field::Upstream, "other");
        assert_eq!(t.get(Field::Upstream), Some("other"));
        assert_eq!(t.get(Field::SessionId), Some("s?1"));
    }
}
