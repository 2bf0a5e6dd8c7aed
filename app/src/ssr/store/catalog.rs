//! What every account is offered: zones and their address pools, the operator's media
//! relays, node releases.

use super::*;

#[derive(Debug, Clone, FromRow)]
pub struct ZoneRecord {
    pub name: String,
    pub label: String,
    pub pool_first: String,
    pub pool_last: String,
}

#[derive(Debug, Clone, FromRow)]
pub struct RtpRecord {
    pub ip: String,
    pub aliases: String,
    pub zone: String,
}

impl Store {
    /// Makes the zones table match the settings. Zones that servers still use are kept.
    pub async fn sync_zones(&self, zones: &[ZoneSettings]) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for zone in zones {
            let Some((first, last)) = zone.pool_bounds() else {
                continue;
            };
            sqlx::query(
                "INSERT INTO zones (name, label, pool_first, pool_last) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (name) DO UPDATE SET label = excluded.label, \
                 pool_first = excluded.pool_first, pool_last = excluded.pool_last",
            )
            .bind(&zone.name)
            .bind(&zone.label)
            .bind(first.to_string())
            .bind(last.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    pub async fn zones(&self) -> Result<Vec<ZoneRecord>, sqlx::Error> {
        sqlx::query_as("SELECT name, label, pool_first, pool_last FROM zones ORDER BY name")
            .fetch_all(&self.pool)
            .await
    }

    pub async fn zone(&self, name: &str) -> Result<Option<ZoneRecord>, sqlx::Error> {
        sqlx::query_as("SELECT name, label, pool_first, pool_last FROM zones WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
    }

    /// The last published release: (revision, keep-alive interval in seconds).
    pub async fn latest_release(&self) -> Result<Option<(i64, i64)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT revision, keepalive_seconds FROM node_releases ORDER BY revision DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn publish_release(
        &self,
        revision: i64,
        keepalive_seconds: i64,
        user_id: i64,
        audit: Audit,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO node_releases (revision, keepalive_seconds, published_at, published_by) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(revision)
        .bind(keepalive_seconds)
        .bind(now())
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        audit.write(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds a media relay; false when the address is listed already.
    pub async fn add_rtp_server(
        &self,
        ip: &str,
        aliases: &str,
        zone: &str,
        audit: Audit,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let added = sqlx::query("INSERT INTO rtp_servers (ip, aliases, zone) VALUES (?, ?, ?) ON CONFLICT (ip) DO NOTHING")
            .bind(ip)
            .bind(aliases)
            .bind(zone)
            .execute(&mut *tx)
            .await?;
        if added.rows_affected() != 1 {
            return Ok(false);
        }
        audit.write(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes a media relay; false when the address is not listed.
    pub async fn remove_rtp_server(&self, ip: &str, audit: Audit) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let removed = sqlx::query("DELETE FROM rtp_servers WHERE ip = ?")
            .bind(ip)
            .execute(&mut *tx)
            .await?;
        if removed.rows_affected() != 1 {
            return Ok(false);
        }
        audit.write(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn rtp_servers(&self) -> Result<Vec<RtpRecord>, sqlx::Error> {
        sqlx::query_as("SELECT ip, aliases, zone FROM rtp_servers ORDER BY zone, ip")
            .fetch_all(&self.pool)
            .await
    }
}
