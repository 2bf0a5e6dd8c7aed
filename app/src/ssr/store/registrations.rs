//! Registrations written behind the in-memory location store.

use super::*;

/// A saved registration.
#[derive(Debug, Clone, FromRow)]
pub struct RegistrationRecord {
    pub aor: String,
    pub contact: String,
    pub expires_at: i64,
    pub received: String,
    pub transport: String,
    pub call_id: String,
    pub cseq: i64,
    pub user_agent: Option<String>,
}

impl Store {
    /// Saved bindings that are still live at `now`.
    pub async fn saved_registrations(
        &self,
        now: i64,
    ) -> Result<Vec<RegistrationRecord>, sqlx::Error> {
        sqlx::query_as(
            "SELECT aor, contact, expires_at, received, transport, call_id, cseq, user_agent \
             FROM registrations WHERE expires_at > ?",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
    }

    /// Replaces what is saved for `aor` with `bindings`.
    pub async fn save_registrations(
        &self,
        aor: &str,
        bindings: &[sip_engine::Binding],
        unix: impl Fn(std::time::SystemTime) -> i64,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM registrations WHERE aor = ?")
            .bind(aor)
            .execute(&mut *tx)
            .await?;
        for b in bindings {
            sqlx::query(
                "INSERT INTO registrations (aor, contact, expires_at, received, transport, call_id, cseq, user_agent) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(aor)
            .bind(&b.contact)
            .bind(unix(b.expires_at))
            .bind(b.received.to_string())
            .bind(b.transport.name())
            .bind(&b.call_id)
            .bind(b.cseq)
            .bind(&b.user_agent)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }
}
