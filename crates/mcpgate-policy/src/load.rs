//! Reading the `[policy]` files: the Cedar policies, their `@id`s, and the
//! optional schema they are validated against.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy::{PolicySet, Schema, ValidationMode, Validator};
use miette::Diagnostic;

use crate::entities::Types;
use crate::error::PolicyError;
use crate::prepared;
use crate::scope::Scopes;

/// A loaded policy file, ready to decide calls. Cheap to share behind an `Arc`;
/// a reload builds a new one beside the running one (and so drops what the
/// old one kept of its callers and targets).
pub struct Rules {
    /// The policies, by what their scopes can reach.
    pub(crate) scopes: Scopes,
    pub(crate) types: Types,
    /// What each caller and target's decisions share, kept across calls.
    pub(crate) prepared: prepared::Cache,
    /// Whether some policy mentions `context`: without one, a call's
    /// arguments need not be read at all.
    pub(crate) reads_context: bool,
    path: PathBuf,
}

impl Rules {
    /// Reads and checks `path` (and, if given, validates it against the
    /// Cedar schema in `schema`).
    pub fn load(path: &Path, schema: Option<&Path>) -> Result<Rules, PolicyError> {
        let src = read(path)?;
        let schema = match schema {
            Some(s) => Some(load_schema(s)?),
            None => None,
        };
        Rules::parse(path, &src, schema.as_ref())
    }

    /// Parses policy text; `path` only names it in messages.
    pub fn parse(path: &Path, src: &str, schema: Option<&Schema>) -> Result<Rules, PolicyError> {
        let set = PolicySet::from_str(src).map_err(|errs| PolicyError::Parse {
            problems: errs.iter().map(|e| located(path, src, e)).collect(),
        })?;
        if let Some(schema) = schema {
            let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
            if !result.validation_passed() {
                return Err(PolicyError::Invalid {
                    problems: result
                        .validation_errors()
                        .map(|e| located(path, src, e))
                        .collect(),
                });
            }
        }
        let mut names = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for p in set.policies() {
            let name = p
                .annotation("id")
                .map(str::to_owned)
                .unwrap_or_else(|| p.id().to_string());
            if !seen.insert(name.clone()) {
                return Err(PolicyError::DuplicateId {
                    path: path.to_owned(),
                    id: name,
                });
            }
            names.insert(p.id().clone(), name);
        }
        let types = Types::new().ok_or_else(|| PolicyError::Parse {
            problems: vec!["the policy engine refused its own entity type names".to_owned()],
        })?;
        let scopes = Scopes::new(set, &names, &types);
        Ok(Rules {
            reads_context: scopes.any_reads_context(),
            scopes,
            types,
            prepared: prepared::cache(),
            path: path.to_owned(),
        })
    }

    /// Whether some policy reads the call's arguments (`context`); when
    /// none does, a call's arguments need not be read.
    pub fn reads_context(&self) -> bool {
        self.reads_context
    }

    /// The file the rules came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many policies the file holds.
    pub fn len(&self) -> usize {
        self.scopes.len()
    }

    /// Whether the file holds no policy (then every call is denied).
    pub fn is_empty(&self) -> bool {
        self.scopes.len() == 0
    }
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rules")
            .field("path", &self.path)
            .field("policies", &self.scopes.len())
            .field("reads_context", &self.reads_context)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<String, PolicyError> {
    std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
        path: path.to_owned(),
        source,
    })
}

fn load_schema(path: &Path) -> Result<Schema, PolicyError> {
    let src = read(path)?;
    Schema::from_cedarschema_str(&src)
        .map(|(schema, _warnings)| schema)
        .map_err(|e| PolicyError::Parse {
            problems: vec![located(path, &src, &e)],
        })
}

/// `file:line:column: message (help)` for a Cedar diagnostic, from its first
/// labelled span.
fn located(path: &Path, src: &str, e: &(impl Diagnostic + ?Sized)) -> String {
    let at = e
        .labels()
        .and_then(|mut l| l.next())
        .map(|l| line_column(src, l.offset()));
    let help = e.help().map(|h| format!(" ({h})")).unwrap_or_default();
    match at {
        Some((line, col)) => format!("{}:{line}:{col}: {e}{help}", path.display()),
        None => format!("{}: {e}{help}", path.display()),
    }
}

/// 1-based line and column (in characters) of byte `offset` in `src`.
fn line_column(src: &str, offset: usize) -> (usize, usize) {
    let before = src.get(..offset.min(src.len())).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests;
