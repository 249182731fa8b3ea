//! Verifications per second, uncached: each JWT algorithm the guard accepts
//! (ES256, RS256, EdDSA, HS256, with a fixed PEM key or HMAC secret — no
//! network), the static-token lookup, and — for comparison — the chain's
//! verified-credential cache hit, which is what a warm gateway pays per request.
//!
//! ```text
//! cargo bench -p mcpgate-guard --bench verify
//! ```
//!
//! Uncached figures call [`Verifier::verify`] directly, so the chain's cache is
//! never consulted. Keys are generated on each run. Criterion reports time per
//! verification and, as `thrpt`, verifications per second.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::FutureExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcpgate_guard::{
    Chain, Credential, JwtConfig, JwtVerifier, Principal, StaticTokenEntry, StaticTokens,
    StaticTokensConfig, Verifier,
};
use serde_json::json;

const ISSUER: &str = "https://issuer.example/";
const AUDIENCE: &str = "https://mcp.example/mcp";
const HMAC_ENV: &str = "BENCH_HMAC_SECRET";
const HMAC_SECRET: &str = "bench-secret-bench-secret-bench-secret-0123456789";

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// Claims like an identity provider's access token, valid for an hour.
fn claims() -> serde_json::Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "client_id": "cursor",
        "scope": "notes:read notes:write", "iat": now, "exp": now + 3600,
    })
}

/// A signing key and the `[[auth.jwt]]` key source that verifies it.
struct Issuer {
    alg: Algorithm,
    enc: EncodingKey,
    /// The PEM public key, or `None` for HMAC (`hmac_secret_env`).
    public_pem: Option<String>,
}

impl Issuer {
    fn es256() -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let der = pair.to_pkcs8v1().unwrap();
        let public = pair.public_key().as_der().unwrap();
        Issuer {
            alg: Algorithm::ES256,
            enc: EncodingKey::from_ec_der(der.as_ref()),
            public_pem: Some(pem("PUBLIC KEY", public.as_ref())),
        }
    }

    fn eddsa() -> Self {
        let pair = Ed25519KeyPair::generate().unwrap();
        let der = pair.to_pkcs8v1().unwrap();
        let public = pair.public_key().as_der().unwrap();
        Issuer {
            alg: Algorithm::EdDSA,
            enc: EncodingKey::from_ed_der(der.as_ref()),
            public_pem: Some(pem("PUBLIC KEY", public.as_ref())),
        }
    }

    fn rs256() -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> = pair.as_der().unwrap();
        let public = pair.public_key().as_der().unwrap();
        Issuer {
            alg: Algorithm::RS256,
            enc: EncodingKey::from_rsa_pem(pem("PRIVATE KEY", der.as_ref()).as_bytes()).unwrap(),
            public_pem: Some(pem("PUBLIC KEY", public.as_ref())),
        }
    }

    fn hs256() -> Self {
        Issuer {
            alg: Algorithm::HS256,
            enc: EncodingKey::from_secret(HMAC_SECRET.as_bytes()),
            public_pem: None,
        }
    }

    fn token(&self) -> String {
        let mut h = Header::new(self.alg);
        h.kid = Some("bench".into());
        jsonwebtoken::encode(&h, &claims(), &self.enc).unwrap()
    }

    fn verifier(&self) -> JwtVerifier {
        let config = JwtConfig {
            name: Some("bench".into()),
            public_key_pem: self.public_pem.clone(),
            hmac_secret_env: self.public_pem.is_none().then(|| HMAC_ENV.to_owned()),
            ..JwtConfig::new(ISSUER.parse().unwrap(), AUDIENCE.parse().unwrap())
        };
        JwtVerifier::with_env(&config, |name| {
            (name == HMAC_ENV).then(|| HMAC_SECRET.to_owned())
        })
        .unwrap()
    }
}

/// Runs a verifier's future, which completes without waiting for any of
/// these (fixed keys, no I/O), so no runtime is timed.
fn verify_now(v: &dyn Verifier, c: &Credential) -> Principal {
    v.verify(c)
        .now_or_never()
        .expect("verification waited on I/O")
        .expect("the credential was refused")
        .into_principal()
}

fn authenticate_now(chain: &Chain, c: &Credential) -> Principal {
    chain
        .authenticate(c)
        .now_or_never()
        .expect("authentication waited on I/O")
        .expect("the credential was refused")
}

/// A static-token verifier over `n` tokens; the token presented is the last.
fn static_tokens(n: usize) -> (StaticTokens, Credential) {
    let token = |i: usize| format!("bench-static-token-{i:04}-0123456789abcdefghij");
    let cfg = StaticTokensConfig {
        tokens: (0..n)
            .map(|i| {
                toml::from_str::<StaticTokenEntry>(&format!(
                    "token = {:?}\nsubject = \"s{i}\"\nscopes = \"*\"",
                    token(i)
                ))
                .unwrap()
            })
            .collect(),
        ..StaticTokensConfig::default()
    };
    let v = StaticTokens::with_env(&cfg, |_| None).unwrap();
    (v, Credential::Bearer(token(n - 1)))
}

fn uncached(c: &mut Criterion) {
    let mut g = c.benchmark_group("uncached");
    g.throughput(Throughput::Elements(1));
    for (name, issuer) in [
        ("jwt_es256", Issuer::es256()),
        ("jwt_rs256", Issuer::rs256()),
        ("jwt_eddsa", Issuer::eddsa()),
        ("jwt_hs256", Issuer::hs256()),
    ] {
        let v = issuer.verifier();
        let cred = Credential::Bearer(issuer.token());
        assert_eq!(verify_now(&v, &cred).subject(), "alice");
        g.bench_function(name, |b| b.iter(|| verify_now(&v, black_box(&cred))));
    }
    for n in [1, 100] {
        let (v, cred) = static_tokens(n);
        verify_now(&v, &cred);
        g.bench_function(format!("static_token_{n}"), |b| {
            b.iter(|| verify_now(&v, black_box(&cred)))
        });
    }
    g.finish();
}

fn cached(c: &mut Criterion) {
    let mut g = c.benchmark_group("chain_cache_hit");
    g.throughput(Throughput::Elements(1));
    let issuer = Issuer::es256();
    let chain = Chain::new(vec![Arc::new(issuer.verifier()) as Arc<dyn Verifier>]);
    let cred = Credential::Bearer(issuer.token());
    authenticate_now(&chain, &cred); // verified once: every later call is a hit
    g.bench_function("jwt_es256", |b| {
        b.iter(|| authenticate_now(&chain, black_box(&cred)))
    });
    let (v, cred) = static_tokens(1);
    let chain = Chain::new(vec![Arc::new(v) as Arc<dyn Verifier>]);
    authenticate_now(&chain, &cred);
    g.bench_function("static_token", |b| {
        b.iter(|| authenticate_now(&chain, black_box(&cred)))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    targets = uncached, cached
}
criterion_main!(benches);
