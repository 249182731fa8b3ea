use std::time::Duration;

use super::config::{RateLimitConfig, Window, parse_per, rate_limit_problems};
use super::rule::{Outcome, Rule, Subject};

fn rule(toml: &str) -> RateLimitConfig {
    toml::from_str(toml).expect("a [[rate_limit]] table")
}

fn who<'a>(
    subject: &'a str,
    client: Option<&'a str>,
    upstream: &'a str,
    tool: Option<&'a str>,
) -> Subject<'a> {
    Subject {
        subject,
        client,
        upstream,
        tool,
    }
}

#[test]
fn per_takes_a_number_and_a_unit() {
    assert_eq!(parse_per("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_per("1m"), Ok(Duration::from_secs(60)));
    assert_eq!(parse_per("m"), Ok(Duration::from_secs(60)));
    assert_eq!(parse_per(" 2h "), Ok(Duration::from_secs(7_200)));
    assert_eq!(parse_per("1d"), Ok(Duration::from_secs(86_400)));
    for bad in ["", "0m", "1w", "1.5m", "-1m", "m1"] {
        assert!(parse_per(bad).is_err(), "{bad:?} should be refused");
    }
}

#[test]
fn a_day_is_a_quota_and_longer_windows_are_refused() {
    assert_eq!(
        rule("limit = 3\nper = \"1m\"").window(),
        Ok(Window::Bucket(Duration::from_secs(60)))
    );
    assert_eq!(rule("limit = 3\nper = \"1d\"").window(), Ok(Window::Daily));
    assert_eq!(rule("limit = 3\nper = \"24h\"").window(), Ok(Window::Daily));
    assert_eq!(rule("limit = 3\nquota = true").window(), Ok(Window::Daily));
    assert!(
        rule("limit = 3\nquota = true\nper = \"1h\"")
            .window()
            .is_err()
    );
    assert!(rule("limit = 3\nper = \"2d\"").window().is_err());
    assert!(rule("limit = 3").window().is_err());
}

#[test]
fn problems_name_the_table_and_the_key() {
    let rules = vec![
        rule("limit = 0\nper = \"1m\""),
        rule("limit = 1\nper = \"1x\""),
        rule("limit = 1\nper = \"1m\"\ntool = \"[\""),
        rule("limit = 1\nper = \"1m\"\nname = \"a\""),
        rule("limit = 1\nper = \"1m\"\nname = \"a\""),
    ];
    let p = rate_limit_problems(&rules);
    assert!(
        p.iter().any(|l| l.starts_with("rate_limit[0].limit")),
        "{p:?}"
    );
    assert!(
        p.iter().any(|l| l.starts_with("rate_limit[1].per")),
        "{p:?}"
    );
    assert!(
        p.iter().any(|l| l.starts_with("rate_limit[2].tool")),
        "{p:?}"
    );
    assert!(
        p.iter().any(|l| l.starts_with("rate_limit[4].name")),
        "{p:?}"
    );
    assert_eq!(p.len(), 4, "{p:?}");
    let unknown = toml::from_str::<RateLimitConfig>("limit = 1\nper = \"1m\"\nsubjects = \"a\"");
    assert!(unknown.unwrap_err().to_string().contains("subjects"));
}

#[test]
fn selectors_filter_and_rules_with_a_tool_match_only_tool_calls() {
    let r = Rule::new(
        &rule("limit = 1\nper = \"1m\"\ntool = \"*_delete_*\"\nupstream = \"git*\""),
        0,
    )
    .unwrap();
    assert!(r.matches(&who("alice", None, "github", Some("repo_delete_branch"))));
    assert!(!r.matches(&who("alice", None, "github", Some("repo_list"))));
    assert!(!r.matches(&who("alice", None, "jira", Some("repo_delete_branch"))));
    assert!(!r.matches(&who("alice", None, "github", None)));
    let req = Rule::new(&rule("limit = 1\nper = \"1m\"\nclient = \"mcpg-*\""), 0).unwrap();
    assert!(req.matches(&who("alice", Some("mcpg-123"), "github", None)));
    assert!(!req.matches(&who("alice", Some("other"), "github", None)));
    assert!(
        !req.matches(&who("alice", None, "github", None)),
        "no client id: no match"
    );
    assert!(!req.matches(&who("alice", Some("mcpg-123"), "github", Some("x"))));
}

#[test]
fn a_rule_counts_per_dimension_it_names() {
    let everyone = Rule::new(&rule("limit = 1\nper = \"1m\""), 0).unwrap();
    let per_subject = Rule::new(
        &rule("limit = 1\nper = \"1m\"\nsubject = \"*\"\nname = \"each\""),
        1,
    )
    .unwrap();
    let (a, b) = (who("alice", None, "up", None), who("bob", None, "up", None));
    assert_eq!(everyone.key(&a), everyone.key(&b));
    assert_eq!(everyone.key(&a), "rate_limit[0]");
    assert_ne!(per_subject.key(&a), per_subject.key(&b));
    assert!(per_subject.key(&a).starts_with("each"));
}

#[test]
fn a_bucket_lets_limit_calls_through_then_says_when_to_retry() {
    let r = Rule::new(&rule("limit = 3\nper = \"1m\"\nsubject = \"*\""), 0).unwrap();
    let k = r.key(&who("alice", None, "up", None));
    let got: Vec<Outcome> = (0..4).map(|_| r.take_bucket(&k).unwrap()).collect();
    assert_eq!(got[0], Outcome::Allowed { remaining: 2 });
    assert_eq!(got[2], Outcome::Allowed { remaining: 0 });
    match got[3] {
        Outcome::Refused { retry_after } => {
            assert!(
                retry_after > Duration::from_secs(15) && retry_after <= Duration::from_secs(20),
                "{retry_after:?}"
            )
        }
        other => panic!("the fourth call passed: {other:?}"),
    }
    // Another subject has its own bucket.
    let other = r.key(&who("bob", None, "up", None));
    assert!(matches!(
        r.take_bucket(&other),
        Some(Outcome::Allowed { .. })
    ));
}
