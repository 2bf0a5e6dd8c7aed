//! The store: every query the control plane runs, and nothing else touches the tables.
//!
//! Every query about servers takes the caller's account id and filters by it, so account
//! scoping is not something a service can forget.
//!
//! # Layout
//! One file per aggregate, each with its own `impl Store` block:
//! - `accounts`: accounts and their users, balances, the Getting Started checklist
//! - `sessions`: sign-in sessions
//! - `catalog`: what every account is offered: zones, the operator's media relays,
//!   node releases
//! - `servers`: servers' rows, status, configuration, billing period and resizes
//! - `clusters`: clusters and their members
//! - `certificates`: certificates and their attachment to servers
//! - `sip_users`: the accounts' SIP users
//! - `registrations`: registrations written behind the in-memory location store
//! - `audit`: the audit log; each change's method takes its [`Audit`] row and writes it in
//!   the change's own transaction
//!
//! and `pages`, how a list (servers, SIP users, the audit log) reads one page and its counts.

mod accounts;
mod audit;
mod catalog;
mod certificates;
mod clusters;
mod pages;
mod registrations;
mod servers;
mod sessions;
mod sip_users;

pub use accounts::{AccountSummary, ChecklistRecord, CreateUserError, Credentials};
pub use audit::Audit;
pub use catalog::{RtpRecord, ZoneRecord};
pub use certificates::CertificateRecord;
pub use clusters::{ClusterError, ClusterTotals};
pub use registrations::{split_path, RegistrationRecord};
pub use servers::{ConfigRecord, NewServer, ServerRecord};
pub use sessions::SessionUser;

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

/// An account's id, as stored. A type of its own, so a query cannot be handed a server's
/// (or any other) id where an account's is meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, sqlx::Type)]
#[sqlx(transparent)]
pub struct AccountId(i64);

impl AccountId {
    /// An id read from elsewhere than the store (an operator's form, the command line);
    /// the query it is used in finds no account when it names none.
    pub fn new(id: i64) -> Self {
        AccountId(id)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

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
}
