//! How the store reads one page of a list (see [`crate::listing`]).

use sqlx::sqlite::SqliteRow;

use super::*;
use crate::listing::{clamp_page, Paged, PAGE_SIZE};

/// A list query, numbered the same way in both its statements: `?1` is the account, `?2`…
/// the texts of its filters, and the rows statement ends with `LIMIT ?n OFFSET ?n+1` (the
/// two numbers after the filters').
pub(super) struct ListSql<'a> {
    /// One row of two numbers: the account's rows, and those the filters keep.
    pub counts: &'a str,
    /// The filtered, ordered rows of one page.
    pub rows: &'a str,
}

impl Store {
    /// Page `asked` of a list (the last page when it is past the end), read in one
    /// transaction so that the counts and the rows agree.
    pub(super) async fn page_of<T>(
        &self,
        sql: ListSql<'_>,
        account_id: AccountId,
        filters: &[&str],
        asked: u32,
    ) -> Result<Paged<T>, sqlx::Error>
    where
        T: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let mut tx = self.pool.begin().await?;
        let mut counts = sqlx::query_as::<_, (i64, i64)>(sql.counts).bind(account_id);
        for filter in filters {
            counts = counts.bind(*filter);
        }
        let (total, matched) = counts.fetch_one(&mut *tx).await?;
        let page = clamp_page(asked, matched as u64);
        let mut rows = sqlx::query_as::<_, T>(sql.rows).bind(account_id);
        for filter in filters {
            rows = rows.bind(*filter);
        }
        let rows = rows
            .bind(i64::from(PAGE_SIZE))
            .bind(i64::from(page - 1) * i64::from(PAGE_SIZE))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Paged {
            rows,
            matched: matched as u64,
            total: total as u64,
            page,
        })
    }
}
