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
    /// The Path the REGISTER came through, its entries joined by [`PATH_SEPARATOR`];
    /// empty for a phone that registered directly.
    pub path: String,
}

/// What joins a saved Path's entries: a line feed, which a SIP header value (one line once
/// read, RFC 3261 §7.3.1) never holds, where a comma could occur inside an entry.
pub const PATH_SEPARATOR: char = '\n';

/// `path` (header values, nearest the registrar first) as one column value.
pub fn join_path(path: &[String]) -> String {
    let mut joined = String::new();
    for (i, entry) in path.iter().enumerate() {
        if i > 0 {
            joined.push(PATH_SEPARATOR);
        }
        joined.push_str(entry);
    }
    joined
}

/// A column value written by [`join_path`] back as the Path's entries.
pub fn split_path(column: &str) -> Vec<String> {
    column
        .split(PATH_SEPARATOR)
        .filter(|entry| !entry.is_empty())
        .map(str::to_string)
        .collect()
}

impl Store {
    /// Saved bindings that are still live at `now`.
    pub async fn saved_registrations(
        &self,
        now: i64,
    ) -> Result<Vec<RegistrationRecord>, sqlx::Error> {
        sqlx::query_as(
            "SELECT aor, contact, expires_at, received, transport, call_id, cseq, user_agent, path \
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
                "INSERT INTO registrations \
                 (aor, contact, expires_at, received, transport, call_id, cseq, user_agent, path) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(aor)
            .bind(&b.contact)
            .bind(unix(b.expires_at))
            .bind(b.received.to_string())
            .bind(b.transport.name())
            .bind(&b.call_id)
            .bind(b.cseq)
            .bind(&b.user_agent)
            .bind(join_path(&b.path))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }
}
