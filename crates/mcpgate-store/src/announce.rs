//! Revocations announced across replicas: on PostgreSQL, every statement
//! that revokes a credential (API key, user, client, grant, signing key)
//! fires `NOTIFY mcpgate_revocations` (migration 0008), and [`Revocations`]
//! listens, so that each replica drops the credentials it verified before.
//! SQLite has one process and no announcements.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::mpsc;

use crate::StoreUrl;

/// The channel migration 0008 notifies.
pub(crate) const CHANNEL: &str = "mcpgate_revocations";

/// After a lost connection, the wait before connecting again.
const RETRY: Duration = Duration::from_secs(1);
/// How long start-up waits for the first connection.
const FIRST_CONNECT: Duration = Duration::from_secs(5);

/// Announcements of revocations made anywhere on the store. Each item means
/// "what you verified may be revoked now": forget it and verify again. One is
/// also sent after the connection to the database was lost and is back, as
/// announcements may have been missed meanwhile.
#[derive(Debug)]
pub struct Revocations {
    rx: mpsc::Receiver<String>,
}

impl Revocations {
    /// Listens on `url`'s database; `None` for SQLite. Runs until dropped.
    /// The first connection is made before this returns (or given up after
    /// [`FIRST_CONNECT`], then retried in the background), so that a replica
    /// that starts serving hears every revocation made from then on.
    pub async fn listen(url: &StoreUrl) -> Option<Revocations> {
        let StoreUrl::Postgres(url) = url else {
            return None;
        };
        let first = match tokio::time::timeout(FIRST_CONNECT, connect(url)).await {
            Ok(Ok(l)) => Some(l),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot listen for revocations on PostgreSQL; retrying (cached credentials still expire within a second)");
                None
            }
            Err(_) => {
                tracing::warn!(
                    "listening for revocations on PostgreSQL takes longer than {FIRST_CONNECT:?}; going on in the background (cached credentials still expire within a second)"
                );
                None
            }
        };
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(run(url.clone(), first, tx));
        Some(Revocations { rx })
    }

    /// The next announcement (the table it came from, or `"reconnected"`);
    /// `None` once the listener stopped.
    pub async fn next(&mut self) -> Option<String> {
        self.rx.recv().await
    }
}

async fn run(url: String, mut first: Option<PgListener>, tx: mpsc::Sender<String>) {
    // Without a first connection, the retry's "reconnected" makes the
    // replica forget what it verified meanwhile.
    let mut connected_before = first.is_none();
    loop {
        let next = match first.take() {
            Some(l) => Ok(l),
            None => connect(&url).await,
        };
        let mut listener = match next {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for revocations on PostgreSQL; retrying (cached credentials still expire within a second)");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        if connected_before {
            tracing::info!("listening for revocations again");
            if tx.send("reconnected".to_owned()).await.is_err() {
                return;
            }
        }
        connected_before = true;
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    if tx.send(n.payload().to_owned()).await.is_err() {
                        return;
                    }
                }
                // The connection dropped: announcements may have been missed.
                Ok(None) => {
                    if tx.send("reconnected".to_owned()).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lost the revocation listener's connection");
                    break;
                }
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

async fn connect(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut l = PgListener::connect(url).await?;
    l.listen(CHANNEL).await?;
    Ok(l)
}
