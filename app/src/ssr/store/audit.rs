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

    /// Records an event that changes no stored row (an action run on a node, a network
    /// tool run); a change to the store writes its row with the change instead.
    pub async fn record(&self, audit: Audit) -> Result<(), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        audit.write(&mut conn).await
    }
}

/// One audit log row: who made a change, and what (action, subject, detail) it was. A
/// change's store method takes the `Audit` describing it and writes it in the change's own
/// transaction: no change is stored without its row, and no row is left for a change that
/// did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    account_id: Option<AccountId>,
    user_id: Option<i64>,
    action: String,
    subject: String,
    detail: String,
}

impl Audit {
    /// A change a signed-in user made in their own account.
    pub fn by(
        user: &SessionUser,
        action: impl Into<String>,
        subject: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(
            Some(user.account_id),
            Some(user.user_id),
            action,
            subject,
            detail,
        )
    }

    /// A change the operator made to `account`, or (`None`) to what every account is
    /// offered.
    pub fn by_operator(
        operator: &SessionUser,
        account: Option<AccountId>,
        action: impl Into<String>,
        subject: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(account, Some(operator.user_id), action, subject, detail)
    }

    /// The platform's own change to an account (scheduled work, the command line): no user,
    /// so the log says "sipfleet".
    pub fn by_platform(
        account: AccountId,
        action: impl Into<String>,
        subject: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(Some(account), None, action, subject, detail)
    }

    /// A row with every part given; for a user who is not signed in yet (signing up).
    pub fn new(
        account_id: Option<AccountId>,
        user_id: Option<i64>,
        action: impl Into<String>,
        subject: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Audit {
            account_id,
            user_id,
            action: action.into(),
            subject: subject.into(),
            detail: detail.into(),
        }
    }

    /// Writes the row on `conn`: inside the transaction of the change it describes.
    pub(super) async fn write(&self, conn: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO audit_log (account_id, user_id, action, subject, detail, at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(self.account_id)
        .bind(self.user_id)
        .bind(&self.action)
        .bind(&self.subject)
        .bind(&self.detail)
        .bind(now())
        .execute(conn)
        .await?;
        Ok(())
    }
}
