//! `MCPGATE_<SECTION>__<KEY>` overrides: any key of any section, nested
//! tables included (`MCPGATE_AUTHSERVER__CIMD__ENABLED=false`), and keys of an
//! existing `[[array]]` entry by index (`MCPGATE_UPSTREAM__0__URL`).

/// Sets each `MCPGATE_…__…` variable's key in `table`; values are read as TOML
/// when they parse, else as strings. Returns each key set (as a dotted path,
/// `upstream[0].url`), with the variable that set it. Variables without `__`
/// (`MCPGATE_LOG`, `MCPGATE_HOME`, …) are not configuration keys.
pub(super) fn apply_env(
    table: &mut toml::Table,
    vars: impl Iterator<Item = (String, String)>,
    problems: &mut Vec<String>,
) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = vars.collect();
    // The environment's order is arbitrary; a stable one makes messages repeatable.
    vars.sort();
    let mut set = Vec::new();
    for (k, v) in vars {
        let Some(rest) = k.strip_prefix("MCPGATE_") else {
            continue;
        };
        if !rest.contains("__") {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        if path.iter().any(String::is_empty) {
            problems.push(format!(
                "environment {k}: an empty key between \"__\" separators; write MCPGATE_<SECTION>__<KEY>, e.g. MCPGATE_SERVER__LISTEN"
            ));
            continue;
        }
        match set_path(table, &path, parse_value(&v)) {
            Ok(dotted) => set.push((dotted, k.clone())),
            Err(why) => problems.push(format!("environment {k}: {why}")),
        }
    }
    set
}

fn parse_value(v: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {v}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(v.to_owned()))
}

/// Inserts `value` at `path`, creating missing tables; returns the dotted key.
fn set_path(
    table: &mut toml::Table,
    path: &[String],
    value: toml::Value,
) -> Result<String, String> {
    let Some((last, parents)) = path.split_last() else {
        return Err("no key".into());
    };
    let mut dotted = String::new();
    let mut cur = table;
    let mut iter = parents.iter().peekable();
    while let Some(seg) = iter.next() {
        push_key(&mut dotted, seg);
        let entry = cur
            .entry(seg.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            toml::Value::Array(a) => {
                // `[[upstream]]` entries are addressed by their index in the file.
                let index = iter.next().and_then(|i| i.parse::<usize>().ok());
                let len = a.len();
                match index.and_then(|i| a.get_mut(i).map(|e| (i, e))) {
                    Some((i, toml::Value::Table(t))) => {
                        dotted.push_str(&format!("[{i}]"));
                        t
                    }
                    _ => {
                        return Err(format!(
                            "{dotted} is a list of {len} entr{}; name one by its index from 0, e.g. MCPGATE_{}__0__<KEY>",
                            if len == 1 { "y" } else { "ies" },
                            dotted.to_ascii_uppercase().replace('.', "__")
                        ));
                    }
                }
            }
            _ => {
                return Err(format!(
                    "{dotted} is a value in the configuration, not a table"
                ));
            }
        };
    }
    cur.insert(last.clone(), value);
    push_key(&mut dotted, last);
    Ok(dotted)
}

fn push_key(dotted: &mut String, seg: &str) {
    if !dotted.is_empty() {
        dotted.push('.');
    }
    dotted.push_str(seg);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(
        file: &str,
        vars: &[(&str, &str)],
    ) -> (toml::Table, Vec<(String, String)>, Vec<String>) {
        let mut t: toml::Table = toml::from_str(file).unwrap();
        let mut problems = Vec::new();
        let set = apply_env(
            &mut t,
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            &mut problems,
        );
        (t, set, problems)
    }

    #[test]
    fn nested_tables_and_indexed_entries() {
        let (t, set, problems) = apply(
            "[[upstream]]\nname = \"a\"\nurl = \"http://x\"\n",
            &[
                ("MCPGATE_AUTHSERVER__CIMD__ENABLED", "false"),
                ("MCPGATE_UPSTREAM__0__URL", "http://y"),
                ("MCPGATE_LOG", "debug"),
            ],
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            t["authserver"]["cimd"]["enabled"],
            toml::Value::Boolean(false)
        );
        assert_eq!(t["upstream"][0]["url"].as_str(), Some("http://y"));
        assert_eq!(
            set,
            vec![
                (
                    "authserver.cimd.enabled".to_owned(),
                    "MCPGATE_AUTHSERVER__CIMD__ENABLED".to_owned()
                ),
                (
                    "upstream[0].url".to_owned(),
                    "MCPGATE_UPSTREAM__0__URL".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn a_missing_entry_or_a_value_in_the_way_names_the_variable() {
        let (_, set, problems) = apply(
            "[server]\nlisten = \"127.0.0.1:1\"\n[[upstream]]\nname = \"a\"\n",
            &[
                ("MCPGATE_UPSTREAM__3__URL", "http://y"),
                ("MCPGATE_SERVER__LISTEN__PORT", "1"),
                ("MCPGATE_SERVER____X", "1"),
            ],
        );
        assert!(set.is_empty(), "{set:?}");
        let all = problems.join("\n");
        assert!(
            all.contains("environment MCPGATE_UPSTREAM__3__URL: upstream is a list of 1 entry"),
            "{all}"
        );
        assert!(
            all.contains("environment MCPGATE_SERVER__LISTEN__PORT: server.listen is a value"),
            "{all}"
        );
        assert!(
            all.contains("environment MCPGATE_SERVER____X: an empty key"),
            "{all}"
        );
    }
}
