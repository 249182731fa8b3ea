use http::HeaderValue;

use super::*;

fn h(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in pairs {
        m.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    m
}

fn opts() -> ExtractOptions {
    ExtractOptions::default()
}

#[test]
fn finds_each_kind() {
    assert_eq!(
        extract(&h(&[("authorization", "Bearer abc.def")]), None, &opts()).unwrap(),
        Some(Credential::Bearer("abc.def".into()))
    );
    assert_eq!(
        extract(&h(&[("authorization", "bearer abc")]), None, &opts()).unwrap(),
        Some(Credential::Bearer("abc".into()))
    );
    assert_eq!(
        extract(&h(&[("x-api-key", "k1")]), None, &opts()).unwrap(),
        Some(Credential::ApiKey("k1".into()))
    );
    let basic = extract(&h(&[("authorization", "Basic dTpwOng=")]), None, &opts()).unwrap();
    assert_eq!(
        basic,
        Some(Credential::Basic {
            user: "u".into(),
            password: "p:x".into()
        })
    );
    assert_eq!(extract(&h(&[]), Some("a=1"), &opts()).unwrap(), None);
}

#[test]
fn refuses_query_tokens_duplicates_and_garbage() {
    let e = extract(&h(&[]), Some("access_token=x"), &opts()).unwrap_err();
    assert!(
        matches!(e, AuthRejection::BadRequest(ref m) if m.contains("not accepted in the URL")),
        "{e:?}"
    );
    let e = extract(
        &h(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]),
        None,
        &opts(),
    )
    .unwrap_err();
    assert!(matches!(e, AuthRejection::BadRequest(_)));
    let e = extract(
        &h(&[("authorization", "Bearer a"), ("x-api-key", "b")]),
        None,
        &opts(),
    )
    .unwrap_err();
    assert!(matches!(e, AuthRejection::BadRequest(ref m) if m.contains("both")));
    for bad in [
        "Bearer",
        "Bearer a b",
        "Digest x",
        "Basic !!!",
        "Basic Og==",
    ] {
        assert!(
            extract(&h(&[("authorization", bad)]), None, &opts()).is_err(),
            "{bad}"
        );
    }
    let long = format!("Bearer {}", "a".repeat(MAX_CREDENTIAL_BYTES + 1));
    assert!(extract(&h(&[("authorization", &long)]), None, &opts()).is_err());
}

#[test]
fn debug_never_shows_secrets() {
    let c = Credential::Basic {
        user: "u".into(),
        password: "hunter2".into(),
    };
    assert!(!format!("{c:?}").contains("hunter2"));
    assert!(!format!("{:?}", Credential::Bearer("s3cret".into())).contains("s3cret"));
}
