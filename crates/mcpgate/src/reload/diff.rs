//! What differs between the running configuration and the one a reload read,
//! compared as TOML (the file after its `MCPGATE_…` overrides): which keys
//! need a restart, and which upstreams keep their running connection.

use std::collections::BTreeSet;

/// The keys a reload applies; every other key keeps its running value until
/// a restart.
const LIVE: &[&str] = &[
    "upstream",
    "virtual_server",
    "rate_limit",
    "auth",
    "policy",
    "server.allowed_origins",
];

/// An upstream's keys that say who may do what there. A change to these
/// alone keeps the running upstream (its children and sessions); a change to
/// any other key (command, URL, credentials, timeouts, …) replaces it.
const POLICY_KEYS: &[&str] = &[
    "required_scopes",
    "tool_scopes",
    "prompt_scopes",
    "resource_scopes",
    "allow_subjects",
    "deny_subjects",
    "allow_groups",
    "deny_groups",
    "audience",
    // What a virtual server shows of the upstream, not how it is reached.
    "prefix",
    "tools",
];

/// Each key (dotted, `authserver.cimd.enabled`) whose value differs and that
/// a reload does not apply.
pub(super) fn needs_restart(old: &toml::Table, new: &toml::Table) -> Vec<String> {
    let mut out = Vec::new();
    differing(old, new, "", &mut out);
    out
}

fn differing(old: &toml::Table, new: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for k in keys {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if LIVE.contains(&path.as_str()) {
            continue;
        }
        match (old.get(k), new.get(k)) {
            (Some(toml::Value::Table(a)), Some(toml::Value::Table(b))) => {
                differing(a, b, &path, out);
            }
            (a, b) if a != b => out.push(path),
            _ => {}
        }
    }
}

/// How each upstream of the new configuration compares with the running one.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct UpstreamDiff {
    /// Names whose connection is unchanged: the running upstream is kept.
    pub(super) unchanged: BTreeSet<String>,
    /// Of those, the ones whose scopes or subject rules changed.
    pub(super) policy: Vec<String>,
}

/// Compares the `[[upstream]]` tables of `names` (the new configuration's
/// upstreams) by name. An upstream in neither file (the demo's, added by
/// `--demo`) is unchanged.
pub(super) fn upstreams<'a>(
    old: &toml::Table,
    new: &toml::Table,
    names: impl IntoIterator<Item = &'a str>,
) -> UpstreamDiff {
    let mut diff = UpstreamDiff::default();
    for name in names {
        let (a, b) = (table_of(old, name), table_of(new, name));
        let unchanged = match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => connection(a) == connection(b),
            _ => false,
        };
        if unchanged {
            diff.unchanged.insert(name.to_owned());
            if a != b {
                diff.policy.push(name.to_owned());
            }
        }
    }
    diff
}

fn table_of<'t>(root: &'t toml::Table, name: &str) -> Option<&'t toml::Table> {
    root.get("upstream")?
        .as_array()?
        .iter()
        .filter_map(toml::Value::as_table)
        .find(|t| t.get("name").and_then(toml::Value::as_str) == Some(name))
}

fn connection(t: &toml::Table) -> toml::Table {
    let mut t = t.clone();
    t.retain(|k, _| !POLICY_KEYS.contains(&k));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> toml::Table {
        toml::from_str(s).expect("toml")
    }

    #[test]
    fn only_keys_a_reload_does_not_apply_need_a_restart() {
        let old = t(r#"
            [server]
            listen = "127.0.0.1:1"
            allowed_origins = ["http://a"]
            [authserver.cimd]
            enabled = true
            [auth]
            mode = "required"
            [[upstream]]
            name = "a"
            url = "http://x"
        "#);
        let new = t(r#"
            [server]
            listen = "127.0.0.1:2"
            allowed_origins = ["http://b"]
            data_dir = "/elsewhere"
            [authserver.cimd]
            enabled = false
            [auth]
            mode = "optional"
            [metrics]
            listen = ""
        "#);
        assert_eq!(
            needs_restart(&old, &new),
            vec![
                "authserver.cimd.enabled",
                "metrics",
                "server.data_dir",
                "server.listen"
            ]
        );
        assert!(needs_restart(&old, &old).is_empty());
    }

    #[test]
    fn scopes_alone_keep_the_running_upstream_and_the_rest_replace_it() {
        let old = t(r#"
            [[upstream]]
            name = "same"
            url = "http://x"
            [[upstream]]
            name = "scoped"
            url = "http://x"
            [[upstream]]
            name = "moved"
            url = "http://x"
        "#);
        let new = t(r#"
            [[upstream]]
            name = "moved"
            url = "http://y"
            [[upstream]]
            name = "scoped"
            url = "http://x"
            tool_scopes = { "add" = "math" }
            [[upstream]]
            name = "same"
            url = "http://x"
            [[upstream]]
            name = "added"
            url = "http://x"
        "#);
        let d = upstreams(&old, &new, ["same", "scoped", "moved", "added", "demo"]);
        assert_eq!(
            d.unchanged,
            ["demo", "same", "scoped"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        );
        assert_eq!(d.policy, vec!["scoped".to_owned()]);
    }
}
