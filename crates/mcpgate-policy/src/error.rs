//! What can go wrong loading a policy file.

use std::path::PathBuf;

/// A policy (or schema) file that cannot be used. Each message names the file
/// and, for a syntax error, the line and column.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid Cedar: one line per problem, `file:line:column: message`.
    #[error("{}", problems.join("\n"))]
    Parse {
        /// One line per problem.
        problems: Vec<String>,
    },
    /// The policies do not type-check against the schema.
    #[error("{}", problems.join("\n"))]
    Invalid {
        /// One line per problem.
        problems: Vec<String>,
    },
    /// Two policies carry the same `@id`: a denial would not say which one forbade.
    #[error("{path}: two policies are annotated @id({id:?}); give each its own id")]
    DuplicateId {
        /// The policy file.
        path: PathBuf,
        /// The repeated id.
        id: String,
    },
}
