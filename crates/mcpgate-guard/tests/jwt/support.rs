//! Test keys, token minting, and a JWKS server on loopback that rotates keys,
//! fails on demand and counts its hits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair,
};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub(crate) const ISSUER: &str = "https://issuer.example/";
pub(crate) const AUDIENCE: &str = "https://mcp.example/mcp";

pub(crate) fn pem(label: &str, der: &[u8]) -> String {
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

/// A signing key with its public forms.
#[derive(Clone)]
pub(crate) struct TestKey {
    pub(crate) alg: Algorithm,
    pub(crate) kid: String,
    enc: EncodingKey,
    pub(crate) jwk: Value,
    pub(crate) public_pem: String,
}

impl TestKey {
    fn new(alg: Algorithm, kid: &str, enc: EncodingKey, public_der: &[u8]) -> Self {
        let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&enc, alg).unwrap()).unwrap();
        jwk["kid"] = kid.into();
        TestKey {
            alg,
            kid: kid.to_owned(),
            enc,
            jwk,
            public_pem: pem("PUBLIC KEY", public_der),
        }
    }

    pub(crate) fn es256(kid: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let der = pair.to_pkcs8v1().unwrap();
        let public = pair.public_key().as_der().unwrap();
        Self::new(
            Algorithm::ES256,
            kid,
            EncodingKey::from_ec_der(der.as_ref()),
            public.as_ref(),
        )
    }

    pub(crate) fn ed25519(kid: &str) -> Self {
        let pair = Ed25519KeyPair::generate().unwrap();
        let der = pair.to_pkcs8v1().unwrap();
        let public = pair.public_key().as_der().unwrap();
        Self::new(
            Algorithm::EdDSA,
            kid,
            EncodingKey::from_ed_der(der.as_ref()),
            public.as_ref(),
        )
    }

    /// An RSA key (generated once per test binary: RSA key generation is slow
    /// in debug builds) used with `alg` (RS256 or PS256).
    pub(crate) fn rsa(kid: &str, alg: Algorithm) -> Self {
        static RSA: OnceLock<(String, Vec<u8>)> = OnceLock::new();
        let (private_pem, public_der) = RSA.get_or_init(|| {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> = pair.as_der().unwrap();
            let public = pair.public_key().as_der().unwrap();
            (pem("PRIVATE KEY", der.as_ref()), public.as_ref().to_vec())
        });
        Self::new(
            alg,
            kid,
            EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
            public_der,
        )
    }

    /// A token with `claims`, naming this key's kid.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let mut h = Header::new(self.alg);
        h.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&h, claims, &self.enc).unwrap()
    }

    /// A token with `claims`, naming `kid` instead.
    pub(crate) fn sign_as(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut h = Header::new(self.alg);
        h.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&h, claims, &self.enc).unwrap()
    }
}

/// HS256 with `secret`.
pub(crate) fn hs256(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Valid claims for [`ISSUER`] and [`AUDIENCE`].
pub(crate) fn claims() -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "client_id": "cursor",
        "scope": "notes:read", "iat": now(), "exp": now() + 600,
    })
}

/// A token from raw header and claims JSON and a signature, base64url-encoded.
pub(crate) fn forge(header: &Value, claims: &Value, signature: &[u8]) -> String {
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!(
        "{}.{}.{}",
        enc(header),
        enc(claims),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// What the JWKS server does on the next request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Up,
    /// 503.
    Down,
    /// Answers after 10 s.
    Hang,
    /// A 300 KiB document.
    Huge,
}

#[derive(Clone)]
struct Shared {
    keys: Arc<Mutex<Vec<Value>>>,
    hits: Arc<AtomicUsize>,
    mode: Arc<Mutex<Mode>>,
    cache_control: Arc<Mutex<String>>,
}

/// A JWKS endpoint on 127.0.0.1.
pub(crate) struct JwksServer {
    pub(crate) url: String,
    shared: Shared,
}

impl JwksServer {
    pub(crate) async fn start(keys: &[&TestKey]) -> Self {
        let shared = Shared {
            keys: Arc::new(Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect())),
            hits: Arc::new(AtomicUsize::new(0)),
            mode: Arc::new(Mutex::new(Mode::Up)),
            cache_control: Arc::new(Mutex::new("max-age=300".into())),
        };
        let app = axum::Router::new()
            .route("/jwks", axum::routing::get(serve))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        JwksServer { url, shared }
    }

    pub(crate) fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    pub(crate) fn set_keys(&self, keys: &[&TestKey]) {
        *self.shared.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    pub(crate) fn set_raw_keys(&self, keys: Vec<Value>) {
        *self.shared.keys.lock().unwrap() = keys;
    }

    pub(crate) fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    pub(crate) fn set_cache_control(&self, value: &str) {
        *self.shared.cache_control.lock().unwrap() = value.to_owned();
    }
}

async fn serve(State(s): State<Shared>) -> Response {
    s.hits.fetch_add(1, Ordering::SeqCst);
    let mode = *s.mode.lock().unwrap();
    match mode {
        Mode::Down => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Mode::Huge => {
            let pad = "x".repeat(300 * 1024);
            axum::Json(json!({"keys": [], "pad": pad})).into_response()
        }
        Mode::Up => {
            let keys = s.keys.lock().unwrap().clone();
            let cc = s.cache_control.lock().unwrap().clone();
            (
                [(header::CACHE_CONTROL, cc)],
                axum::Json(json!({ "keys": keys })),
            )
                .into_response()
        }
    }
}

/// A loopback URL nobody listens on.
pub(crate) async fn closed_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/jwks")
}
