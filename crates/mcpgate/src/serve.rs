//! `mcpgate serve`: config → gateway → listener, and a graceful shutdown that
//! ends server streams, drains in-flight requests, then stops children.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use mcpgate_gateway::Gateway;

use crate::config::{AuthMode, LogFormat};
use crate::reload::{Overrides, Place, Running};

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

/// The configuration file `serve` reads: `--config`, else `./mcpgate.toml`;
/// `Some(None)` with `--demo` and neither (defaults and the environment);
/// `None` when there is none to read.
fn config_path(args: &ServeArgs) -> Option<Option<PathBuf>> {
    match (&args.config, args.demo) {
        (Some(p), _) => Some(Some(p.clone())),
        (None, true) => Some(None),
        (None, false) => {
            let default = std::path::Path::new("mcpgate.toml");
            default.exists().then(|| Some(default.to_path_buf()))
        }
    }
}

fn overrides(args: &ServeArgs) -> Overrides {
    Overrides {
        listen: args.listen,
        data_dir: args.data_dir.clone(),
        log_format: args.log_format,
        demo: args.demo,
        no_auth: args.no_auth,
    }
}

/// `server.worker_threads`, else one event loop per core.
fn event_loop_count(server: &crate::config::ServerConfig) -> usize {
    server
        .worker_threads
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

pub(crate) async fn run(args: ServeArgs) -> ExitCode {
    // Before anything can take long: until a handler is installed, SIGHUP
    // (`mcpgate reload`) would end the process.
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let Some(path) = config_path(&args) else {
        eprintln!(
            "mcpgate: no configuration: pass --config FILE (write one with `mcpgate init`), or try `mcpgate serve --demo`"
        );
        return ExitCode::from(2);
    };
    let overrides = overrides(&args);
    let (mut cfg, file) = match overrides.load(path.as_deref()) {
        Ok(c) => c,
        Err(problems) => return report(&problems),
    };
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
    // Before the gateway is built: its upstream clients keep one pool per loop.
    let loops = match crate::event_loops::EventLoops::start(event_loop_count(&cfg.server)) {
        Ok(l) => std::sync::Arc::new(l),
        Err(e) => {
            eprintln!("mcpgate: cannot start the event loops: {e}");
            return ExitCode::from(1);
        }
    };
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
    // Bound before the gateway is built: its address goes into session ids.
    let internal = match bind_internal(&cfg.server).await {
        Ok(i) => i,
        Err(problem) => return report(&[problem]),
    };
    let at = Place {
        public_url: public_url.clone(),
        local,
        authserver,
        internal_advertise: internal.as_ref().map(|(_, a)| a.clone()),
    };
    let gw_cfg = match crate::reload::gateway_config(&cfg, &at).await {
        Ok(c) => c,
        Err(problems) => return report(&problems),
    };
    let authserver = at.authserver.clone();
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
    let gateway = match Gateway::new(gw_cfg) {
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
    // On PostgreSQL, revocations made anywhere reach this replica at once;
    // the verified-credential cache (1 s) bounds it otherwise. Listening
    // starts before the banner: a replica that says it is up hears every
    // revocation from then on.
    let mut revocations = mcpgate_store::Revocations::listen(&cfg.store_url()).await;
    // A session a client ends here is ended on the replicas that continued it.
    let mut session_ends = mcpgate_store::SessionEnds::listen(&cfg.store_url());
    if let Some(ends) = &session_ends {
        gateway.announce_session_ends(ends.announcer());
    }
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
    for v in &cfg.virtual_servers {
        println!(
            "mcpgate: virtual server {} ({}) at {base}/mcp/{}",
            v.name,
            v.upstreams.join(", "),
            v.name
        );
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
    let pid_file = match crate::pid_file::PidFile::write(&cfg.server.data_dir) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!(
                "{e}; `mcpgate reload` will not find this server (send it SIGHUP yourself)"
            );
            None
        }
    };
    let mut running = Running::new((path, overrides), (cfg, file), at, gateway);
    let cfg = running.config().clone();
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
    // Says how many loops `server.worker_threads` gave, for an operator
    // tuning replicas.
    tracing::info!(
        event_loops = loops.count(),
        "serving connections on event loops, one thread each"
    );
    let server = crate::listener::spawn(listener, running.app(), conn_limits, loops.clone());
    let internal_server = internal.map(|(l, advertise)| {
        println!("mcpgate: internal listener for other replicas on {advertise}");
        crate::listener::spawn(l, running.internal_app(), conn_limits, loops.clone())
    });
    let stop = crate::shutdown::signal();
    tokio::pin!(stop);
    loop {
        let hup = async {
            match hangup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut stop => break,
            Some(()) = hup => {
                running.reload().await;
            }
            Some(from) = async {
                match revocations.as_mut() {
                    Some(r) => r.next().await,
                    None => std::future::pending().await,
                }
            } => {
                tracing::debug!(%from, "a revocation was announced: verifying every credential again");
                running.gateway().forget_verified();
            }
            Some(digest) = async {
                match session_ends.as_mut() {
                    Some(e) => e.next().await,
                    None => std::future::pending().await,
                }
            } => {
                running.gateway().end_announced_session(&digest);
            }
        }
    }
    tracing::info!("shutting down: ending server streams and draining in-flight requests");
    let gateway = running.gateway();
    // Long-lived GET streams would keep the drain waiting forever.
    gateway.end_streams();
    server.stop();
    if let Some(i) = &internal_server {
        i.stop();
    }
    let drained = async {
        server.drained().await;
        if let Some(i) = &internal_server {
            i.drained().await;
        }
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
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
    loops.stop();
    if let Some(f) = pid_file {
        f.remove();
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// How long the "shutting down" answers get to reach their clients.
const ABORT_FLUSH: Duration = Duration::from_secs(2);
/// The internal listener (`server.internal_listen`) and the address other
/// replicas use for it (`server.internal_advertise`, else the bound address).
async fn bind_internal(
    server: &crate::config::ServerConfig,
) -> Result<Option<(tokio::net::TcpListener, String)>, String> {
    let at = match server.internal_listen()? {
        crate::config::InternalListen::Off => return Ok(None),
        crate::config::InternalListen::At(at) => at,
    };
    let listener = tokio::net::TcpListener::bind(at)
        .await
        .map_err(|e| format!("cannot listen on server.internal_listen = {at}: {e}"))?;
    let bound = listener.local_addr().unwrap_or(at);
    let advertise = server
        .internal_advertise
        .clone()
        .unwrap_or_else(|| bound.to_string());
    Ok(Some((listener, advertise)))
}

fn report(problems: &[String]) -> ExitCode {
    for p in problems {
        eprintln!("error: {p}");
    }
    ExitCode::from(2)
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
