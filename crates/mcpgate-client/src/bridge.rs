//! `mcpgate bridge`: a local stdio MCP server that relays every message to a
//! remote MCP server over Streamable HTTP, or legacy HTTP+SSE for servers of
//! the 2024-11-05 era, with the `Authorization` header from a [`Credentials`].
//!
//! Messages pass as the bytes the peers sent: the bridge reads only the
//! JSON-RPC envelope (`id`, `method`, and the routing members of 2026-07-28
//! requests) and never re-serializes a message. Everything it logs goes to
//! stderr through `tracing`; stdout carries only JSON-RPC messages.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mcpgate_client::bridge::BridgeError> {
//! use std::sync::Arc;
//! use mcpgate_client::StaticCredentials;
//! use mcpgate_client::bridge::{BridgeOptions, Transport, run};
//!
//! let url = url::Url::parse("https://mcp.example.com/mcp").expect("a valid URL");
//! let options = BridgeOptions::new(url, Arc::new(StaticCredentials::new(None)));
//! run(options, tokio::io::stdin(), tokio::io::stdout(), std::future::pending()).await
//! # }
//! ```

mod envelope;
mod handshake;
mod headers;
mod inflight;
mod lazy;
mod legacy;
mod output;
mod remote;
mod stateless;
mod streamable;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};
use tokio::sync::watch;
use tokio::task::JoinSet;
use url::Url;

pub use headers::{HeaderError, parse_header, read_header_file};
pub use lazy::SignInOnChallenge;

use crate::credentials::Credentials;
use envelope::{Envelope, Kind};
use handshake::Handshake;
use legacy::{ConnectError, Legacy};
use output::Output;
use remote::Remote;
use stateless::Stateless;
use streamable::{Posted, Streamable};

/// How long requests still in flight may finish after stdin closes.
const DRAIN: Duration = Duration::from_secs(5);

/// Which HTTP transport the remote server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Transport {
    /// Streamable HTTP, falling back to legacy HTTP+SSE when the first POST
    /// gets a 4xx (the spec's backwards-compatibility rule).
    #[default]
    Auto,
    /// Streamable HTTP only.
    Streamable,
    /// Legacy HTTP+SSE (2024-11-05) only.
    Sse,
}

/// What the bridge connects to and with which credentials.
pub struct BridgeOptions {
    /// The remote MCP endpoint (the SSE URL for legacy servers).
    pub url: Url,
    /// Which transport to speak.
    pub transport: Transport,
    /// Extra headers sent on every request (see [`parse_header`]).
    pub headers: HeaderMap,
    /// Where each request's `Authorization` header comes from.
    pub credentials: Arc<dyn Credentials>,
    /// Appended to authorization errors the stdio client sees: what the
    /// person should do (for example which command signs in).
    pub auth_hint: String,
}

impl BridgeOptions {
    /// Options with automatic transport detection and no extra headers.
    pub fn new(url: Url, credentials: Arc<dyn Credentials>) -> Self {
        BridgeOptions {
            url,
            transport: Transport::Auto,
            headers: HeaderMap::new(),
            credentials,
            auth_hint: "pass a credential with --header \"Authorization: Bearer …\"".to_owned(),
        }
    }
}

/// Why the bridge stopped other than by stdin closing or the shutdown signal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    /// The connection to the remote server ended for good (a legacy SSE
    /// session's stream closed).
    #[error("{0}")]
    Remote(String),
    /// Reading stdin or writing stdout failed.
    #[error("stdio: {0}")]
    Stdio(#[from] std::io::Error),
}

/// The transport in use once the first message has been sent.
enum Link {
    Streamable(Arc<Streamable>),
    Legacy(Arc<Legacy>),
    /// A handshake-era app over a 2026-07-28-only server.
    Stateless(Arc<Stateless>),
    /// A 2026-07-28 app over a server of the handshake eras.
    Handshake(Arc<Handshake>),
}

enum Ended {
    Eof,
    Shutdown,
}

/// Runs the bridge until `stdin` closes, `shutdown` completes, or the remote
/// session ends for good; then ends the remote session (`DELETE`).
pub async fn run<R, W>(
    options: BridgeOptions,
    stdin: R,
    stdout: W,
    shutdown: impl Future<Output = ()>,
) -> Result<(), BridgeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let transport = options.transport;
    let remote = Arc::new(
        Remote::new(
            options.url,
            options.headers,
            options.credentials,
            options.auth_hint,
        )
        .map_err(|e| BridgeError::Client(remote::chain(&e)))?,
    );
    let (out, writer) = Output::spawn(stdout);
    let (fatal_tx, mut fatal_rx) = watch::channel::<Option<String>>(None);
    let mut link: Option<Link> = None;
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut reader = BufReader::new(stdin);
    let mut line = Vec::new();
    tokio::pin!(shutdown);

    let ended: Result<Ended, BridgeError> = loop {
        tokio::select! {
            read = reader.read_until(b'\n', &mut line) => match read {
                Ok(0) if line.is_empty() => break Ok(Ended::Eof),
                Ok(_) => {}
                Err(e) => break Err(BridgeError::Stdio(e)),
            },
            () = &mut shutdown => break Ok(Ended::Shutdown),
            Ok(()) = fatal_rx.changed() => {
                let why = fatal_rx.borrow().clone().unwrap_or_default();
                break Err(BridgeError::Remote(why));
            }
            // Reaps finished request tasks; a partly read line stays in `line`.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        }
        let msg = Bytes::from(std::mem::take(&mut line));
        if msg.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let env = match Envelope::parse(&msg) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("stdin: {e}");
                out.parse_error(&e.to_string()).await;
                continue;
            }
        };
        match &link {
            None => {
                let first = First {
                    msg,
                    env,
                    tasks: &mut tasks,
                };
                link = open(transport, &remote, &out, &fatal_tx, first).await;
            }
            Some(Link::Streamable(s)) => {
                // Requests run side by side (a slow tool call must not hold up
                // its own cancellation); initialize, notifications and
                // responses go in order, as the client sent them.
                let aside =
                    env.kind == Kind::Request && env.method.as_deref() != Some("initialize");
                let s = s.clone();
                deliver(&mut tasks, aside, async move { s.deliver(msg, env).await }).await;
            }
            Some(Link::Legacy(l)) => {
                let aside = env.kind == Kind::Request;
                let l = l.clone();
                deliver(&mut tasks, aside, async move { l.deliver(msg, env).await }).await;
            }
            Some(Link::Stateless(l)) => {
                // A request may wait on the app's answer to a question, which
                // arrives here as a response: requests must run aside.
                let aside = env.kind == Kind::Request;
                let l = l.clone();
                deliver(&mut tasks, aside, async move { l.deliver(msg, env).await }).await;
            }
            Some(Link::Handshake(h)) => {
                let h = h.clone();
                tasks.spawn(async move { h.deliver(msg, env).await });
            }
        }
    };

    match ended {
        Ok(Ended::Eof) => {
            // A script may close stdin right after its last request.
            let drain = async { while tasks.join_next().await.is_some() {} };
            if tokio::time::timeout(DRAIN, drain).await.is_err() {
                tracing::info!("stdin closed; dropping requests still in flight");
            }
        }
        Ok(Ended::Shutdown) | Err(_) => {}
    }
    tasks.abort_all();
    match link.take() {
        Some(Link::Streamable(s)) => s.close().await,
        Some(Link::Legacy(l)) => l.close(),
        Some(Link::Handshake(h)) => h.close().await,
        Some(Link::Stateless(_)) | None => {}
    }
    drop(out);
    drop(remote);
    // Give the writer a moment to flush what is queued; aborted tasks may
    // still hold an `Output` until the runtime drops them.
    if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(2), writer).await {
        tracing::debug!("stdout: {e}");
    }
    ended.map(|_| ())
}

/// Runs `delivery` beside the stdin loop (`aside`), or to its end before the
/// next line is read.
async fn deliver(
    tasks: &mut JoinSet<()>,
    aside: bool,
    delivery: impl Future<Output = ()> + Send + 'static,
) {
    if aside {
        tasks.spawn(delivery);
    } else {
        delivery.await;
    }
}

/// The app's first message, and where a request that may run long goes so
/// that the messages after it (its cancellation) are still read.
struct First<'a> {
    msg: Bytes,
    env: Envelope,
    tasks: &'a mut JoinSet<()>,
}

/// Posts the first message over Streamable HTTP: `Ok` when the server took
/// it (an answer still streaming is read aside, in `tasks`), else the
/// refusal, for the caller to try another era or transport.
async fn first_post(
    s: &Arc<Streamable>,
    msg: &Bytes,
    env: &Envelope,
    tasks: &mut JoinSet<()>,
) -> Result<(), reqwest::Response> {
    match s.deliver_first(msg.clone(), env).await {
        Posted::Done => Ok(()),
        Posted::Answering(resp) => {
            let (s, env) = (s.clone(), env.clone());
            tasks.spawn(async move { s.answer_first(resp, env).await });
            Ok(())
        }
        Posted::ClientError(resp) => Err(resp),
    }
}

/// Sends the first message, which decides the transport.
async fn open(
    transport: Transport,
    remote: &Arc<Remote>,
    out: &Output,
    fatal: &watch::Sender<Option<String>>,
    first: First<'_>,
) -> Option<Link> {
    let First { msg, env, tasks } = first;
    match transport {
        Transport::Streamable => {
            let s = Streamable::new(remote.clone(), out.clone());
            let resp = match first_post(&s, &msg, &env, tasks).await {
                Ok(()) => return Some(Link::Streamable(s)),
                Err(resp) => resp,
            };
            if let Some(l) = stateless(remote, out, &msg, &env, resp.status()).await {
                return Some(Link::Stateless(l));
            }
            if let Some(h) = handshake(remote, out, &msg, &env, resp.status()).await {
                let h2 = h.clone();
                tasks.spawn(async move { h2.deliver(msg, env).await });
                return Some(Link::Handshake(h));
            }
            s.refused(resp, &env).await;
            Some(Link::Streamable(s))
        }
        Transport::Sse => match Legacy::connect(remote.clone(), out.clone(), fatal.clone()).await {
            Ok(l) => {
                l.deliver(msg, env).await;
                Some(Link::Legacy(l))
            }
            Err(e) => {
                // No session: answer this message and try again with the next.
                let why = explain_connect(remote, &e);
                tracing::error!("{why}");
                if env.kind == Kind::Request {
                    out.error(env.id.as_deref(), &why, serde_json::json!({}))
                        .await;
                }
                None
            }
        },
        Transport::Auto => {
            let s = Streamable::new(remote.clone(), out.clone());
            let resp = match first_post(&s, &msg, &env, tasks).await {
                Ok(()) => return Some(Link::Streamable(s)),
                Err(resp) => resp,
            };
            let status = resp.status();
            if matches!(
                status,
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
            ) {
                s.refused(resp, &env).await;
                return Some(Link::Streamable(s));
            }
            if let Some(l) = stateless(remote, out, &msg, &env, status).await {
                return Some(Link::Stateless(l));
            }
            if let Some(h) = handshake(remote, out, &msg, &env, status).await {
                let h2 = h.clone();
                tasks.spawn(async move { h2.deliver(msg, env).await });
                return Some(Link::Handshake(h));
            }
            tracing::info!("POST answered HTTP {status}; trying legacy HTTP+SSE (2024-11-05)");
            match Legacy::connect(remote.clone(), out.clone(), fatal.clone()).await {
                Ok(l) => {
                    tracing::info!("the remote server speaks legacy HTTP+SSE");
                    l.deliver(msg, env).await;
                    Some(Link::Legacy(l))
                }
                Err(e) => {
                    tracing::warn!(
                        "legacy HTTP+SSE fallback failed too: {}",
                        explain_connect(remote, &e)
                    );
                    s.refused(resp, &env).await;
                    Some(Link::Streamable(s))
                }
            }
        }
    }
}

/// A handshake app's `initialize` refused with a 4xx: is the server one that
/// speaks only 2026-07-28? Then the bridge holds the handshake for the app.
async fn stateless(
    remote: &Arc<Remote>,
    out: &Output,
    msg: &Bytes,
    env: &Envelope,
    status: StatusCode,
) -> Option<Arc<Stateless>> {
    if env.method.as_deref() != Some("initialize")
        || env.stateless_version.is_some()
        || matches!(
            status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
        )
    {
        return None;
    }
    tracing::info!("initialize answered HTTP {status}; asking server/discover (2026-07-28)");
    Stateless::open(remote.clone(), out.clone(), msg, env).await
}

/// A 2026-07-28 app's first request refused with a 4xx: is the server one
/// of the handshake eras? Then the bridge opens a session for the app.
async fn handshake(
    remote: &Arc<Remote>,
    out: &Output,
    msg: &Bytes,
    env: &Envelope,
    status: StatusCode,
) -> Option<Arc<Handshake>> {
    if env.stateless_version.is_none()
        || env.kind != Kind::Request
        || matches!(
            status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
        )
    {
        return None;
    }
    tracing::info!("a 2026-07-28 request answered HTTP {status}; trying initialize");
    Handshake::open(remote.clone(), out.clone(), msg).await
}

fn explain_connect(remote: &Remote, e: &ConnectError) -> String {
    match e {
        ConnectError::Remote(f) => remote.explain(f),
        ConnectError::Protocol(p) => format!(
            "cannot open a legacy HTTP+SSE session with {}: {p}",
            remote.url
        ),
    }
}
