//! The SIP users the nodes authenticate, as the engine's [`UserDirectory`].
//!
//! A REGISTER names a domain (the host of its To URI): the server's IP, or its FQDN. The
//! directory maps that host to the server's account and looks the user up in that account
//! only, so one provider's users never register on another's servers.
//!
//! The engine asks synchronously, on the packet path, so the directory answers from memory;
//! the store stays the truth and [`Directory::reload`] copies it after every change.

use std::collections::HashMap;
use std::sync::RwLock;

use sip_engine::{KeepAliveMode, Secret, UserDirectory};

use crate::model::KeepAlive;

use super::store::{AccountId, Store};

#[derive(Debug, Default)]
pub struct Directory {
    inner: RwLock<Snapshot>,
}

#[derive(Debug, Default)]
struct Snapshot {
    /// Server IP or FQDN → account.
    accounts: HashMap<String, AccountId>,
    /// (account, username) → password and keep-alive mode.
    users: HashMap<(AccountId, String), (String, KeepAliveMode)>,
}

impl Directory {
    /// Copies servers' hosts and SIP users from the store.
    pub async fn reload(&self, store: &Store) -> Result<(), sqlx::Error> {
        let hosts = store.server_hosts().await?;
        let users = store.all_sip_users().await?;
        let mut snapshot = Snapshot::default();
        for (account, ip, fqdn) in hosts {
            snapshot.accounts.insert(ip, account);
            if let Some(fqdn) = fqdn {
                snapshot.accounts.insert(fqdn, account);
            }
        }
        for (account, username, password, keepalive) in users {
            let mode = match KeepAlive::parse(&keepalive).unwrap_or_default() {
                KeepAlive::Disabled => KeepAliveMode::Disabled,
                KeepAlive::Crlf => KeepAliveMode::Crlf,
                KeepAlive::Options => KeepAliveMode::Options,
                KeepAlive::OptionsWithTimeout => KeepAliveMode::OptionsWithTimeout,
            };
            snapshot.users.insert((account, username), (password, mode));
        }
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = snapshot;
        Ok(())
    }
}

impl UserDirectory for Directory {
    fn secret(&self, username: &str, domain: &str) -> Option<Secret> {
        let snapshot = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let account = *snapshot.accounts.get(&domain.to_ascii_lowercase())?;
        snapshot
            .users
            .get(&(account, username.to_string()))
            .map(|(p, _)| Secret::Password(p.clone()))
    }

    fn tenant(&self, domain: &str) -> Option<i64> {
        let snapshot = self.inner.read().unwrap_or_else(|p| p.into_inner());
        snapshot
            .accounts
            .get(&domain.to_ascii_lowercase())
            .map(|account| account.get())
    }

    fn keepalive_mode(&self, username: &str, domain: &str) -> KeepAliveMode {
        let snapshot = self.inner.read().unwrap_or_else(|p| p.into_inner());
        snapshot
            .accounts
            .get(&domain.to_ascii_lowercase())
            .and_then(|account| snapshot.users.get(&(*account, username.to_string())))
            .map_or(KeepAliveMode::Disabled, |(_, mode)| *mode)
    }
}
