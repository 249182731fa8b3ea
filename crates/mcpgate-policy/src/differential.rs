//! The fast path (scope index, prepared parts kept per caller and target,
//! only the policies that read `context` evaluated per call) against plain
//! Cedar over the whole file with everything built afresh, on calls made by
//! a deterministic generator over several policy files.

use std::path::Path;

use cedar_policy::{Authorizer, Context, Decision as CedarDecision, Effect, Request};
use serde_json::{Value, json};

use crate::entities::{context, entities};
use crate::{Call, Caller, Decision, Hints, Operation, Rules};

/// What Cedar says over the whole file: its decision, the policies it names
/// and the errors, in file order. The reference the fast path must equal.
fn plain(rules: &Rules, call: &Call<'_>, context: Context) -> (Decision, bool) {
    let types = &rules.types;
    let resource = types.target(call.op, call.name);
    let request = Request::new(
        types.user(call.caller.subject),
        types.action(call.op.method()),
        resource.clone(),
        context,
        None,
    );
    let Ok(request) = request else {
        let d = Decision {
            allowed: false,
            deciding: Vec::new(),
            errors: Vec::new(),
        };
        return (d, false);
    };
    let entities = entities(types, call, &resource);
    let response = Authorizer::new().is_authorized(&request, rules.scopes.all(), &entities);
    let d = response.diagnostics();
    let at = |id| {
        rules
            .scopes
            .position(id)
            .expect("every policy has a position")
    };
    let name = |i: usize| rules.scopes.get(i).expect("a position").name.clone();
    let mut reasons: Vec<usize> = d.reason().map(at).collect();
    reasons.sort_unstable();
    let mut errors: Vec<(usize, String)> = d
        .errors()
        .map(|e| {
            let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = e;
            (at(e.policy_id()), e.inner().to_string())
        })
        .collect();
    errors.sort_by_key(|(i, _)| *i);
    let allowed = response.decision() == CedarDecision::Allow;
    let shown = allowed
        || (reasons.is_empty()
            && errors.iter().any(|(i, _)| {
                rules.scopes.get(*i).expect("a position").policy.effect() == Effect::Permit
            }));
    let decision = Decision {
        allowed,
        deciding: reasons.into_iter().map(name).collect(),
        errors: errors
            .into_iter()
            .map(|(i, why)| format!("{}: {why}", name(i)))
            .collect(),
    };
    (decision, shown)
}

/// The arguments are always read here: leaving them unread when no policy
/// mentions `context` is one of the shortcuts under test.
fn reference_decide(rules: &Rules, call: &Call<'_>) -> Decision {
    plain(rules, call, context(call.args)).0
}

fn reference_visible(rules: &Rules, call: &Call<'_>) -> bool {
    plain(rules, call, Context::empty()).1
}

/// The 50 rules of bench/callgrind.sh's `policy50`, written the same way.
fn policy50() -> String {
    let mut s = String::new();
    for i in 1..=20 {
        s += &format!(
            "@id(\"no-delete-{i}\")\nforbid (principal, action == Action::\"tools/call\", resource)\n\
             when {{ resource.name like \"*_delete_{i}*\" }}\nunless {{ principal in Group::\"sre\" }};\n\n"
        );
    }
    for i in 1..=20 {
        s += &format!(
            "@id(\"team-{i}\")\npermit (principal in Group::\"team{i}\", action, resource)\n\
             when {{ resource.upstream == \"up{i}\" }};\n\n"
        );
    }
    for i in 1..=9 {
        s += &format!(
            "@id(\"issues-{i}\")\npermit (principal, action == Action::\"tools/call\", resource == Tool::\"tool{i}\")\n\
             when {{ context has repo && context.repo like \"acme{i}/*\" }};\n\n"
        );
    }
    s += "@id(\"echo\")\npermit (principal, action == Action::\"tools/call\", resource == Tool::\"echo\")\n\
          when { context has text && context.text like \"call*\" };\n";
    s
}

/// The ```cedar blocks of docs/POLICY.md.
fn doc_examples() -> Vec<String> {
    let doc = include_str!("../../../docs/POLICY.md");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line.trim()) {
            (None, "```cedar") => current = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(std::mem::take(b));
                current = None;
            }
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(blocks.len() >= 3, "docs/POLICY.md lost its examples");
    blocks
}

/// Every kind of scope the index reads, conditions with `unless`, `has`,
/// `like`, `in`, sets, records, and policies that error (missing
/// attributes, a client that is not there, type mismatches), reading the
/// context or not, and a template that is never linked.
const EDGES: &str = r#"
@id("alice-github") permit (principal == User::"alice", action, resource) when { resource.name like "github_*" };
@id("in-user") permit (principal in User::"bob", action in [Action::"prompts/get", Action::"resources/read"], resource);
@id("is-user") permit (principal is User, action == Action::"tools/call", resource is Tool) when { principal.scopes.contains("write") };
@id("is-in-group") forbid (principal is User in Group::"dev", action, resource is Tool in Tool::"github_delete_repo");
@id("group-as-principal") permit (principal == Group::"sre", action, resource);
@id("other-namespace") permit (principal in Ns::Group::"sre", action, resource);
@id("is-group") permit (principal is Group, action, resource);
@id("resource-in") permit (principal, action, resource in Tool::"tool3") when { context.limit > 5 };
@id("prompt-named") permit (principal, action == Action::"prompts/get", resource == Prompt::"greeting");
@id("uri") permit (principal, action == Action::"resources/read", resource) when { resource.name like "file:///*" } unless { principal has client };
@id("admin-scope") permit (principal, action, resource) when { principal.scopes.contains("admin") };
@id("admins-off-jira") forbid (principal, action, resource) when { principal.groups.contains("admins") && resource.upstream == "jira" };
@id("read-only-unguarded") forbid (principal, action == Action::"tools/call", resource) when { resource.read_only };
@id("vetted-client") permit (principal, action, resource) when { principal.client.id == "vetted-app" };
@id("evil-repo") forbid (principal, action, resource) when { context.repo like "evil/*" };
@id("jira-needs-text") forbid (principal, action == Action::"tools/call", resource == Tool::"jira_search") when { !(context has text) };
@id("word-in-literal") permit (principal, action, resource == Tool::"echo") when { resource.name == "context" };
@id("type-error") permit (principal, action, resource) when { context.text like "call*" && context.repo == 5 };
@id("play") forbid (principal, action, resource) when { resource has virtual_server && resource.virtual_server == "play" } unless { resource has destructive && !resource.destructive };
@id("nested") permit (principal, action, resource) when { context has nested && context.nested.a.contains(1) };
@id("list-action") permit (principal, action == Action::"tools/list", resource);
@id("other-action-group") permit (principal, action in Action::"all", resource);
@id("wrong-type") permit (principal, action, resource == Prompt::"echo") when { principal.groups.contains("team1") };
@id("empty-names") permit (principal == User::"", action, resource == Resource::"");
@id("star-escape") forbid (principal, action, resource) when { resource.name like "x_delete_1\*" };
@id("sre-anything") permit (principal in Group::"sre", action, resource) unless { context has dry_run && context.dry_run };
@id("dynamic-tools") forbid (principal, action == Action::"tools/call", resource) when { principal has client && principal.client.dynamic } unless { resource has read_only && resource.read_only };
@id("upstream-set") permit (principal, action, resource) when { ["up1", "up3"].contains(resource.upstream) && principal.client.metadata_document };
@id("template") permit (principal == ?principal, action, resource);
permit (principal, action == Action::"tools/call", resource == Tool::"tool9") when { context.limit == 10 };
"#;

/// Argument conditions in every form `native.rs` evaluates without Cedar,
/// alone and mixed with forms it leaves to Cedar, including the ones that
/// err (a missing attribute, a type mismatch) so the call falls back.
const NATIVE: &str = r#"
@id("repo") permit (principal, action == Action::"tools/call", resource) when { context has repo && context.repo like "acme*/*" };
@id("text-call") permit (principal, action, resource == Tool::"echo") when { context has text && context.text like "call*" };
@id("text-bare") forbid (principal, action, resource == Tool::"echo") when { context.text like "*evil*" };
@id("limit") permit (principal, action, resource) when { context has limit && context.limit <= 10 && context.limit > -5 } unless { context has dry_run && context.dry_run };
@id("limit-gte") forbid (principal, action, resource == Tool::"tool3") when { 100 >= context.limit };
@id("neq") forbid (principal, action, resource == Tool::"tool1") when { !(context has text) || context.text != "call 1" };
@id("eq-types") permit (principal, action, resource == Tool::"tool9") when { context.limit == 10 || context.repo == "acme/widgets" || context.dry_run == true };
@id("deep-has") permit (principal, action, resource) when { context has nested.a.b && context.nested.a.b == 5 };
@id("deep-has-missing") forbid (principal, action, resource == Tool::"github_get_me") when { context has nested.x.y };
@id("unicode") permit (principal, action, resource) when { context has text && context.text like "ü*ï" };
@id("escaped-star") forbid (principal, action, resource) when { context has repo && context.repo like "acme\*" };
@id("literal-only") permit (principal, action, resource == Tool::"tool10") when { "context" == "context" && true };
@id("deep") permit (principal, action, resource == Tool::"jira_search") when { context has d && context.d has d };
@id("mixed") permit (principal, action, resource == Tool::"tool1") when { resource.upstream == "up1" && context has text };
@id("has-only") forbid (principal, action, resource == Tool::"tool10") when { context has text };
@id("unless-only") forbid (principal, action, resource == Tool::"github_delete_repo") unless { context has confirm && context.confirm == "yes" };
"#;

/// Nested `depth` records deep: `{"d": {"d": … {"d": 1}}}`.
fn deep(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!({ "d": inner }))
}

/// A linear congruential generator: the same calls every run.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn some<T: Copy>(&mut self, items: &[T], most: usize) -> Vec<T> {
        (0..self.below(most + 1))
            .map(|_| self.pick(items))
            .collect()
    }
}

const SUBJECTS: &[&str] = &["alice", "bob", "carol", "", "sre", "ünïcødé \"q\""];
const GROUPS: &[&str] = &["sre", "team1", "team3", "team20", "dev", "admins"];
const SCOPES: &[&str] = &["read", "write", "admin", "tools:call"];
const CLIENTS: &[Option<&str>] = &[
    None,
    Some("mcpg-abc"),
    Some("https://client.example/md.json"),
    Some("vetted-app"),
];
const OPS: &[Operation] = &[
    Operation::ToolsCall,
    Operation::ToolsCall,
    Operation::PromptsGet,
    Operation::ResourcesRead,
];
const NAMES: &[&str] = &[
    "echo",
    "echo",
    "tool1",
    "tool3",
    "tool9",
    "tool10",
    "github_create_issue",
    "github_delete_repo",
    "github_get_me",
    "x_delete_3y",
    "x_delete_12",
    "x_delete_1*",
    "jira_search",
    "greeting",
    "file:///etc/hosts",
    "",
    "context",
];
const UPSTREAMS: &[&str] = &["echo", "up1", "up3", "up20", "github", "jira", ""];
const SERVERS: &[Option<&str>] = &[None, None, Some("work"), Some("play")];
const FLAGS: &[Option<bool>] = &[None, Some(false), Some(true)];

fn arguments() -> Vec<Value> {
    vec![
        json!({}),
        json!({"text": "call 1"}),
        json!({"text": "hello"}),
        json!({"repo": "acme1/x"}),
        json!({"repo": "acme/widgets", "title": "t"}),
        json!({"repo": "evil/w"}),
        json!({"repo": 5, "text": "call me"}),
        json!({"text": null}),
        json!({"repo": {"__entity": {"type": "User", "id": "admin"}}}),
        json!({"limit": 10, "n": 1.5}),
        json!({"limit": 3}),
        json!({"dry_run": true}),
        json!({"dry_run": "yes"}),
        json!({"nested": {"a": [1, 2, {"b": true}]}}),
        json!({"nested": {"a": "not a set"}}),
        json!([1, 2]),
        json!("a string"),
        json!({"big": 18446744073709551615u64}),
        json!({"limit": -7}),
        json!({"limit": 100, "text": "an evil call"}),
        json!({"limit": "10"}),
        json!({"nested": {"a": {"b": 5}}}),
        json!({"nested": {"a": {"b": "5"}}}),
        json!({"nested": {"a": "x"}, "text": "ünï"}),
        json!({"text": "ü-ï", "repo": "acme*"}),
        json!({"repo": "acme\\x", "confirm": "yes"}),
        json!({"repo": "acme7/x", "text": "call 1", "confirm": "no"}),
        json!({"dry_run": false, "limit": 0}),
        json!({"text": ["call"], "repo": {"a": 1}}),
        deep(31),
        deep(32),
        deep(33),
        deep(40),
    ]
}

fn load(src: &str) -> Rules {
    match Rules::parse(Path::new("differential.cedar"), src, None) {
        Ok(r) => r,
        Err(e) => panic!("a differential policy file does not load: {e}\n{src}"),
    }
}

/// `n` generated callers and targets, each called with two arguments (so
/// the second finds the first's prepared parts) and listed.
fn agree(src: &str, n: usize, seed: u64) -> Seen {
    let rules = load(src);
    let mut seen = Seen::default();
    let args = arguments();
    let mut g = Lcg(seed);
    for _ in 0..n {
        let client = g.pick(CLIENTS);
        let caller = Caller {
            subject: g.pick(SUBJECTS),
            groups: g.some(GROUPS, 3).into_iter().map(str::to_owned).collect(),
            scopes: g.some(SCOPES, 2).into_iter().map(str::to_owned).collect(),
            client_id: client,
            client_dynamic: client.is_some_and(|c| c.starts_with("mcpg-")),
            client_metadata_document: client.is_some_and(|c| c.starts_with("https://")),
        };
        let mut call = Call {
            caller,
            op: g.pick(OPS),
            name: g.pick(NAMES),
            upstream: g.pick(UPSTREAMS),
            virtual_server: g.pick(SERVERS),
            hints: Hints {
                read_only: g.pick(FLAGS),
                destructive: g.pick(FLAGS),
            },
            args: None,
        };
        for a in [&args[g.below(args.len())], &args[g.below(args.len())]] {
            call.args = g.pick(&[true, true, false]).then_some(a);
            let d = rules.decide(&call);
            assert_eq!(
                d,
                reference_decide(&rules, &call),
                "decide differs for {call:?}"
            );
            seen.allowed += usize::from(d.allowed);
            seen.forbidden += usize::from(!d.allowed && !d.deciding.is_empty());
            seen.erring += usize::from(!d.errors.is_empty());
        }
        let v = rules.visible(&call);
        assert_eq!(
            v,
            reference_visible(&rules, &call),
            "visible differs for {call:?}"
        );
        seen.hidden += usize::from(!v);
    }
    seen
}

/// Each of `NAMES` called with each of `arguments()` by one caller: the
/// generator above may miss the one argument that tells two evaluations
/// apart, this does not.
fn every_name_with_every_argument(src: &str) {
    let rules = load(src);
    let args = arguments();
    for op in [Operation::ToolsCall, Operation::PromptsGet] {
        for name in NAMES {
            for a in &args {
                let call = Call {
                    caller: Caller {
                        subject: "alice",
                        groups: vec!["team1".to_owned()],
                        ..Caller::default()
                    },
                    op,
                    name,
                    upstream: "up1",
                    virtual_server: None,
                    hints: Hints::default(),
                    args: Some(a),
                };
                assert_eq!(
                    rules.decide(&call),
                    reference_decide(&rules, &call),
                    "decide differs for {call:?}"
                );
            }
        }
    }
}

/// How many generated calls were allowed, forbidden, had errors, or were
/// hidden from lists: a generator that never reaches an outcome tests nothing.
#[derive(Debug, Default)]
struct Seen {
    allowed: usize,
    forbidden: usize,
    erring: usize,
    hidden: usize,
}

impl Seen {
    fn reaches_every_outcome(&self) {
        assert!(
            self.allowed > 0 && self.forbidden > 0 && self.erring > 0 && self.hidden > 0,
            "{self:?}"
        );
    }
}

#[test]
fn the_bench_file_decides_as_plain_cedar() {
    let seen = agree(&policy50(), 1500, 1);
    seen.reaches_every_outcome();
}

#[test]
fn the_docs_examples_decide_as_plain_cedar() {
    let blocks = doc_examples();
    for (i, b) in blocks.iter().enumerate() {
        agree(b, 300, 10 + i as u64);
    }
    let seen = agree(&blocks.concat(), 1000, 2);
    seen.reaches_every_outcome();
}

#[test]
fn every_scope_and_error_decides_as_plain_cedar() {
    let seen = agree(EDGES, 1500, 3);
    seen.reaches_every_outcome();
    let seen = agree(&format!("{EDGES}\n{}", policy50()), 800, 4);
    seen.reaches_every_outcome();
}

#[test]
fn argument_conditions_evaluated_without_cedar_decide_as_plain_cedar() {
    let seen = agree(NATIVE, 2000, 7);
    seen.reaches_every_outcome();
    every_name_with_every_argument(NATIVE);
    let seen = agree(&format!("{NATIVE}\n{EDGES}\n{}", policy50()), 1000, 8);
    seen.reaches_every_outcome();
    // Around the depth where `entities::context` stops: `context has d.d…d`.
    let deep_rules: String = (29..=35)
        .map(|n| {
            let path = vec!["d"; n].join(".");
            format!("@id(\"deep-{n}\") permit (principal, action, resource) when {{ context has {path} }};\n")
        })
        .collect();
    agree(&deep_rules, 600, 9);
}

/// The bench's call takes the path without Cedar: the differential tests
/// above would pass as well if it never did.
#[test]
fn the_bench_call_is_decided_without_cedar() {
    let rules = load(&policy50());
    let args = json!({"text": "call 7"});
    let call = Call {
        caller: Caller::default(),
        op: Operation::ToolsCall,
        name: "echo",
        upstream: "echo",
        virtual_server: None,
        hints: Hints::default(),
        args: Some(&args),
    };
    let p = crate::prepared::prepared(&rules.prepared, &rules.scopes, &rules.types, &call);
    assert!(p.evaluated_natively(), "{p:?}");
    assert!(rules.decide(&call).allowed);
}

#[test]
fn no_policy_and_only_forbids_decide_as_plain_cedar() {
    agree("", 200, 5);
    agree(
        "forbid (principal, action, resource) when { context has repo };\n\
         forbid (principal in Group::\"sre\", action, resource);",
        300,
        6,
    );
}

#[test]
fn decisions_name_policies_in_file_order() {
    let rules = load(
        "@id(\"z\") permit (principal, action, resource);\n\
         @id(\"a\") permit (principal, action, resource == Tool::\"t\");\n\
         @id(\"m\") permit (principal, action, resource) when { context.x == 1 };",
    );
    let args = json!({"x": 1});
    let call = Call {
        caller: Caller::default(),
        op: Operation::ToolsCall,
        name: "t",
        upstream: "u",
        virtual_server: None,
        hints: Hints::default(),
        args: Some(&args),
    };
    for _ in 0..2 {
        assert_eq!(rules.decide(&call).deciding, ["z", "a", "m"]);
    }
}
