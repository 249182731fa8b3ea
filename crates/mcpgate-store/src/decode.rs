//! Query rows to records: every list query decodes its rows this one way.

use crate::Row;

/// Every row decoded by `decode`; a row that does not decode fails the list
/// (with the caller's error type).
pub(crate) fn all<T, E, F: From<E>>(
    rows: &[Row],
    decode: impl Fn(&Row) -> Result<T, E>,
) -> Result<Vec<T>, F> {
    rows.iter().map(|r| decode(r).map_err(F::from)).collect()
}
