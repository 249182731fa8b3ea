//! The stdio side going out: one task owns stdout and writes each message as
//! one line, in the order the transports hand them over.

use bytes::{Bytes, BytesMut};
use serde_json::value::RawValue;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Where the transports put messages for the stdio client.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    tx: mpsc::Sender<Bytes>,
}

/// A JSON-RPC error code for every failure of the bridge itself (the server
/// never answered): "server error" in JSON-RPC's reserved range.
pub(crate) const BRIDGE_ERROR: i64 = -32000;
/// JSON-RPC's code for a message that is not valid JSON-RPC.
const PARSE_ERROR: i64 = -32700;

impl Output {
    /// Starts the writer task over `stdout`; it ends when every `Output` is dropped.
    pub(crate) fn spawn<W>(stdout: W) -> (Output, tokio::task::JoinHandle<std::io::Result<()>>)
    where
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, mut rx) = mpsc::channel::<Bytes>(256);
        let task = tokio::spawn(async move {
            let mut stdout = stdout;
            while let Some(msg) = rx.recv().await {
                stdout.write_all(&msg).await?;
                stdout.write_all(b"\n").await?;
                // Drain what is already queued before paying for a flush.
                while let Ok(more) = rx.try_recv() {
                    stdout.write_all(&more).await?;
                    stdout.write_all(b"\n").await?;
                }
                stdout.flush().await?;
            }
            Ok(())
        });
        (Output { tx }, task)
    }

    /// Sends one JSON-RPC message as it came from the remote server.
    pub(crate) async fn message(&self, bytes: Bytes) {
        // Nowhere left to write means the stdio client is gone; the stdin
        // side sees that too and ends the bridge.
        let _ = self.tx.send(one_line(bytes)).await;
    }

    /// Answers a line from the stdio client that is no JSON-RPC message.
    pub(crate) async fn parse_error(&self, detail: &str) {
        let body =
            serde_json::json!({ "code": PARSE_ERROR, "message": format!("Parse error: {detail}") });
        let line = format!(r#"{{"jsonrpc":"2.0","id":null,"error":{body}}}"#);
        self.message(Bytes::from(line)).await;
    }

    /// Answers the stdio client's request `id` with a JSON-RPC error.
    pub(crate) async fn error(
        &self,
        id: Option<&RawValue>,
        message: &str,
        data: serde_json::Value,
    ) {
        let id = id.map_or("null", RawValue::get);
        let body = serde_json::json!({
            "code": BRIDGE_ERROR,
            "message": message,
            "data": data,
        });
        let line = format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{body}}}"#);
        self.message(Bytes::from(line)).await;
    }

    /// Answers the stdio client's request `id` with a result the bridge made
    /// itself (an era bridge's), or with an error and its `data`.
    pub(crate) async fn reply(
        &self,
        id: Option<&RawValue>,
        outcome: Result<serde_json::Value, (String, serde_json::Value)>,
    ) {
        match outcome {
            Ok(result) => {
                let id = id.map_or("null", RawValue::get);
                let line = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#);
                self.message(Bytes::from(line)).await;
            }
            Err((why, data)) => self.error(id, &why, data).await,
        }
    }
}

/// A JSON text on one line. Raw line breaks in valid JSON can only be
/// whitespace between tokens (inside strings they are escaped), so turning
/// them into spaces keeps the message intact; the usual message has none
/// and passes without a copy.
pub(crate) fn one_line(bytes: Bytes) -> Bytes {
    let trimmed = trim(&bytes);
    let bytes = bytes.slice(trimmed);
    if !bytes.iter().any(|b| *b == b'\n' || *b == b'\r') {
        return bytes;
    }
    let mut owned = BytesMut::from(&bytes[..]);
    for b in owned.iter_mut() {
        if *b == b'\n' || *b == b'\r' {
            *b = b' ';
        }
    }
    owned.freeze()
}

fn trim(bytes: &[u8]) -> std::ops::Range<usize> {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    start..end
}

#[cfg(test)]
mod tests;
