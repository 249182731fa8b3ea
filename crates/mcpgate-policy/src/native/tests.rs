use std::str::FromStr;

use cedar_policy::{Authorizer, Entities, EntityUid, Policy, PolicySet, Request};
use serde_json::json;

use super::{Conditions, Elem, like};
use crate::entities::context;

fn compile(src: &str) -> Option<Conditions> {
    let p = Policy::from_str(src).unwrap_or_else(|e| panic!("{src}: {e}"));
    Conditions::compile(&p)
}

fn pattern(p: &str) -> Vec<Elem> {
    p.chars()
        .map(|c| if c == '*' { Elem::Any } else { Elem::Char(c) })
        .collect()
}

#[test]
fn the_argument_conditions_of_the_docs_compile() {
    for src in [
        r#"permit (principal, action, resource) when { context has repo && context.repo like "acme/*" };"#,
        r#"permit (principal, action, resource) when { context.limit <= 10 } unless { context has dry_run && context.dry_run };"#,
        r#"forbid (principal, action, resource) when { !(context has text) || context.text != "x" };"#,
        r#"permit (principal, action, resource) when { context has a.b.c && context.a.b.c == 5 };"#,
        r#"permit (principal, action, resource);"#,
    ] {
        assert!(compile(src).is_some(), "{src}");
    }
}

#[test]
fn anything_else_is_left_to_cedar() {
    for src in [
        r#"permit (principal, action, resource) when { principal.scopes.contains("x") };"#,
        r#"permit (principal, action, resource) when { resource.name like "x*" && context.a == 1 };"#,
        r#"permit (principal, action, resource) when { context.a == context.b };"#,
        r#"permit (principal, action, resource) when { context.a < context.b };"#,
        r#"permit (principal, action, resource) when { context.tags.contains("x") };"#,
        r#"permit (principal, action, resource) when { if context.a then true else false };"#,
        r#"permit (principal, action, resource) when { context == {} };"#,
        r#"permit (principal, action, resource) when { context.ip == ip("10.0.0.1") };"#,
        r#"permit (principal, action, resource) when { context.n + 1 > 2 };"#,
    ] {
        assert!(compile(src).is_none(), "{src}");
    }
}

#[test]
fn errors_are_left_to_cedar_and_absent_values_are_absent() {
    let c = compile(r#"permit (principal, action, resource) when { context.repo like "acme/*" };"#)
        .expect("compiles");
    assert_eq!(c.hold(Some(&json!({"repo": "acme/x"}))), Some(true));
    assert_eq!(c.hold(Some(&json!({"repo": "evil/x"}))), Some(false));
    // Missing, null (absent), a number: Cedar errors.
    for args in [
        json!({}),
        json!({"repo": null}),
        json!({"repo": 5}),
        json!([1]),
    ] {
        assert_eq!(c.hold(Some(&args)), None, "{args}");
    }
    assert_eq!(c.hold(None), None);
    let has = compile(r#"permit (principal, action, resource) when { context has n };"#)
        .expect("compiles");
    assert_eq!(has.hold(Some(&json!({"n": 1.5}))), Some(false));
    assert_eq!(
        has.hold(Some(&json!({"n": 18446744073709551615u64}))),
        Some(false)
    );
    assert_eq!(has.hold(Some(&json!({"n": -3}))), Some(true));
}

#[test]
fn unless_and_short_circuits_follow_cedar() {
    let c = compile(
        r#"permit (principal, action, resource) when { context has a && context.a > 3 } unless { context.b };"#,
    )
    .expect("compiles");
    // The first condition false: the second is never evaluated (no error).
    assert_eq!(c.hold(Some(&json!({"a": 1}))), Some(false));
    assert_eq!(c.hold(Some(&json!({"a": 5, "b": false}))), Some(true));
    assert_eq!(c.hold(Some(&json!({"a": 5, "b": true}))), Some(false));
    assert_eq!(c.hold(Some(&json!({"a": 5}))), None);
    assert_eq!(c.hold(Some(&json!({"a": 5, "b": "yes"}))), None);
}

#[test]
fn like_matches_by_character() {
    let cases = [
        ("", "", true),
        ("", "*", true),
        ("a", "", false),
        ("call 1", "call*", true),
        ("cal", "call*", false),
        ("x_delete_12", "*_delete_1*", true),
        ("x_delete_2", "*_delete_1*", false),
        ("abcabd", "*abd", true),
        ("aaa", "a*a*a", true),
        ("aa", "a*a*a", false),
        ("ünï", "ü*ï", true),
        ("ünï", "ü?ï", false),
        ("mississippi", "m*iss*pi", true),
        ("mississippi", "m*iss*ppx", false),
    ];
    for (text, p, want) in cases {
        assert_eq!(like(text, &pattern(p)), want, "{text:?} like {p:?}");
    }
    // An escaped star in Cedar is a literal character.
    assert!(like("x*", &[Elem::Char('x'), Elem::Char('*')]));
    assert!(!like("xy", &[Elem::Char('x'), Elem::Char('*')]));
}

/// Conditions in every compiled form, each alone in a policy whose scope
/// any request satisfies.
const CONDITIONS: &[&str] = &[
    r#"when { context has repo && context.repo like "acme*/*" }"#,
    r#"when { context.text like "call*" }"#,
    r#"when { context has text && context.text like "*evil*" }"#,
    r#"when { context has limit && context.limit <= 10 && context.limit > -5 } unless { context has dry_run && context.dry_run }"#,
    r#"when { 100 >= context.limit }"#,
    r#"when { context.limit < 3 || context.limit >= 50 }"#,
    r#"when { !(context has text) || context.text != "call 1" }"#,
    r#"when { context.limit == 10 || context.repo == "acme/widgets" || context.dry_run == true }"#,
    r#"when { context.text == 5 }"#,
    r#"when { context.nested == "x" }"#,
    r#"when { context has nested.a.b && context.nested.a.b == 5 }"#,
    r#"when { context has nested.a.b }"#,
    r#"when { context.nested has a }"#,
    r#"when { context has text && context.text like "ü*ï" }"#,
    r#"when { context.repo like "acme\*" }"#,
    r#"when { "context" == "context" && true }"#,
    r#"when { context has text }"#,
    r#"when { context.dry_run }"#,
    r#"unless { context.dry_run }"#,
    r#"when { context has d.d.d && context.d.d.d == 1 }"#,
    r#"unless { context has confirm && context.confirm == "yes" }"#,
];

fn deep(depth: usize) -> serde_json::Value {
    (0..depth).fold(json!(1), |inner, _| json!({ "d": inner }))
}

fn arguments() -> Vec<serde_json::Value> {
    let mut args = vec![
        json!({}),
        json!({"text": "call 1"}),
        json!({"text": "hello"}),
        json!({"text": "CALL 1"}),
        json!({"text": "Ünï"}),
        json!({"text": null}),
        json!({"text": 5}),
        json!({"text": "an evil call", "limit": 100}),
        json!({"text": "ünï"}),
        json!({"text": "ü-ï", "repo": "acme*"}),
        json!({"text": ["call"], "repo": {"a": 1}}),
        json!({"repo": "acme1/x"}),
        json!({"repo": "acme/widgets", "confirm": "yes"}),
        json!({"repo": "evil/w", "confirm": "no"}),
        json!({"repo": 5}),
        json!({"limit": 10, "n": 1.5}),
        json!({"limit": 3}),
        json!({"limit": -7}),
        json!({"limit": -4}),
        json!({"limit": 50}),
        json!({"limit": "10"}),
        json!({"limit": 18446744073709551615u64}),
        json!({"dry_run": true, "limit": 1}),
        json!({"dry_run": false, "limit": 0}),
        json!({"dry_run": "yes"}),
        json!({"nested": {"a": {"b": 5}}}),
        json!({"nested": {"a": {"b": "5"}}}),
        json!({"nested": {"a": "x"}}),
        json!({"nested": "x"}),
        json!({"nested": null}),
        json!([1, 2]),
        json!("a string"),
    ];
    args.extend([1, 2, 3, 4, 32, 33, 34].map(deep));
    args
}

/// What Cedar says of one policy alone: satisfied, and whether it erred.
fn cedar(policy: &Policy, args: &serde_json::Value) -> (bool, bool) {
    let uid = |s: &str| {
        s.parse::<EntityUid>()
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    };
    let request = Request::new(
        uid(r#"User::"u""#),
        uid(r#"Action::"tools/call""#),
        uid(r#"Tool::"t""#),
        context(Some(args)),
        None,
    )
    .expect("a request");
    let set = PolicySet::from_policies([policy.clone()]).expect("a set");
    let r = Authorizer::new().is_authorized(&request, &set, &Entities::empty());
    let d = r.diagnostics();
    (d.reason().count() == 1, d.errors().count() > 0)
}

/// Each condition alone against Cedar, on every argument: satisfied exactly
/// when Cedar's is, and `None` exactly when Cedar errs (so neither a wrong
/// answer nor a needless fall-back to Cedar).
#[test]
fn each_condition_answers_as_cedar() {
    let mut answered = [0usize; 3];
    // Around the depth where `entities::context` stops.
    let deep_conditions =
        (30..=35).map(|n| format!("when {{ context has {} }}", vec!["d"; n].join(".")));
    let conditions = CONDITIONS
        .iter()
        .map(|c| c.to_string())
        .chain(deep_conditions);
    for cond in conditions {
        let src = format!("permit (principal, action, resource) {cond};");
        let policy = Policy::from_str(&src).unwrap_or_else(|e| panic!("{src}: {e}"));
        let c = Conditions::compile(&policy).unwrap_or_else(|| panic!("{src} does not compile"));
        for args in arguments() {
            let (satisfied, erred) = cedar(&policy, &args);
            let want = (!erred).then_some(satisfied);
            assert_eq!(c.hold(Some(&args)), want, "{src} with {args}");
            answered[match want {
                Some(true) => 0,
                Some(false) => 1,
                None => 2,
            }] += 1;
        }
    }
    assert!(answered.iter().all(|n| *n > 20), "{answered:?}");
}
