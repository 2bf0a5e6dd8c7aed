//! SIP users, the accounts' phones.

use super::pages::ListSql;
use super::*;
use crate::listing::{ListQuery, Paged};

impl Store {
    pub async fn all_sip_users(
        &self,
    ) -> Result<Vec<(AccountId, String, String, String)>, sqlx::Error> {
        sqlx::query_as("SELECT account_id, username, password, keepalive FROM sip_users")
            .fetch_all(&self.pool)
            .await
    }

    /// Sets how a SIP user's contacts are kept alive; false when the account has no such
    /// user.
    pub async fn set_sip_keepalive(
        &self,
        account_id: AccountId,
        id: i64,
        mode: &str,
        audit: Audit,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let done =
            sqlx::query("UPDATE sip_users SET keepalive = ? WHERE account_id = ? AND id = ?")
                .bind(mode)
                .bind(account_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        audit.write(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// One page of the account's SIP users by username, those whose username holds
    /// `query.search`; rows are (id, username, keep-alive mode, created at). Passwords stay
    /// in the store.
    pub async fn sip_user_page(
        &self,
        account_id: AccountId,
        query: &ListQuery,
    ) -> Result<Paged<(i64, String, String, i64)>, sqlx::Error> {
        const MATCHES: &str = "(?2 = '' OR instr(lower(username), lower(?2)) > 0)";
        let sql = ListSql {
            counts: &format!(
                "SELECT COUNT(*), COALESCE(SUM({MATCHES}), 0) FROM sip_users WHERE account_id = ?1"
            ),
            rows: &format!(
                "SELECT id, username, keepalive, created_at FROM sip_users \
                 WHERE account_id = ?1 AND {MATCHES} ORDER BY username LIMIT ?3 OFFSET ?4"
            ),
        };
        self.page_of(sql, account_id, &[&query.search], query.page)
            .await
    }

    /// Creates a SIP user; `None` when the account has one with this username already.
    pub async fn create_sip_user(
        &self,
        account_id: AccountId,
        username: &str,
        password: &str,
        keepalive: &str,
        audit: Audit,
    ) -> Result<Option<i64>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let created = sqlx::query_scalar(
            "INSERT INTO sip_users (account_id, username, password, keepalive, created_at) \
             VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(account_id)
        .bind(username)
        .bind(password)
        .bind(keepalive)
        .bind(now())
        .fetch_one(&mut *tx)
        .await;
        let id = match created {
            Ok(id) => id,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(None),
            Err(e) => return Err(e),
        };
        audit.write(&mut tx).await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    /// Sets a SIP user's password; false when the account has no such user.
    pub async fn reset_sip_password(
        &self,
        account_id: AccountId,
        id: i64,
        password: &str,
        audit: Audit,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE sip_users SET password = ? WHERE account_id = ? AND id = ?")
            .bind(password)
            .bind(account_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        audit.write(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes a SIP user, with the audit row `audit` gives for its username; returns the
    /// username when it existed in the account.
    pub async fn delete_sip_user(
        &self,
        account_id: AccountId,
        id: i64,
        audit: impl FnOnce(&str) -> Audit,
    ) -> Result<Option<String>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let username: Option<String> = sqlx::query_scalar(
            "DELETE FROM sip_users WHERE account_id = ? AND id = ? RETURNING username",
        )
        .bind(account_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(username) = username else {
            return Ok(None);
        };
        audit(&username).write(&mut tx).await?;
        tx.commit().await?;
        Ok(Some(username))
    }
}
