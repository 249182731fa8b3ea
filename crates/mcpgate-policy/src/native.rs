//! The argument conditions rules are mostly written with (`context has repo
//! && context.repo like "acme/*"`, `context.limit <= 10`), evaluated on the
//! call's JSON arguments directly. Building Cedar's context and request and
//! running its evaluator costs a call several times the rest of its
//! decision; these conditions need none of it.
//!
//! Exact by construction, not by approximation: a policy is compiled only
//! when every part of its conditions is one of the forms below and reads
//! nothing but `context` and literals, and whatever Cedar would report as an
//! error (a missing attribute, a type mismatch) evaluates to `None` here:
//! the caller then asks Cedar, so an error's message stays Cedar's own.
//! `differential.rs` holds the two to the same answers.
//!
//! The arguments are seen as `entities::context` shows them to Cedar: a
//! `null`, a fraction or an integer beyond 64 bits is absent, and so is
//! anything nested deeper than its limit.

use std::cmp::Ordering;

use cedar_policy::Policy;
use serde_json::{Map, Value};

use crate::entities::MAX_DEPTH;

/// Expressions nested deeper than this are not compiled (Cedar evaluates them).
const MAX_NESTING: usize = 64;

/// A policy's `when` and `unless` conditions, in the order Cedar evaluates them.
#[derive(Debug)]
pub(crate) struct Conditions(Vec<(Kind, Expr)>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    When,
    Unless,
}

#[derive(Debug)]
enum Expr {
    Bool(bool),
    Long(i64),
    Str(String),
    /// `context` followed by these attributes.
    Context(Vec<String>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    /// `e has a` or `e has a.b.c`.
    Has(Box<Expr>, Vec<String>),
    Like(Box<Expr>, Vec<Elem>),
    /// `==` (or `!=` when the flag is set); one side is a literal.
    Eq(Box<Expr>, Box<Expr>, bool),
    /// `<`, `<=`, `>`, `>=` on longs: true when the ordering is one of these.
    Cmp(Box<Expr>, Box<Expr>, &'static [Ordering]),
}

/// One element of a `like` pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    Any,
    Char(char),
}

/// A value as Cedar would see it; records and sets keep their JSON.
#[derive(Debug, Clone, Copy)]
enum V<'a> {
    Bool(bool),
    Long(i64),
    Str(&'a str),
    Set,
    /// A record, with the depth `entities::context` gave its attributes.
    Record(Option<&'a Map<String, Value>>, usize),
}

impl Conditions {
    /// The conditions of `policy`, if every part of them is one this module
    /// evaluates.
    pub(crate) fn compile(policy: &Policy) -> Option<Conditions> {
        let est = policy.to_json().ok()?;
        let conditions = est.get("conditions")?.as_array()?;
        let mut out = Vec::with_capacity(conditions.len());
        for c in conditions {
            let kind = match c.get("kind")?.as_str()? {
                "when" => Kind::When,
                "unless" => Kind::Unless,
                _ => return None,
            };
            out.push((kind, expr(c.get("body")?, 0)?));
        }
        Some(Conditions(out))
    }

    /// Whether the conditions hold for a call with `args`; `None` where
    /// Cedar would report an error.
    pub(crate) fn hold(&self, args: Option<&Value>) -> Option<bool> {
        let root = match args {
            Some(Value::Object(map)) => V::Record(Some(map), 0),
            _ => V::Record(None, 0),
        };
        for (kind, body) in &self.0 {
            let b = boolean(eval(body, root)?)?;
            if b != (*kind == Kind::When) {
                return Some(false);
            }
        }
        Some(true)
    }
}

fn expr(e: &Value, nesting: usize) -> Option<Expr> {
    if nesting > MAX_NESTING {
        return None;
    }
    let sub = |v: &Value| expr(v, nesting + 1).map(Box::new);
    let obj = e.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    let (op, arg) = obj.iter().next()?;
    let pair = |k1: &str, k2: &str| Some((sub(arg.get(k1)?)?, sub(arg.get(k2)?)?));
    Some(match op.as_str() {
        "Value" => match arg {
            Value::Bool(b) => Expr::Bool(*b),
            Value::Number(n) => Expr::Long(n.as_i64()?),
            Value::String(s) => Expr::Str(s.clone()),
            _ => return None,
        },
        "Var" => match arg.as_str()? {
            "context" => Expr::Context(Vec::new()),
            _ => return None,
        },
        "." => match expr(arg.get("left")?, nesting + 1)? {
            Expr::Context(mut path) => {
                path.push(arg.get("attr")?.as_str()?.to_owned());
                Expr::Context(path)
            }
            _ => return None,
        },
        "!" => Expr::Not(sub(arg.get("arg")?)?),
        "&&" => {
            let (l, r) = pair("left", "right")?;
            Expr::And(l, r)
        }
        "||" => {
            let (l, r) = pair("left", "right")?;
            Expr::Or(l, r)
        }
        "has" => {
            let attrs = match arg.get("attr")? {
                Value::String(a) => vec![a.clone()],
                Value::Array(list) => list
                    .iter()
                    .map(|a| a.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()?,
                _ => return None,
            };
            Expr::Has(sub(arg.get("left")?)?, attrs)
        }
        "like" => {
            let mut pattern = Vec::new();
            for el in arg.get("pattern")?.as_array()? {
                match el {
                    Value::String(w) if w == "Wildcard" => pattern.push(Elem::Any),
                    Value::Object(o) if o.len() == 1 => {
                        let lit = o.get("Literal")?.as_str()?;
                        pattern.extend(lit.chars().map(Elem::Char));
                    }
                    _ => return None,
                }
            }
            Expr::Like(sub(arg.get("left")?)?, pattern)
        }
        "==" | "!=" => {
            let (l, r) = pair("left", "right")?;
            if !(literal(&l) || literal(&r)) {
                return None;
            }
            Expr::Eq(l, r, op == "!=")
        }
        "<" | "<=" | ">" | ">=" => {
            let (l, r) = pair("left", "right")?;
            if !(matches!(*l, Expr::Long(_)) || matches!(*r, Expr::Long(_))) {
                return None;
            }
            let holds: &'static [Ordering] = match op.as_str() {
                "<" => &[Ordering::Less],
                "<=" => &[Ordering::Less, Ordering::Equal],
                ">" => &[Ordering::Greater],
                _ => &[Ordering::Greater, Ordering::Equal],
            };
            Expr::Cmp(l, r, holds)
        }
        _ => return None,
    })
}

fn literal(e: &Expr) -> bool {
    matches!(e, Expr::Bool(_) | Expr::Long(_) | Expr::Str(_))
}

fn boolean(v: V<'_>) -> Option<bool> {
    match v {
        V::Bool(b) => Some(b),
        _ => None,
    }
}

fn eval<'a>(e: &'a Expr, root: V<'a>) -> Option<V<'a>> {
    Some(match e {
        Expr::Bool(b) => V::Bool(*b),
        Expr::Long(n) => V::Long(*n),
        Expr::Str(s) => V::Str(s),
        Expr::Context(path) => {
            let mut v = root;
            for a in path {
                v = attr(v, a)?;
            }
            v
        }
        Expr::Not(x) => V::Bool(!boolean(eval(x, root)?)?),
        Expr::And(l, r) => V::Bool(boolean(eval(l, root)?)? && boolean(eval(r, root)?)?),
        Expr::Or(l, r) => V::Bool(boolean(eval(l, root)?)? || boolean(eval(r, root)?)?),
        Expr::Has(x, attrs) => {
            let mut v = eval(x, root)?;
            for a in attrs {
                let V::Record(..) = v else { return None };
                match attr(v, a) {
                    Some(next) => v = next,
                    None => return Some(V::Bool(false)),
                }
            }
            V::Bool(true)
        }
        Expr::Like(x, pattern) => match eval(x, root)? {
            V::Str(s) => V::Bool(like(s, pattern)),
            _ => return None,
        },
        Expr::Eq(l, r, negated) => {
            let same = equal(eval(l, root)?, eval(r, root)?);
            V::Bool(same != *negated)
        }
        Expr::Cmp(l, r, holds) => match (eval(l, root)?, eval(r, root)?) {
            (V::Long(a), V::Long(b)) => V::Bool(holds.contains(&a.cmp(&b))),
            _ => return None,
        },
    })
}

/// Attribute `a` of a record as Cedar sees it: absent when missing or when
/// `entities::context` leaves the value out; `None` for a non-record too
/// (either is an error in Cedar, except under `has`, which checks first).
fn attr<'a>(v: V<'a>, a: &str) -> Option<V<'a>> {
    let V::Record(map, depth) = v else {
        return None;
    };
    if depth > MAX_DEPTH {
        return None;
    }
    Some(match map?.get(a)? {
        Value::Null => return None,
        Value::Bool(b) => V::Bool(*b),
        Value::Number(n) => V::Long(n.as_i64()?),
        Value::String(s) => V::Str(s),
        Value::Array(_) => V::Set,
        Value::Object(m) => V::Record(Some(m), depth + 1),
    })
}

/// Cedar's `==` where one side is a literal: values of different types are
/// unequal, never an error.
fn equal(a: V<'_>, b: V<'_>) -> bool {
    match (a, b) {
        (V::Bool(x), V::Bool(y)) => x == y,
        (V::Long(x), V::Long(y)) => x == y,
        (V::Str(x), V::Str(y)) => x == y,
        _ => false,
    }
}

/// Whether `text` matches `pattern`, character by character, `Any`
/// matching any run of characters (none included).
fn like(text: &str, pattern: &[Elem]) -> bool {
    // The greedy walk with one back-off point: on a mismatch after a
    // wildcard, the wildcard swallows one more character and the walk
    // resumes there. Linear in practice, quadratic at worst. Positions in
    // `text` are byte offsets at character boundaries (no copy of the text).
    let (mut t, mut p) = (0, 0);
    let mut back: Option<(usize, usize)> = None;
    let at = |i: usize| text.get(i..).and_then(|rest| rest.chars().next());
    while let Some(c) = at(t) {
        match pattern.get(p) {
            Some(Elem::Any) => {
                back = Some((p, t));
                p += 1;
            }
            Some(Elem::Char(want)) if *want == c => {
                t += c.len_utf8();
                p += 1;
            }
            _ => match back {
                Some((bp, bt)) => {
                    let skipped = at(bt).map_or(1, char::len_utf8);
                    back = Some((bp, bt + skipped));
                    p = bp + 1;
                    t = bt + skipped;
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..]
        .iter()
        .all(|e| *e == Elem::Any)
}

#[cfg(test)]
mod tests;
