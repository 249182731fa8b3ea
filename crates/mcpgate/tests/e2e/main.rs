//! End-to-end tests of the `mcpgate` binary: real gateway processes, real
//! upstream children (the demo server, the npm `server-everything`), real
//! clients (rmcp and raw HTTP), on loopback only, in temporary directories.
//!
//! - `rmcp_flows`: an rmcp client through the gateway to the demo (stdio and HTTP upstreams);
//! - `everything`: the reference `server-everything` (stdio and Streamable HTTP) through the gateway;
//! - `lifecycle`: stream resumption, crashed children, unreachable upstreams, limits, restarts;
//! - `concurrency`: many sessions sharing one child without crossed answers;
//! - `auth`: the guard with API keys, Basic users and JWTs, scopes, sessions bound to
//!   their subject, revocation, and the identity HTTP upstreams receive;
//! - `credentials`: outbound upstream credentials (login + refresh, client credentials,
//!   static secrets, token exchange) against small loopback token servers;
//! - `oauth_rmcp`: rmcp's OAuth client against the built-in authorization server;
//! - `federation`: sign-in through a GitHub-shaped server and through a second mcpgate
//!   as OIDC provider, federated tokens forwarded, refreshed and revoked;
//! - `connections`: header-read and idle timeouts, the connection cap under a low fd limit;
//! - `bad_bodies`: oversized, deeply nested and badly identified bodies, refused quickly;
//! - `shutdown`: calls in flight past the shutdown grace are told the gateway is shutting down;
//! - `upstream_timeouts`: `request_timeout` over every stage of an upstream exchange
//!   (hanging HTTP upstreams, silent SSE answers, stdio children);
//! - `stdio_pipes`: the demo server and the bridge read and write their stdio pipes without a blocking thread (issue 17);
//! - `upstream_children`: no leaked children, per-subject caps, bad child output skipped;
//! - `outbound`: the SSRF-guarded fetcher (a loopback `jwks_uri` is never connected to, an endless JWKS is cut off);
//! - `scenarios`: one test per documented scenario of issue 12 (and which other test proves the rest);
//! - `checks`: what check-config and serve both refuse, what /readyz reports, the banner,
//!   and the client commands against a server that needs no sign-in;
//! - `vault`: per-user secrets from the vault (account page, isolation between users,
//!   the OAuth façade, master key rotation);
//! - `disk_full`: the data directory on a tiny tmpfs, filled and freed: nothing acknowledged
//!   is lost, nothing refused half-happens, storage errors are 503 with `Retry-After`;
//! - `registration_rate`: open dynamic registration limited per client address;
//! - `resources`: tokens bound to their upstream, registered resource servers, who may introspect;
//! - `hardening`: the authorization server against an attacker (issue 10);
//! - `ops`: configuration from the environment, `check-config --show`, colours, the demo's small things (issue 15).
//! - `reload`: SIGHUP and `mcpgate reload` apply upstreams, scopes, issuers and origins
//!   without a restart, keep unchanged upstreams' sessions, refuse a bad file whole (issue 15).
//! - `session_resume`: SSE streams (the GET stream, also after its replica stopped, and a POST's answer)
//!   read on one replica resume on another through the upstream's event ids (issue 14).
//! - `session_replicas`: two replicas sharing a session key: a session continues on either, DELETE on
//!   one ends it on both, forged, foreign-key and other users' ids are 404, key rotation (issue 14).
//! - `replicas`: three `mcpgate serve` on one PostgreSQL database (and one on SQLite): a code
//!   and a refresh token fired at all of them at once are honoured exactly once, 200 times;
//! - `observability`: `/metrics`, the access log, refused OAuth requests at warn, the audit trail (issue 15).
//! - `metrics_gauges`: sessions, children, upstream liveness, the gateway's share and the legacy front in `/metrics`.
//! - `dpop`: DPoP-bound tokens (RFC 9449) from `/token` (nonces, bound refresh) to an upstream
//!   with `dpop = "required"`, and every way a proof can be wrong.
//! - `audit_events`: each security event of issue 15 caused through the binary and read back with `audit list`.
//! - `virtual_servers`: an rmcp client through a virtual server over stdio and HTTP members (issue 18).
//! - `rate_limits`: an rmcp client under `[[rate_limit]]`: exactly N of concurrent calls pass, the rest
//!   get -32029; a request-level rule shows as HTTP 429 with `Retry-After` (issue 18).

// Sampling is deprecated by SEP-2577, but clients still use it and the gateway relays it.
#![allow(deprecated)]

mod audit_events;
mod auth;
mod authserver;
mod authserver_more;
mod authserver_path;
mod bad_bodies;
mod checks;
mod concurrency;
mod connections;
mod credentials;
mod disk_full;
mod dpop;
mod everything;
mod federation;
mod hardening;
mod harness;
mod id_jag;
mod lifecycle;
mod metrics_gauges;
mod oauth_rmcp;
mod observability;
mod ops;
mod outbound;
mod rate_limits;
mod registration_rate;
mod reload;
mod replicas;
mod resources;
mod revocation_replicas;
mod rmcp_flows;
mod scenarios;
mod session_ends;
mod session_forwarding;
mod session_replicas;
mod session_resume;
mod shutdown;
mod stdio_pipes;
mod upstream_children;
mod upstream_timeouts;
mod vault;
mod virtual_servers;
