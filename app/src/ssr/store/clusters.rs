//! Clusters and their members.

use super::*;

/// A cluster with what its members add up to.
#[derive(Debug, Clone, FromRow)]
pub struct ClusterTotals {
    pub id: i64,
    pub name: String,
    pub members: i64,
    pub channels: i64,
    pub cps: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("a cluster with this name exists already")]
    NameTaken,
    #[error("the cluster still has servers")]
    NotEmpty,
    #[error("no such cluster")]
    NotFound,
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

impl Store {
    /// Members of a cluster: (id, alias, ip, kind).
    pub async fn cluster_members(
        &self,
        account_id: AccountId,
        cluster_id: i64,
    ) -> Result<Vec<(i64, String, String, String)>, sqlx::Error> {
        sqlx::query_as("SELECT id, alias, ip, kind FROM servers WHERE account_id = ? AND cluster_id = ? ORDER BY id")
            .bind(account_id)
            .bind(cluster_id)
            .fetch_all(&self.pool)
            .await
    }

    /// The Switch servers of a cluster, as its Dispatchers balance over them: id, IP, UDP
    /// port and weight.
    pub async fn cluster_switches(
        &self,
        account_id: AccountId,
        cluster_id: i64,
    ) -> Result<Vec<(i64, String, i64, i64)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, ip, udp_port, weight FROM servers \
             WHERE account_id = ? AND cluster_id = ? AND kind = 'switch' ORDER BY id",
        )
        .bind(account_id)
        .bind(cluster_id)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn cluster_options(
        &self,
        account_id: AccountId,
    ) -> Result<Vec<(i64, String)>, sqlx::Error> {
        sqlx::query_as("SELECT id, name FROM clusters WHERE account_id = ? ORDER BY name")
            .bind(account_id)
            .fetch_all(&self.pool)
            .await
    }

    /// Each cluster with its member count and its capacity: members count their calls
    /// together and each admits a call while that count is below its own limits, so the
    /// cluster carries at most its largest member's channels and CPS.
    pub async fn cluster_totals(
        &self,
        account_id: AccountId,
    ) -> Result<Vec<ClusterTotals>, sqlx::Error> {
        sqlx::query_as(
            "SELECT c.id, c.name, COUNT(s.id) AS members, COALESCE(MAX(s.channels), 0) AS channels, \
             COALESCE(MAX(s.cps), 0) AS cps FROM clusters c LEFT JOIN servers s ON s.cluster_id = c.id \
             WHERE c.account_id = ? GROUP BY c.id ORDER BY c.name",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
    }

    /// The cluster's name when it belongs to the account.
    pub async fn cluster_name(
        &self,
        account_id: AccountId,
        id: i64,
    ) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT name FROM clusters WHERE account_id = ? AND id = ?")
            .bind(account_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Creates a cluster, and the audit row `audit` gives for its id.
    pub async fn create_cluster(
        &self,
        account_id: AccountId,
        name: &str,
        audit: impl FnOnce(i64) -> Audit,
    ) -> Result<i64, ClusterError> {
        let mut tx = self.pool.begin().await?;
        let created = sqlx::query_scalar(
            "INSERT INTO clusters (account_id, name, created_at) VALUES (?, ?, ?) RETURNING id",
        )
        .bind(account_id)
        .bind(name)
        .bind(now())
        .fetch_one(&mut *tx)
        .await;
        let id = match created {
            Ok(id) => id,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(ClusterError::NameTaken)
            }
            Err(e) => return Err(e.into()),
        };
        audit(id).write(&mut tx).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn rename_cluster(
        &self,
        account_id: AccountId,
        id: i64,
        name: &str,
        audit: Audit,
    ) -> Result<(), ClusterError> {
        let mut tx = self.pool.begin().await?;
        let renamed = sqlx::query("UPDATE clusters SET name = ? WHERE account_id = ? AND id = ?")
            .bind(name)
            .bind(account_id)
            .bind(id)
            .execute(&mut *tx)
            .await;
        match renamed {
            Ok(done) if done.rows_affected() == 1 => {}
            Ok(_) => return Err(ClusterError::NotFound),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(ClusterError::NameTaken)
            }
            Err(e) => return Err(e.into()),
        }
        audit.write(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes an empty cluster; one that still has servers is refused and left as it is.
    pub async fn delete_cluster(
        &self,
        account_id: AccountId,
        id: i64,
        audit: Audit,
    ) -> Result<(), ClusterError> {
        let mut tx = self.pool.begin().await?;
        let members: Option<i64> = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM servers s WHERE s.cluster_id = c.id) FROM clusters c \
             WHERE c.account_id = ? AND c.id = ?",
        )
        .bind(account_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        match members {
            None => return Err(ClusterError::NotFound),
            Some(n) if n > 0 => return Err(ClusterError::NotEmpty),
            Some(_) => {}
        }
        sqlx::query("DELETE FROM clusters WHERE account_id = ? AND id = ?")
            .bind(account_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        audit.write(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
