//! The audit log: written with every change, never updated or deleted.

use super::*;
use crate::listing::{clamp_page, ListQuery, Paged, PAGE_SIZE};

impl Store {
    /// The account's most recent audit entries: (when, who, action, subject, detail).
    /// One page of the account's audit log, newest first, of the entries whose action,
    /// subject or detail holds `query.search`; rows are (at, who, action, subject, detail).
    pub async fn audit_page(
        &self,
        account_id: AccountId,
        query: &ListQuery,
    ) -> Result<Paged<(i64, Option<String>, String, String, String)>, sqlx::Error> {
        const MATCHES: &str = "(?2 = '' OR instr(lower(l.action), lower(?2)) > 0 \
             OR instr(lower(l.subject), lower(?2)) > 0 OR instr(lower(l.detail), lower(?2)) > 0)";
        let mut tx = self.pool.begin().await?;
        let (total, matched): (i64, i64) = sqlx::query_as(&format!(
            "SELECT COUNT(*), COALESCE(SUM({MATCHES}), 0) FROM audit_log l WHERE l.account_id = ?1"
        ))
        .bind(account_id)
        .bind(&query.search)
        .fetch_one(&mut *tx)
        .await?;
        let page = clamp_page(query.page, matched as u64);
        let rows = sqlx::query_as(&format!(
            "SELECT l.at, u.email, l.action, l.subject, l.detail FROM audit_log l \
             LEFT JOIN users u ON u.id = l.user_id WHERE l.account_id = ?1 AND {MATCHES} \
             ORDER BY l.id DESC LIMIT ?3 OFFSET ?4"
        ))
        .bind(account_id)
        .bind(&query.search)
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

    /// Records a change made by a signed-in user, in that user's account.
    pub async fn audit_by(
        &self,
        user: &SessionUser,
        action: &str,
        subject: &str,
        detail: &str,
    ) -> Result<(), sqlx::Error> {
        self.audit(
            Some(user.account_id),
            Some(user.user_id),
            action,
            subject,
            detail,
        )
        .await
    }

    pub async fn audit(
        &self,
        account_id: Option<AccountId>,
        user_id: Option<i64>,
        action: &str,
        subject: &str,
        detail: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO audit_log (account_id, user_id, action, subject, detail, at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(account_id)
            .bind(user_id)
            .bind(action)
            .bind(subject)
            .bind(detail)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
