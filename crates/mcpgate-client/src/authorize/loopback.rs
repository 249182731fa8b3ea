//! The loopback redirect receiver (RFC 8252 §7.3): a one-shot HTTP listener
//! on 127.0.0.1 that takes the authorization response from the browser.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use url::Url;

use crate::error::ClientError;

/// The path the browser is sent back to.
pub(super) const CALLBACK_PATH: &str = "/callback";

/// A bound loopback listener.
#[derive(Debug)]
pub struct Loopback {
    listener: TcpListener,
    port: u16,
}

impl Loopback {
    /// Binds 127.0.0.1 on `port` (0: an ephemeral port).
    pub async fn bind(port: u16) -> Result<Self, ClientError> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| {
            ClientError::Config(format!(
                "cannot listen on 127.0.0.1:{port} for the sign-in callback: {e}"
            ))
        })?;
        let port = listener
            .local_addr()
            .map_err(|e| ClientError::Config(format!("callback listener: {e}")))?
            .port();
        Ok(Self { listener, port })
    }

    /// The port bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>/callback`.
    pub fn redirect_uri(&self) -> String {
        redirect_uri(self.port)
    }

    /// Waits for the browser's request to the callback path; answers it with
    /// a short page and returns its query pairs. Other requests (a favicon)
    /// get 404 and are skipped.
    pub async fn wait(self, timeout: Duration) -> Result<Vec<(String, String)>, ClientError> {
        let fut = async {
            loop {
                let (mut sock, _) =
                    self.listener.accept().await.map_err(|e| {
                        ClientError::Authorization(format!("callback listener: {e}"))
                    })?;
                let mut buf = Vec::with_capacity(2048);
                let mut chunk = [0u8; 2048];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                    match tokio::time::timeout(Duration::from_secs(10), sock.read(&mut chunk)).await
                    {
                        Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                        Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf);
                let target = head
                    .lines()
                    .next()
                    .and_then(|l| l.split_whitespace().nth(1))
                    .unwrap_or("");
                let Ok(url) = Url::parse(&format!("http://127.0.0.1{target}")) else {
                    let _ = respond(&mut sock, "400 Bad Request", "Bad request").await;
                    continue;
                };
                if url.path() != CALLBACK_PATH {
                    let _ = respond(&mut sock, "404 Not Found", "Not found").await;
                    continue;
                }
                let pairs: Vec<(String, String)> = url
                    .query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                let ok = pairs.iter().any(|(k, _)| k == "code");
                let msg = if ok {
                    "Signed in. You can close this tab and return to the terminal."
                } else {
                    "Sign-in did not complete. Return to the terminal for details."
                };
                let _ = respond(&mut sock, "200 OK", msg).await;
                return Ok(pairs);
            }
        };
        tokio::time::timeout(timeout, fut).await.map_err(|_| {
            ClientError::NeedsPerson(format!(
                "no sign-in arrived within {}s; run the command again, or use --manual \
                 (paste the redirect URL) or --device",
                timeout.as_secs()
            ))
        })?
    }
}

/// The loopback redirect URI for a port.
pub(super) fn redirect_uri(port: u16) -> String {
    format!("http://127.0.0.1:{port}{CALLBACK_PATH}")
}

async fn respond(sock: &mut tokio::net::TcpStream, status: &str, msg: &str) -> std::io::Result<()> {
    let body = format!("<!doctype html><meta charset=utf-8><title>mcpgate</title><p>{msg}</p>");
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(resp.as_bytes()).await?;
    sock.shutdown().await
}
