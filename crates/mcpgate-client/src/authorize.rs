//! The authorization-code flow with PKCE: the authorization URL, the three
//! ways to get the code back (loopback callback with a browser, pasted by
//! hand, or fetched by the CLI itself for servers that approve without a
//! person), and the checks on the answer (`state`, RFC 9207 `iss`).

#[cfg(test)]
mod tests;

mod loopback;

use std::io::BufRead as _;
use std::time::Duration;

use url::Url;

use crate::error::ClientError;
use crate::metadata::AuthServerMetadata;
use crate::pkce::{Pkce, random_token};

pub use loopback::Loopback;

/// The out-of-band redirect URI for servers that show the code on a page.
pub const OOB_REDIRECT_URI: &str = "urn:ietf:wg:oauth:2.0:oob";

/// One authorization request in flight.
#[derive(Debug)]
pub struct Request {
    /// The URL to send the person (or the CLI) to.
    pub url: Url,
    /// The `state` sent.
    pub state: String,
    /// The PKCE pair.
    pub pkce: Pkce,
    /// The redirect URI sent.
    pub redirect_uri: String,
}

/// Builds the authorization request: `response_type=code`, client ID,
/// redirect URI, scope (if any), `state`, S256 challenge and `resource`.
pub fn build_request(
    meta: &AuthServerMetadata,
    client_id: &str,
    redirect_uri: &str,
    scope: Option<&str>,
    resource: &str,
) -> Result<Request, ClientError> {
    let endpoint = meta.authorization_endpoint.as_deref().ok_or_else(|| {
        ClientError::Unsafe(format!("{} has no authorization_endpoint", meta.issuer))
    })?;
    let mut url = Url::parse(endpoint)
        .map_err(|e| ClientError::Unsafe(format!("authorization_endpoint {endpoint:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ClientError::Unsafe(format!(
            "authorization_endpoint {endpoint:?} is not http(s)"
        )));
    }
    let pkce = Pkce::new();
    let state = random_token(24);
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri);
        if let Some(scope) = scope.filter(|s| !s.is_empty()) {
            q.append_pair("scope", scope);
        }
        q.append_pair("state", &state)
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("resource", resource);
    }
    Ok(Request {
        url,
        state,
        pkce,
        redirect_uri: redirect_uri.to_owned(),
    })
}

/// Checks an authorization response (its query pairs) and returns the code:
/// an `error` is reported, `state` must match, and `iss` (RFC 9207) must be
/// the issuer when present — and present when the server promises it.
pub fn code_from_response(
    pairs: &[(String, String)],
    expected_state: &str,
    meta: &AuthServerMetadata,
) -> Result<String, ClientError> {
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match get("iss") {
        Some(iss) if iss != meta.issuer => {
            return Err(ClientError::Authorization(format!(
                "the response came from issuer {iss:?}, not {:?} (RFC 9207 mix-up defence)",
                meta.issuer
            )));
        }
        None if meta.authorization_response_iss_parameter_supported => {
            return Err(ClientError::Authorization(
                "the response lacks the iss parameter its server promises (RFC 9207)".into(),
            ));
        }
        _ => {}
    }
    if let Some(error) = get("error") {
        let description = get("error_description")
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        return Err(ClientError::Authorization(format!(
            "the authorization server answered {error}{description}"
        )));
    }
    if get("state") != Some(expected_state) {
        return Err(ClientError::Authorization(
            "the state parameter does not match this sign-in (a stale or forged response)".into(),
        ));
    }
    get("code")
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ClientError::Authorization("the response carries no code".into()))
}

fn pairs_of(url: &Url) -> Vec<(String, String)> {
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Whether `location` is a redirect to `redirect_uri` (query aside).
fn is_redirect_target(location: &Url, redirect_uri: &str) -> bool {
    let Ok(target) = Url::parse(redirect_uri) else {
        return false;
    };
    location.scheme() == target.scheme()
        && location.host_str() == target.host_str()
        && location.port_or_known_default() == target.port_or_known_default()
        && location.path() == target.path()
}

/// Opens the browser (through a library, never a shell), waits for the
/// loopback callback; prints the URL on stderr as a fallback.
pub async fn via_browser(
    req: &Request,
    loopback: Loopback,
    meta: &AuthServerMetadata,
    timeout: Duration,
) -> Result<String, ClientError> {
    eprintln!(
        "Opening the browser to sign in. If it does not open, visit:\n\n  {}\n",
        req.url
    );
    if let Err(e) = webbrowser::open(req.url.as_str()) {
        eprintln!("(could not open a browser: {e})");
    }
    let pairs = loopback.wait(timeout).await?;
    code_from_response(&pairs, &req.state, meta)
}

/// Prints the URL and reads the redirect URL (or the bare code) from stdin.
pub async fn via_paste(req: &Request, meta: &AuthServerMetadata) -> Result<String, ClientError> {
    eprintln!("Open this URL in a browser and sign in:\n\n  {}\n", req.url);
    if req.redirect_uri == OOB_REDIRECT_URI {
        eprintln!("Then paste the code shown:");
    } else {
        eprintln!(
            "The browser then goes to {}… (the page may fail to load: that is expected).\n\
             Copy the whole address from the address bar and paste it here:",
            req.redirect_uri
        );
    }
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(|_| line)
    })
    .await
    .map_err(|e| ClientError::Authorization(format!("reading stdin: {e}")))?
    .map_err(|e| ClientError::Authorization(format!("reading stdin: {e}")))?;
    let line = line.trim();
    if line.is_empty() {
        return Err(ClientError::Authorization("nothing was pasted".into()));
    }
    match Url::parse(line) {
        Ok(url) if url.query().is_some() => code_from_response(&pairs_of(&url), &req.state, meta),
        // A bare code (out-of-band pages show only the code): no state to check.
        _ => Ok(line.to_owned()),
    }
}

/// Requests the authorization URL without a person: follows the server's
/// own redirects (keeping its cookies) until it redirects to our redirect
/// URI, and takes the code from there. A page that wants a person is an error.
pub async fn via_redirect(req: &Request, meta: &AuthServerMetadata) -> Result<String, ClientError> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| ClientError::http("building an HTTP client", e))?;
    let mut url = req.url.clone();
    for _ in 0..20 {
        let resp = http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| ClientError::http(&format!("requesting {}", strip_query(&url)), e))?;
        let status = resp.status();
        if status.is_redirection() {
            let location = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    ClientError::Authorization(format!("{status} without a Location header"))
                })?;
            let next = url.join(location).map_err(|e| {
                ClientError::Authorization(format!("bad redirect Location {location:?}: {e}"))
            })?;
            if is_redirect_target(&next, &req.redirect_uri) {
                return code_from_response(&pairs_of(&next), &req.state, meta);
            }
            if !matches!(next.scheme(), "http" | "https") {
                return Err(ClientError::Authorization(format!(
                    "the server redirected to {}, not to {}",
                    next.scheme(),
                    req.redirect_uri
                )));
            }
            url = next;
            continue;
        }
        if status.is_success() {
            return Err(ClientError::NeedsPerson(format!(
                "the authorization server shows a page at {} that needs a person (sign-in or \
                 consent); run the same command without --non-interactive",
                strip_query(&url)
            )));
        }
        let body = resp.bytes().await.unwrap_or_default();
        let (error, description) = crate::error::oauth_error_fields(&body);
        return Err(ClientError::Authorization(format!(
            "{} answered {status}: {error}{description}",
            strip_query(&url)
        )));
    }
    Err(ClientError::Authorization(
        "too many redirects before reaching the redirect URI".into(),
    ))
}

fn strip_query(u: &Url) -> String {
    let mut u = u.clone();
    u.set_query(None);
    u.to_string()
}
