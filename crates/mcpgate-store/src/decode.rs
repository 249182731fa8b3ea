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

/// Text column `column` parsed into the type it holds (`ClientId`,
/// `RedirectUri`, `ResourceUri`). A row holding what the type refuses (edited
/// by hand, or written by a version that checked less) fails with an error
/// naming the column and the rule, never a panic.
pub(crate) fn parsed<T>(row: &Row, column: &str) -> Result<T, sqlx::Error>
where
    T: TryFrom<String>,
    T::Error: std::error::Error + Send + Sync + 'static,
{
    let text: String = sqlx::Row::try_get(row, column)?;
    T::try_from(text).map_err(|e| sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: Box::new(e),
    })
}

/// Nullable text column `column` parsed like [`parsed`]: NULL is `None`.
pub(crate) fn parsed_opt<T>(row: &Row, column: &str) -> Result<Option<T>, sqlx::Error>
where
    T: TryFrom<String>,
    T::Error: std::error::Error + Send + Sync + 'static,
{
    let text: Option<String> = sqlx::Row::try_get(row, column)?;
    text.map(T::try_from)
        .transpose()
        .map_err(|e| sqlx::Error::ColumnDecode {
            index: column.to_owned(),
            source: Box::new(e),
        })
}
