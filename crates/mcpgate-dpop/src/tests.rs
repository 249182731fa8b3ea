use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

const URL: &str = "https://gw.example/mcp/files";

fn expect<'a>(token: Option<&'a str>) -> Expect<'a> {
    Expect {
        method: "POST",
        url: URL,
        access_token: token,
        jkt: None,
        nonces: None,
        now: SystemTime::now(),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_proof_made_by_the_client_verifies() {
    let key = ProofKey::generate().unwrap();
    let p = key.proof("POST", URL, Some("tok"), None).unwrap();
    let v = verify(&p, &expect(Some("tok"))).unwrap();
    assert_eq!(v.jkt, key.jkt());
    // The query string is not part of htu.
    let p = key
        .proof("POST", "https://GW.example:443/mcp/files?x=1#f", None, None)
        .unwrap();
    verify(&p, &expect(None)).unwrap();
}

#[test]
fn the_stored_key_is_the_same_key() {
    let key = ProofKey::generate().unwrap();
    let again = ProofKey::from_pkcs8(key.pkcs8()).unwrap();
    assert_eq!(key.jkt(), again.jkt());
    assert!(!format!("{again:?}").contains(&format!("{:?}", key.pkcs8())));
    assert!(matches!(
        ProofKey::from_pkcs8(b"not a key"),
        Err(KeyError::Unreadable)
    ));
}

#[test]
fn each_mismatch_has_its_refusal() {
    let key = ProofKey::generate().unwrap();
    let other = ProofKey::generate().unwrap();
    let p = key.proof("GET", URL, Some("tok"), None).unwrap();
    assert_eq!(verify(&p, &expect(Some("tok"))), Err(ProofError::Method));
    let p = key
        .proof("POST", "https://gw.example/mcp/other", Some("tok"), None)
        .unwrap();
    assert_eq!(verify(&p, &expect(Some("tok"))), Err(ProofError::Url));
    let p = key.proof("POST", URL, Some("another"), None).unwrap();
    assert_eq!(verify(&p, &expect(Some("tok"))), Err(ProofError::Ath));
    let p = key.proof("POST", URL, None, None).unwrap();
    assert_eq!(verify(&p, &expect(Some("tok"))), Err(ProofError::Ath));
    let p = key.proof("POST", URL, Some("tok"), None).unwrap();
    let mut e = expect(Some("tok"));
    e.jkt = Some(other.jkt());
    assert_eq!(verify(&p, &e), Err(ProofError::Key));
    let stale = serde_json::json!({"jti": "a", "htm": "POST", "htu": URL, "iat": now_secs() - 61});
    assert_eq!(
        verify(&key.sign(&stale).unwrap(), &expect(None)),
        Err(ProofError::Stale)
    );
    let ahead = serde_json::json!({"jti": "a", "htm": "POST", "htu": URL, "iat": now_secs() + 30});
    assert_eq!(
        verify(&key.sign(&ahead).unwrap(), &expect(None)),
        Err(ProofError::Future)
    );
    let no_jti = serde_json::json!({"htm": "POST", "htu": URL, "iat": now_secs()});
    assert!(matches!(
        verify(&key.sign(&no_jti).unwrap(), &expect(None)),
        Err(ProofError::Malformed(_))
    ));
}

#[test]
fn a_forged_or_odd_header_is_refused() {
    let key = ProofKey::generate().unwrap();
    let other = ProofKey::generate().unwrap();
    let p = key.proof("POST", URL, None, None).unwrap();
    let q = other.proof("POST", URL, None, None).unwrap();
    // Key's header with another key's signature.
    let (h, rest) = p.split_once('.').unwrap();
    let (_, sig) = q.rsplit_once('.').unwrap();
    let (payload, _) = rest.rsplit_once('.').unwrap();
    let forged = format!("{h}.{payload}.{sig}");
    assert_eq!(verify(&forged, &expect(None)), Err(ProofError::Signature));
    assert!(matches!(
        verify("a.b", &expect(None)),
        Err(ProofError::Malformed(_))
    ));
    // A header without typ dpop+jwt, and one with alg none.
    use base64::Engine as _;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let jwt_typ = format!(
        "{}.{payload}.{sig}",
        b64(serde_json::json!({"typ": "JWT", "alg": "ES256"}))
    );
    assert!(matches!(
        verify(&jwt_typ, &expect(None)),
        Err(ProofError::Malformed(_))
    ));
    let none = format!(
        "{}.{payload}.",
        b64(serde_json::json!({"typ": "dpop+jwt", "alg": "none"}))
    );
    assert_eq!(verify(&none, &expect(None)), Err(ProofError::Alg));
    let hs = format!(
        "{}.{payload}.{sig}",
        b64(
            serde_json::json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "AAAA"}})
        )
    );
    assert_eq!(verify(&hs, &expect(None)), Err(ProofError::Alg));
}

#[test]
fn nonces_are_required_when_asked_and_expire() {
    let key = ProofKey::generate().unwrap();
    let nonces = Nonces::new(b"secret");
    let mut e = expect(None);
    e.nonces = Some(&nonces);
    let p = key.proof("POST", URL, None, None).unwrap();
    let err = verify(&p, &e).unwrap_err();
    assert_eq!(err, ProofError::NonceMissing);
    assert_eq!(err.code(), USE_NONCE);
    let n = nonces.current(SystemTime::now());
    let p = key.proof("POST", URL, None, Some(&n)).unwrap();
    verify(&p, &e).unwrap();
    let later = SystemTime::now() + Duration::from_secs(600);
    assert!(!nonces.accepts(&n, later));
    assert!(!Nonces::new(b"other").accepts(&n, SystemTime::now()));
    let p = key.proof("POST", URL, None, Some("made-up")).unwrap();
    assert_eq!(verify(&p, &e), Err(ProofError::NonceStale));
}

#[test]
fn ath_and_thumbprint_are_the_rfc_examples() {
    // RFC 9449 §7.1: the ath of the example access token.
    assert_eq!(
        ath("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    );
    // RFC 7638 §3.1's RSA key.
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(serde_json::json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29"
    }))
    .unwrap();
    assert_eq!(
        thumbprint(&jwk).unwrap(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

/// A proof signed outside `ProofKey` (which makes ES256 only), with `alg`,
/// the public `jwk` and a signature over the signing input by `sign`.
fn foreign_proof(alg: &str, jwk: serde_json::Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    use base64::Engine as _;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap())
    };
    let header = b64(serde_json::json!({"typ": "dpop+jwt", "alg": alg, "jwk": jwk}));
    let claims = b64(serde_json::json!({
        "jti": format!("{alg}-{}", now_secs()),
        "htm": "POST",
        "htu": URL,
        "iat": now_secs(),
        "ath": ath("tok"),
    }));
    let input = format!("{header}.{claims}");
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sign(input.as_bytes()));
    format!("{input}.{signature}")
}

fn b64u(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn an_eddsa_proof_verifies_and_a_forged_one_does_not() {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let jwk =
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": b64u(pair.public_key().as_ref())});
    let proof = foreign_proof("EdDSA", jwk.clone(), |m| pair.sign(m).as_ref().to_vec());
    let v = verify(&proof, &expect(Some("tok"))).unwrap();
    assert_eq!(v.jkt.len(), 43, "a SHA-256 thumbprint, base64url");
    let other =
        Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap();
    let forged = foreign_proof("EdDSA", jwk, |m| other.sign(m).as_ref().to_vec());
    assert_eq!(
        verify(&forged, &expect(Some("tok"))),
        Err(ProofError::Signature)
    );
}

#[test]
fn rsa_proofs_verify_and_forged_ones_do_not() {
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaEncoding};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let other = KeyPair::generate(KeySize::Rsa2048).unwrap();
    // The public key is PKCS#1 DER: SEQUENCE { INTEGER n, INTEGER e }.
    let der = pair.public_key().as_ref().to_vec();
    let (n, e) = rsa_public(&der);
    let jwk = serde_json::json!({"kty": "RSA", "n": b64u(n), "e": b64u(e)});
    let paddings: [(&str, &'static dyn RsaEncoding); 2] =
        [("PS256", &RSA_PSS_SHA256), ("RS256", &RSA_PKCS1_SHA256)];
    for (alg, padding) in paddings {
        let sign = |pair: &KeyPair, m: &[u8]| {
            let mut sig = vec![0; pair.public_modulus_len()];
            pair.sign(padding, &rng, m, &mut sig).unwrap();
            sig
        };
        let proof = foreign_proof(alg, jwk.clone(), |m| sign(&pair, m));
        verify(&proof, &expect(Some("tok"))).unwrap();
        let forged = foreign_proof(alg, jwk.clone(), |m| sign(&other, m));
        assert_eq!(
            verify(&forged, &expect(Some("tok"))),
            Err(ProofError::Signature),
            "{alg}"
        );
    }
}

#[test]
fn an_es384_proof_verifies_and_a_forged_one_does_not() {
    use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let make = || {
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
        EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, doc.as_ref()).unwrap()
    };
    let (pair, other) = (make(), make());
    // Uncompressed point: 0x04 || x || y.
    let point = pair.public_key().as_ref().to_vec();
    let jwk = serde_json::json!({"kty": "EC", "crv": "P-384",
        "x": b64u(&point[1..49]), "y": b64u(&point[49..97])});
    let proof = foreign_proof("ES384", jwk.clone(), |m| {
        pair.sign(&rng, m).unwrap().as_ref().to_vec()
    });
    verify(&proof, &expect(Some("tok"))).unwrap();
    let forged = foreign_proof("ES384", jwk, |m| {
        other.sign(&rng, m).unwrap().as_ref().to_vec()
    });
    assert_eq!(
        verify(&forged, &expect(Some("tok"))),
        Err(ProofError::Signature)
    );
}

/// The two INTEGERs of a DER SEQUENCE, without leading zero bytes.
fn rsa_public(der: &[u8]) -> (&[u8], &[u8]) {
    fn item(der: &[u8]) -> (u8, &[u8], &[u8]) {
        let (tag, first) = (der[0], der[1] as usize);
        let (len, start) = if first < 0x80 {
            (first, 2)
        } else {
            let n = first & 0x7f;
            (
                der[2..2 + n]
                    .iter()
                    .fold(0usize, |a, b| a << 8 | *b as usize),
                2 + n,
            )
        };
        (tag, &der[start..start + len], &der[start + len..])
    }
    let (seq, body, _) = item(der);
    assert_eq!(seq, 0x30);
    let (_, n, rest) = item(body);
    let (_, e, _) = item(rest);
    let strip = |v: &[u8]| -> usize { v.iter().take_while(|b| **b == 0).count() };
    (&n[strip(n)..], &e[strip(e)..])
}
