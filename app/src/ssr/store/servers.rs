//! Servers: their rows, status, configuration, billing period and resizes.

use super::pages::ListSql;
use super::*;
use crate::listing::{Paged, ServerQuery, ServerSort};

/// A server's address as the number the list sorts by; not IPv4 (never stored): last.
fn ip_order(ip: &str) -> i64 {
    ip.parse::<std::net::Ipv4Addr>()
        .map_or(i64::from(u32::MAX), |ip| i64::from(u32::from(ip)))
}

/// A server as stored.
#[derive(Debug, Clone, FromRow)]
pub struct ServerRecord {
    pub id: i64,
    pub account_id: AccountId,
    pub alias: String,
    pub zone: String,
    pub kind: String,
    pub cluster: Option<String>,
    pub ip: String,
    pub channels: i64,
    pub cps: i64,
    pub status: String,
    pub expires_at: i64,
    pub udp_port: i64,
    pub tcp_port: i64,
    /// A resize waiting for its activation time.
    pub pending_channels: Option<i64>,
    pub pending_channels_at: Option<i64>,
    /// While Expired: the status it had when its period ended (what a renewal restores).
    pub status_before_expiry: Option<String>,
}

impl ServerRecord {
    pub fn kind(&self) -> ServerKind {
        ServerKind::from_str(&self.kind).unwrap_or(ServerKind::Switch)
    }

    pub fn status(&self) -> ServerStatus {
        ServerStatus::from_str(&self.status).unwrap_or(ServerStatus::Stopped)
    }

    /// For an Expired server, the status a renewal gives back; a server stored as Expired
    /// before this was recorded had a running node (expiry used to leave nodes running only).
    pub fn status_before_expiry(&self) -> ServerStatus {
        self.status_before_expiry
            .as_deref()
            .and_then(|s| ServerStatus::from_str(s).ok())
            .unwrap_or(ServerStatus::Running)
    }
}

/// A server about to be stored.
#[derive(Debug, Clone)]
pub struct NewServer<'a> {
    pub account_id: AccountId,
    pub alias: &'a str,
    pub zone: &'a str,
    pub kind: ServerKind,
    pub cluster_id: Option<i64>,
    pub ip: &'a str,
    pub channels: u32,
    pub cps: u32,
    pub expires_at: i64,
}

const CONFIG_COLUMNS: &str = "cluster_id, interconnect, uac_auth_username, uac_auth_password, uac_auth_registrar, fqdn, \
     auto_upgrade, disable_uac_ping, uac_location_sharing, tls_internals, restrict_direct, tcp_sip_trace, \
     data_zone, digest_algorithms, udp_port, tcp_port, tls_port, failover_enabled, failover_target_id, \
     balancing, probe_interval, probe_failures, probe_successes, any_reg, weight, config_version";

/// A server's stored configuration.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct ConfigRecord {
    pub cluster_id: Option<i64>,
    pub interconnect: bool,
    pub uac_auth_username: Option<String>,
    pub uac_auth_password: Option<String>,
    /// The carrier's registrar, `IP:port`.
    pub uac_auth_registrar: Option<String>,
    pub fqdn: Option<String>,
    pub auto_upgrade: bool,
    pub disable_uac_ping: bool,
    pub uac_location_sharing: bool,
    pub tls_internals: bool,
    pub restrict_direct: bool,
    pub tcp_sip_trace: bool,
    pub data_zone: String,
    /// `md5-sha256`, `sha256-md5` or `sha256` (see [`crate::model::DigestChoice`]).
    pub digest_algorithms: String,
    pub udp_port: i64,
    pub tcp_port: i64,
    pub tls_port: i64,
    pub failover_enabled: bool,
    pub failover_target_id: Option<i64>,
    /// A Dispatcher's algorithm (see [`crate::model::Balancing`]).
    pub balancing: String,
    /// Seconds between a Dispatcher's probes of each switch.
    pub probe_interval: i64,
    pub probe_failures: i64,
    pub probe_successes: i64,
    pub any_reg: bool,
    /// A Switch's share under the weighted algorithm.
    pub weight: i64,
    pub config_version: i64,
}

const SERVER_COLUMNS: &str =
    "s.id, s.account_id, s.alias, s.zone, s.kind, c.name AS cluster, s.ip, \
     s.channels, s.cps, s.status, s.expires_at, s.udp_port, s.tcp_port, s.pending_channels, \
     s.pending_channels_at, s.status_before_expiry";

impl Store {
    /// Every address a server holds, platform-wide (addresses are not per account).
    pub async fn used_ips(&self) -> Result<HashSet<String>, sqlx::Error> {
        let ips: Vec<String> = sqlx::query_scalar("SELECT ip FROM servers")
            .fetch_all(&self.pool)
            .await?;
        Ok(ips.into_iter().collect())
    }

    /// How many servers, platform-wide, hold an address from `first` to `last` (as numbers).
    pub async fn servers_in_range(&self, first: u32, last: u32) -> Result<u32, sqlx::Error> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM servers WHERE ip_order BETWEEN ? AND ?")
                .bind(i64::from(first))
                .bind(i64::from(last))
                .fetch_one(&self.pool)
                .await?;
        Ok(count as u32)
    }

    pub async fn count_servers(&self, account_id: AccountId) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM servers WHERE account_id = ?")
            .bind(account_id)
            .fetch_one(&self.pool)
            .await
    }

    pub async fn list_servers(
        &self,
        account_id: AccountId,
    ) -> Result<Vec<ServerRecord>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {SERVER_COLUMNS} FROM servers s LEFT JOIN clusters c ON c.id = s.cluster_id \
             WHERE s.account_id = ? ORDER BY s.id"
        ))
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
    }

    /// One page of the account's servers as `query` filters and orders them, with how many
    /// match and how many the account has. A page past the last gives the last.
    ///
    /// Only the filters in use reach the SQL, so that SQLite can walk an index that matches
    /// them (`servers_by_account_*`, migration 0013) and stop after one page, instead of
    /// testing every server of the account against empty filters.
    pub async fn server_page(
        &self,
        account_id: AccountId,
        query: &ServerQuery,
    ) -> Result<Paged<ServerRecord>, sqlx::Error> {
        // Text search is `instr`, so what the user types needs no LIKE escaping.
        let conditions = [
            (&query.zone, "s.zone = ?"),
            (&query.kind, "s.kind = ?"),
            (&query.cluster, "c.name = ?"),
            (&query.status, "s.status = ?"),
            (
                &query.search,
                "(instr(s.ip, ?) > 0 OR instr(lower(s.alias), lower(?)) > 0)",
            ),
        ];
        let mut matches = String::new();
        let mut filters = Vec::new();
        for (value, condition) in conditions {
            if value.is_empty() {
                continue;
            }
            filters.push(value.as_str());
            // ?1 is the account; each filter's text is one numbered parameter, used as often
            // as its condition needs it.
            let number = format!("?{}", filters.len() + 1);
            matches.push_str(" AND ");
            matches.push_str(&condition.replace('?', &number));
        }
        let (limit, offset) = (filters.len() + 2, filters.len() + 3);
        let order = match query.sort {
            ServerSort::Ip => "s.ip_order, s.id",
            ServerSort::Alias => "s.alias, s.ip_order",
            // The store spellings sort as the labels do (expired … updating).
            ServerSort::Status => "s.status, s.ip_order",
            ServerSort::Expires => "s.expires_at, s.ip_order",
        };
        // Counting needs the cluster's name only when it is filtered on.
        let join = if query.cluster.is_empty() {
            ""
        } else {
            "LEFT JOIN clusters c ON c.id = s.cluster_id"
        };
        let counts = if filters.is_empty() {
            "SELECT COUNT(*), COUNT(*) FROM servers s WHERE s.account_id = ?1".to_string()
        } else {
            format!(
                "SELECT (SELECT COUNT(*) FROM servers WHERE account_id = ?1), COUNT(*) \
                 FROM servers s {join} WHERE s.account_id = ?1{matches}"
            )
        };
        let sql = ListSql {
            counts: &counts,
            rows: &format!(
                "SELECT {SERVER_COLUMNS} FROM servers s LEFT JOIN clusters c ON c.id = s.cluster_id \
                 WHERE s.account_id = ?1{matches} ORDER BY {order} LIMIT ?{limit} OFFSET ?{offset}"
            ),
        };
        self.page_of(sql, account_id, &filters, query.page).await
    }

    /// One server of the account; `None` both when it does not exist and when it belongs to
    /// another account, so the two cannot be told apart.
    pub async fn server(
        &self,
        account_id: AccountId,
        id: i64,
    ) -> Result<Option<ServerRecord>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {SERVER_COLUMNS} FROM servers s LEFT JOIN clusters c ON c.id = s.cluster_id \
             WHERE s.account_id = ? AND s.id = ?"
        ))
        .bind(account_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Servers whose nodes should be running after a restart of the control plane.
    pub async fn servers_to_restore(&self) -> Result<Vec<ServerRecord>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {SERVER_COLUMNS} FROM servers s LEFT JOIN clusters c ON c.id = s.cluster_id \
             WHERE s.status IN ('running', 'installing') \
             OR (s.status = 'expired' AND COALESCE(s.status_before_expiry, 'running') != 'stopped') \
             ORDER BY s.id"
        ))
        .fetch_all(&self.pool)
        .await
    }

    /// Servers whose nodes should be answering now (what the monitor measures).
    pub async fn servers_with_nodes(&self) -> Result<Vec<ServerRecord>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {SERVER_COLUMNS} FROM servers s LEFT JOIN clusters c ON c.id = s.cluster_id \
             WHERE s.status = 'running' ORDER BY s.id"
        ))
        .fetch_all(&self.pool)
        .await
    }

    pub async fn alias_taken(
        &self,
        account_id: AccountId,
        alias: &str,
    ) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM servers WHERE account_id = ? AND alias = ?)",
        )
        .bind(account_id)
        .bind(alias)
        .fetch_one(&self.pool)
        .await
    }

    /// Stores a new server as Installing, and the audit row `audit` gives for its id.
    pub async fn insert_server(
        &self,
        new: &NewServer<'_>,
        audit: impl FnOnce(i64) -> Audit,
    ) -> Result<i64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let id = sqlx::query_scalar(
            "INSERT INTO servers (account_id, alias, zone, kind, cluster_id, ip, ip_order, channels, cps, status, expires_at, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'installing', ?, ?) RETURNING id",
        )
        .bind(new.account_id)
        .bind(new.alias)
        .bind(new.zone)
        .bind(new.kind.as_str())
        .bind(new.cluster_id)
        .bind(new.ip)
        .bind(ip_order(new.ip))
        .bind(new.channels)
        .bind(new.cps)
        .bind(new.expires_at)
        .bind(now())
        .fetch_one(&mut *tx)
        .await?;
        audit(id).write(&mut tx).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Records what the node now does; `engine_build` is what the node reported. Any status
    /// but Expired forgets what the server was before it expired.
    pub async fn set_status(
        &self,
        id: i64,
        status: ServerStatus,
        engine_build: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE servers SET status = ?, engine_build = COALESCE(?, engine_build), \
             status_before_expiry = CASE WHEN ? = 'expired' THEN status_before_expiry END \
             WHERE id = ?",
        )
        .bind(status.as_str())
        .bind(engine_build)
        .bind(status.as_str())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a server Expired, remembering `before` (its status until now) for the renewal.
    pub async fn set_expired(
        &self,
        id: i64,
        before: ServerStatus,
        audit: Audit,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE servers SET status = 'expired', status_before_expiry = ? WHERE id = ?")
            .bind(before.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        audit.write(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The aliases of the account's other servers whose Capacity Failover hands calls to
    /// server `id`.
    pub async fn failover_sources(
        &self,
        account_id: AccountId,
        id: i64,
    ) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT alias FROM servers WHERE account_id = ? AND failover_enabled = 1 \
             AND failover_target_id = ? AND id != ? ORDER BY alias",
        )
        .bind(account_id)
        .bind(id)
        .bind(id)
        .fetch_all(&self.pool)
        .await
    }

    /// Deletes one of the account's servers with what hangs on it (its configuration is
    /// its row; attached certificates are detached, not deleted; the registrations in its
    /// `domains`, its IP and FQDN, go), and writes `audit`. The audit log keeps every
    /// earlier entry about it. False when the account has no such server.
    pub async fn delete_server(
        &self,
        account_id: AccountId,
        id: i64,
        domains: &[&str],
        audit: Audit,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query("DELETE FROM servers WHERE account_id = ? AND id = ?")
            .bind(account_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() != 1 {
            return Ok(false);
        }
        for domain in domains {
            sqlx::query(
                "DELETE FROM registrations \
                 WHERE lower(substr(aor, instr(aor, '@') + 1)) = lower(?)",
            )
            .bind(domain)
            .execute(&mut *tx)
            .await?;
        }
        audit.write(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn server_config(
        &self,
        account_id: AccountId,
        id: i64,
    ) -> Result<Option<ConfigRecord>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {CONFIG_COLUMNS} FROM servers WHERE account_id = ? AND id = ?"
        ))
        .bind(account_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Stores a new configuration (and its next version), with the audit row `audit` gives
    /// for that version; the UAC Auth password is kept when `uac_auth_password` is `None`.
    pub async fn save_config(
        &self,
        account_id: AccountId,
        id: i64,
        c: &ConfigRecord,
        audit: impl FnOnce(i64) -> Audit,
    ) -> Result<i64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let version = sqlx::query_scalar(
            "UPDATE servers SET cluster_id = ?, interconnect = ?, uac_auth_username = ?, \
             uac_auth_password = COALESCE(?, uac_auth_password), uac_auth_registrar = ?, fqdn = ?, \
             auto_upgrade = ?, \
             disable_uac_ping = ?, uac_location_sharing = ?, tls_internals = ?, restrict_direct = ?, \
             tcp_sip_trace = ?, data_zone = ?, digest_algorithms = ?, udp_port = ?, tcp_port = ?, \
             tls_port = ?, failover_enabled = ?, failover_target_id = ?, balancing = ?, \
             probe_interval = ?, probe_failures = ?, probe_successes = ?, any_reg = ?, weight = ?, \
             config_version = config_version + 1 \
             WHERE account_id = ? AND id = ? RETURNING config_version",
        )
        .bind(c.cluster_id)
        .bind(c.interconnect)
        .bind(&c.uac_auth_username)
        .bind(&c.uac_auth_password)
        .bind(&c.uac_auth_registrar)
        .bind(&c.fqdn)
        .bind(c.auto_upgrade)
        .bind(c.disable_uac_ping)
        .bind(c.uac_location_sharing)
        .bind(c.tls_internals)
        .bind(c.restrict_direct)
        .bind(c.tcp_sip_trace)
        .bind(&c.data_zone)
        .bind(&c.digest_algorithms)
        .bind(c.udp_port)
        .bind(c.tcp_port)
        .bind(c.tls_port)
        .bind(c.failover_enabled)
        .bind(c.failover_target_id)
        .bind(&c.balancing)
        .bind(c.probe_interval)
        .bind(c.probe_failures)
        .bind(c.probe_successes)
        .bind(c.any_reg)
        .bind(c.weight)
        .bind(account_id)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        audit(version).write(&mut tx).await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Servers whose paid (or trial) period has ended by `now`, expired ones included.
    pub async fn servers_due(&self, now: i64) -> Result<Vec<ServerRecord>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {SERVER_COLUMNS} FROM servers s LEFT JOIN clusters c ON c.id = s.cluster_id \
             WHERE s.expires_at <= ? ORDER BY s.expires_at, s.id"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await
    }

    /// Renews a server for `days` by taking `price` from its account's balance, in one
    /// transaction with `audit`; false (and nothing changed) when the balance does not
    /// cover it.
    pub async fn renew(
        &self,
        server_id: i64,
        price: Usd,
        days: i64,
        audit: Audit,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let charged = sqlx::query(
            "UPDATE accounts SET balance_cents = balance_cents - ? WHERE balance_cents >= ? \
             AND id = (SELECT account_id FROM servers WHERE id = ?)",
        )
        .bind(price.0)
        .bind(price.0)
        .bind(server_id)
        .execute(&mut *tx)
        .await?;
        if charged.rows_affected() != 1 {
            return Ok(false);
        }
        // A lapsed server's new period starts now, not at its old end.
        sqlx::query("UPDATE servers SET expires_at = MAX(expires_at, ?) + ? WHERE id = ?")
            .bind(now())
            .bind(days * 86_400)
            .bind(server_id)
            .execute(&mut *tx)
            .await?;
        audit.write(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records a resize that takes effect at `active_at`.
    pub async fn schedule_resize(
        &self,
        account_id: AccountId,
        id: i64,
        channels: u32,
        active_at: i64,
        audit: Audit,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE servers SET pending_channels = ?, pending_channels_at = ? WHERE account_id = ? AND id = ?")
            .bind(channels)
            .bind(active_at)
            .bind(account_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        audit.write(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets the channel count now (and drops any pending resize).
    pub async fn set_channels(
        &self,
        id: i64,
        channels: i64,
        audit: Audit,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE servers SET channels = ?, pending_channels = NULL, pending_channels_at = NULL WHERE id = ?")
            .bind(channels)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        audit.write(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Servers with a resize whose time has come.
    pub async fn resizes_due(&self, now: i64) -> Result<Vec<ServerRecord>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {SERVER_COLUMNS} FROM servers s LEFT JOIN clusters c ON c.id = s.cluster_id \
             WHERE s.pending_channels_at IS NOT NULL AND s.pending_channels_at <= ?"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await
    }

    /// The account's unclustered servers with UAC Location Array Sharing on: (id, ip).
    pub async fn location_sharing_servers(
        &self,
        account_id: AccountId,
    ) -> Result<Vec<(i64, String)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, ip FROM servers WHERE account_id = ? AND uac_location_sharing = 1 \
             AND cluster_id IS NULL ORDER BY id",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
    }

    /// Every server's hosts (IP and FQDN) with its account, for the SIP user directory.
    pub async fn server_hosts(
        &self,
    ) -> Result<Vec<(AccountId, String, Option<String>)>, sqlx::Error> {
        sqlx::query_as("SELECT account_id, ip, fqdn FROM servers")
            .fetch_all(&self.pool)
            .await
    }
}
