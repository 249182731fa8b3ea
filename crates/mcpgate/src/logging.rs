//! Logging to stderr, human-readable or JSON; `MCPGATE_LOG` (or `RUST_LOG`) filters.
//! Human lines are coloured only on a terminal, and never with `NO_COLOR`.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub(crate) fn init(format: LogFormat, default: &str) {
    let filter = std::env::var("MCPGATE_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Colours only for a person at a terminal: not into files, pipes or a
/// supervisor's journal (a stdio child's stderr is a pipe the gateway reads),
/// and never with `NO_COLOR` set to anything but "" (no-color.org).
pub(crate) fn colour() -> bool {
    use std::io::IsTerminal as _;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}
