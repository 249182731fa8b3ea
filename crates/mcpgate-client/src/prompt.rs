//! What `mcpgate call` answers when a server asks something mid-request
//! (an `input_required` round, or a server request in the handshake eras):
//! form elicitations from `--elicit` or, at a terminal, by asking the
//! person field by field; `roots/list` from `--root`. Sampling needs a
//! language model the command line does not have, so it is not declared.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use futures_util::future::BoxFuture;
use serde_json::{Map, Value, json};

use crate::modern::{InputError, InputHandler};

/// How form elicitations are answered.
#[derive(Debug, Clone, Default)]
pub enum ElicitAnswer {
    /// Ask the person at the terminal; decline when stdin is not one.
    #[default]
    Ask,
    /// Accept with this content (a JSON object).
    Accept(Map<String, Value>),
    /// Decline every request.
    Decline,
    /// Cancel every request.
    Cancel,
}

impl ElicitAnswer {
    /// Parses `--elicit`: `decline`, `cancel`, or a JSON object to accept with.
    pub fn parse(s: &str) -> Result<Self, crate::ClientError> {
        match s.trim() {
            "decline" => Ok(Self::Decline),
            "cancel" => Ok(Self::Cancel),
            "ask" => Ok(Self::Ask),
            other => match serde_json::from_str::<Value>(other) {
                Ok(Value::Object(o)) => Ok(Self::Accept(o)),
                _ => Err(crate::ClientError::Config(format!(
                    "--elicit takes `decline`, `cancel`, `ask` or a JSON object to accept with, \
                     not {other:?}"
                ))),
            },
        }
    }
}

/// The command line's answers to a server's questions.
#[derive(Debug, Clone, Default)]
pub struct CommandLineInput {
    /// The roots `roots/list` returns (`file://` URIs); none: roots are not declared.
    pub roots: Vec<String>,
    /// How form elicitations are answered.
    pub elicit: ElicitAnswer,
}

impl CommandLineInput {
    /// Turns `--root` values into `file://` URIs: a URI stays as is, a path
    /// is made absolute.
    pub fn root_uri(value: &str) -> Result<String, crate::ClientError> {
        if value.contains("://") {
            return Ok(value.to_owned());
        }
        let path = std::path::absolute(value)
            .map_err(|e| crate::ClientError::Config(format!("--root {value:?}: {e}")))?;
        url::Url::from_file_path(&path)
            .map(String::from)
            .map_err(|()| crate::ClientError::Config(format!("--root {value:?} is not a path")))
    }

    fn elicit(&self, params: &Value) -> Result<Value, InputError> {
        let mode = params.get("mode").and_then(Value::as_str).unwrap_or("form");
        let message = params.get("message").and_then(Value::as_str).unwrap_or("");
        if mode != "form" {
            return Err(InputError(format!(
                "the server asked for a {mode}-mode elicitation, which mcpgate call does not offer"
            )));
        }
        match &self.elicit {
            ElicitAnswer::Accept(content) => {
                eprintln!("The server asks: {message} — answering with --elicit");
                Ok(json!({"action": "accept", "content": content}))
            }
            ElicitAnswer::Decline => Ok(json!({"action": "decline"})),
            ElicitAnswer::Cancel => Ok(json!({"action": "cancel"})),
            ElicitAnswer::Ask if std::io::stdin().is_terminal() => ask(message, params),
            ElicitAnswer::Ask => {
                eprintln!(
                    "The server asks: {message}\n  declined: stdin is not a terminal; answer with \
                     --elicit '{{…}}' (or --elicit decline to silence this)"
                );
                Ok(json!({"action": "decline"}))
            }
        }
    }
}

impl InputHandler for CommandLineInput {
    fn capabilities(&self) -> Value {
        let mut caps = json!({"elicitation": {"form": {}}});
        if !self.roots.is_empty()
            && let Some(o) = caps.as_object_mut()
        {
            o.insert("roots".into(), json!({}));
        }
        caps
    }

    // The trait's boxed-future signature, repeated as `dyn InputHandler` needs.
    fn answer<'a>(
        &'a self,
        method: &'a str,
        params: &'a Value,
    ) -> BoxFuture<'a, Result<Value, InputError>> {
        Box::pin(async move {
            match method {
                "roots/list" if !self.roots.is_empty() => Ok(json!({
                    "roots": self.roots.iter().map(|u| json!({"uri": u})).collect::<Vec<_>>()
                })),
                "elicitation/create" => {
                    let params = params.clone();
                    let me = self.clone();
                    // Reading the terminal blocks.
                    tokio::task::spawn_blocking(move || me.elicit(&params))
                        .await
                        .map_err(|e| InputError(format!("asking the person failed: {e}")))?
                }
                other => Err(InputError(format!(
                    "the server asked {other}, which mcpgate call cannot answer (it declares only \
                     elicitation{})",
                    if self.roots.is_empty() {
                        ""
                    } else {
                        " and roots"
                    }
                ))),
            }
        })
    }
}

/// Asks the person for each field of a flat form schema on stderr/stdin.
fn ask(message: &str, params: &Value) -> Result<Value, InputError> {
    let schema = params
        .get("requestedSchema")
        .cloned()
        .unwrap_or(Value::Null);
    let props = schema
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut err = std::io::stderr();
    let _ = writeln!(
        err,
        "The server asks: {message}\n(empty answer to every field declines; Ctrl-D cancels)"
    );
    let stdin = std::io::stdin();
    let mut content = Map::new();
    for (name, prop) in &props {
        let kind = prop.get("type").and_then(Value::as_str).unwrap_or("string");
        let about = prop
            .get("description")
            .or_else(|| prop.get("title"))
            .and_then(Value::as_str)
            .unwrap_or("");
        loop {
            let _ = write!(err, "  {name} ({kind}) {about}: ");
            let _ = err.flush();
            let mut line = String::new();
            match stdin.lock().read_line(&mut line) {
                Ok(0) | Err(_) => return Ok(json!({"action": "cancel"})),
                Ok(_) => {}
            }
            let line = line.trim();
            if line.is_empty() {
                break;
            }
            let value = match kind {
                "boolean" => match line {
                    "y" | "yes" | "true" => Some(Value::Bool(true)),
                    "n" | "no" | "false" => Some(Value::Bool(false)),
                    _ => None,
                },
                "integer" => line.parse::<i64>().ok().map(Value::from),
                "number" => line.parse::<f64>().ok().map(Value::from),
                _ => Some(Value::String(line.to_owned())),
            };
            match value {
                Some(v) => {
                    content.insert(name.clone(), v);
                    break;
                }
                None => {
                    let _ = writeln!(err, "  that is not a valid {kind}; try again");
                }
            }
        }
    }
    if content.is_empty() && !props.is_empty() {
        return Ok(json!({"action": "decline"}));
    }
    Ok(json!({"action": "accept", "content": content}))
}

#[cfg(test)]
mod tests;
