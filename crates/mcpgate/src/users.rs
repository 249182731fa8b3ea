//! `mcpgate users`: add, re-password and remove HTTP Basic users.
//!
//! Passwords come from a no-echo prompt (asked twice) or, for scripts, from
//! stdin with `--password-stdin`; never from the command line, where other
//! users and shell history would see them. Only argon2id hashes are stored.

use std::io::{IsTerminal as _, Read as _};
use std::process::ExitCode;

use crate::keys::{StoreArgs, exit};

/// `mcpgate users …`.
// Add, List and Remove are written out per table (clients, resources,
// users): clap takes each variant's doc comment as its help text, which
// says what that table's command does.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum UsersCommand {
    /// Add a user for HTTP Basic authentication.
    Add {
        /// The user name (letters, digits, . _ - @ +).
        name: String,
        /// Read the password from stdin (one trailing newline is dropped) instead of prompting.
        #[arg(long)]
        password_stdin: bool,
        /// Space-separated scopes the user holds ("notes:read notes:write"), or '*' for all.
        #[arg(long, default_value = "")]
        scopes: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Change a user's password.
    Passwd {
        /// The user name.
        name: String,
        /// Read the password from stdin (one trailing newline is dropped) instead of prompting.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List users (name, scopes, dates; never a password or hash).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove a user; a running server refuses them within a second.
    Remove {
        /// The user name.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Runs a `users` subcommand.
pub(crate) async fn run(command: UsersCommand) -> ExitCode {
    exit(match command {
        UsersCommand::Add {
            name,
            password_stdin,
            scopes,
            store,
        } => add(&name, password_stdin, &scopes, &store).await,
        UsersCommand::Passwd {
            name,
            password_stdin,
            store,
        } => passwd(&name, password_stdin, &store).await,
        UsersCommand::Remove { name, store } => remove(&name, &store).await,
        UsersCommand::List { store } => list(&store).await,
    })
}

async fn add(name: &str, from_stdin: bool, scopes: &str, args: &StoreArgs) -> Result<(), String> {
    let store = args.create().await?;
    // Checked before asking for a password, which would otherwise be typed for nothing.
    if store
        .find_user(name)
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Err(format!(
            "user {name:?} already exists (change the password with `mcpgate users passwd {name}`)"
        ));
    }
    let password = read_password(name, from_stdin)?;
    let scopes: mcpgate_types::ScopeSet = scopes.parse().map_err(|e| format!("--scopes: {e}"))?;
    store
        .add_user(name, &password, &scopes)
        .await
        .map_err(|e| e.to_string())?;
    crate::audit_record::user_changed(&store, name, true).await;
    store.close().await;
    eprintln!("Added user {name:?}.");
    Ok(())
}

async fn passwd(name: &str, from_stdin: bool, args: &StoreArgs) -> Result<(), String> {
    let store = args.existing().await?;
    if store
        .find_user(name)
        .await
        .map_err(|e| e.to_string())?
        .is_none()
    {
        return Err(format!("no user named {name:?}"));
    }
    let password = read_password(name, from_stdin)?;
    store
        .set_password(name, &password)
        .await
        .map_err(|e| e.to_string())?;
    store.close().await;
    eprintln!("Changed the password of {name:?}.");
    Ok(())
}

async fn list(args: &StoreArgs) -> Result<(), String> {
    let store = args.existing().await?;
    let users = store.list_users().await.map_err(|e| e.to_string())?;
    let rows = users
        .iter()
        .map(|u| {
            [
                u.name.to_string(),
                crate::table::or_dash(u.scopes.to_string()),
                mcpgate_store::format_utc(u.created_at),
                mcpgate_store::format_utc(u.updated_at),
            ]
        })
        .collect();
    crate::table::print(
        ["NAME", "SCOPES", "CREATED", "UPDATED"],
        rows,
        "no users; add one with: mcpgate users add NAME --password-stdin",
    );
    Ok(())
}

async fn remove(name: &str, args: &StoreArgs) -> Result<(), String> {
    let store = args.existing().await?;
    store.remove_user(name).await.map_err(|e| e.to_string())?;
    crate::audit_record::user_changed(&store, name, false).await;
    store.close().await;
    eprintln!("Removed user {name:?}.");
    Ok(())
}

/// The new password, from stdin or from a terminal prompt asked twice.
fn read_password(name: &str, from_stdin: bool) -> Result<String, String> {
    let password = if from_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
        let line = text.strip_suffix('\n').unwrap_or(&text);
        line.strip_suffix('\r').unwrap_or(line).to_owned()
    } else if std::io::stdin().is_terminal() {
        let prompt_err = |e: std::io::Error| format!("cannot read the password: {e}");
        let first =
            rpassword::prompt_password(format!("New password for {name}: ")).map_err(prompt_err)?;
        let second = rpassword::prompt_password("Repeat it: ").map_err(prompt_err)?;
        if first != second {
            return Err("the passwords do not match".to_owned());
        }
        first
    } else {
        return Err(
            "stdin is not a terminal, so the password cannot be prompted for: pipe it in with --password-stdin"
                .to_owned(),
        );
    };
    if password.is_empty() {
        return Err("the password is empty".to_owned());
    }
    Ok(password)
}
