//! `mcpgate serve`: config → gateway → listener, and a graceful shutdown that
//! ends server streams, drains in-flight requests, then stops children.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use mcpgate_gateway::{Gateway, GatewayConfig, Isolation, OriginPolicy, UpstreamConfig};

use crate::config::{self, AuthMode, LogFormat};

/// `mcpgate serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// The configuration file (optional with --demo).
    #[arg(long, short, env = "MCPGATE_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Listen address; overrides server.listen.
    #[arg(long)]
    pub(crate) listen: Option<SocketAddr>,
    /// Data directory; overrides server.data_dir.
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Serve the built-in demo server at /mcp (adds an upstream named "demo").
    /// It requires an API key, created and printed on first start.
    #[arg(long)]
    pub(crate) demo: bool,
    /// With --demo: no authentication at all (loopback only).
    #[arg(long, requires = "demo")]
    pub(crate) no_auth: bool,
    /// Log format; overrides server.log_format.
    #[arg(long, value_enum)]
    pub(crate) log_format: Option<LogFormat>,
}

pub(crate) async fn run(args: ServeArgs) -> ExitCode {
    let loaded = match (&args.config, args.demo) {
        (Some(p), _) => config::load(Some(p)),
        // Defaults, then the `MCPGATE_…` variables.
        (None, true) => config::load(None),
        (None, false) => {
            let default = std::path::Path::new("mcpgate.toml");
            if default.exists() {
                config::load(Some(default))
            } else {
                eprintln!(
                    "mcpgate: no configuration: pass --config FILE (write one with `mcpgate init`), or try `mcpgate serve --demo`"
                );
                return ExitCode::from(2);
            }
        }
    };
    let mut cfg = match loaded {
        Ok(c) => c,
        Err(problems) => return report(&problems),
    };
    if let Some(l) = args.listen {
        cfg.server.listen = l;
    }
    if let Some(d) = args.data_dir {
        cfg.server.data_dir = d;
    }
    if let Some(f) = args.log_format {
        cfg.server.log_format = f;
    }
    if args.demo {
        cfg.auth.mode = if args.no_auth {
            AuthMode::Disabled
        } else {
            AuthMode::Required
        };
        // The demo signs users in through the built-in authorization server too.
        cfg.authserver.enabled = !args.no_auth;
        cfg.upstreams.retain(|u| u.name != "demo");
        match demo_upstream(&cfg.server.data_dir) {
            Ok(u) => cfg.upstreams.insert(0, u),
            Err(e) => {
                eprintln!("mcpgate: {e}");
                return ExitCode::from(1);
            }
        }
    }
    // The same refusals `check-config` reports, after the flags applied.
    let problems = crate::preflight::refusals(&cfg);
    if !problems.is_empty() {
        return report(&problems);
    }
    let Ok(tracing) = crate::observability::init_logging(&cfg) else {
        return ExitCode::from(1);
    };
    if let Err(e) = create_data_dir(&cfg.server.data_dir) {
        eprintln!(
            "mcpgate: cannot create the data directory {}: {e}",
            cfg.server.data_dir.display()
        );
        return ExitCode::from(1);
    }
    // Before the first socket: every descriptor the process may open needs the raised limit.
    let nofile = crate::fd_limit::raise();
    // Reported now and on /readyz; serve still starts (the other upstreams work).
    for p in crate::preflight::readiness_problems(&cfg) {
        tracing::warn!("not ready: {p}");
    }
    let listener = match tokio::net::TcpListener::bind(cfg.server.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mcpgate: cannot listen on {}: {e}", cfg.server.listen);
            return ExitCode::from(1);
        }
    };
    let local = listener.local_addr().unwrap_or(cfg.server.listen);
    cfg.server.listen = local;
    let public_url = cfg.server.public_url();
    // Before any verifier or fetcher is built: they read it once.
    mcpgate_fetch::Private::configure(cfg.server.outbound_private);
    let authserver = match crate::authserver::start(&cfg, &public_url).await {
        Ok(a) => a,
        Err(problems) => return report(&problems),
    };
    let auth = match crate::auth::build(&cfg, &public_url, authserver.as_ref()).await {
        Ok(a) => a,
        Err(problems) => return report(&problems),
    };
    let demo_key = if args.demo && cfg.auth.mode != AuthMode::Disabled {
        match crate::auth::ensure_demo_key(&cfg.store_url()).await {
            Ok(k) => k,
            Err(e) => return report(&[e]),
        }
    } else {
        None
    };
    let demo_admin = match (&authserver, args.demo) {
        (Some(_), true) => match crate::authserver::ensure_demo_admin(&cfg.store_url()).await {
            Ok(p) => p,
            Err(e) => return report(&[e]),
        },
        _ => None,
    };
    let user_sources = match crate::vault_cmd::wire(
        authserver.as_ref(),
        &cfg.upstreams,
        &cfg.authserver
            .federation
            .iter()
            .map(|p| p.name.clone())
            .collect::<Vec<_>>(),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => return report(&[e]),
    };
    let gateway = match Gateway::new(GatewayConfig {
        upstreams: cfg.upstreams.clone(),
        limits: cfg.server.limits(),
        origins: OriginPolicy::new(&public_url, local, &cfg.server.allowed_origins),
        auth,
        public_url: public_url.clone(),
        user_sources,
        readiness_checks: vec![std::sync::Arc::new(crate::preflight::Readiness {
            data_dir: cfg.server.data_dir.clone(),
            upstreams: cfg.upstreams.clone(),
        })],
    }) {
        Ok(g) => g,
        Err(e) => return report(&[e.to_string()]),
    };
    if cfg.auth.mode == AuthMode::Disabled {
        tracing::warn!(
            "authentication is DISABLED: anyone who can reach {local} can use every upstream; for development on loopback only"
        );
    }
    let obs = match crate::observability::start(&cfg, tracing).await {
        Ok(o) => o,
        Err(e) => return report(&[e]),
    };
    let base = public_url.as_str().trim_end_matches('/').to_owned();
    // What the restart banners tell the user to pass as --data-dir.
    let data_dir_abs =
        std::path::absolute(&cfg.server.data_dir).unwrap_or_else(|_| cfg.server.data_dir.clone());
    // Both, labelled: behind a proxy the bound socket and the URL clients
    // (and token audiences) use differ, and each answers a different question.
    println!("mcpgate: listening on http://{local}");
    println!("mcpgate: public URL {base}");
    for u in &cfg.upstreams {
        println!("mcpgate: upstream {} at {base}/mcp/{}", u.name, u.name);
    }
    if args.demo {
        let auth = match (&demo_key, cfg.auth.mode) {
            (_, AuthMode::Disabled) => crate::init::DemoAuth::Disabled,
            (Some(k), _) => crate::init::DemoAuth::NewKey(k),
            (None, _) => crate::init::DemoAuth::KeyExists(&data_dir_abs),
        };
        print!("{}", crate::init::demo_banner(&base, &auth));
        if let Some(u) = obs.metrics_url() {
            println!("mcpgate: metrics at {u}");
        }
        if let Some(a) = &authserver {
            print!(
                "{}",
                crate::authserver::demo_banner(a, demo_admin.as_deref(), &data_dir_abs)
            );
        }
    }
    let _reaper = gateway.spawn_reaper(Duration::from_secs(30));
    let app = crate::authserver::merge(gateway.router(), authserver.as_ref());
    let app = mcpgate_telemetry::observe(app);
    let _maintenance = authserver.as_ref().map(|a| {
        a.spawn_maintenance(
            cfg.authserver
                .maintenance_interval
                .max(Duration::from_secs(1)),
        )
    });
    let grace = cfg.server.shutdown_grace.unwrap_or(Duration::from_secs(10));
    let conn_limits = cfg.server.conn_limits(nofile);
    tracing::info!(
        max_connections = conn_limits.max_connections,
        header_read_timeout = ?conn_limits.header_read_timeout,
        idle_timeout = ?conn_limits.idle_timeout,
        "connection limits"
    );
    let server = crate::listener::spawn(listener, app, conn_limits);
    crate::shutdown::signal().await;
    tracing::info!("shutting down: ending server streams and draining in-flight requests");
    // Long-lived GET streams would keep the drain waiting forever.
    gateway.end_streams();
    server.stop();
    if tokio::time::timeout(grace, server.drained()).await.is_err() {
        tracing::warn!(
            ?grace,
            "in-flight requests did not finish within the shutdown grace period; answering them that the gateway is shutting down"
        );
        // Answered before the children stop, so clients read "shutting down"
        // rather than "the upstream closed the connection".
        gateway.abort_in_flight();
        let _ = tokio::time::timeout(ABORT_FLUSH, server.drained()).await;
    }
    gateway.shutdown(Duration::from_secs(5)).await;
    obs.stop().await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// How long the "shutting down" answers get to reach their clients.
const ABORT_FLUSH: Duration = Duration::from_secs(2);
fn report(problems: &[String]) -> ExitCode {
    for p in problems {
        eprintln!("error: {p}");
    }
    ExitCode::from(2)
}

/// The demo upstream: this same binary's `demo-server`, one child per session.
fn demo_upstream(data_dir: &std::path::Path) -> Result<UpstreamConfig, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the mcpgate executable for the demo server: {e}"))?;
    let dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    // Reading needs notes:read, creating needs notes:write (tools/list hides the rest).
    let toml = format!(
        "name = \"demo\"\ncommand = [{:?}, \"demo-server\", \"--data-dir\", {:?}]\n\
         tool_scopes = {{ \"create_*\" = \"notes:write\", \"list_secure_notes\" = \"notes:read\" }}\n\
         resource_scopes = {{ \"user://*\" = \"notes:read\" }}\n\
         prompt_scopes = {{ \"note_summary\" = \"notes:read\" }}\n",
        exe.display().to_string(),
        dir.display().to_string()
    );
    let mut u: UpstreamConfig = toml::from_str(&toml).map_err(|e| e.to_string())?;
    u.isolation = Isolation::Session;
    Ok(u)
}

fn create_data_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    } else {
        let meta = std::fs::metadata(dir)?;
        if !meta.is_dir() {
            // preflight refuses this before; a race (replaced since) lands here.
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "it exists and is not a directory",
            ));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(dir = %dir.display(), "the data directory is readable by other users; chmod 700 it");
        }
    }
    Ok(())
}
