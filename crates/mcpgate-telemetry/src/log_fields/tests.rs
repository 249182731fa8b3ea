use std::io;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::DefaultFields;
use tracing_subscriber::layer::SubscriberExt;

use super::*;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buf {
    type Writer = Buf;
    fn make_writer(&'a self) -> Buf {
        self.clone()
    }
}

#[derive(Debug)]
struct Failure(Option<Box<Failure>>);
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "outer \x1b"
        } else {
            "inner"
        })
    }
}
impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.as_deref().map(|e| e as _)
    }
}

/// Every shape of field the gateway logs, in both orders of plain and not.
fn events() {
    let path = "/mcp/echo";
    let status = 200_u16;
    tracing::info!(
        target: "mcpgate::access",
        request_id = "19a3-000001",
        client = Some("127.0.0.1:5000".to_owned()),
        method = "POST",
        path,
        status,
        duration_ms = 1.25_f64,
        subject = None::<&str>,
        upstream = "echo",
        tool = "say \"hi\"",
        "{} {path} {status}",
        "POST",
    );
    tracing::warn!(
        quoted = "a\\b",
        plain = "x",
        ctl = "bell\x07",
        uni = "é",
        r#type = "t",
        "mixed\x1b[31m red"
    );
    tracing::info!(empty = "", n = -3_i64, yes = true, "x");
    tracing::error!(
        error = &Failure(Some(Box::new(Failure(None)))) as &dyn std::error::Error,
        after = "z"
    );
    tracing::info!(only = "plain");
    tracing::info!("message only");
}

fn render<N>(fields: N, ansi: bool) -> String
where
    N: for<'w> FormatFields<'w> + Send + Sync + 'static,
{
    let buf = Buf::default();
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(buf.clone())
        .without_time()
        .with_ansi(ansi)
        .fmt_fields(fields);
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, events);
    let out = buf.0.lock().unwrap().clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn lines_are_byte_for_byte_those_of_the_default_fields() {
    for ansi in [false, true] {
        let (ours, theirs) = (render(LogFields, ansi), render(DefaultFields::new(), ansi));
        assert_eq!(ours, theirs, "ansi = {ansi}");
        assert_eq!(ours.lines().count(), 6, "{ours}");
    }
    // The shortcut was taken, and the escaping cases were not.
    let plain = render(LogFields, false);
    assert!(
        plain.contains(r#"request_id="19a3-000001" client="127.0.0.1:5000""#),
        "{plain}"
    );
    assert!(plain.contains(r#"tool="say \"hi\"""#), "{plain}");
}
