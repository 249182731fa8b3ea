//! Properties of JWT header and claims validation: the verdict on a signed
//! token is exactly the model's (issuer, audience, `exp`, `nbf`, `iat`,
//! algorithm), a changed byte is never accepted, and no input panics.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::{JwtConfig, JwtVerifier};
use crate::verifier::VerifyError;

const ISSUER: &str = "https://issuer.example/";
const AUDIENCE: &str = "https://mcp.example/mcp";
const SECRET: &str = "0123456789abcdef0123456789abcdef-proptest";

fn verifier() -> JwtVerifier {
    let config: JwtConfig = toml::from_str(&format!(
        "issuer = {ISSUER:?}\naudience = {AUDIENCE:?}\nhmac_secret_env = \"SECRET\"\n"
    ))
    .expect("valid test config");
    JwtVerifier::with_env(&config, |v| (v == "SECRET").then(|| SECRET.to_owned()))
        .expect("valid test verifier")
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// An HS-family token over `header` and `claims`, signed with the issuer's secret.
fn sign(header: &Value, claims: &Value, alg: jsonwebtoken::Algorithm) -> String {
    let head = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).expect("json"));
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("json"));
    let input = format!("{head}.{body}");
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key, alg).expect("signs");
    format!("{input}.{sig}")
}

fn run(token: &str) -> Result<super::Verified, VerifyError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(verifier().check(token))
}

/// Offsets from now, in seconds, well clear of the 60 s leeway on either side.
fn offset() -> impl Strategy<Value = i64> {
    prop_oneof![-86_400i64..-300, 300i64..86_400]
}

proptest! {
    /// The verdict on an HS256 token follows the model exactly.
    #[test]
    fn verdict_follows_the_claims(
        exp in proptest::option::of(offset()),
        nbf in proptest::option::of(offset()),
        iat in proptest::option::of(offset()),
        right_issuer in any::<bool>(),
        aud in prop_oneof![
            Just(json!(AUDIENCE)),
            Just(json!([AUDIENCE, "https://other.example"])),
            Just(json!("https://MCP.example/mcp/")),
            Just(json!("https://mcp.example/other")),
            Just(json!(["https://other.example"])),
            Just(Value::Null),
        ],
        alg in prop_oneof![
            Just("HS256"), Just("HS384"), Just("HS512"), Just("none"), Just("RS256"), Just("ES256"),
        ],
    ) {
        let t = now();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(if right_issuer { ISSUER } else { "https://evil.example/" }));
        claims.insert("sub".into(), json!("user-1"));
        if !aud.is_null() {
            claims.insert("aud".into(), aud.clone());
        }
        for (name, v) in [("exp", exp), ("nbf", nbf), ("iat", iat)] {
            if let Some(o) = v {
                claims.insert(name.into(), json!(t + o));
            }
        }
        let header = json!({"alg": alg, "typ": "JWT"});
        let signing_alg = match alg {
            "HS384" => jsonwebtoken::Algorithm::HS384,
            "HS512" => jsonwebtoken::Algorithm::HS512,
            _ => jsonwebtoken::Algorithm::HS256,
        };
        let token = sign(&header, &Value::Object(claims), signing_alg);
        let aud_ok = match &aud {
            Value::String(s) => s == AUDIENCE || s == "https://MCP.example/mcp/",
            Value::Array(a) => a.iter().any(|v| v == AUDIENCE),
            _ => false,
        };
        // The default allow-list with an HMAC secret is HS256 alone.
        let alg_ok = alg == "HS256";
        let times_ok = exp.is_some_and(|o| o > 0)
            && nbf.is_none_or(|o| o < 0)
            && iat.is_none_or(|o| o < 0);
        let got = run(&token);
        if !right_issuer && alg != "none" {
            prop_assert!(matches!(got, Err(VerifyError::NotMine)), "{got:?}");
        } else {
            let accept = right_issuer && aud_ok && alg_ok && times_ok;
            prop_assert_eq!(got.is_ok(), accept, "{:?}", got.err());
        }
    }

    /// Changing any one character of a valid token makes it invalid.
    #[test]
    fn a_changed_byte_is_refused(at in any::<prop::sample::Index>(), replacement in "[A-Za-z0-9_\\-.]") {
        let t = now();
        let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "u", "exp": t + 3600});
        let token = sign(&json!({"alg": "HS256"}), &claims, jsonwebtoken::Algorithm::HS256);
        prop_assert!(run(&token).is_ok());
        let i = at.index(token.len());
        let mut bytes = token.into_bytes();
        let r = replacement.as_bytes()[0];
        prop_assume!(bytes[i] != r);
        bytes[i] = r;
        let changed = String::from_utf8(bytes).expect("ascii");
        // A changed last character may only flip base64url padding bits the
        // decoder ignores; everything else must be refused.
        let got = run(&changed);
        if got.is_ok() {
            prop_assert_eq!(i, changed.len() - 1, "accepted with byte {} changed", i);
        }
    }

    /// Arbitrary text, and arbitrary JSON in the header and payload, never panic.
    #[test]
    fn arbitrary_tokens_never_panic(
        text in "[A-Za-z0-9_\\-.=+/ ]{0,200}",
        header in "\\PC{0,64}",
        payload in "\\PC{0,64}",
    ) {
        let _ = run(&text);
        let crafted = format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(header.as_bytes()),
            URL_SAFE_NO_PAD.encode(payload.as_bytes())
        );
        prop_assert!(run(&crafted).is_err());
    }
}
