//! What the demo server is started with.

use std::path::PathBuf;

/// What the demo server needs to start.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where `demo.sqlite` lives; created if missing.
    pub data_dir: PathBuf,
    /// Names of the environment variables `health_check` reports on
    /// (as configured or missing, never their values).
    pub credential_names: Vec<String>,
}
