//! The audit log: written with every change, never updated or deleted.

use super::*;

impl Store {
    /// The account's most recent audit entries: (when, who, action, subject, detail).
    pub async fn audit_entries(
        &self,
        account_id: AccountId,
        limit: i64,
    ) -> Result<Vec<(i64, Option<String>, String, String, String)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT l.at, u.email, l.action, l.subject, l.detail FROM audit_log l \
             LEFT JOIN users u ON u.id = l.user_id WHERE l.account_id = ? ORDER BY l.id DESC LIMIT ?",
        )
        .bind(account_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
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
