//! The fetcher against real loopback listeners.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::*;

/// What a test server does with each connection.
#[derive(Clone, Copy)]
enum Answer {
    /// A fixed response.
    Fixed(&'static str),
    /// 200 with a body that never ends.
    Endless,
    /// Never answers.
    Silent,
}

/// A loopback listener counting the connections it accepts.
async fn server(answer: Answer) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let accepts = Arc::new(AtomicUsize::new(0));
    let count = accepts.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                match answer {
                    Answer::Fixed(r) => {
                        let _ = s.write_all(r.as_bytes()).await;
                    }
                    Answer::Endless => {
                        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                        if s.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        let chunk = format!("{:x}\r\n{}\r\n", 8192, "x".repeat(8192));
                        while s.write_all(chunk.as_bytes()).await.is_ok() {}
                    }
                    Answer::Silent => {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                }
            });
        }
    });
    (port, accepts)
}

fn untrusted() -> Fetcher {
    Fetcher::new(Policy::untrusted()).unwrap()
}

#[tokio::test]
async fn a_loopback_literal_is_refused_without_connecting() {
    let (port, accepts) = server(Answer::Fixed(
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
    ))
    .await;
    for url in [
        format!("https://127.0.0.1:{port}/jwks"),
        format!("https://[::ffff:127.0.0.1]:{port}/jwks"),
    ] {
        let e = untrusted()
            .get_json::<serde_json::Value>(&url)
            .await
            .unwrap_err();
        assert!(matches!(e, FetchError::Forbidden { .. }), "{url}: {e:?}");
    }
    assert_eq!(accepts.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_without_connecting() {
    let (port, accepts) = server(Answer::Fixed(
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
    ))
    .await;
    let e = untrusted()
        .get_json::<serde_json::Value>(&format!("https://localhost:{port}/jwks"))
        .await
        .unwrap_err();
    assert!(matches!(e, FetchError::Forbidden { .. }), "{e:?}");
    // The operator's switch: private denied, http allowed by the caller.
    let deny = Fetcher::new(Policy::operator(Private::Deny)).unwrap();
    let e = deny
        .get_json::<serde_json::Value>(&format!("http://localhost:{port}/jwks"))
        .await
        .unwrap_err();
    assert!(matches!(e, FetchError::Forbidden { .. }), "{e:?}");
    assert_eq!(accepts.load(Ordering::SeqCst), 0);
    // Allowed by default for operator URLs: the same URL connects.
    let allow = Fetcher::new(Policy::operator(Private::Allow)).unwrap();
    let v: serde_json::Value = allow
        .get_json(&format!("http://localhost:{port}/jwks"))
        .await
        .unwrap();
    assert_eq!(v, serde_json::json!({}));
    assert_eq!(accepts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn plain_http_is_refused_unless_allow_listed_loopback() {
    let (port, accepts) = server(Answer::Fixed(
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
    ))
    .await;
    let url = format!("http://127.0.0.1:{port}/doc");
    let e = untrusted()
        .get_json::<serde_json::Value>(&url)
        .await
        .unwrap_err();
    assert!(matches!(e, FetchError::NotHttps), "{e:?}");
    assert_eq!(accepts.load(Ordering::SeqCst), 0);
    let listed =
        Fetcher::new(Policy::untrusted().allow_hosts([format!("127.0.0.1:{port}")])).unwrap();
    let v: serde_json::Value = listed.get_json(&url).await.unwrap();
    assert_eq!(v, serde_json::json!({}));
    // The allow-list names host and port: another port is not on it.
    let other = Fetcher::new(Policy::untrusted().allow_hosts(["127.0.0.1:1"])).unwrap();
    let e = other.get_json::<serde_json::Value>(&url).await.unwrap_err();
    assert!(matches!(e, FetchError::NotHttps), "{e:?}");
}

#[tokio::test]
async fn an_endless_body_is_cut_off_at_the_cap() {
    let (port, _) = server(Answer::Endless).await;
    let f = Fetcher::new(
        Policy::untrusted()
            .allow_hosts([format!("127.0.0.1:{port}")])
            .timeout(Duration::from_secs(5)),
    )
    .unwrap();
    let started = Instant::now();
    let e = f
        .get_json::<serde_json::Value>(&format!("http://127.0.0.1:{port}/jwks"))
        .await
        .unwrap_err();
    assert!(matches!(e, FetchError::TooLarge { limit: 65536 }), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_silent_server_hits_the_deadline() {
    let (port, _) = server(Answer::Silent).await;
    let f = Fetcher::new(
        Policy::untrusted()
            .allow_hosts([format!("127.0.0.1:{port}")])
            .timeout(Duration::from_millis(300)),
    )
    .unwrap();
    let started = Instant::now();
    let e = f
        .get_json::<serde_json::Value>(&format!("http://127.0.0.1:{port}/jwks"))
        .await
        .unwrap_err();
    assert!(matches!(e, FetchError::Timeout), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (target, target_accepts) = server(Answer::Fixed(
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
    ))
    .await;
    let redirect: &'static str = Box::leak(
        format!("HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{target}/x\r\ncontent-length: 0\r\n\r\n")
            .into_boxed_str(),
    );
    let (port, _) = server(Answer::Fixed(redirect)).await;
    let f = Fetcher::new(
        Policy::untrusted()
            .allow_hosts([format!("127.0.0.1:{port}"), format!("127.0.0.1:{target}")]),
    )
    .unwrap();
    let e = f
        .get_json::<serde_json::Value>(&format!("http://127.0.0.1:{port}/doc"))
        .await
        .unwrap_err();
    assert!(matches!(e, FetchError::Status(s) if s == 302), "{e:?}");
    assert_eq!(target_accepts.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_error_never_says_what_the_remote_answered() {
    let (port, _) = server(Answer::Fixed(
        "HTTP/1.1 404 Not Found\r\ncontent-length: 14\r\n\r\nsecret-content",
    ))
    .await;
    let f = Fetcher::new(Policy::untrusted().allow_hosts([format!("127.0.0.1:{port}")])).unwrap();
    let e = f
        .get_json::<serde_json::Value>(&format!("http://127.0.0.1:{port}/doc"))
        .await
        .unwrap_err();
    let shown = e.to_string();
    assert!(
        !shown.contains("404") && !shown.contains("secret"),
        "{shown}"
    );
    let (port, _) = server(Answer::Fixed(
        "HTTP/1.1 200 OK\r\ncontent-length: 14\r\n\r\nsecret-content",
    ))
    .await;
    let f = Fetcher::new(Policy::untrusted().allow_hosts([format!("127.0.0.1:{port}")])).unwrap();
    let e = f
        .get_json::<serde_json::Value>(&format!("http://127.0.0.1:{port}/doc"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, FetchError::NotJson) && !e.to_string().contains("secret"),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_form_post_carries_its_body_and_headers() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n{\"ok\":true}")
            .await;
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    let f = Fetcher::new(Policy::operator(Private::Allow)).unwrap();
    let r = f
        .send(
            Request::post_form(
                format!("http://127.0.0.1:{port}/token"),
                [("a", "1 2"), ("b", "&")],
            )
            .bearer("tok"),
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    assert_eq!(r.json::<serde_json::Value>().unwrap()["ok"], true);
    let req = seen.await.unwrap();
    assert!(req.starts_with("POST /token"), "{req}");
    assert!(req.contains("a=1+2&b=%26"), "{req}");
    assert!(
        req.to_ascii_lowercase()
            .contains("authorization: bearer tok"),
        "{req}"
    );
}
