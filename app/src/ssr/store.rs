//! The store: every query the control plane runs, and nothing else touches the tables.
//!
//! Every query about servers takes the caller's account id and filters by it, so account
//! scoping is not something a service can forget.

use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, SqlitePool};

use super::now;
use super::settings::ZoneSettings;
use crate::model::{ServerKind, ServerStatus, Usd};

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

/// An id that belongs to an account (the caller's), as established by its session.
pub type AccountId = i64;

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

/// Who is signed in, from a valid session.
#[derive(Debug, Clone, FromRow)]
pub struct SessionUser {
    pub user_id: i64,
    pub account_id: AccountId,
    pub email: String,
    pub company: String,
    pub balance_cents: i64,
    pub is_operator: bool,
}

#[derive(Debug, Clone, FromRow)]
pub struct Credentials {
    pub user_id: i64,
    pub password_hash: String,
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

/// A certificate's public facts; the key stays in the table.
#[derive(Debug, Clone, FromRow)]
pub struct CertificateRecord {
    pub id: i64,
    pub subject: String,
    pub sans: String,
    pub issuer: String,
    pub not_after: i64,
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

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("email already registered")]
    EmailTaken,
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

const CONFIG_COLUMNS: &str = "cluster_id, interconnect, uac_auth_username, uac_auth_password, uac_auth_registrar, fqdn, \
     auto_upgrade, disable_uac_ping, uac_location_sharing, tls_internals, restrict_direct, tcp_sip_trace, \
     data_zone, udp_port, tcp_port, tls_port, failover_enabled, failover_target_id, config_version";

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
    pub udp_port: i64,
    pub tcp_port: i64,
    pub tls_port: i64,
    pub failover_enabled: bool,
    pub failover_target_id: Option<i64>,
    pub config_version: i64,
}

const SERVER_COLUMNS: &str =
    "s.id, s.account_id, s.alias, s.zone, s.kind, c.name AS cluster, s.ip, \
     s.channels, s.cps, s.status, s.expires_at, s.udp_port, s.tcp_port, s.pending_channels, \
     s.pending_channels_at, s.status_before_expiry";

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self, sqlx::Error> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    // --- accounts and users -------------------------------------------------------------

    /// Creates an account with its first user. The email is unique across the platform.
    pub async fn create_account(
        &self,
        company: &str,
        email: &str,
        password_hash: &str,
        is_operator: bool,
    ) -> Result<(AccountId, i64), CreateUserError> {
        let mut tx = self.pool.begin().await?;
        let t = now();
        let account_id: i64 = sqlx::query_scalar(
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
    pub async fn credit(&self, account_id: AccountId, amount: Usd) -> Result<Usd, sqlx::Error> {
        let balance: i64 = sqlx::query_scalar(
            "UPDATE accounts SET balance_cents = balance_cents + ?, \
             first_top_up_at = COALESCE(first_top_up_at, ?) WHERE id = ? RETURNING balance_cents",
        )
        .bind(amount.0)
        .bind(now())
        .bind(account_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(Usd(balance))
    }

    /// Takes from an account's balance (an operator's correction), never below zero: `None`,
    /// with nothing changed, when the balance is smaller than `amount`.
    pub async fn debit(
        &self,
        account_id: AccountId,
        amount: Usd,
    ) -> Result<Option<Usd>, sqlx::Error> {
        let balance: Option<i64> = sqlx::query_scalar(
            "UPDATE accounts SET balance_cents = balance_cents - ? \
             WHERE id = ? AND balance_cents >= ? RETURNING balance_cents",
        )
        .bind(amount.0)
        .bind(account_id)
        .bind(amount.0)
        .fetch_optional(&self.pool)
        .await?;
        Ok(balance.map(Usd))
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
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE accounts SET company = ?, address = ?, country = ?, company_details_at = ? WHERE id = ?",
        )
        .bind(company)
        .bind(address)
        .bind(country)
        .bind(now())
        .bind(account_id)
        .execute(&self.pool)
        .await?;
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

    pub async fn accept_terms(&self, account_id: AccountId) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE accounts SET terms_accepted_at = COALESCE(terms_accepted_at, ?) WHERE id = ?",
        )
        .bind(now())
        .bind(account_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // --- sessions -----------------------------------------------------------------------

    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)")
            .bind(token_hash)
            .bind(user_id)
            .bind(now())
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn session_user(&self, token_hash: &str) -> Result<Option<SessionUser>, sqlx::Error> {
        sqlx::query_as(
            "SELECT u.id AS user_id, a.id AS account_id, u.email, a.company, a.balance_cents, a.is_operator \
             FROM sessions s JOIN users u ON u.id = s.user_id JOIN accounts a ON a.id = u.account_id \
             WHERE s.token_hash = ? AND s.expires_at > ?",
        )
        .bind(token_hash)
        .bind(now())
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ? OR expires_at <= ?")
            .bind(token_hash)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // --- zones --------------------------------------------------------------------------

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

    /// Every address a server holds, platform-wide (addresses are not per account).
    pub async fn used_ips(&self) -> Result<HashSet<String>, sqlx::Error> {
        let ips: Vec<String> = sqlx::query_scalar("SELECT ip FROM servers")
            .fetch_all(&self.pool)
            .await?;
        Ok(ips.into_iter().collect())
    }

    // --- servers ------------------------------------------------------------------------

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

    pub async fn insert_server(&self, new: &NewServer<'_>) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "INSERT INTO servers (account_id, alias, zone, kind, cluster_id, ip, channels, cps, status, expires_at, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'installing', ?, ?) RETURNING id",
        )
        .bind(new.account_id)
        .bind(new.alias)
        .bind(new.zone)
        .bind(new.kind.as_str())
        .bind(new.cluster_id)
        .bind(new.ip)
        .bind(new.channels)
        .bind(new.cps)
        .bind(new.expires_at)
        .bind(now())
        .fetch_one(&self.pool)
        .await
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
    pub async fn set_expired(&self, id: i64, before: ServerStatus) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE servers SET status = 'expired', status_before_expiry = ? WHERE id = ?")
            .bind(before.as_str())
            .bind(id)
            .execute(&self.pool)
            .await?;
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
    /// `domains`, its IP and FQDN, go), and records `audit` in the same transaction.
    /// The audit log keeps every earlier entry about it. False when the account has no
    /// such server.
    pub async fn delete_server(
        &self,
        account_id: AccountId,
        id: i64,
        domains: &[&str],
        audit: (&SessionUser, &str),
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
        let (user, detail) = audit;
        sqlx::query(
            "INSERT INTO audit_log (account_id, user_id, action, subject, detail, at) \
             VALUES (?, ?, 'server.delete', ?, ?, ?)",
        )
        .bind(user.account_id)
        .bind(user.user_id)
        .bind(format!("server {id}"))
        .bind(detail)
        .bind(now())
        .execute(&mut *tx)
        .await?;
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

    /// Stores a new configuration (and its next version); the UAC Auth password is kept
    /// when `uac_auth_password` is `None`.
    pub async fn save_config(
        &self,
        account_id: AccountId,
        id: i64,
        c: &ConfigRecord,
    ) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "UPDATE servers SET cluster_id = ?, interconnect = ?, uac_auth_username = ?, \
             uac_auth_password = COALESCE(?, uac_auth_password), uac_auth_registrar = ?, fqdn = ?, \
             auto_upgrade = ?, \
             disable_uac_ping = ?, uac_location_sharing = ?, tls_internals = ?, restrict_direct = ?, \
             tcp_sip_trace = ?, data_zone = ?, udp_port = ?, tcp_port = ?, tls_port = ?, \
             failover_enabled = ?, failover_target_id = ?, config_version = config_version + 1 \
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
        .bind(c.udp_port)
        .bind(c.tcp_port)
        .bind(c.tls_port)
        .bind(c.failover_enabled)
        .bind(c.failover_target_id)
        .bind(account_id)
        .bind(id)
        .fetch_one(&self.pool)
        .await
    }

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

    pub async fn cluster_options(
        &self,
        account_id: AccountId,
    ) -> Result<Vec<(i64, String)>, sqlx::Error> {
        sqlx::query_as("SELECT id, name FROM clusters WHERE account_id = ? ORDER BY name")
            .bind(account_id)
            .fetch_all(&self.pool)
            .await
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
    /// transaction; false (and nothing changed) when the balance does not cover it.
    pub async fn renew(&self, server_id: i64, price: Usd, days: i64) -> Result<bool, sqlx::Error> {
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
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE servers SET pending_channels = ?, pending_channels_at = ? WHERE account_id = ? AND id = ?")
            .bind(channels)
            .bind(active_at)
            .bind(account_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sets the channel count now (and drops any pending resize).
    pub async fn set_channels(&self, id: i64, channels: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE servers SET channels = ?, pending_channels = NULL, pending_channels_at = NULL WHERE id = ?")
            .bind(channels)
            .bind(id)
            .execute(&self.pool)
            .await?;
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

    // --- node releases --------------------------------------------------------------------

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
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO node_releases (revision, keepalive_seconds, published_at, published_by) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(revision)
        .bind(keepalive_seconds)
        .bind(now())
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // --- clusters, media ----------------------------------------------------------------

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

    pub async fn create_cluster(
        &self,
        account_id: AccountId,
        name: &str,
    ) -> Result<i64, ClusterError> {
        let created = sqlx::query_scalar(
            "INSERT INTO clusters (account_id, name, created_at) VALUES (?, ?, ?) RETURNING id",
        )
        .bind(account_id)
        .bind(name)
        .bind(now())
        .fetch_one(&self.pool)
        .await;
        match created {
            Ok(id) => Ok(id),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(ClusterError::NameTaken)
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn rename_cluster(
        &self,
        account_id: AccountId,
        id: i64,
        name: &str,
    ) -> Result<(), ClusterError> {
        let renamed = sqlx::query("UPDATE clusters SET name = ? WHERE account_id = ? AND id = ?")
            .bind(name)
            .bind(account_id)
            .bind(id)
            .execute(&self.pool)
            .await;
        match renamed {
            Ok(done) if done.rows_affected() == 1 => Ok(()),
            Ok(_) => Err(ClusterError::NotFound),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(ClusterError::NameTaken)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes an empty cluster; one that still has servers is refused and left as it is.
    pub async fn delete_cluster(&self, account_id: AccountId, id: i64) -> Result<(), ClusterError> {
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
        tx.commit().await?;
        Ok(())
    }

    /// Adds a media relay; false when the address is listed already.
    pub async fn add_rtp_server(
        &self,
        ip: &str,
        aliases: &str,
        zone: &str,
    ) -> Result<bool, sqlx::Error> {
        let added = sqlx::query("INSERT INTO rtp_servers (ip, aliases, zone) VALUES (?, ?, ?) ON CONFLICT (ip) DO NOTHING")
            .bind(ip)
            .bind(aliases)
            .bind(zone)
            .execute(&self.pool)
            .await?;
        Ok(added.rows_affected() == 1)
    }

    pub async fn remove_rtp_server(&self, ip: &str) -> Result<bool, sqlx::Error> {
        let removed = sqlx::query("DELETE FROM rtp_servers WHERE ip = ?")
            .bind(ip)
            .execute(&self.pool)
            .await?;
        Ok(removed.rows_affected() == 1)
    }

    pub async fn rtp_servers(&self) -> Result<Vec<RtpRecord>, sqlx::Error> {
        sqlx::query_as("SELECT ip, aliases, zone FROM rtp_servers ORDER BY zone, ip")
            .fetch_all(&self.pool)
            .await
    }

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

    /// Stores a checked certificate with its key.
    pub async fn insert_certificate(
        &self,
        account_id: AccountId,
        chain_pem: &str,
        key_pem: &str,
        facts: &super::certs::CertificateFacts,
    ) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
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
        .fetch_one(&self.pool)
        .await
    }

    /// Deletes a certificate of the account (detaching it from its servers); false when the
    /// account has no such certificate.
    pub async fn delete_certificate(
        &self,
        account_id: AccountId,
        id: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM certificates WHERE account_id = ? AND id = ?")
            .bind(account_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
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
    ) -> Result<bool, sqlx::Error> {
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
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn detach_certificate(
        &self,
        account_id: AccountId,
        server_id: i64,
        certificate_id: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "DELETE FROM server_certificates WHERE server_id = ? AND certificate_id = ? \
             AND server_id IN (SELECT id FROM servers WHERE account_id = ?)",
        )
        .bind(server_id)
        .bind(certificate_id)
        .bind(account_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
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

    // --- SIP users ----------------------------------------------------------------------

    /// Every server's hosts (IP and FQDN) with its account, for the SIP user directory.
    pub async fn server_hosts(
        &self,
    ) -> Result<Vec<(AccountId, String, Option<String>)>, sqlx::Error> {
        sqlx::query_as("SELECT account_id, ip, fqdn FROM servers")
            .fetch_all(&self.pool)
            .await
    }

    pub async fn all_sip_users(
        &self,
    ) -> Result<Vec<(AccountId, String, String, String)>, sqlx::Error> {
        sqlx::query_as("SELECT account_id, username, password, keepalive FROM sip_users")
            .fetch_all(&self.pool)
            .await
    }

    pub async fn set_sip_keepalive(
        &self,
        account_id: AccountId,
        id: i64,
        mode: &str,
    ) -> Result<bool, sqlx::Error> {
        let done =
            sqlx::query("UPDATE sip_users SET keepalive = ? WHERE account_id = ? AND id = ?")
                .bind(mode)
                .bind(account_id)
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The account's SIP users: (id, username, keep-alive mode, created_at). Passwords stay
    /// in the store.
    pub async fn sip_users(
        &self,
        account_id: AccountId,
    ) -> Result<Vec<(i64, String, String, i64)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, username, keepalive, created_at FROM sip_users WHERE account_id = ? ORDER BY username",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
    }

    /// Creates a SIP user; `None` when the account has one with this username already.
    pub async fn create_sip_user(
        &self,
        account_id: AccountId,
        username: &str,
        password: &str,
        keepalive: &str,
    ) -> Result<Option<i64>, sqlx::Error> {
        let created = sqlx::query_scalar(
            "INSERT INTO sip_users (account_id, username, password, keepalive, created_at) \
             VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(account_id)
        .bind(username)
        .bind(password)
        .bind(keepalive)
        .bind(now())
        .fetch_one(&self.pool)
        .await;
        match created {
            Ok(id) => Ok(Some(id)),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn reset_sip_password(
        &self,
        account_id: AccountId,
        id: i64,
        password: &str,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("UPDATE sip_users SET password = ? WHERE account_id = ? AND id = ?")
            .bind(password)
            .bind(account_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a SIP user; returns its username when it existed in the account.
    pub async fn delete_sip_user(
        &self,
        account_id: AccountId,
        id: i64,
    ) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(
            "DELETE FROM sip_users WHERE account_id = ? AND id = ? RETURNING username",
        )
        .bind(account_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    // --- registrations ------------------------------------------------------------------

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
            .bind(match b.transport {
                sip_engine::transport::Transport::Tcp => "tcp",
                sip_engine::transport::Transport::Udp => "udp",
            })
            .bind(&b.call_id)
            .bind(b.cseq)
            .bind(&b.user_agent)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    // --- audit --------------------------------------------------------------------------

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
