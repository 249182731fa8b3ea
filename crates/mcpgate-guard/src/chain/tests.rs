use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::principal::AuthMethod;
use crate::verifier::{BoxFuture, Verified};

#[derive(Debug)]
struct Fixed {
    answer: Result<&'static str, VerifyError>,
    calls: AtomicUsize,
}

impl Verifier for Fixed {
    fn name(&self) -> &str {
        "fixed"
    }
    fn accepts(&self, c: &Credential) -> bool {
        matches!(c, Credential::Bearer(_))
    }
    fn verify<'a>(&'a self, _: &'a Credential) -> BoxFuture<'a, Result<Verified, VerifyError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let answer = self.answer.clone();
        Box::pin(async move {
            answer.map(|s| {
                Verified::new(
                    Principal::new(s.parse().unwrap(), AuthMethod::StaticToken),
                    Duration::from_secs(60),
                )
            })
        })
    }
}

fn v(answer: Result<&'static str, VerifyError>) -> Arc<Fixed> {
    Arc::new(Fixed {
        answer,
        calls: AtomicUsize::new(0),
    })
}

#[tokio::test]
async fn first_acceptance_wins_and_is_cached() {
    let a = v(Err(VerifyError::NotMine));
    let b = v(Ok("alice"));
    let chain = Chain::new(vec![a.clone(), b.clone()]);
    let cred = Credential::Bearer("t".into());
    assert_eq!(chain.authenticate(&cred).await.unwrap().subject(), "alice");
    assert_eq!(chain.authenticate(&cred).await.unwrap().subject(), "alice");
    assert_eq!(
        b.calls.load(Ordering::SeqCst),
        1,
        "the second request is served from the cache"
    );
    chain.cache().clear();
    chain.authenticate(&cred).await.unwrap();
    assert_eq!(b.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn unavailable_is_503_never_allow_and_invalid_reason_is_kept() {
    let chain = Chain::new(vec![v(Err(VerifyError::Unavailable("idp down".into())))]);
    let e = chain
        .authenticate(&Credential::Bearer("t".into()))
        .await
        .unwrap_err();
    assert_eq!(e.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    let chain = Chain::new(vec![v(Err(VerifyError::Invalid(
        "Token expired at 2026-01-01T00:00:00Z".into(),
    )))]);
    let e = chain
        .authenticate(&Credential::Bearer("t".into()))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        AuthRejection::InvalidToken("Token expired at 2026-01-01T00:00:00Z".into())
    );
    let e = chain
        .authenticate(&Credential::ApiKey("k".into()))
        .await
        .unwrap_err();
    assert!(matches!(e, AuthRejection::InvalidToken(ref m) if m.contains("not recognized")));
}

#[tokio::test]
async fn a_refusal_stops_the_chain() {
    let owner = v(Err(VerifyError::Invalid(
        "API key \"k\" was revoked".into(),
    )));
    let later = v(Ok("someone"));
    let chain = Chain::new(vec![owner, later.clone()]);
    let e = chain
        .authenticate(&Credential::Bearer("t".into()))
        .await
        .unwrap_err();
    assert!(matches!(e, AuthRejection::InvalidToken(ref m) if m.contains("revoked")));
    assert_eq!(
        later.calls.load(Ordering::SeqCst),
        0,
        "the credential never reached the next verifier"
    );
}
