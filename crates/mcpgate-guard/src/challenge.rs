//! `WWW-Authenticate: Bearer …` challenges (RFC 6750, RFC 9728 §5.1), and
//! `DPoP …` ones (RFC 9449 §7.1) where DPoP is taken.

/// What a protected endpoint tells a client that must (re-)authenticate.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// The URL of this resource's protected-resource metadata (none when no
    /// authorization server is configured, e.g. API keys only).
    pub resource_metadata: Option<String>,
    /// The scopes a client should ask for when signing in.
    pub default_scopes: Vec<String>,
    /// Whether the resource takes DPoP: unless off, every 401 also carries a
    /// `DPoP algs="…"` challenge.
    pub dpop: crate::dpop_mode::DpopMode,
}

impl Challenge {
    /// The `DPoP` challenge sent beside the Bearer one, when DPoP is taken.
    pub fn dpop_offer(&self) -> Option<String> {
        (self.dpop != crate::dpop_mode::DpopMode::Off)
            .then(|| format!("DPoP algs=\"{}\"", mcpgate_dpop::ALGS.join(" ")))
    }

    /// 401 with a DPoP error (`invalid_dpop_proof`, `use_dpop_nonce`,
    /// `invalid_token` for a token sent with the wrong scheme).
    pub fn dpop_error(&self, code: &str, why: &str) -> String {
        let mut s = format!(
            "DPoP error=\"{}\", error_description=\"{}\", algs=\"{}\"",
            quote(code),
            quote(why),
            mcpgate_dpop::ALGS.join(" ")
        );
        if let Some(m) = &self.resource_metadata {
            s.push_str(&format!(", resource_metadata=\"{}\"", quote(m)));
        }
        s
    }

    /// 401 without an error: sign in, asking for `scopes` (or the defaults).
    pub fn sign_in(&self, scopes: Option<&[String]>) -> String {
        let scopes = scopes.unwrap_or(&self.default_scopes);
        let mut parts = Vec::new();
        if let Some(m) = &self.resource_metadata {
            parts.push(format!("resource_metadata=\"{}\"", quote(m)));
        }
        if !scopes.is_empty() {
            parts.push(format!("scope=\"{}\"", quote(&scopes.join(" "))));
        }
        if parts.is_empty() {
            parts.push("realm=\"mcpgate\"".to_owned());
        }
        format!("Bearer {}", parts.join(", "))
    }

    /// 401 `invalid_token` with a reason.
    pub fn invalid_token(&self, why: &str) -> String {
        let mut s = format!(
            "Bearer error=\"invalid_token\", error_description=\"{}\"",
            quote(why)
        );
        if let Some(m) = &self.resource_metadata {
            s.push_str(&format!(", resource_metadata=\"{}\"", quote(m)));
        }
        if !self.default_scopes.is_empty() {
            s.push_str(&format!(
                ", scope=\"{}\"",
                quote(&self.default_scopes.join(" "))
            ));
        }
        s
    }

    /// 403 `insufficient_scope` naming every scope still needed.
    pub fn insufficient_scope(&self, needed: &[String]) -> String {
        let mut s = format!(
            "Bearer error=\"insufficient_scope\", scope=\"{}\"",
            quote(&needed.join(" "))
        );
        if let Some(m) = &self.resource_metadata {
            s.push_str(&format!(", resource_metadata=\"{}\"", quote(m)));
        }
        s
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(&self, why: &str) -> String {
        format!(
            "Bearer error=\"invalid_request\", error_description=\"{}\"",
            quote(why)
        )
    }
}

/// Quoted-string content: no quotes, backslashes or control characters survive.
fn quote(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .map(|c| if c == '"' || c == '\\' { '\'' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_have_the_spec_shapes() {
        let c = Challenge {
            resource_metadata: Some("https://h/.well-known/oauth-protected-resource/mcp".into()),
            default_scopes: vec!["notes:read".into()],
            dpop: crate::dpop_mode::DpopMode::Off,
        };
        assert_eq!(
            c.sign_in(None),
            r#"Bearer resource_metadata="https://h/.well-known/oauth-protected-resource/mcp", scope="notes:read""#
        );
        assert_eq!(
            c.insufficient_scope(&["a".into(), "b".into()]),
            r#"Bearer error="insufficient_scope", scope="a b", resource_metadata="https://h/.well-known/oauth-protected-resource/mcp""#
        );
        assert!(
            c.invalid_token("bad \"x\"\n")
                .contains(r#"error_description="bad 'x'""#)
        );
    }
}
