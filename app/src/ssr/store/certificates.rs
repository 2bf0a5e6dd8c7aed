//! Certificates (the key stays in the table, never sent to a browser) and their
//! attachment to servers.

use super::*;

/// A certificate's public facts; the key stays in the table.
#[derive(Debug, Clone, FromRow)]
pub struct CertificateRecord {
    pub id: i64,
    pub subject: String,
    pub sans: String,
    pub issuer: String,
    pub not_after: i64,
}

impl Store {
    pub async fn certificates(
        &self,
        account_id: AccountId,
    ) -> Result<Vec<CertificateRecord>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, subject, sans, issuer, not_after FROM certificates WHERE account_id = ? ORDER BY id",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
    }

    /// Stores a checked certificate with its key, and the audit row `audit` gives for its id.
    pub async fn insert_certificate(
        &self,
        account_id: AccountId,
        chain_pem: &str,
        key_pem: &str,
        facts: &crate::ssr::certificates::CertificateFacts,
        audit: impl FnOnce(i64) -> Audit,
    ) -> Result<i64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let id = sqlx::query_scalar(
            "INSERT INTO certificates (account_id, chain_pem, key_pem, subject, sans, issuer, not_after, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(account_id)
        .bind(chain_pem)
        .bind(key_pem)
        .bind(&facts.subject)
        .bind(facts.sans.join(", "))
        .bind(&facts.issuer)
        .bind(facts.not_after)
        .bind(now())
        .fetch_one(&mut *tx)
        .await?;
        audit(id).write(&mut tx).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Deletes a certificate of the account (detaching it from its servers); false when the
    /// account has no such certificate.
    pub async fn delete_certificate(
        &self,
        account_id: AccountId,
        id: i64,
        audit: Audit,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM certificates WHERE account_id = ? AND id = ?")
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

    /// The chain and key a server presents for SIP over TLS: its attached Server
    /// certificate (the one valid longest, when there are several).
    pub async fn server_tls_identity(
        &self,
        server_id: i64,
    ) -> Result<Option<(String, String)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT c.chain_pem, c.key_pem FROM server_certificates sc \
             JOIN certificates c ON c.id = sc.certificate_id \
             WHERE sc.server_id = ? AND sc.usage = 'server' ORDER BY c.not_after DESC LIMIT 1",
        )
        .bind(server_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// The account's servers a certificate is attached to.
    pub async fn servers_with_certificate(
        &self,
        account_id: AccountId,
        certificate_id: i64,
    ) -> Result<Vec<i64>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT sc.server_id FROM server_certificates sc JOIN certificates c \
             ON c.id = sc.certificate_id WHERE c.account_id = ? AND c.id = ?",
        )
        .bind(account_id)
        .bind(certificate_id)
        .fetch_all(&self.pool)
        .await
    }

    /// Attaches (or changes the usage of) a certificate on a server, both the account's;
    /// false when either is not.
    pub async fn attach_certificate(
        &self,
        account_id: AccountId,
        server_id: i64,
        certificate_id: i64,
        usage: &str,
        audit: Audit,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "INSERT INTO server_certificates (server_id, certificate_id, usage) \
             SELECT s.id, c.id, ? FROM servers s, certificates c \
             WHERE s.id = ? AND s.account_id = ? AND c.id = ? AND c.account_id = ? \
             ON CONFLICT (server_id, certificate_id) DO UPDATE SET usage = excluded.usage",
        )
        .bind(usage)
        .bind(server_id)
        .bind(account_id)
        .bind(certificate_id)
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        audit.write(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Detaches a certificate from one of the account's servers; false when it was not
    /// attached there.
    pub async fn detach_certificate(
        &self,
        account_id: AccountId,
        server_id: i64,
        certificate_id: i64,
        audit: Audit,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "DELETE FROM server_certificates WHERE server_id = ? AND certificate_id = ? \
             AND server_id IN (SELECT id FROM servers WHERE account_id = ?)",
        )
        .bind(server_id)
        .bind(certificate_id)
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        audit.write(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Certificates attached to one of the account's servers: (id, subject, usage).
    pub async fn server_certificates(
        &self,
        account_id: AccountId,
        server_id: i64,
    ) -> Result<Vec<(i64, String, String)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT c.id, c.subject, sc.usage FROM server_certificates sc \
             JOIN certificates c ON c.id = sc.certificate_id JOIN servers s ON s.id = sc.server_id \
             WHERE s.account_id = ? AND s.id = ? ORDER BY c.id",
        )
        .bind(account_id)
        .bind(server_id)
        .fetch_all(&self.pool)
        .await
    }
}
