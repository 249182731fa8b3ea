use super::*;
use crate::credential::Credential;
use crate::jwt::{JwtConfig, JwtVerifier};
use crate::principal::AuthMethod;
use crate::verifier::{Verifier, VerifyError};

fn alice() -> Principal {
    Principal::new("alice".parse().unwrap(), AuthMethod::ApiKey)
        .with_client_id(Some("cursor".parse().unwrap()))
        .with_scopes("notes:read notes:write".parse().unwrap())
}

fn verifier_for(signer: &IdentitySigner, audience: &str) -> JwtVerifier {
    let cfg = JwtConfig {
        public_key_pem: Some(signer.public_key_pem().to_owned()),
        leeway: 0,
        ..JwtConfig::new(signer.issuer().parse().unwrap(), audience.parse().unwrap())
    };
    JwtVerifier::new(&cfg).unwrap()
}

#[tokio::test]
async fn signed_tokens_verify_with_the_public_key() {
    let (signer, pem) = IdentitySigner::generate("https://gw.example").unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let token = signer.sign(&alice(), "notes").unwrap();
    let v = verifier_for(&signer, "notes");
    let p = v
        .verify(&Credential::Bearer(token.clone()))
        .await
        .unwrap()
        .into_principal();
    assert_eq!(p.subject(), "alice");
    assert_eq!(p.client_id().map(|c| c.as_str()), Some("cursor"));
    assert_eq!(p.scopes(), alice().scopes());
    assert_eq!(p.audience(), ["notes"]);
    assert_eq!(p.claims()["iss"], "https://gw.example");
    let (iat, exp) = (
        p.claims()["iat"].as_u64().unwrap(),
        p.claims()["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 60);
    assert_eq!(p.claims()["jti"].as_str().unwrap().len(), 22);

    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(header.kid.as_deref(), Some(signer.kid()));
    assert_eq!(header.alg, Algorithm::ES256);

    // Bound to one upstream: another audience refuses it.
    let other = verifier_for(&signer, "billing");
    assert_eq!(
        other.verify(&Credential::Bearer(token)).await.unwrap_err(),
        VerifyError::Invalid("Token audience does not include billing".into())
    );
}

#[tokio::test]
async fn a_stored_key_signs_the_same_way_and_tokens_are_unique() {
    let (first, pem) = IdentitySigner::generate("https://gw.example").unwrap();
    let again = IdentitySigner::from_pem(&pem, "https://gw.example").unwrap();
    assert_eq!(first.kid(), again.kid());
    let v = verifier_for(&first, "notes");
    let a = again.sign(&alice(), "notes").unwrap();
    let b = again.sign(&alice(), "notes").unwrap();
    assert_ne!(a, b, "each token has its own jti");
    v.verify(&Credential::Bearer(a)).await.unwrap();
}

#[test]
fn the_jwks_holds_the_public_key_only() {
    let (signer, _) = IdentitySigner::generate("https://gw.example").unwrap();
    let jwks = signer.jwks();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["kid"], signer.kid());
    assert!(key.get("d").is_none(), "no private part");
    assert!(!format!("{signer:?}").contains("PRIVATE"));
}

#[test]
fn the_key_must_be_a_p256_private_key() {
    let e = IdentitySigner::from_pem("nonsense", "x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("PKCS#8 PEM"), "{e}");
    let (signer, _) = IdentitySigner::generate("x").unwrap();
    let e = IdentitySigner::from_pem(signer.public_key_pem(), "x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not an EC private key"), "{e}");
    let p384 =
        EcdsaKeyPair::generate(&aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
    let pem = pem_encode("PRIVATE KEY", p384.to_pkcs8v1().unwrap().as_ref());
    let e = IdentitySigner::from_pem(&pem, "x").unwrap_err().to_string();
    assert!(e.contains("P-256"), "{e}");
}
