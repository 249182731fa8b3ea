//! Revocations and ended sessions announced across replicas: on PostgreSQL,
//! every statement that revokes a credential (API key, user, client, grant,
//! signing key) fires `NOTIFY mcpgate_revocations` (migration 0008), and
//! [`Revocations`] listens, so that each replica drops the credentials it
//! verified before; a client's DELETE of a session is announced on
//! `mcpgate_sessions` by the replica that received it ([`SessionEnds`]), so
//! that each replica that continued the session forgets it.
//! SQLite has one process and no announcements.

use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::mpsc;

use crate::StoreUrl;

/// The channel migration 0008 notifies.
pub(crate) const CHANNEL: &str = "mcpgate_revocations";
/// The channel the gateway notifies when a client ends a session.
const SESSIONS: &str = "mcpgate_sessions";
/// Announcements of ended sessions waiting to be sent; beyond this, one is
/// dropped (the session then lingers until it is idle on the other replicas).
const SESSION_BACKLOG: usize = 1024;

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
        let first = match tokio::time::timeout(FIRST_CONNECT, connect(url, CHANNEL)).await {
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
        tokio::spawn(run(url.clone(), CHANNEL, first, tx));
        Some(Revocations { rx })
    }

    /// The next announcement (the table it came from, or `"reconnected"`);
    /// `None` once the listener stopped.
    pub async fn next(&mut self) -> Option<String> {
        self.rx.recv().await
    }
}

async fn run(
    url: String,
    channel: &'static str,
    mut first: Option<PgListener>,
    tx: mpsc::Sender<String>,
) {
    // Without a first connection, the retry's "reconnected" makes the
    // replica forget what it verified meanwhile.
    let mut connected_before = first.is_none();
    loop {
        let next = match first.take() {
            Some(l) => Ok(l),
            None => connect(&url, channel).await,
        };
        let mut listener = match next {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, %channel, "cannot listen for announcements on PostgreSQL; retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        if connected_before {
            tracing::info!(%channel, "listening for announcements again");
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
                    tracing::warn!(error = %e, %channel, "lost the announcement listener's connection");
                    break;
                }
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

async fn connect(url: &str, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut l = PgListener::connect(url).await?;
    l.listen(channel).await?;
    Ok(l)
}

/// Sessions that clients ended on any replica, each named by a digest of its
/// id (never the id: it is the bearer of the session, and NOTIFY payloads
/// show up in PostgreSQL's logs and to any role that listens).
#[derive(Debug)]
pub struct SessionEnds {
    rx: mpsc::Receiver<String>,
    send: mpsc::Sender<String>,
}

impl SessionEnds {
    /// Listens on `url`'s database and opens a connection to announce on;
    /// `None` for SQLite. A lost announcement only leaves a session to expire
    /// idle on the replicas that missed it, so start-up does not wait.
    pub fn listen(url: &StoreUrl) -> Option<SessionEnds> {
        let StoreUrl::Postgres(url) = url else {
            return None;
        };
        let (tx, rx) = mpsc::channel(SESSION_BACKLOG);
        tokio::spawn(run(url.clone(), SESSIONS, None, tx));
        let (send, mut outgoing) = mpsc::channel::<String>(SESSION_BACKLOG);
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy(url);
        match pool {
            Ok(pool) => {
                tokio::spawn(async move {
                    while let Some(digest) = outgoing.recv().await {
                        let sent = sqlx::query("SELECT pg_notify($1, $2)")
                            .bind(SESSIONS)
                            .bind(&digest)
                            .execute(&pool)
                            .await;
                        if let Err(e) = sent {
                            tracing::warn!(error = %e, "could not announce an ended session to the other replicas; they forget it when it is idle (server.session_idle_timeout)");
                        }
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot announce ended sessions on PostgreSQL; other replicas forget them when idle (server.session_idle_timeout)");
            }
        }
        Some(SessionEnds { rx, send })
    }

    /// Announces that the session with this digest ended; returns at once.
    pub fn announcer(&self) -> impl Fn(String) + Send + Sync + 'static {
        let send = self.send.clone();
        move |digest| {
            if send.try_send(digest).is_err() {
                tracing::warn!(
                    "too many ended sessions waiting to be announced; one is left to expire idle on the other replicas"
                );
            }
        }
    }

    /// The digest of the next session ended anywhere (this replica's own
    /// too); `None` once the listener stopped.
    pub async fn next(&mut self) -> Option<String> {
        loop {
            let n = self.rx.recv().await?;
            // Missed announcements cannot be recovered; idle expiry covers them.
            if n != "reconnected" {
                return Some(n);
            }
        }
    }
}
