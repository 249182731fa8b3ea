//! Sessions that live in one replica (a stdio child, a legacy SSE
//! connection), served from every replica: a replica that gets a request for
//! such a session forwards it to the owner named in the sealed id
//! (`send.rs`), with a pass for the caller it authenticated (`pass.rs`), and
//! streams the answer back. The owner takes it on its internal listener
//! (`internal.rs`), whose only credential is such a pass, and serves it like
//! any request for a session it holds: policy, the session's subject, the
//! child.

pub(crate) mod internal;
pub(crate) mod pass;
pub(crate) mod pool;
pub(crate) mod send;

/// Marks a request that came over the internal listener (a request
/// extension; clients cannot set one).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Forwarded;
