//! Accounts and their users: sign-up, balances, the Getting Started checklist.

use super::*;

#[derive(Debug, Clone, FromRow)]
pub struct Credentials {
    pub user_id: i64,
    pub password_hash: String,
}

#[derive(Debug, Clone, FromRow)]
pub struct ChecklistRecord {
    pub company: String,
    pub address: Option<String>,
    pub country: Option<String>,
    pub company_details_at: Option<i64>,
    pub first_top_up_at: Option<i64>,
    pub terms_accepted_at: Option<i64>,
}

/// An account as the operator sees it.
#[derive(Debug, Clone, FromRow)]
pub struct AccountSummary {
    pub id: AccountId,
    pub company: String,
    pub email: String,
    pub balance_cents: i64,
    pub servers: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("email already registered")]
    EmailTaken,
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

impl Store {
    /// Creates an account with its first user, and the audit row `audit` gives for the new
    /// account and user (none for the platform's own operator account). The email is
    /// unique across the platform.
    pub async fn create_account(
        &self,
        company: &str,
        email: &str,
        password_hash: &str,
        is_operator: bool,
        audit: impl FnOnce(AccountId, i64) -> Option<Audit>,
    ) -> Result<(AccountId, i64), CreateUserError> {
        let mut tx = self.pool.begin().await?;
        let t = now();
        let account_id: AccountId = sqlx::query_scalar(
            "INSERT INTO accounts (company, is_operator, created_at) VALUES (?, ?, ?) RETURNING id",
        )
        .bind(company)
        .bind(is_operator)
        .bind(t)
        .fetch_one(&mut *tx)
        .await?;
        let user = sqlx::query_scalar::<_, i64>(
            "INSERT INTO users (account_id, email, password_hash, created_at) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(account_id)
        .bind(email)
        .bind(password_hash)
        .bind(t)
        .fetch_one(&mut *tx)
        .await;
        let user_id = match user {
            Ok(id) => id,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(CreateUserError::EmailTaken)
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(audit) = audit(account_id, user_id) {
            audit.write(&mut tx).await?;
        }
        tx.commit().await?;
        Ok((account_id, user_id))
    }

    pub async fn credentials(&self, email: &str) -> Result<Option<Credentials>, sqlx::Error> {
        sqlx::query_as("SELECT id AS user_id, password_hash FROM users WHERE email = ?")
            .bind(email)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn account_of_email(&self, email: &str) -> Result<Option<AccountId>, sqlx::Error> {
        sqlx::query_scalar("SELECT account_id FROM users WHERE email = ?")
            .bind(email)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn operator_exists(&self) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM accounts WHERE is_operator = 1)")
            .fetch_one(&self.pool)
            .await
    }

    /// Adds to an account's balance; the first credit completes the checklist's top-up item.
    /// `audit` gives the row for the new balance.
    pub async fn credit(
        &self,
        account_id: AccountId,
        amount: Usd,
        audit: impl FnOnce(Usd) -> Audit,
    ) -> Result<Usd, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let balance: i64 = sqlx::query_scalar(
            "UPDATE accounts SET balance_cents = balance_cents + ?, \
             first_top_up_at = COALESCE(first_top_up_at, ?) WHERE id = ? RETURNING balance_cents",
        )
        .bind(amount.0)
        .bind(now())
        .bind(account_id)
        .fetch_one(&mut *tx)
        .await?;
        audit(Usd(balance)).write(&mut tx).await?;
        tx.commit().await?;
        Ok(Usd(balance))
    }

    /// Takes from an account's balance (an operator's correction), never below zero: `None`,
    /// with nothing changed, when the balance is smaller than `amount`. `audit` gives the row
    /// for the new balance.
    pub async fn debit(
        &self,
        account_id: AccountId,
        amount: Usd,
        audit: impl FnOnce(Usd) -> Audit,
    ) -> Result<Option<Usd>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let balance: Option<i64> = sqlx::query_scalar(
            "UPDATE accounts SET balance_cents = balance_cents - ? \
             WHERE id = ? AND balance_cents >= ? RETURNING balance_cents",
        )
        .bind(amount.0)
        .bind(account_id)
        .bind(amount.0)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(balance) = balance.map(Usd) else {
            return Ok(None);
        };
        audit(balance).write(&mut tx).await?;
        tx.commit().await?;
        Ok(Some(balance))
    }

    /// An account's available balance.
    pub async fn balance(&self, account_id: AccountId) -> Result<Usd, sqlx::Error> {
        sqlx::query_scalar("SELECT balance_cents FROM accounts WHERE id = ?")
            .bind(account_id)
            .fetch_one(&self.pool)
            .await
            .map(Usd)
    }

    pub async fn checklist(&self, account_id: AccountId) -> Result<ChecklistRecord, sqlx::Error> {
        sqlx::query_as(
            "SELECT company, address, country, company_details_at, first_top_up_at, terms_accepted_at \
             FROM accounts WHERE id = ?",
        )
        .bind(account_id)
        .fetch_one(&self.pool)
        .await
    }

    pub async fn set_company_details(
        &self,
        account_id: AccountId,
        company: &str,
        address: &str,
        country: &str,
        audit: Audit,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE accounts SET company = ?, address = ?, country = ?, company_details_at = ? WHERE id = ?",
        )
        .bind(company)
        .bind(address)
        .bind(country)
        .bind(now())
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
        audit.write(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every provider account (not the operator's), for the operator's page.
    pub async fn accounts(&self) -> Result<Vec<AccountSummary>, sqlx::Error> {
        sqlx::query_as(
            "SELECT a.id, a.company, \
               (SELECT email FROM users u WHERE u.account_id = a.id ORDER BY u.id LIMIT 1) AS email, \
               a.balance_cents, (SELECT COUNT(*) FROM servers s WHERE s.account_id = a.id) AS servers \
             FROM accounts a WHERE a.is_operator = 0 ORDER BY a.id",
        )
        .fetch_all(&self.pool)
        .await
    }

    pub async fn account_exists(&self, account_id: AccountId) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM accounts WHERE id = ? AND is_operator = 0)",
        )
        .bind(account_id)
        .fetch_one(&self.pool)
        .await
    }

    pub async fn accept_terms(
        &self,
        account_id: AccountId,
        audit: Audit,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE accounts SET terms_accepted_at = COALESCE(terms_accepted_at, ?) WHERE id = ?",
        )
        .bind(now())
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
        audit.write(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
