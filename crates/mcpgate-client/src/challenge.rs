//! `WWW-Authenticate: Bearer …` challenges (RFC 6750 §3, RFC 9728 §5.1).

#[cfg(test)]
mod tests;

/// The parameters of a Bearer challenge that a client acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BearerChallenge {
    /// `error`, e.g. `invalid_token` or `insufficient_scope`.
    pub error: Option<String>,
    /// `scope`: the scopes the request needs, space-separated.
    pub scope: Option<String>,
    /// `resource_metadata`: where the protected-resource metadata is.
    pub resource_metadata: Option<String>,
}

impl BearerChallenge {
    /// Reads the Bearer challenge out of a `WWW-Authenticate` value; `None`
    /// when the value holds no Bearer challenge.
    pub fn parse(header: &str) -> Option<Self> {
        let mut out = Self::default();
        for (k, v) in params_of(header, "bearer")? {
            match k.to_ascii_lowercase().as_str() {
                "error" => out.error = Some(v),
                "scope" => out.scope = Some(v),
                "resource_metadata" => out.resource_metadata = Some(v),
                _ => {}
            }
        }
        Some(out)
    }

    /// The scopes of `scope`, split on spaces.
    pub fn scopes(&self) -> Vec<String> {
        split_scopes(self.scope.as_deref().unwrap_or(""))
    }

    /// Whether this is an `insufficient_scope` challenge.
    pub fn is_insufficient_scope(&self) -> bool {
        self.error.as_deref() == Some("insufficient_scope")
    }
}

/// The `error` of the `scheme` challenge (`DPoP`, `Bearer`) in a
/// `WWW-Authenticate` value that may hold several.
pub(crate) fn error_of(header: &str, scheme: &str) -> Option<String> {
    params_of(header, scheme)?
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("error"))
        .map(|(_, v)| v)
}

/// The parameters of the first `scheme` challenge (case-insensitive) in a
/// `WWW-Authenticate` value, which may hold several; `None` without one.
fn params_of(header: &str, scheme: &str) -> Option<Vec<(String, String)>> {
    let mut rest = header;
    loop {
        let trimmed = rest.trim_start_matches([' ', ',', '\t']);
        let (name, after) = split_token(trimmed);
        if name.is_empty() {
            return None;
        }
        let (params, next) = parse_params(after);
        if name.eq_ignore_ascii_case(scheme) {
            return Some(params);
        }
        rest = next;
    }
}

/// Splits a space-separated scope string, dropping empties.
pub fn split_scopes(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

fn split_token(s: &str) -> (&str, &str) {
    let end = s.find([' ', ',', '\t', '=']).unwrap_or(s.len());
    (&s[..end], &s[end..])
}

/// Parses `k=v, k="v"` pairs until the next scheme token; returns the pairs
/// and the rest of the header (starting at the next challenge).
fn parse_params(mut s: &str) -> (Vec<(String, String)>, &str) {
    let mut out = Vec::new();
    loop {
        let t = s.trim_start_matches([' ', ',', '\t']);
        let (key, after) = split_token(t);
        if key.is_empty() {
            return (out, "");
        }
        let after_ws = after.trim_start_matches([' ', '\t']);
        let Some(value_part) = after_ws.strip_prefix('=') else {
            // A bare token: the start of the next challenge.
            return (out, t);
        };
        let value_part = value_part.trim_start_matches([' ', '\t']);
        if let Some(quoted) = value_part.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            out.push((key.to_owned(), value));
            s = &quoted[end.min(quoted.len())..];
        } else {
            let end = value_part
                .find([',', ' ', '\t'])
                .unwrap_or(value_part.len());
            out.push((key.to_owned(), value_part[..end].to_owned()));
            s = &value_part[end..];
        }
    }
}
