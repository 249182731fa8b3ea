//! `[policy]`: the Cedar rules file, loaded for `serve` (and each reload) and
//! checked by `check-config`; and `mcpgate policy test`, which decides one
//! call offline with the same rules.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use mcpgate_policy::{Call, Caller, Hints, Operation, Rules};

/// The rules `[policy]` names, or `None` without the table; each problem a
/// line `policy.file: <file>:<line>:<column>: <message>`.
pub(crate) fn load(
    cfg: Option<&crate::config::PolicyConfig>,
) -> Result<Option<Arc<Rules>>, Vec<String>> {
    let Some(cfg) = cfg else {
        return Ok(None);
    };
    Rules::load(&cfg.file, cfg.schema.as_deref())
        .map(|r| Some(Arc::new(r)))
        .map_err(|e| {
            e.to_string()
                .lines()
                .map(|l| format!("policy.file: {l}"))
                .collect()
        })
}

/// `mcpgate policy …`.
#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Decide one call offline and print the decision and the policies that made it.
    Test(TestArgs),
}

/// `mcpgate policy test`.
#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// The configuration whose `[policy]` is used.
    #[arg(long, short, env = "MCPGATE_CONFIG", default_value = "mcpgate.toml")]
    config: PathBuf,
    /// A policy file to use instead of the configuration's.
    #[arg(long)]
    file: Option<PathBuf>,
    /// The caller's subject.
    #[arg(long)]
    subject: String,
    /// A group of the caller (repeat for several).
    #[arg(long = "group")]
    groups: Vec<String>,
    /// A scope of the caller (repeat, or space-separated).
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// The OAuth client the caller's token was issued to.
    #[arg(long)]
    client: Option<String>,
    /// The tool called (`tools/call`), as the client sees it.
    #[arg(long, conflicts_with_all = ["prompt", "resource"])]
    tool: Option<String>,
    /// The prompt asked for (`prompts/get`).
    #[arg(long, conflicts_with = "resource")]
    prompt: Option<String>,
    /// The resource URI read (`resources/read`).
    #[arg(long)]
    resource: Option<String>,
    /// The upstream that serves it (the resource's `upstream` attribute;
    /// through a virtual server, the member the call is routed to).
    #[arg(long, default_value = "")]
    upstream: String,
    /// The virtual server called through (the resource's `virtual_server` attribute).
    #[arg(long)]
    virtual_server: Option<String>,
    /// The tool's `readOnlyHint` (the resource's `read_only`; unknown when not given).
    #[arg(long)]
    read_only: Option<bool>,
    /// The tool's `destructiveHint` (the resource's `destructive`; unknown when not given).
    #[arg(long)]
    destructive: Option<bool>,
    /// The arguments, a JSON object.
    #[arg(long, default_value = "{}")]
    args: String,
}

pub(crate) fn run(command: PolicyCommand) -> ExitCode {
    match command {
        PolicyCommand::Test(a) => match test(&a) {
            Ok(allowed) => {
                if allowed {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
    }
}

/// Prints the decision; `Ok(true)` when allowed.
fn test(a: &TestArgs) -> Result<bool, String> {
    let rules = match &a.file {
        Some(f) => Rules::load(f, None).map_err(|e| e.to_string())?,
        None => rules_of(&a.config)?,
    };
    let args: serde_json::Value =
        serde_json::from_str(&a.args).map_err(|e| format!("--args is not JSON: {e}"))?;
    if !args.is_object() {
        return Err("--args must be a JSON object, e.g. '{\"repo\": \"acme/web\"}'".into());
    }
    let (op, name) = match (&a.tool, &a.prompt, &a.resource) {
        (Some(t), _, _) => (Operation::ToolsCall, t),
        (_, Some(p), _) => (Operation::PromptsGet, p),
        (_, _, Some(r)) => (Operation::ResourcesRead, r),
        _ => return Err("name what is called: --tool, --prompt or --resource".into()),
    };
    let scopes = a
        .scopes
        .iter()
        .flat_map(|s| s.split_ascii_whitespace())
        .map(str::to_owned)
        .collect();
    let call = Call {
        caller: Caller {
            subject: &a.subject,
            groups: a.groups.clone(),
            scopes,
            client_id: a.client.as_deref(),
            client_dynamic: a.client.as_deref().is_some_and(|c| c.starts_with("mcpg-")),
            client_metadata_document: a
                .client
                .as_deref()
                .is_some_and(|c| c.starts_with("https://")),
        },
        op,
        name,
        upstream: &a.upstream,
        virtual_server: a.virtual_server.as_deref(),
        hints: Hints {
            read_only: a.read_only,
            destructive: a.destructive,
        },
        args: Some(&args),
    };
    let d = rules.decide(&call);
    if d.allowed {
        println!("ALLOW {} {name:?}", op.method());
        println!("permitted by: {}", d.deciding.join(", "));
    } else {
        println!("DENY {} {name:?}", op.method());
        println!("{}", d.reason());
    }
    for e in &d.errors {
        println!("not applicable: {e}");
    }
    let listed = rules.visible(&Call { args: None, ..call });
    println!("listed: {}", if listed { "yes" } else { "no" });
    Ok(d.allowed)
}

fn rules_of(config: &Path) -> Result<Rules, String> {
    let cfg = crate::config::load(Some(config)).map_err(|p| p.join("\n"))?;
    let Some(p) = &cfg.policy else {
        return Err(format!(
            "{} has no [policy] table; add one or pass --file",
            config.display()
        ));
    };
    Rules::load(&p.file, p.schema.as_deref()).map_err(|e| e.to_string())
}
