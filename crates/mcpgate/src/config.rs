//! `mcpgate.toml`: loading, environment overrides, and validation that reports
//! every problem with the file, the key and what is allowed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mcpgate_gateway::{Isolation, Limits, UpstreamConfig};
use mcpgate_guard::time::deserialize_opt_duration as opt_duration;
use serde::Deserialize;

mod env;
pub(crate) mod show;

use env::apply_env;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    #[serde(default)]
    pub(crate) server: ServerConfig,
    #[serde(default)]
    pub(crate) auth: AuthConfig,
    #[serde(default, rename = "upstream")]
    pub(crate) upstreams: Vec<UpstreamConfig>,
    /// `[[virtual_server]]`: several upstreams served as one.
    #[serde(default, rename = "virtual_server")]
    pub(crate) virtual_servers: Vec<mcpgate_gateway::VirtualServerConfig>,
    /// `[[rate_limit]]`: rate limits and daily quotas.
    #[serde(default, rename = "rate_limit")]
    pub(crate) rate_limits: Vec<mcpgate_gateway::RateLimitConfig>,
    /// `[authserver]`: the built-in OAuth 2.1 authorization server.
    #[serde(default)]
    pub(crate) authserver: mcpgate_authserver::Settings,
    #[serde(default)]
    pub(crate) metrics: crate::telemetry_config::MetricsConfig,
    #[serde(default)]
    pub(crate) telemetry: crate::telemetry_config::TelemetryConfig,
    #[serde(default)]
    pub(crate) audit: crate::telemetry_config::AuditConfig,
    /// `[store]`: where the state lives (SQLite by default, or PostgreSQL).
    #[serde(default)]
    pub(crate) store: StoreConfig,
    /// `[policy]`: Cedar rules for every tool call, prompt and resource read.
    #[serde(default)]
    pub(crate) policy: Option<PolicyConfig>,
}

/// `[policy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyConfig {
    /// The Cedar policies (relative paths: from the working directory).
    pub(crate) file: PathBuf,
    /// A Cedar schema the policies are validated against at load.
    #[serde(default)]
    pub(crate) schema: Option<PathBuf>,
}

/// `[store]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreConfig {
    /// `sqlite://<path>` or `postgres://…`; unset: `DATABASE_URL`, else
    /// `sqlite://<data_dir>/mcpgate.sqlite`.
    #[serde(default)]
    pub(crate) url: Option<String>,
}

impl Config {
    /// The store's location: `[store] url` (or `MCPGATE_STORE__URL`), else
    /// `DATABASE_URL`, else `<data_dir>/mcpgate.sqlite`. `load` has checked it parses.
    pub(crate) fn store_url(&self) -> mcpgate_store::StoreUrl {
        store_url(self.store.url.as_deref(), &self.server.data_dir)
            .unwrap_or_else(|_| mcpgate_store::StoreUrl::in_data_dir(&self.server.data_dir))
    }
}

/// `url` (else `DATABASE_URL`, else the default in `data_dir`) as a store location.
pub(crate) fn store_url(
    url: Option<&str>,
    data_dir: &Path,
) -> Result<mcpgate_store::StoreUrl, mcpgate_store::StoreError> {
    let from_env = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty());
    match url.map(str::to_owned).or(from_env) {
        Some(u) => mcpgate_store::StoreUrl::parse(&u),
        None => Ok(mcpgate_store::StoreUrl::in_data_dir(data_dir)),
    }
}

/// `[server]`.
// Each section below lists its keys field by field in the same few
// `#[serde(default)]` shapes: the keys differ, only their shape repeats, and
// each struct is its table's TOML surface (a misspelt key is an error).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerConfig {
    #[serde(default = "default_listen")]
    pub(crate) listen: SocketAddr,
    #[serde(default)]
    pub(crate) public_url: Option<url::Url>,
    #[serde(default = "default_data_dir")]
    pub(crate) data_dir: PathBuf,
    #[serde(default)]
    pub(crate) allowed_origins: Vec<String>,
    #[serde(default)]
    pub(crate) log_format: LogFormat,
    #[serde(default, deserialize_with = "opt_duration")]
    pub(crate) request_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub(crate) session_idle_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub(crate) session_max_age: Option<Duration>,
    /// The key that seals session ids (base64 of 32 bytes), shared by replicas.
    #[serde(default)]
    pub(crate) session_key: Option<secrecy::SecretString>,
    /// The previous session key during a rotation: it opens ids, never seals.
    #[serde(default)]
    pub(crate) session_key_previous: Option<secrecy::SecretString>,
    /// A file holding the session key (created when missing);
    /// default `<data_dir>/session.key`.
    #[serde(default)]
    pub(crate) session_key_file: Option<PathBuf>,
    /// Where other replicas forward requests for the stdio and legacy SSE
    /// sessions this one holds (`"off"`: nowhere; such sessions are then
    /// served by this replica only).
    #[serde(default = "default_internal_listen")]
    pub(crate) internal_listen: String,
    /// The `host:port` other replicas reach the internal listener at;
    /// default the address it is bound to.
    #[serde(default)]
    pub(crate) internal_advertise: Option<String>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub(crate) shutdown_grace: Option<Duration>,
    #[serde(default)]
    pub(crate) max_body_bytes: Option<usize>,
    #[serde(default)]
    pub(crate) replay_events: Option<usize>,
    /// From accept (or a request's first byte) to its complete head.
    #[serde(default, deserialize_with = "opt_duration")]
    pub(crate) header_read_timeout: Option<Duration>,
    /// A connection with no request in flight for this long is closed.
    #[serde(default, deserialize_with = "opt_duration")]
    pub(crate) idle_timeout: Option<Duration>,
    /// Connections beyond this are answered 503 and closed.
    #[serde(default)]
    pub(crate) max_connections: Option<usize>,
    #[serde(default)]
    pub(crate) max_sessions_per_subject: Option<usize>,
    #[serde(default)]
    pub(crate) max_children_per_subject: Option<usize>,
    /// Whether URLs the operator configured (`[[auth.jwt]] jwks_uri`,
    /// `[auth.introspection]`, upstream token endpoints, federation issuers)
    /// may be on loopback, private and link-local addresses. URLs that clients
    /// or documents name never may.
    #[serde(default)]
    pub(crate) outbound_private: mcpgate_fetch::Private,
    /// Event loops serving connections, one thread each; default one per
    /// core. Replicas that share a host's cores run better with fewer each
    /// (docs/DEPLOYMENT.md).
    #[serde(default)]
    pub(crate) worker_threads: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            public_url: None,
            data_dir: default_data_dir(),
            allowed_origins: Vec::new(),
            log_format: LogFormat::default(),
            request_timeout: None,
            session_idle_timeout: None,
            session_max_age: None,
            session_key: None,
            session_key_previous: None,
            session_key_file: None,
            internal_listen: default_internal_listen(),
            internal_advertise: None,
            shutdown_grace: None,
            max_body_bytes: None,
            replay_events: None,
            header_read_timeout: None,
            idle_timeout: None,
            max_connections: None,
            max_sessions_per_subject: None,
            max_children_per_subject: None,
            outbound_private: mcpgate_fetch::Private::default(),
            worker_threads: None,
        }
    }
}

fn default_internal_listen() -> String {
    "127.0.0.1:0".to_owned()
}

/// `server.internal_listen`, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InternalListen {
    Off,
    At(SocketAddr),
}

impl ServerConfig {
    /// `server.internal_listen` and `server.internal_advertise`, or what is wrong with them.
    pub(crate) fn internal_listen(&self) -> Result<InternalListen, String> {
        let text = self.internal_listen.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(InternalListen::Off);
        }
        let at: SocketAddr = text.parse().map_err(|_| {
            format!("server.internal_listen = {text:?}: an address and port (\"10.0.0.5:7070\", \"127.0.0.1:0\") or \"off\"")
        })?;
        if at.ip().is_unspecified() && self.internal_advertise.is_none() {
            return Err(format!(
                "server.internal_listen = {at} listens on every interface: set server.internal_advertise to the host:port other replicas reach this one at (e.g. the pod IP)"
            ));
        }
        if let Some(a) = &self.internal_advertise
            && (a.contains('/') || a.contains('@') || !a.contains(':'))
        {
            return Err(format!(
                "server.internal_advertise = {a:?}: a host:port, without scheme or path"
            ));
        }
        Ok(InternalListen::At(at))
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./mcpgate-data")
}

/// `server.log_format`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// `[auth]`.
// Keys field by field, as in `[server]` (why: there).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthConfig {
    #[serde(default)]
    pub(crate) mode: AuthMode,
    /// The header API keys may come in (besides `Authorization: Bearer`).
    #[serde(default = "default_api_key_header")]
    pub(crate) api_key_header: String,
    /// The claim that lists a caller's groups (JWT, introspection).
    #[serde(default = "default_groups_claim")]
    pub(crate) groups_claim: String,
    /// Issuers to name in RFC 9728 metadata besides the `[[auth.jwt]]` issuers.
    #[serde(default)]
    pub(crate) authorization_servers: Vec<String>,
    /// Accept API keys from `mcpgate keys create`.
    #[serde(default = "yes")]
    pub(crate) api_keys: bool,
    /// Accept HTTP Basic users from `mcpgate users add`.
    #[serde(default = "yes")]
    pub(crate) users: bool,
    /// Send HTTP upstreams a signed, short-lived `X-Mcpgate-Identity` JWT.
    #[serde(default = "yes")]
    pub(crate) identity_token: bool,
    /// Send HTTP upstreams plain `X-Mcpgate-Subject`/`-Scopes`/`-Client-Id` headers.
    #[serde(default = "yes")]
    pub(crate) identity_headers: bool,
    /// The order verifiers are tried in.
    #[serde(default = "default_order")]
    pub(crate) order: Vec<VerifierKind>,
    /// Static tokens from configuration, a file or the environment.
    #[serde(default)]
    pub(crate) static_tokens: Option<mcpgate_guard::StaticTokensConfig>,
    /// JWT issuers.
    #[serde(default)]
    pub(crate) jwt: Vec<mcpgate_guard::JwtConfig>,
    /// RFC 7662 introspection of opaque tokens.
    #[serde(default)]
    pub(crate) introspection: Option<mcpgate_guard::IntrospectionConfig>,
    /// Users' own upstream keys, passed through to one upstream each.
    #[serde(default)]
    pub(crate) upstream_key: Vec<mcpgate_guard::UpstreamKeyConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::default(),
            api_key_header: default_api_key_header(),
            groups_claim: default_groups_claim(),
            authorization_servers: Vec::new(),
            api_keys: true,
            users: true,
            identity_token: true,
            identity_headers: true,
            order: default_order(),
            static_tokens: None,
            jwt: Vec::new(),
            introspection: None,
            upstream_key: Vec::new(),
        }
    }
}

fn default_api_key_header() -> String {
    "x-api-key".into()
}

fn default_groups_claim() -> String {
    "groups".into()
}

fn yes() -> bool {
    true
}

fn default_order() -> Vec<VerifierKind> {
    use VerifierKind::*;
    vec![
        ApiKeys,
        StaticTokens,
        Users,
        UpstreamKey,
        Jwt,
        Introspection,
    ]
}

/// One kind of verifier, for `auth.order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum VerifierKind {
    /// `mcpgate keys` API keys.
    ApiKeys,
    /// `[auth.static_tokens]`.
    StaticTokens,
    /// `mcpgate users` Basic users.
    Users,
    /// `[[auth.upstream_key]]`.
    UpstreamKey,
    /// `[[auth.jwt]]`, in the order written.
    Jwt,
    /// `[auth.introspection]`.
    Introspection,
}

/// `auth.mode`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AuthMode {
    /// Every request must carry a valid credential.
    #[default]
    Required,
    /// Anonymous callers get what needs no scope.
    Optional,
    /// No authentication: development on loopback only.
    Disabled,
}

impl ServerConfig {
    pub(crate) fn limits(&self) -> Limits {
        let d = Limits::default();
        Limits {
            max_body_bytes: self.max_body_bytes.unwrap_or(d.max_body_bytes),
            request_timeout: self.request_timeout.unwrap_or(d.request_timeout),
            session_idle_timeout: self.session_idle_timeout.unwrap_or(d.session_idle_timeout),
            replay_events: self.replay_events.unwrap_or(d.replay_events),
            session_max_age: self.session_max_age.unwrap_or(d.session_max_age),
            max_sessions_per_subject: self
                .max_sessions_per_subject
                .unwrap_or(d.max_sessions_per_subject),
            max_children_per_subject: self
                .max_children_per_subject
                .unwrap_or(d.max_children_per_subject),
            ..d
        }
    }

    /// The listener's limits; the connection cap defaults to half `nofile`.
    pub(crate) fn conn_limits(&self, nofile: Option<u64>) -> crate::listener::ConnLimits {
        crate::listener::ConnLimits {
            header_read_timeout: self.header_read_timeout.unwrap_or(Duration::from_secs(10)),
            idle_timeout: self.idle_timeout.unwrap_or(Duration::from_secs(120)),
            max_connections: crate::fd_limit::max_connections(self.max_connections, nofile),
        }
    }

    /// The URL clients use; derived from `listen` unless configured.
    pub(crate) fn public_url(&self) -> url::Url {
        if let Some(u) = &self.public_url {
            return u.clone();
        }
        let host = if self.listen.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            self.listen.ip().to_string()
        };
        let host = if self.listen.is_ipv6() && !self.listen.ip().is_unspecified() {
            format!("[{host}]")
        } else {
            host
        };
        url::Url::parse(&format!("http://{host}:{}", self.listen.port())).unwrap_or_else(|_| {
            url::Url::parse("http://127.0.0.1:8080").expect("a constant URL parses")
        })
    }
}

/// Where a configuration came from, for messages: the file, and the keys
/// that `MCPGATE_…` environment variables set (a problem with one of those
/// names the variable, since the file does not hold that value).
#[derive(Debug, Clone)]
pub(crate) struct Source(pub(crate) String, pub(crate) Vec<(String, String)>);

impl Source {
    /// The prefix of a message about `key` (a dotted path such as
    /// `server.listen` or `server.listen[0]`): the variable that set it, else the file.
    fn at(&self, key: &str) -> String {
        match self.1.iter().find(|(k, _)| {
            key == k || key.starts_with(&format!("{k}.")) || key.starts_with(&format!("{k}["))
        }) {
            Some((k, var)) => format!("environment {var} (sets {k})"),
            None => self.0.clone(),
        }
    }
}

/// Prints `load`'s problems on stderr, one `error:` line each, then how many
/// there were: `{lead}N problem(s) found{tail}`.
pub(crate) fn eprint_problems(problems: &[String], lead: &str, tail: &str) {
    for p in problems {
        eprintln!("error: {p}");
    }
    let s = if problems.len() == 1 { "" } else { "s" };
    eprintln!("{lead}{} problem{s} found{tail}", problems.len());
}

/// Loads the file (if any), applies `MCPGATE_…` overrides, and validates.
/// Every problem found is returned, each naming the file and the key.
pub(crate) fn load(path: Option<&Path>) -> Result<Config, Vec<String>> {
    load_layers(path).map(|(c, _)| c)
}

/// What the file and the environment set, for `check-config --show`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layers {
    /// The file's table after the environment's overrides.
    pub(crate) merged: toml::Table,
    /// Each key an `MCPGATE_…` variable set (dotted), with the variable.
    pub(crate) from_env: Vec<(String, String)>,
}

/// [`load`], also returning what each layer set.
pub(crate) fn load_layers(path: Option<&Path>) -> Result<(Config, Layers), Vec<String>> {
    let (mut value, source) = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                vec![format!(
                    "{}: cannot read the configuration file: {e}",
                    p.display()
                )]
            })?;
            let v: toml::Table = toml::from_str(&text)
                .map_err(|e| vec![format!("{}: {}", p.display(), e.to_string().trim())])?;
            (v, Source(p.display().to_string(), Vec::new()))
        }
        None => (toml::Table::new(), Source("(defaults)".into(), Vec::new())),
    };
    let mut source = source;
    let mut problems = Vec::new();
    source.1 = apply_env(&mut value, std::env::vars(), &mut problems);
    let layers = Layers {
        merged: value.clone(),
        from_env: source.1.clone(),
    };
    let config = deserialize_all(value, &source, &mut problems);
    if let Some(c) = &config {
        validate(c, &source, &mut problems);
    }
    match config {
        Some(c) if problems.is_empty() => Ok((c, layers)),
        _ => Err(problems),
    }
}

/// Deserializes, and on each error records it, removes the offending key and tries
/// again, so that one run reports every structural problem.
fn deserialize_all(
    mut value: toml::Table,
    source: &Source,
    problems: &mut Vec<String>,
) -> Option<Config> {
    for _ in 0..64 {
        let de = toml::Value::Table(value.clone());
        match serde_path_to_error::deserialize::<_, Config>(de) {
            Ok(c) => return Some(c),
            Err(e) => {
                let path = e.path().to_string();
                // toml appends "in `section`"; the path already says where.
                let msg = e
                    .inner()
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let key = if path == "." {
                    String::new()
                } else {
                    path.clone()
                };
                problems.push(format!(
                    "{}: {}{}",
                    // The unknown key itself: an `MCPGATE_…` variable may have set it.
                    source.at(&unknown_key_path(&path, &msg).join(".")),
                    if key.is_empty() {
                        String::new()
                    } else {
                        format!("{key}: ")
                    },
                    msg.trim()
                ));
                let segments = unknown_key_path(&path, &msg);
                if !remove_path(&mut value, &segments) {
                    return None;
                }
            }
        }
    }
    None
}

/// The key to drop after an error: the unknown field itself, or the bad value.
fn unknown_key_path(path: &str, msg: &str) -> Vec<String> {
    let mut segs: Vec<String> = if path == "." || path.is_empty() {
        Vec::new()
    } else {
        path.split('.').map(str::to_owned).collect()
    };
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some(field) = rest.split('`').next()
        && segs.last().map(String::as_str) != Some(field)
    {
        segs.push(field.to_owned());
    }
    segs
}

fn remove_path(table: &mut toml::Table, segs: &[String]) -> bool {
    let Some((last, parents)) = segs.split_last() else {
        return false;
    };
    let mut cur = table;
    for s in parents {
        // "upstream[0]" style segments.
        let (name, index) = match s.split_once('[') {
            Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()),
            None => (s.as_str(), None),
        };
        let next = match (cur.get_mut(name), index) {
            (Some(toml::Value::Table(t)), None) => t,
            (Some(toml::Value::Array(a)), Some(i)) => match a.get_mut(i) {
                Some(toml::Value::Table(t)) => t,
                _ => return false,
            },
            _ => return false,
        };
        cur = next;
    }
    let (name, index) = match last.split_once('[') {
        Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()),
        None => (last.as_str(), None),
    };
    match index {
        None => cur.remove(name).is_some(),
        Some(i) => match cur.get_mut(name) {
            Some(toml::Value::Array(a)) if i < a.len() => {
                a.remove(i);
                true
            }
            _ => false,
        },
    }
}

fn validate(c: &Config, source: &Source, problems: &mut Vec<String>) {
    let f = &source.0;
    if let Err(e) = store_url(c.store.url.as_deref(), &c.server.data_dir) {
        let at = if c.store.url.is_some() {
            format!("{}: store.url", source.at("store.url"))
        } else {
            "environment DATABASE_URL".to_owned()
        };
        problems.push(format!("{at}: {e}"));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, u) in c.upstreams.iter().enumerate() {
        let at = format!("{f}: upstream[{i}]");
        if u.name.is_empty()
            || !u
                .name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            problems.push(format!("{at}.name: {:?} is not allowed: use letters, digits, '-' and '_' (it becomes the path /mcp/<name>)", u.name));
        }
        if !seen.insert(u.name.clone()) {
            problems.push(format!(
                "{at}.name: {:?} is used by another upstream; names must be unique",
                u.name
            ));
        }
        match (&u.command, &u.url) {
            (Some(_), Some(_)) => problems.push(format!("{at}: set either command (stdio) or url (HTTP), not both")),
            (None, None) => problems.push(format!("{at}: set command = [\"program\", \"arg\"…] for a stdio server or url = \"http://…\" for an HTTP one")),
            (Some(cmd), None) => {
                if cmd.is_empty() || cmd[0].trim().is_empty() {
                    problems.push(format!("{at}.command: must name a program, e.g. [\"npx\", \"-y\", \"@modelcontextprotocol/server-everything\"]"));
                }
                if u.transport.is_some() {
                    problems.push(format!("{at}.transport: applies to url upstreams only"));
                }
                if !u.headers.is_empty() {
                    problems.push(format!("{at}.headers: applies to url upstreams only (use env for stdio)"));
                }
            }
            (None, Some(url)) => {
                match url::Url::parse(url) {
                    Ok(p) if matches!(p.scheme(), "http" | "https") => {}
                    Ok(p) => problems.push(format!("{at}.url: scheme {:?} is not allowed: use http or https", p.scheme())),
                    Err(e) => problems.push(format!("{at}.url: {url:?} is not a URL ({e})")),
                }
                if u.isolation == Isolation::Shared {
                    problems.push(format!("{at}.isolation: applies to stdio (command) upstreams only"));
                }
                if !u.env.is_empty() || u.cwd.is_some() {
                    problems.push(format!("{at}: env and cwd apply to stdio (command) upstreams only"));
                }
                if let Some(path) = &u.ca_file {
                    if !url::Url::parse(url).is_ok_and(|p| p.scheme() == "https") {
                        problems.push(format!("{at}.ca_file: applies to https upstreams only, but url is {url:?}"));
                    } else if let Err(e) = mcpgate_gateway::load_upstream_roots(path) {
                        problems.push(format!("{at}.ca_file: {e}"));
                    }
                }
            }
        }
        if u.command.is_some() && u.ca_file.is_some() {
            problems.push(format!(
                "{at}.ca_file: applies to https upstreams only (this one runs a command)"
            ));
        }
        if u.max_children == 0 {
            problems.push(format!("{at}.max_children: must be at least 1"));
        }
        for p in mcpgate_gateway::credential_problems(u) {
            problems.push(format!("{f}: {p}"));
        }
    }
    if let Some(u) = &c.server.public_url
        && !matches!(u.scheme(), "http" | "https")
    {
        problems.push(format!(
            "{}: server.public_url: scheme must be http or https",
            source.at("server.public_url")
        ));
    }
    for o in &c.server.allowed_origins {
        match url::Url::parse(o) {
            Ok(u) if u.path() == "/" && u.query().is_none() && u.host().is_some() => {}
            _ => problems.push(format!("{}: server.allowed_origins: {o:?} is not an origin; write scheme://host[:port], e.g. \"http://localhost:6274\"", source.at("server.allowed_origins"))),
        }
    }
    if c.server.max_connections == Some(0) {
        problems.push(format!("{f}: server.max_connections: must be at least 1"));
    }
    for (key, v) in [
        ("header_read_timeout", c.server.header_read_timeout),
        ("idle_timeout", c.server.idle_timeout),
    ] {
        if v == Some(Duration::ZERO) {
            problems.push(format!("{f}: server.{key}: must be longer than 0s"));
        }
    }
    if c.server.max_body_bytes == Some(0) {
        problems.push(format!(
            "{}: server.max_body_bytes: must be greater than 0",
            source.at("server.max_body_bytes")
        ));
    }
}

/// Problems with the `[auth]` section as it will run (after `--demo` and flags).
pub(crate) fn auth_problems(c: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    if c.auth.mode == AuthMode::Disabled && !c.server.listen.ip().is_loopback() {
        problems.push(format!(
            "auth.mode = \"disabled\" is allowed only on a loopback address, but server.listen = {}; bind 127.0.0.1 or enable authentication",
            c.server.listen
        ));
    }
    let a = &c.auth;
    let any_verifier = a.api_keys
        || a.users
        || a.static_tokens.is_some()
        || !a.jwt.is_empty()
        || a.introspection.is_some()
        || !a.upstream_key.is_empty()
        || c.authserver.enabled;
    if a.mode != AuthMode::Disabled && !any_verifier {
        problems.push(
            "auth: every verifier is switched off, so nobody could sign in; enable api_keys or users, or configure [auth.static_tokens], [[auth.jwt]] or [auth.introspection]".into(),
        );
    }
    if http::HeaderName::try_from(a.api_key_header.as_str()).is_err() {
        problems.push(format!(
            "auth.api_key_header: {:?} is not a valid header name",
            a.api_key_header
        ));
    }
    for k in &a.upstream_key {
        if !c.upstreams.iter().any(|u| u.name == k.upstream) {
            problems.push(format!(
                "auth.upstream_key: upstream {:?} is not configured",
                k.upstream
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests;
