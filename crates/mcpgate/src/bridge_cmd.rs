//! `mcpgate bridge <url>` (a stdio MCP server relaying to a remote one) and
//! `mcpgate config claude|cursor|vscode <url>` (the app config snippet that
//! starts it). The relaying itself lives in `mcpgate_client::bridge`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use mcpgate_client::bridge::{self, BridgeOptions, Transport};
use mcpgate_client::{Credentials, StaticCredentials};
use url::Url;

use crate::client_cmd::LoginArgs;

/// `mcpgate bridge`.
#[derive(Debug, clap::Args)]
pub(crate) struct BridgeArgs {
    /// The remote MCP endpoint (for a legacy HTTP+SSE server, its SSE URL).
    pub(crate) url: String,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    #[command(flatten)]
    pub(crate) login: LoginArgs,
}

/// How the bridge reaches the remote server; shared by `bridge` and `config`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConnectArgs {
    /// The remote server's transport: Streamable HTTP with legacy SSE
    /// fallback (auto), or one of them forced.
    #[arg(long, value_enum, default_value_t = TransportArg::Auto)]
    pub(crate) transport: TransportArg,
    /// An extra header for every request, `NAME: VALUE` (repeatable). Values
    /// on the command line are visible to other local users: put secrets in
    /// --header-file or --bearer-env instead.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub(crate) headers: Vec<String>,
    /// A file of extra headers, one `Name: value` per line (`#` comments).
    #[arg(long, value_name = "FILE")]
    pub(crate) header_file: Option<PathBuf>,
    /// Send `Authorization: Bearer <value of this environment variable>`.
    #[arg(long, value_name = "VAR")]
    pub(crate) bearer_env: Option<String>,
}

/// The transport flag's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TransportArg {
    /// Streamable HTTP, falling back to legacy SSE on a 4xx.
    Auto,
    /// Streamable HTTP only.
    Streamable,
    /// Legacy HTTP+SSE (2024-11-05) only.
    Sse,
}

impl TransportArg {
    fn name(self) -> &'static str {
        match self {
            TransportArg::Auto => "auto",
            TransportArg::Streamable => "streamable",
            TransportArg::Sse => "sse",
        }
    }
}

/// `mcpgate bridge <url>`.
pub(crate) async fn run(args: BridgeArgs) -> ExitCode {
    init_logging();
    let options = match options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("mcpgate bridge: {e}");
            return ExitCode::from(2);
        }
    };
    tracing::info!(url = %options.url, "bridge starting");
    let shutdown = crate::shutdown::signal();
    // The app that starts the bridge talks to it over pipes: read and written
    // on the I/O reactor, not handed to a blocking thread per read and write
    // (rmcp falls back to those for a terminal or a file).
    let (stdin, stdout) = rmcp::transport::stdio_pipes();
    match bridge::run(options, stdin, stdout, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcpgate bridge: {e}");
            ExitCode::from(1)
        }
    }
}

/// Logs to stderr (stdout is the protocol), quiet by default; without colour
/// codes when stderr is a file, as it is when an app starts the bridge.
fn init_logging() {
    let filter = std::env::var("MCPGATE_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(crate::logging::colour())
        .try_init();
}

fn options(args: &BridgeArgs) -> Result<BridgeOptions, String> {
    let c = &args.connect;
    let mut headers = HeaderMap::new();
    for h in &c.headers {
        let (name, value) = bridge::parse_header(h).map_err(|e| e.to_string())?;
        headers.append(name, value);
    }
    if let Some(file) = &c.header_file {
        for (name, value) in bridge::read_header_file(file).map_err(|e| e.to_string())? {
            headers.append(name, value);
        }
    }
    // An Authorization header is the credential: it goes through the
    // credentials seam like a signed-in token would.
    let mut authorization = headers.remove(AUTHORIZATION);
    if let Some(var) = &c.bearer_env {
        if authorization.is_some() {
            return Err(
                "--bearer-env and an Authorization header both give the credential; keep one"
                    .into(),
            );
        }
        let token = std::env::var(var).map_err(|_| {
            format!("--bearer-env {var}: the environment variable is not set (or not UTF-8)")
        })?;
        let token = token.trim();
        if token.is_empty() {
            return Err(format!(
                "--bearer-env {var}: the environment variable is empty"
            ));
        }
        authorization = Some(
            http::HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| {
                format!("--bearer-env {var}: the value is not a valid header value")
            })?,
        );
    }
    let authorization = authorization
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| "the Authorization header value is not visible ASCII".to_owned())
        })
        .transpose()?;
    let (url, credentials): (Url, Arc<dyn Credentials>) = match authorization {
        // A credential given outright: nothing to sign in to or refresh.
        Some(value) => (
            remote_url(&args.url)?,
            Arc::new(StaticCredentials::new(Some(value))),
        ),
        // Otherwise the stored sign-in, signing in (with the login flags) when
        // the server asks for authorization and there is none.
        None => {
            let target = crate::client_cmd::resolve(&args.url, &args.login, true)
                .map_err(|e| e.to_string())?;
            // Sign in when the server answers 401, not before: it may want no token.
            let credentials: Arc<dyn Credentials> = match &target.manager {
                Some(m) => Arc::new(bridge::SignInOnChallenge::new(m.clone())),
                None => target.credentials(),
            };
            let url = target.url.clone();
            for (name, value) in target.extra_headers() {
                let (name, value) = bridge::parse_header(&format!("{name}: {value}"))
                    .map_err(|e| format!("--mcp-config: {e}"))?;
                if !headers.contains_key(&name) {
                    headers.insert(name, value);
                }
            }
            (url, credentials)
        }
    };
    let mut options = BridgeOptions::new(url, credentials);
    options.headers = headers;
    options.transport = match c.transport {
        TransportArg::Auto => Transport::Auto,
        TransportArg::Streamable => Transport::Streamable,
        TransportArg::Sse => Transport::Sse,
    };
    options.auth_hint = format!(
        "sign in with `mcpgate login {}` (or give the bridge a credential: --header-file FILE with an `Authorization: Bearer …` line, or --bearer-env VAR)",
        options.url
    );
    Ok(options)
}

fn remote_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "{raw:?}: the remote MCP server must be an http:// or https:// URL"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("put credentials in --header-file or --bearer-env, not in the URL".into());
    }
    Ok(url)
}

/// `mcpgate config`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConfigArgs {
    /// The app whose configuration file the snippet is for.
    #[arg(value_enum)]
    pub(crate) app: App,
    /// The remote MCP endpoint the bridge connects to.
    pub(crate) url: String,
    /// The server's name in the app (default: the URL's host).
    #[arg(long)]
    pub(crate) name: Option<String>,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    #[command(flatten)]
    pub(crate) login: LoginArgs,
}

/// Apps that start stdio MCP servers from a JSON config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum App {
    /// Claude Desktop (`claude_desktop_config.json`).
    Claude,
    /// Cursor (`~/.cursor/mcp.json`).
    Cursor,
    /// VS Code (`.vscode/mcp.json`).
    Vscode,
}

/// `mcpgate config <app> <url>`: prints the snippet on stdout, where it goes on stderr.
pub(crate) fn config(args: ConfigArgs) -> ExitCode {
    match snippet(&args) {
        Ok((json, notes)) => {
            println!("{json}");
            for n in notes {
                eprintln!("{n}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mcpgate config: {e}");
            ExitCode::from(2)
        }
    }
}

fn snippet(args: &ConfigArgs) -> Result<(String, Vec<String>), String> {
    // With --mcp-config the target may be a server name from that file.
    let target = match &args.login.mcp_config {
        Some(_) if Url::parse(&args.url).is_err() => args.url.clone(),
        _ => remote_url(&args.url)?.to_string(),
    };
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| format!("cannot find the path of this mcpgate executable: {e}"))?;
    let mut notes = Vec::new();
    let mut bridge_args = vec!["bridge".to_owned(), target.clone()];
    let c = &args.connect;
    if c.transport != TransportArg::Auto {
        bridge_args.extend(["--transport".to_owned(), c.transport.name().to_owned()]);
    }
    for h in &c.headers {
        bridge::parse_header(h).map_err(|e| e.to_string())?;
        bridge_args.extend(["--header".to_owned(), h.clone()]);
    }
    if !c.headers.is_empty() {
        notes.push("note: --header values are written into the app's config file in clear; for secrets use --header-file (a 0600 file) or --bearer-env".to_owned());
    }
    if let Some(file) = &c.header_file {
        bridge::read_header_file(file).map_err(|e| e.to_string())?;
        bridge_args.extend([
            "--header-file".to_owned(),
            absolute(file)?.display().to_string(),
        ]);
    }
    if let Some(var) = &c.bearer_env {
        bridge_args.extend(["--bearer-env".to_owned(), var.clone()]);
        notes.push(format!("note: the app must start mcpgate with {var} in its environment (an \"env\" entry in this config, or the app's own environment)"));
    }
    login_flags(&args.login, &mut bridge_args, &mut notes)?;
    let name = args
        .name
        .clone()
        .or_else(|| match Url::parse(&target) {
            Ok(u) => u.host_str().map(str::to_owned),
            Err(_) => Some(target.clone()),
        })
        .unwrap_or_else(|| "mcpgate".to_owned());
    let command = exe.display().to_string();
    let server = serde_json::json!({ "command": command, "args": bridge_args });
    let (root, server) = match args.app {
        App::Claude | App::Cursor => ("mcpServers", server),
        App::Vscode => {
            let mut s = serde_json::json!({ "type": "stdio" });
            if let (Some(obj), Some(from)) = (s.as_object_mut(), server.as_object()) {
                obj.extend(from.clone());
            }
            ("servers", s)
        }
    };
    let doc = serde_json::json!({ root: { name: server } });
    let json = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    notes.extend(locations(args.app));
    Ok((json, notes))
}

/// Where each app keeps the file, on each OS.
fn locations(app: App) -> Vec<String> {
    let lines: &[&str] = match app {
        App::Claude => &[
            "Merge this into Claude Desktop's claude_desktop_config.json (Settings → Developer → Edit Config), then restart Claude Desktop:",
            "  macOS:   ~/Library/Application Support/Claude/claude_desktop_config.json",
            "  Windows: %APPDATA%\\Claude\\claude_desktop_config.json",
            "  Linux:   ~/.config/Claude/claude_desktop_config.json",
        ],
        App::Cursor => &[
            "Merge this into Cursor's mcp.json:",
            "  every project: ~/.cursor/mcp.json (macOS, Linux; %USERPROFILE%\\.cursor\\mcp.json on Windows)",
            "  one project:   .cursor/mcp.json in the project folder",
        ],
        App::Vscode => &[
            "Merge this into VS Code's mcp.json:",
            "  one workspace: .vscode/mcp.json in the workspace folder",
            "  your user (MCP: Open User Configuration):",
            "    macOS:   ~/Library/Application Support/Code/User/mcp.json",
            "    Windows: %APPDATA%\\Code\\User\\mcp.json",
            "    Linux:   ~/.config/Code/User/mcp.json",
        ],
    };
    lines.iter().map(|l| (*l).to_owned()).collect()
}

/// The sign-in flags again, for the bridge the app starts. Paths become
/// absolute (apps start servers in a directory of their choosing); the
/// client secret is never written into an app's config file.
fn login_flags(
    l: &LoginArgs,
    out: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    let mut flag = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            out.extend([format!("--{name}"), v]);
        }
    };
    let path = |p: &Option<PathBuf>| -> Result<Option<String>, String> {
        p.as_deref()
            .map(|p| absolute(p).map(|a| a.display().to_string()))
            .transpose()
    };
    flag("mcp-config", path(&l.mcp_config)?);
    flag("client-id", l.client_id.clone());
    flag("client-metadata-url", l.client_metadata_url.clone());
    flag("private-key-file", path(&l.private_key_file)?);
    flag("private-key-id", l.private_key_id.clone());
    flag(
        "token-endpoint-auth-method",
        l.token_endpoint_auth_method.clone(),
    );
    flag("scope", l.scope.clone());
    (l.grant != "authorization_code").then(|| flag("grant", Some(l.grant.clone())));
    flag("callback-port", l.callback_port.map(|p| p.to_string()));
    flag("redirect-uri", l.redirect_uri.clone());
    flag("refresh-margin", l.refresh_margin.map(|m| m.to_string()));
    let a = &l.assertion;
    flag("idp-token-endpoint", a.idp_token_endpoint.clone());
    flag("idp-client-id", a.idp_client_id.clone());
    flag("id-token-file", path(&a.id_token_file)?);
    flag("id-token-env", a.id_token_env.clone());
    flag("workload-token-file", path(&a.workload_token_file)?);
    flag("workload-token-env", a.workload_token_env.clone());
    for (on, name) in [
        (l.manual, "--manual"),
        (l.device, "--device"),
        (l.non_interactive, "--non-interactive"),
        (a.id_jag, "--id-jag"),
    ] {
        if on {
            out.push(name.to_owned());
        }
    }
    if l.client_secret.is_some() {
        notes.push("note: the client secret is not written into the snippet; the app must start mcpgate with MCPGATE_CLIENT_SECRET in its environment (an \"env\" entry), or sign in once with `mcpgate login` so the stored registration is used".to_owned());
    }
    if a.idp_client_secret.is_some() {
        notes.push("note: the IdP client secret is not written into the snippet; the app must start mcpgate with MCPGATE_IDP_CLIENT_SECRET in its environment (an \"env\" entry)".to_owned());
    }
    if l.manual {
        notes.push("note: --manual reads a pasted code from stdin, which an app's bridge cannot do; sign in once with `mcpgate login --manual` in a terminal instead".to_owned());
    }
    Ok(())
}

fn absolute(path: &Path) -> Result<PathBuf, String> {
    std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests;
