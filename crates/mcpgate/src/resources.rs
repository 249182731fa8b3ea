//! `mcpgate resources`: register, list and remove resource servers — other
//! MCP servers or gateways that the built-in authorization server issues
//! tokens for, and that check those tokens at `/introspect` with their own
//! credentials.
//!
//! The introspection secret is printed once, alone on stdout (like an API
//! key); only its SHA-256 digest is stored. A running server sees a change on
//! the next request (resources are looked up in the store each time).

use std::process::ExitCode;

use mcpgate_store::format_utc;
use mcpgate_store::oauth::{ResourceServerRow, digest_hex};

use crate::keys::{StoreArgs, exit};

/// `mcpgate resources …`.
// Add, List and Remove are written out per table (clients, resources,
// users): clap takes each variant's doc comment as its help text, which
// says what that table's command does.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ResourcesCommand {
    /// Register a resource server; its introspection secret is printed once on stdout.
    Add {
        /// The resource URI clients ask tokens for (its MCP endpoint URL): the tokens' `aud`.
        resource: String,
        /// The name the consent page shows.
        #[arg(long)]
        name: String,
        /// Space-separated scopes it accepts (tokens for it carry no others).
        #[arg(long, default_value = "")]
        scopes: String,
        /// Its client id at /introspect (default: a random one, printed on stderr).
        #[arg(long, value_name = "ID")]
        client_id: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List registered resource servers (never a secret).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove a resource server (by resource URI or client id): no new tokens
    /// for it, and its credentials no longer introspect.
    Remove {
        /// The resource URI or the client id.
        resource: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Runs a `resources` subcommand.
pub(crate) async fn run(command: ResourcesCommand) -> ExitCode {
    exit(match command {
        ResourcesCommand::Add {
            resource,
            name,
            scopes,
            client_id,
            store,
        } => add(&resource, &name, &scopes, client_id, &store).await,
        ResourcesCommand::List { store } => list(&store).await,
        ResourcesCommand::Remove { resource, store } => remove(&resource, &store).await,
    })
}

async fn add(
    resource: &str,
    name: &str,
    scopes: &str,
    client_id: Option<String>,
    args: &StoreArgs,
) -> Result<(), String> {
    let resource = resource
        .parse::<mcpgate_authserver::ResourceUri>()
        .map_err(|e| e.to_string())?;
    if name.trim().is_empty() {
        return Err("--name must not be empty: the consent page shows it".into());
    }
    let client_id: mcpgate_authserver::ClientId = match client_id {
        Some(id) if valid_id(&id) => id.parse().map_err(|e| format!("--client-id: {e}"))?,
        Some(id) => {
            return Err(format!(
                "--client-id {id:?}: use 1 to 128 letters, digits and . _ - : (no spaces)"
            ));
        }
        None => format!("rs-{}", crate::random::alphanumeric(22))
            .parse()
            .map_err(|e| format!("cannot make a client id: {e}"))?,
    };
    let scopes: mcpgate_types::ScopeSet = scopes.parse().map_err(|e| format!("--scopes: {e}"))?;
    let secret = crate::random::alphanumeric(43);
    let row = ResourceServerRow::new(
        resource.clone(),
        name.trim().to_owned(),
        scopes,
        client_id.clone(),
        digest_hex(&secret),
    );
    let store = args.create().await?;
    let inserted = store.insert_resource_server(&row).await;
    store.close().await;
    inserted
        .map_err(|e| format!("{e} (or its client id is taken; see `mcpgate resources list`)"))?;
    println!("{secret}");
    eprintln!(
        "Registered resource server {name:?} for {resource} in {}.\nclient_id: {client_id}\nThe introspection secret above is shown only this once: configure the resource server with it now.",
        args.dir()
    );
    Ok(())
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
}

async fn list(args: &StoreArgs) -> Result<(), String> {
    let store = args.existing().await?;
    let rows = store
        .list_resource_servers()
        .await
        .map_err(|e| e.to_string());
    store.close().await;
    let rows = rows?
        .into_iter()
        .map(|r| {
            [
                r.resource.to_string(),
                r.name,
                r.client_id.to_string(),
                crate::table::or_dash(r.scopes.to_string()),
                format_utc(r.created_at),
            ]
        })
        .collect();
    crate::table::print(
        ["RESOURCE", "NAME", "CLIENT_ID", "SCOPES", "CREATED"],
        rows,
        &format!(
            "no resource servers in {} (register one with `mcpgate resources add URI --name NAME`)",
            args.dir()
        ),
    );
    Ok(())
}

async fn remove(resource: &str, args: &StoreArgs) -> Result<(), String> {
    // Accept the URI in any spelling of it.
    let key = resource
        .parse::<mcpgate_authserver::ResourceUri>()
        .map_or_else(|_| resource.to_owned(), String::from);
    let store = args.existing().await?;
    let removed = store
        .delete_resource_server(&key)
        .await
        .map_err(|e| e.to_string());
    store.close().await;
    if removed? {
        eprintln!(
            "Removed resource server {resource:?}: no new tokens for it, and its credentials no longer introspect."
        );
        Ok(())
    } else {
        Err(format!(
            "no resource server {resource:?} (see `mcpgate resources list`)"
        ))
    }
}
