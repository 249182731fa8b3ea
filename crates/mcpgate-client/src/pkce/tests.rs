use super::*;

#[test]
fn rfc7636_appendix_b_vector() {
    assert_eq!(
        s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}

#[test]
fn verifiers_are_fresh_and_long_enough() {
    let a = Pkce::new();
    let b = Pkce::new();
    assert_ne!(a.verifier, b.verifier);
    assert_eq!(a.verifier.len(), 43);
    assert_eq!(a.challenge, s256(&a.verifier));
    assert!(!format!("{a:?}").contains(&a.verifier));
}
