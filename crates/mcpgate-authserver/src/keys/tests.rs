use super::*;

#[test]
fn every_algorithm_signs_what_its_jwk_verifies() {
    for alg in [SigningAlg::ES256, SigningAlg::EdDSA, SigningAlg::RS256] {
        let der = generate(alg).unwrap();
        let key = SigningKey::from_pkcs8(alg, &der, true).unwrap();
        let claims = serde_json::json!({ "sub": "alice", "aud": "x", "exp": 4_000_000_000u64 });
        let token = key.sign("at+jwt", &claims).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        let mut v = jsonwebtoken::Validation::new(key.algorithm());
        v.set_audience(&["x"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(&token, &key.decoding, &v).unwrap();
        assert_eq!(data.claims["sub"], "alice");
        // A key from the published JWK verifies too.
        let jwk: Jwk = serde_json::from_value(key.jwk.clone()).unwrap();
        let dk = DecodingKey::from_jwk(&jwk).unwrap();
        jsonwebtoken::decode::<serde_json::Value>(&token, &dk, &v).unwrap();
    }
}
