//! `mcpgate login / token / status / logout / call`: the sign-in commands.
//! The flags shared with `mcpgate bridge` are [`LoginArgs`]; [`resolve`]
//! builds the token manager from them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use mcpgate_client::manager::AssertionSignIn;
use mcpgate_client::mcp_config::{McpConfig, ResolvedServer};
use mcpgate_client::oauth::PrivateKey;
use mcpgate_client::{
    ClientError, Credentials, RefreshMargin, SignInMethod, SignInOptions, StaticCredentials,
    TokenManager, TokenStore,
};

/// How to sign in: shared by `login`, `call`, `token` and `bridge`.
#[derive(Debug, Clone, Args)]
pub(crate) struct LoginArgs {
    /// An mcp_config.json (`mcpServers` with `url`, `headers`, `auth`); the
    /// server may then be named instead of given as a URL.
    #[arg(
        long = "mcp-config",
        visible_alias = "config",
        value_name = "FILE",
        env = "MCPGATE_MCP_CONFIG"
    )]
    pub(crate) mcp_config: Option<PathBuf>,
    /// A pre-registered client ID.
    #[arg(long)]
    pub(crate) client_id: Option<String>,
    /// Its client secret (prefer the environment variable).
    #[arg(long, env = "MCPGATE_CLIENT_SECRET", hide_env_values = true)]
    pub(crate) client_secret: Option<String>,
    /// A client ID metadata document URL (used when the server supports CIMD).
    #[arg(long)]
    pub(crate) client_metadata_url: Option<String>,
    /// A PEM private key for private_key_jwt client authentication.
    #[arg(long, value_name = "PEM")]
    pub(crate) private_key_file: Option<PathBuf>,
    /// The `kid` of that key, if the server holds several.
    #[arg(long, requires = "private_key_file")]
    pub(crate) private_key_id: Option<String>,
    /// Force a token endpoint auth method: none, client_secret_basic,
    /// client_secret_post or private_key_jwt.
    #[arg(long)]
    pub(crate) token_endpoint_auth_method: Option<String>,
    /// Scopes to ask for (default: the server's challenge, else all it lists).
    #[arg(long)]
    pub(crate) scope: Option<String>,
    /// Paste mode for SSH sessions: print the URL, read the redirect URL or code.
    #[arg(long, conflicts_with_all = ["device", "non_interactive"])]
    pub(crate) manual: bool,
    /// Device authorization (RFC 8628): a code to enter on another device.
    #[arg(long, conflicts_with = "non_interactive")]
    pub(crate) device: bool,
    /// The grant: authorization_code (default) or client_credentials.
    #[arg(long, value_name = "GRANT", default_value = "authorization_code")]
    pub(crate) grant: String,
    /// Never prompt: request the authorization URL and take the code from the
    /// redirect (servers that approve without a person; automation, tests).
    #[arg(long)]
    pub(crate) non_interactive: bool,
    /// The loopback callback port (default: an ephemeral one).
    #[arg(long)]
    pub(crate) callback_port: Option<u16>,
    /// A fixed redirect URI (e.g. urn:ietf:wg:oauth:2.0:oob with --manual).
    #[arg(long)]
    pub(crate) redirect_uri: Option<String>,
    /// Refresh when fewer than this many seconds of validity remain
    /// (default: 300, but at most half the token's lifetime).
    #[arg(long)]
    pub(crate) refresh_margin: Option<u64>,
    /// Bind the tokens to a key of this client (DPoP, RFC 9449): a new key
    /// per server, kept with the tokens; every request proves possession.
    #[arg(long)]
    pub(crate) dpop: bool,
    /// `--id-jag` and `--workload-token-*`: sign in with an assertion.
    #[command(flatten)]
    pub(crate) assertion: crate::assertion_login::AssertionArgs,
}

/// A remote server resolved from a URL or a config name.
pub(crate) struct Target {
    /// The MCP endpoint.
    pub(crate) url: url::Url,
    /// Extra headers from the config (an `Authorization` one is used as is).
    pub(crate) headers: Vec<(String, String)>,
    /// The token manager (None when the config supplies a static Authorization header).
    pub(crate) manager: Option<Arc<TokenManager>>,
}

impl Target {
    /// The credential source for the transports.
    pub(crate) fn credentials(&self) -> Arc<dyn Credentials> {
        match &self.manager {
            Some(m) => m.clone(),
            None => Arc::new(StaticCredentials::new(
                self.headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                    .map(|(_, v)| v.clone()),
            )),
        }
    }

    /// Config headers except `Authorization` (which the credentials carry).
    pub(crate) fn extra_headers(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("authorization"))
            .cloned()
            .collect()
    }
}

/// Resolves `target` (URL or config name) and builds its token manager.
/// `may_sign_in`: whether a missing or dead sign-in starts a new one (call,
/// bridge) or is an error telling the person to run `mcpgate login` (token).
pub(crate) fn resolve(
    target: &str,
    args: &LoginArgs,
    may_sign_in: bool,
) -> Result<Target, ClientError> {
    let server: ResolvedServer = match &args.mcp_config {
        Some(path) => McpConfig::load(path)?.resolve(target)?,
        None => ResolvedServer {
            url: mcpgate_client::mcp_config::resolve_url(target)?,
            headers: Vec::new(),
            auth: None,
        },
    };
    let static_auth = server
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
    let manager = if static_auth {
        None
    } else {
        let store = TokenStore::open_default()?;
        Some(Arc::new(TokenManager::new(
            server.url.clone(),
            store,
            sign_in_options(args, server.auth.clone(), may_sign_in)?,
        )?))
    };
    Ok(Target {
        url: server.url,
        headers: server.headers,
        manager,
    })
}

fn sign_in_options(
    args: &LoginArgs,
    preset: Option<mcpgate_client::mcp_config::AuthBlock>,
    may_sign_in: bool,
) -> Result<SignInOptions, ClientError> {
    let method = match args.grant.as_str() {
        "client_credentials" => SignInMethod::ClientCredentials,
        "authorization_code" if args.device => SignInMethod::Device,
        "authorization_code" if args.manual => SignInMethod::Manual,
        "authorization_code" if args.non_interactive => SignInMethod::NonInteractive,
        "authorization_code" => SignInMethod::Browser,
        other => {
            return Err(ClientError::Config(format!(
                "--grant {other:?}: use authorization_code or client_credentials"
            )));
        }
    };
    let private_key = match &args.private_key_file {
        Some(p) => Some(PrivateKey::from_pem_file(p)?.with_kid(args.private_key_id.clone())),
        None => None,
    };
    Ok(SignInOptions {
        client_id: args.client_id.clone(),
        client_secret: args.client_secret.clone(),
        client_metadata_url: args.client_metadata_url.clone(),
        private_key,
        token_endpoint_auth_method: args.token_endpoint_auth_method.clone(),
        scope: args.scope.clone(),
        method,
        callback_port: args.callback_port,
        redirect_uri: args.redirect_uri.clone(),
        preset,
        may_sign_in,
        refresh_margin: args
            .refresh_margin
            .map(|s| RefreshMargin::Exactly(Duration::from_secs(s)))
            .unwrap_or_default(),
        dpop: args.dpop,
        assertion: assertion_sign_in(args)?,
        ..SignInOptions::default()
    })
}

/// The client at the authorization server for `--id-jag` and `--workload-token-*`.
fn assertion_client(
    args: &LoginArgs,
) -> Result<mcpgate_client::assertion_grant::AssertionClient, ClientError> {
    let client_id = args.client_id.clone().ok_or_else(|| {
        ClientError::Config(
            "--id-jag and --workload-token-* need --client-id: the client pre-registered at the MCP server's authorization server (mcpgate clients add … --grant-type jwt-bearer)".into(),
        )
    })?;
    let private_key = match &args.private_key_file {
        Some(p) => Some(PrivateKey::from_pem_file(p)?.with_kid(args.private_key_id.clone())),
        None => None,
    };
    Ok(mcpgate_client::assertion_grant::AssertionClient {
        client_id,
        client_secret: args.client_secret.clone(),
        private_key,
        token_endpoint_auth_method: args.token_endpoint_auth_method.clone(),
        scope: args.scope.clone(),
        dpop: args.dpop,
    })
}

/// The jwt-bearer sign-in the flags ask for (`--id-jag`,
/// `--workload-token-*`), if any. Each renewal reads the flags' source again.
fn assertion_sign_in(args: &LoginArgs) -> Result<Option<AssertionSignIn>, ClientError> {
    // Read once now so a missing file or flag is reported before anything starts.
    if args.assertion.assertion()?.is_none() {
        return Ok(None);
    }
    let flags = args.assertion.clone();
    Ok(Some(AssertionSignIn {
        client: assertion_client(args)?,
        source: Arc::new(move || {
            flags
                .assertion()?
                .ok_or_else(|| ClientError::Config("the assertion flags name no assertion".into()))
        }),
    }))
}

/// The sign-in commands.
#[derive(Debug, Subcommand)]
pub(crate) enum ClientCommand {
    /// Sign in to a remote MCP server (OAuth discovery, registration, PKCE).
    Login {
        /// The MCP endpoint URL (or a server name with --mcp-config).
        url: String,
        #[command(flatten)]
        login: LoginArgs,
    },
    /// Print a fresh access token for a server signed in to.
    Token {
        /// The MCP endpoint URL (or a server name with --mcp-config).
        url: String,
        #[command(flatten)]
        login: LoginArgs,
    },
    /// List sign-ins: issuer, resource, expiry and scopes (never tokens).
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke (RFC 7009) and forget a sign-in.
    Logout {
        /// The MCP endpoint URL (or a server name with --mcp-config).
        url: String,
        #[command(flatten)]
        login: LoginArgs,
    },
    /// Connect (2026-07-28 `server/discover`, else `initialize`), send one
    /// JSON-RPC request and print its result.
    Call {
        /// The MCP endpoint URL (or a server name with --mcp-config).
        url: String,
        /// The method, e.g. tools/list or tools/call.
        method: String,
        /// The params as JSON, e.g. '{"name":"echo","arguments":{"message":"hi"}}'.
        params: Option<String>,
        /// How to answer the server's form elicitations: a JSON object to
        /// accept with, `decline`, `cancel`, or `ask` (the default: ask at a
        /// terminal, decline otherwise).
        #[arg(long, value_name = "JSON|decline|cancel|ask")]
        elicit: Option<String>,
        /// A root to offer the server (`roots/list`): a path or a URI;
        /// repeatable. Without one, roots are not declared.
        #[arg(long = "root", value_name = "PATH|URI")]
        roots: Vec<String>,
        #[command(flatten)]
        login: LoginArgs,
    },
}

pub(crate) async fn run(cmd: ClientCommand) -> ExitCode {
    // Quiet unless asked: the commands say what matters themselves, and
    // `MCPGATE_LOG=info` shows the steps (discovery, era detection, refresh).
    crate::logging::init(crate::config::LogFormat::Human, "off");
    match run_inner(cmd).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcpgate: {e}");
            match e {
                ClientError::NeedsPerson(_) => ExitCode::from(3),
                ClientError::Config(_) => ExitCode::from(2),
                _ => ExitCode::from(1),
            }
        }
    }
}

fn manager(t: &Target) -> Result<&Arc<TokenManager>, ClientError> {
    t.manager.as_ref().ok_or_else(|| {
        ClientError::Config(
            "this server's config entry sets an Authorization header: there is nothing to sign in to"
                .into(),
        )
    })
}

fn when(at: Option<u64>) -> String {
    match at {
        None => "no expiry given".into(),
        Some(at) => {
            let now = mcpgate_client::store::now_secs();
            if at <= now {
                format!("expired {}s ago (at {at})", now - at)
            } else {
                format!("in {}s (at {at})", at - now)
            }
        }
    }
}

async fn run_inner(cmd: ClientCommand) -> Result<(), ClientError> {
    match cmd {
        ClientCommand::Login { url, login } => {
            let t = resolve(&url, &login, true)?;
            let m = manager(&t)?;
            let s = match m.login(&[], true).await {
                Ok(s) => s,
                Err(ClientError::NoSignInNeeded(why)) => {
                    // Nothing to do is success: scripts may run `login` first unconditionally.
                    eprintln!(
                        "No sign-in needed: {why}. Call it directly, e.g. `mcpgate call {} tools/list`.",
                        t.url
                    );
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            eprintln!(
                "Signed in to {} (issuer {}, scopes: {}, expires {}); stored in {}",
                s.resource,
                s.issuer,
                if s.tokens.scopes.is_empty() {
                    "-".into()
                } else {
                    s.tokens.scopes.join(" ")
                },
                when(s.tokens.expires_at),
                m.store().home().display()
            );
            Ok(())
        }
        ClientCommand::Token { url, login } => {
            let t = resolve(&url, &login, false)?;
            let token = manager(&t)?.access_token().await?;
            print_out(&token);
            Ok(())
        }
        ClientCommand::Status { json } => {
            let store = TokenStore::open_default()?;
            let all = store.list()?;
            if json {
                let v: Vec<_> = all
                    .iter()
                    .map(|s| {
                        serde_json::json!({
                            "server_url": s.server_url, "issuer": s.issuer, "resource": s.resource,
                            "expires_at": s.tokens.expires_at, "scopes": s.tokens.scopes,
                            "has_refresh_token": s.tokens.refresh_token.is_some(),
                            "client_id": s.registration.client_id,
                            "registration": s.registration.source, "grant": s.grant,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(v));
                return Ok(());
            }
            if all.is_empty() {
                println!("No sign-ins (store: {}).", store.home().display());
            }
            for s in &all {
                println!("{}", s.server_url);
                println!("  issuer:   {}", s.issuer);
                println!("  resource: {}", s.resource);
                println!("  expires:  {}", when(s.tokens.expires_at));
                println!(
                    "  scopes:   {}",
                    if s.tokens.scopes.is_empty() {
                        "-".into()
                    } else {
                        s.tokens.scopes.join(" ")
                    }
                );
                println!(
                    "  refresh:  {}",
                    if s.tokens.refresh_token.is_some() {
                        "yes"
                    } else {
                        "no"
                    }
                );
            }
            Ok(())
        }
        ClientCommand::Logout { url, login } => {
            let t = resolve(&url, &login, false)?;
            let (found, problem) = manager(&t)?.logout().await?;
            if !found {
                eprintln!("Not signed in to {}.", t.url);
            } else if let Some(p) = problem {
                eprintln!("Forgot the sign-in to {} (revocation: {p}).", t.url);
            } else {
                eprintln!("Revoked and forgot the sign-in to {}.", t.url);
            }
            Ok(())
        }
        ClientCommand::Call {
            url,
            method,
            params,
            elicit,
            roots,
            login,
        } => {
            let input = mcpgate_client::prompt::CommandLineInput {
                roots: roots
                    .iter()
                    .map(|r| mcpgate_client::prompt::CommandLineInput::root_uri(r))
                    .collect::<Result<_, _>>()?,
                elicit: match elicit.as_deref() {
                    Some(e) => mcpgate_client::prompt::ElicitAnswer::parse(e)?,
                    None => mcpgate_client::prompt::ElicitAnswer::Ask,
                },
            };
            let params: serde_json::Value = match params.as_deref() {
                None => serde_json::Value::Null,
                Some(p) => serde_json::from_str(p)
                    .map_err(|e| ClientError::Config(format!("params are not JSON ({e}): {p}")))?,
            };
            let t = resolve(&url, &login, true)?;
            // Like the bridge: no token until the server asks for one, so a
            // server that needs no sign-in is simply called.
            let credentials: Arc<dyn Credentials> = match &t.manager {
                Some(m) => Arc::new(mcpgate_client::bridge::SignInOnChallenge::new(m.clone())),
                None => t.credentials(),
            };
            let mut c = mcpgate_client::mcp_http::McpHttp::new(
                t.url.clone(),
                credentials,
                t.extra_headers(),
            )
            .with_input(Arc::new(input));
            c.connect().await?;
            let result = c.request(&method, params).await;
            c.close().await;
            let result = result?;
            print_out(
                &serde_json::to_string_pretty(&result).unwrap_or_else(|_| result.to_string()),
            );
            Ok(())
        }
    }
}

/// Writes a result line to stdout. A reader that went away (`mcpgate call … | head`)
/// is not an error of ours; `println!` would panic on the broken pipe.
fn print_out(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}
