//! `mcpgate clients`: pre-register, list and remove OAuth clients of the
//! built-in authorization server.
//!
//! A confidential client's secret is printed once, alone on stdout (like an
//! API key); only its SHA-256 digest is stored. Removing a client deletes its
//! grants too, so a running server refuses its tokens within a second.

use std::path::PathBuf;
use std::process::ExitCode;

use mcpgate_store::format_utc;
use mcpgate_store::oauth::{ClientKind, ClientRow, digest_hex};
use mcpgate_types::ClientId;

use crate::keys::{StoreArgs, exit};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// `mcpgate clients …`.
// Add, List and Remove are written out per table (clients, resources,
// users): clap takes each variant's doc comment as its help text, which
// says what that table's command does.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ClientsCommand {
    /// Pre-register a client; a confidential client's secret is printed once on stdout.
    Add {
        #[command(flatten)]
        spec: Spec,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List clients (never a secret).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove a client and its grants; a running server refuses its tokens within a second.
    Remove {
        /// The client_id.
        client_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Runs a `clients` subcommand.
pub(crate) async fn run(command: ClientsCommand) -> ExitCode {
    exit(match command {
        ClientsCommand::Add { spec, store } => add(spec, &store).await,
        ClientsCommand::List { store } => list(&store).await,
        ClientsCommand::Remove { client_id, store } => remove(&client_id, &store).await,
    })
}

// What `clients add` was asked for (a plain comment: a doc comment here
// would replace the subcommand's help text).
#[derive(Debug, Default, clap::Args)]
pub(crate) struct Spec {
    /// A display name, shown on the consent page.
    name: String,
    /// A redirect URI (repeatable). Not needed for client_credentials-only clients.
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    /// A public client (no secret; authentication method none). The default.
    #[arg(long, conflicts_with = "confidential")]
    public: bool,
    /// A confidential client (client_secret_basic unless --auth-method says otherwise).
    #[arg(long)]
    confidential: bool,
    /// none, client_secret_basic, client_secret_post or private_key_jwt.
    #[arg(long, value_name = "METHOD")]
    auth_method: Option<String>,
    /// A JSON Web Key Set file with the client's public keys (private_key_jwt).
    #[arg(long, value_name = "FILE", conflicts_with = "jwks_uri")]
    jwks_file: Option<PathBuf>,
    /// An https URL serving the client's JWKS (private_key_jwt).
    #[arg(long, value_name = "URL")]
    jwks_uri: Option<String>,
    /// A grant type (repeatable): authorization_code, refresh_token, client_credentials,
    /// device_code, jwt-bearer (ID-JAG and workload tokens of a trusted issuer).
    /// Default: authorization_code and refresh_token.
    #[arg(long = "grant-type", value_name = "GRANT")]
    grant_types: Vec<String>,
    /// Space-separated scopes the client may ask for (default: any configured scope).
    #[arg(long)]
    scope: Option<String>,
    /// The client_id (default: a random one).
    #[arg(long, value_name = "ID")]
    client_id: Option<String>,
}

/// The client's metadata as stored (RFC 7591 names), and whether it gets a secret.
fn metadata(spec: &Spec) -> Result<(serde_json::Value, bool), String> {
    if spec.name.trim().is_empty() {
        return Err("the client name must not be empty".into());
    }
    let method = match (&spec.auth_method, spec.public, spec.confidential) {
        (Some(m), true, _) if m != "none" => {
            return Err(format!("--public clients authenticate with none, not {m}"));
        }
        (Some(m), _, true) if m == "none" => {
            return Err("--confidential clients need an --auth-method other than none".into());
        }
        (Some(m), _, _) => m.clone(),
        (None, _, true) => {
            if spec.jwks_file.is_some() || spec.jwks_uri.is_some() {
                "private_key_jwt".into()
            } else {
                "client_secret_basic".into()
            }
        }
        (None, _, false) => "none".into(),
    };
    if !matches!(
        method.as_str(),
        "none" | "client_secret_basic" | "client_secret_post" | "private_key_jwt"
    ) {
        return Err(format!(
            "--auth-method {method:?} is not supported; use none, client_secret_basic, client_secret_post or private_key_jwt"
        ));
    }
    let mut grants: Vec<String> = spec
        .grant_types
        .iter()
        .map(|g| match g.as_str() {
            "device_code" => DEVICE_GRANT.to_owned(),
            "jwt-bearer" => JWT_BEARER.to_owned(),
            other => other.to_owned(),
        })
        .collect();
    if grants.is_empty() {
        grants = vec!["authorization_code".into(), "refresh_token".into()];
    }
    for g in &grants {
        if !matches!(
            g.as_str(),
            "authorization_code"
                | "refresh_token"
                | "client_credentials"
                | DEVICE_GRANT
                | JWT_BEARER
        ) {
            return Err(format!(
                "--grant-type {g:?} is not supported; use authorization_code, refresh_token, client_credentials, device_code or jwt-bearer"
            ));
        }
    }
    grants.dedup();
    if method == "none" && grants.iter().any(|g| g == "client_credentials") {
        return Err(
            "client_credentials needs a confidential client: add --confidential (and a secret or --jwks-file)".into(),
        );
    }
    if grants.iter().any(|g| g == "authorization_code") && spec.redirect_uris.is_empty() {
        return Err("the authorization_code grant needs at least one --redirect-uri (or use --grant-type client_credentials)".into());
    }
    for u in &spec.redirect_uris {
        u.parse::<mcpgate_authserver::RedirectUri>()
            .map_err(|e| format!("--redirect-uri {e}"))?;
    }
    let jwks = match &spec.jwks_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read --jwks-file {}: {e}", path.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| format!("--jwks-file {} is not JSON: {e}", path.display()))?;
            if !v.get("keys").is_some_and(serde_json::Value::is_array) {
                return Err(format!(
                    "--jwks-file {} is not a JWK Set (no \"keys\" array)",
                    path.display()
                ));
            }
            if v["keys"].to_string().contains("\"d\"") {
                return Err(format!(
                    "--jwks-file {} contains a private key (\"d\"): give only the public keys",
                    path.display()
                ));
            }
            Some(v)
        }
        None => None,
    };
    if let Some(u) = &spec.jwks_uri
        && !u.starts_with("https://")
    {
        return Err("--jwks-uri must be an https URL".into());
    }
    let has_keys = jwks.is_some() || spec.jwks_uri.is_some();
    if method == "private_key_jwt" && !has_keys {
        return Err("private_key_jwt needs --jwks-file or --jwks-uri".into());
    }
    if method != "private_key_jwt" && has_keys {
        return Err("--jwks-file/--jwks-uri go with --auth-method private_key_jwt".into());
    }
    let mut m = serde_json::json!({
        "client_name": spec.name,
        "redirect_uris": spec.redirect_uris,
        "token_endpoint_auth_method": method,
        "grant_types": grants,
        "response_types": ["code"],
    });
    if let Some(s) = &spec.scope {
        m["scope"] = s
            .split_ascii_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .into();
    }
    if let Some(j) = jwks {
        m["jwks"] = j;
    }
    if let Some(u) = &spec.jwks_uri {
        m["jwks_uri"] = u.clone().into();
    }
    let secret = method.starts_with("client_secret_");
    Ok((m, secret))
}

/// A client id an administrator chooses: an RFC 6749 client id, and of the
/// narrower shape `mcpgate clients add` allows.
fn preregistered_client_id(id: &str) -> Result<ClientId, String> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b'+'));
    if ok {
        id.parse().map_err(|e| format!("--client-id {id:?}: {e}"))
    } else {
        // URLs name metadata documents; they cannot be pre-registered ids.
        Err(format!(
            "--client-id {id:?}: use 1 to 128 letters, digits and - _ . @ +"
        ))
    }
}

async fn add(spec: Spec, args: &StoreArgs) -> Result<(), String> {
    let (metadata, with_secret) = metadata(&spec)?;
    let client_id = match &spec.client_id {
        Some(id) => preregistered_client_id(id)?,
        None => format!("mcpgate-{}", crate::random::alphanumeric(22))
            .parse()
            .map_err(|e| format!("cannot make a client id: {e}"))?,
    };
    let secret = with_secret.then(|| crate::random::alphanumeric(43));
    let mut row = ClientRow::new(client_id.clone(), ClientKind::Static, metadata.clone());
    row.secret_digest = secret.as_deref().map(digest_hex);
    let store = args.create().await?;
    let inserted = store.insert_client(&row).await;
    if inserted.is_ok() {
        crate::audit_record::client_changed(&store, client_id.as_str(), true).await;
    }
    store.close().await;
    inserted.map_err(|e| e.to_string())?;
    let method = metadata["token_endpoint_auth_method"]
        .as_str()
        .unwrap_or_default();
    match &secret {
        Some(s) => {
            println!("{s}");
            eprintln!(
                "Added confidential client {:?} ({method}) in {}.\nclient_id: {client_id}\nThe client secret above is shown only this once: store it now.",
                spec.name,
                args.dir()
            );
        }
        None => {
            println!("{client_id}");
            eprintln!(
                "Added {} client {:?} ({method}) in {}.",
                if method == "none" {
                    "public"
                } else {
                    "confidential"
                },
                spec.name,
                args.dir()
            );
        }
    }
    Ok(())
}

async fn list(args: &StoreArgs) -> Result<(), String> {
    let store = args.existing().await?;
    let clients = store.list_clients(None).await.map_err(|e| e.to_string());
    store.close().await;
    crate::table::print(
        HEADER,
        rows(&clients?),
        &format!(
            "no OAuth clients in {} (add one with `mcpgate clients add NAME --redirect-uri URI`)",
            args.dir()
        ),
    );
    Ok(())
}

async fn remove(client_id: &str, args: &StoreArgs) -> Result<(), String> {
    let store = args.existing().await?;
    let removed = store
        .delete_client(client_id)
        .await
        .map_err(|e| e.to_string());
    if removed == Ok(true) {
        crate::audit_record::client_changed(&store, client_id, false).await;
    }
    store.close().await;
    if removed? {
        eprintln!(
            "Removed client {client_id:?} and its grants; a running server refuses its tokens within a second."
        );
        Ok(())
    } else {
        Err(format!(
            "no client {client_id:?} (see `mcpgate clients list`)"
        ))
    }
}

fn kind(k: ClientKind) -> &'static str {
    match k {
        ClientKind::Static => "pre-registered",
        ClientKind::Dynamic => "dynamic",
        ClientKind::Cimd => "CIMD",
        _ => "other",
    }
}

const HEADER: [&str; 7] = [
    "CLIENT_ID",
    "NAME",
    "KIND",
    "AUTH",
    "REDIRECT_URIS",
    "CREATED",
    "LAST_USED",
];

/// The clients as rows under [`HEADER`].
fn rows(clients: &[ClientRow]) -> Vec<[String; 7]> {
    let mut rows = Vec::new();
    let dash = crate::table::or_dash;
    for c in clients {
        let m = &c.metadata;
        let uris = m["redirect_uris"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|u| u.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        // A client that never obtained a token shows no last use.
        let used = if c.last_used_at > c.created_at || c.kind != ClientKind::Static {
            format_utc(c.last_used_at)
        } else {
            String::new()
        };
        rows.push([
            c.client_id.to_string(),
            dash(
                m["client_name"]
                    .as_str()
                    .unwrap_or_default()
                    .replace(char::is_control, " "),
            ),
            kind(c.kind).to_owned(),
            dash(
                m["token_endpoint_auth_method"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            dash(uris),
            format_utc(c.created_at),
            dash(used),
        ]);
    }
    rows
}

#[cfg(test)]
mod tests;
