//! `mcpgate check-config --show`: the configuration `serve` would run, each
//! value with where it came from (default, file, environment), secrets redacted.
//!
//! The defaults are rendered from the same `Default` values the loader fills
//! in, so they cannot drift from what runs; keys with no default (upstreams,
//! issuers…) appear only when the file or the environment sets them.

use std::time::Duration;

use toml::{Table, Value};

use super::{Config, Layers};

/// Loads `path` as `check-config` does; with `show`, prints the effective
/// configuration to stdout when it loads (the problems are reported by the caller).
pub(crate) fn load_and_print(path: &std::path::Path, show: bool) -> Result<Config, Vec<String>> {
    let (c, layers) = super::load_layers(Some(path))?;
    if show {
        print!("{}", render(&c, &layers, Some(&path.display().to_string())));
    }
    Ok(c)
}

/// What replaces a secret's value.
const REDACTED: &str = "<redacted>";

/// The effective configuration as annotated TOML.
pub(crate) fn render(c: &Config, layers: &Layers, file: Option<&str>) -> String {
    let mut effective = defaults(c);
    merge(&mut effective, &layers.merged);
    let origin = Origin { layers, file };
    let mut out = String::from(
        "# The configuration mcpgate serve runs with; after each value, where it came from.\n",
    );
    render_table(&mut out, &effective, "", "", &origin);
    out
}

struct Origin<'a> {
    layers: &'a Layers,
    file: Option<&'a str>,
}

impl Origin<'_> {
    fn of(&self, key: &str) -> String {
        if let Some((_, var)) = self.layers.from_env.iter().find(|(k, _)| {
            key == k || key.starts_with(&format!("{k}.")) || key.starts_with(&format!("{k}["))
        }) {
            return format!("environment {var}");
        }
        if lookup(&self.layers.merged, key) {
            return match self.file {
                Some(f) => format!("file {f}"),
                None => "file".into(),
            };
        }
        "default".into()
    }
}

/// Whether the dotted `key` (`upstream[0].url`) is present in `t`.
fn lookup(t: &Table, key: &str) -> bool {
    let mut table = Some(t);
    for seg in key.split('.') {
        let (name, index) = match seg.split_once('[') {
            Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        let Some(mut v) = table.and_then(|t| t.get(name)) else {
            return false;
        };
        if let Some(i) = index {
            match v.as_array().and_then(|a| a.get(i)) {
                Some(item) => v = item,
                None => return false,
            }
        }
        table = v.as_table();
    }
    true
}

/// Tables merge key by key; anything else in `over` replaces `base`, and so
/// does a map whose keys are the operator's (`authserver.scopes`).
fn merge(base: &mut Table, over: &Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(Value::Table(b)), Value::Table(o)) if k != "scopes" => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// `header` is the TOML table path (`upstream.credential`, which names the
/// last `[[upstream]]`); `at` the same with indices (`upstream[0].credential`).
fn render_table(out: &mut String, t: &Table, header: &str, at: &str, origin: &Origin<'_>) {
    let join = |base: &str, k: &str| {
        if base.is_empty() {
            k.to_owned()
        } else {
            format!("{base}.{k}")
        }
    };
    for (k, v) in t {
        if is_table(v) || is_table_array(v) {
            continue;
        }
        out.push_str(&format!(
            "{} = {}  # {}\n",
            toml_key(k),
            redact(k, v),
            origin.of(&join(at, k))
        ));
    }
    for (k, v) in t {
        let (h, a) = (join(header, &toml_key(k)), join(at, k));
        match v {
            // `headers` and `env` tables hold credentials: every value is redacted.
            Value::Table(sub) if k == "headers" || k == "env" => {
                out.push_str(&format!("\n[{h}]\n"));
                for (hk, hv) in sub {
                    let shown = match hv {
                        Value::String(_) => Value::String(REDACTED.into()),
                        other => other.clone(),
                    };
                    out.push_str(&format!(
                        "{} = {}  # {}\n",
                        toml_key(hk),
                        shown,
                        origin.of(&join(&a, hk))
                    ));
                }
            }
            Value::Table(sub) => {
                out.push_str(&format!("\n[{h}]\n"));
                render_table(out, sub, &h, &a, origin);
            }
            Value::Array(items) if is_table_array(v) => {
                for (i, item) in items.iter().enumerate() {
                    if let Value::Table(sub) = item {
                        out.push_str(&format!("\n[[{h}]]\n"));
                        render_table(out, sub, &h, &format!("{a}[{i}]"), origin);
                    }
                }
            }
            _ => {}
        }
    }
}

fn is_table(v: &Value) -> bool {
    matches!(v, Value::Table(_))
}

fn is_table_array(v: &Value) -> bool {
    matches!(v, Value::Array(a) if !a.is_empty() && a.iter().all(is_table))
}

fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_owned()
    } else {
        Value::String(k.to_owned()).to_string()
    }
}

/// Whether a key's value is a secret (a token, a password, a client secret);
/// keys that only name where a secret is (`*_env`, `*_file`) or what a field
/// is called (`*_field`, `*_param`) are not.
fn is_secret(key: &str) -> bool {
    let names_a_place = ["_env", "_file", "_field", "_param", "_ttl", "_header"]
        .iter()
        .any(|s| key.ends_with(s));
    !names_a_place
        && (key.contains("secret")
            || key.contains("password")
            || matches!(
                key,
                "token"
                    | "tokens"
                    | "initial_access_tokens"
                    | "session_key"
                    | "session_key_previous"
            ))
}

/// The value as TOML, with secrets replaced (inside arrays and inline tables too).
fn redact(key: &str, v: &Value) -> Value {
    match v {
        Value::String(_) if is_secret(key) => Value::String(REDACTED.into()),
        // A PostgreSQL URL may carry a password: shown with it hidden.
        Value::String(s) if key == "url" && s.starts_with("postgres") => Value::String(
            mcpgate_store::StoreUrl::parse(s).map_or_else(|_| REDACTED.into(), |u| u.to_string()),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|i| redact(key, i)).collect()),
        Value::Table(t) => Value::Table(t.iter().map(|(k, v)| (k.clone(), redact(k, v))).collect()),
        other => other.clone(),
    }
}

fn duration(d: Duration) -> Value {
    Value::String(humantime::format_duration(d).to_string())
}

fn int(n: impl TryInto<i64>) -> Value {
    Value::Integer(n.try_into().unwrap_or(i64::MAX))
}

fn strings<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Value {
    Value::Array(
        items
            .into_iter()
            .map(|s| Value::String(s.as_ref().to_owned()))
            .collect(),
    )
}

/// A unit enum's serde name from its `Debug` name (`InitialAccessToken` →
/// `initial_access_token`), for the enums of other crates that are
/// `rename_all = "snake_case"`/`"lowercase"` with one-word or camel-case variants.
fn snake(debug: impl std::fmt::Debug) -> Value {
    let name = format!("{debug:?}");
    let mut out = String::new();
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_lowercase());
    }
    Value::String(out)
}

/// The defaults of every key that has one, and what `serve` derives for
/// the keys left unset (`public_url`, the limits).
fn defaults(c: &Config) -> Table {
    let d = Config::default();
    let limits = mcpgate_gateway::Limits::default();
    let mut server = Table::new();
    server.insert("listen".into(), Value::String(d.server.listen.to_string()));
    server.insert(
        "public_url".into(),
        Value::String(c.server.public_url().to_string()),
    );
    server.insert(
        "data_dir".into(),
        Value::String(d.server.data_dir.display().to_string()),
    );
    server.insert("allowed_origins".into(), strings(Vec::<String>::new()));
    server.insert("log_format".into(), snake(d.server.log_format));
    server.insert("request_timeout".into(), duration(limits.request_timeout));
    server.insert(
        "session_idle_timeout".into(),
        duration(limits.session_idle_timeout),
    );
    server.insert("session_max_age".into(), duration(limits.session_max_age));
    server.insert(
        "session_key_file".into(),
        Value::String(format!(
            "{}/{}",
            d.server.data_dir.display(),
            mcpgate_gateway::SESSION_KEY_FILE
        )),
    );
    server.insert(
        "internal_listen".into(),
        Value::String(d.server.internal_listen.clone()),
    );
    server.insert("shutdown_grace".into(), duration(Duration::from_secs(10)));
    server.insert("max_body_bytes".into(), int(limits.max_body_bytes));
    server.insert("replay_events".into(), int(limits.replay_events));
    let conn = d.server.conn_limits(None);
    server.insert(
        "header_read_timeout".into(),
        duration(conn.header_read_timeout),
    );
    server.insert("idle_timeout".into(), duration(conn.idle_timeout));
    server.insert(
        "max_sessions_per_subject".into(),
        int(limits.max_sessions_per_subject),
    );
    server.insert(
        "max_children_per_subject".into(),
        int(limits.max_children_per_subject),
    );
    server.insert("outbound_private".into(), snake(d.server.outbound_private));

    let a = &d.auth;
    let mut auth = Table::new();
    auth.insert("mode".into(), snake(a.mode));
    auth.insert(
        "api_key_header".into(),
        Value::String(a.api_key_header.clone()),
    );
    auth.insert("groups_claim".into(), Value::String(a.groups_claim.clone()));
    auth.insert(
        "authorization_servers".into(),
        strings(&a.authorization_servers),
    );
    auth.insert("api_keys".into(), Value::Boolean(a.api_keys));
    auth.insert("users".into(), Value::Boolean(a.users));
    auth.insert("identity_token".into(), Value::Boolean(a.identity_token));
    auth.insert(
        "identity_headers".into(),
        Value::Boolean(a.identity_headers),
    );
    auth.insert(
        "order".into(),
        Value::Array(a.order.iter().map(|k| snake(*k)).collect()),
    );

    let s = &d.authserver;
    let mut authserver = Table::new();
    authserver.insert("enabled".into(), Value::Boolean(s.enabled));
    authserver.insert("issuer_path".into(), Value::String(s.issuer_path.clone()));
    for (k, v) in [
        ("access_token_ttl", s.access_token_ttl),
        ("refresh_idle_ttl", s.refresh_idle_ttl),
        ("refresh_max_ttl", s.refresh_max_ttl),
        ("refresh_grace", s.refresh_grace),
        ("code_ttl", s.code_ttl),
        ("session_ttl", s.session_ttl),
        ("device_code_ttl", s.device_code_ttl),
        ("key_overlap", s.key_overlap),
        ("dynamic_client_ttl", s.dynamic_client_ttl),
        ("login_window", s.login_window),
        ("maintenance_interval", s.maintenance_interval),
    ] {
        authserver.insert(k.into(), duration(v));
    }
    authserver.insert("device_poll_interval".into(), int(s.device_poll_interval));
    authserver.insert("dpop_nonce".into(), Value::Boolean(s.dpop_nonce));
    authserver.insert(
        "signing_alg".into(),
        Value::String(s.signing_alg.as_str().into()),
    );
    authserver.insert(
        "scopes".into(),
        Value::Table(
            s.scopes
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        ),
    );
    authserver.insert("unknown_scopes".into(), snake(s.unknown_scopes));
    authserver.insert(
        "registration_rate".into(),
        Value::String(s.registration_rate.to_string()),
    );
    authserver.insert("login_max_failures".into(), int(s.login_max_failures));
    authserver.insert("local_login".into(), Value::Boolean(s.local_login));
    let mut registration = Table::new();
    registration.insert("policy".into(), snake(s.registration.policy));
    authserver.insert("registration".into(), Value::Table(registration));
    let mut cimd = Table::new();
    cimd.insert("enabled".into(), Value::Boolean(s.cimd.enabled));
    cimd.insert("allow_private".into(), Value::Boolean(s.cimd.allow_private));
    cimd.insert("allow_hosts".into(), strings(&s.cimd.allow_hosts));
    cimd.insert("default_cache".into(), duration(s.cimd.default_cache));
    authserver.insert("cimd".into(), Value::Table(cimd));

    let mut t = Table::new();
    t.insert("server".into(), Value::Table(server));
    t.insert("auth".into(), Value::Table(auth));
    t.insert("authserver".into(), Value::Table(authserver));
    let mut store = Table::new();
    store.insert("url".into(), Value::String(c.store_url().to_string()));
    t.insert("store".into(), Value::Table(store));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_redaction() {
        let merged: Table = toml::from_str(
            "[server]\nlisten = \"127.0.0.1:9\"\nsession_key = \"c2Vzc2lvbi1rZXktc2Vzc2lvbi1rZXktc2Vzc2lvbjE=\"\nsession_key_file = \"/k\"\n[authserver.cimd]\nenabled = false\n[[upstream]]\nname = \"a\"\nurl = \"http://x\"\nheaders = { Authorization = \"Bearer abc\" }\n[upstream.credential]\nclient_secret = \"s3cret\"\nclient_secret_env = \"SECRET_VAR\"\n",
        )
        .unwrap();
        let layers = Layers {
            merged,
            from_env: vec![(
                "authserver.cimd.enabled".into(),
                "MCPGATE_AUTHSERVER__CIMD__ENABLED".into(),
            )],
        };
        let out = render(&Config::default(), &layers, Some("m.toml"));
        assert!(
            out.contains("listen = \"127.0.0.1:9\"  # file m.toml"),
            "{out}"
        );
        assert!(
            out.contains("enabled = false  # environment MCPGATE_AUTHSERVER__CIMD__ENABLED"),
            "{out}"
        );
        assert!(
            out.contains("access_token_ttl = \"1h\"  # default"),
            "{out}"
        );
        assert!(
            out.contains("\n[[upstream]]\nname = \"a\"  # file m.toml"),
            "{out}"
        );
        assert!(!out.contains("abc") && !out.contains("s3cret"), "{out}");
        assert!(out.contains("client_secret = \"<redacted>\""), "{out}");
        assert!(out.contains("session_key = \"<redacted>\""), "{out}");
        assert!(!out.contains("c2Vzc2lvbi1rZXkt"), "{out}");
        assert!(out.contains("session_key_file = \"/k\""), "{out}");
        assert!(out.contains("client_secret_env = \"SECRET_VAR\""), "{out}");
        // The rendering is TOML that parses.
        toml::from_str::<Table>(&out).unwrap();
    }
}
