//! Who may use a node: the SIP users the control plane supplies ([`UserDirectory`]), how
//! each one's contacts are kept alive ([`KeepAliveMode`]), and which tenant owns a domain.
//!
//! The registrar, the caller check, keep-alives and routers all read it; it reads nothing
//! of theirs.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::RwLock;

use crate::digest::Secret;

/// The domain of a node reached by IP, as the registrar reads it from a To URI (an IPv6
/// address in brackets).
pub fn domain_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}
/// How a SIP user's contacts are kept alive; chosen per user in the [`UserDirectory`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeepAliveMode {
    /// Nothing is sent: the phone keeps its own mapping (or is not behind NAT).
    Disabled,
    /// A CRLF CRLF datagram (RFC 5626 §3.5.1): the cheapest packet that keeps the mapping;
    /// no answer, so no latency and no offline detection.
    Crlf,
    /// An OPTIONS: keeps the mapping, measures latency, marks a silent phone offline.
    #[default]
    Options,
    /// As [`Options`](Self::Options), and a phone that stops answering is de-registered.
    OptionsWithTimeout,
}
/// The SIP users a registrar accepts, supplied by the control plane.
///
/// Synchronous like [`LocationStore`]: answered from memory on the node's receive loop.
pub trait UserDirectory: Send + Sync + std::fmt::Debug {
    /// The secret of `username` in `domain` (the realm we challenge with: the host of the
    /// AOR), or `None` for a user we do not know.
    fn secret(&self, username: &str, domain: &str) -> Option<Secret>;

    /// How the node keeps `username`'s NAT mappings open and checks that the phone is
    /// still there. A per-user choice because some phones mishandle OPTIONS and some NATs
    /// forget a mapping within seconds. The default, OPTIONS, both keeps the mapping and
    /// measures latency; a directory that knows no better need not implement this.
    fn keepalive_mode(&self, username: &str, domain: &str) -> KeepAliveMode {
        let _ = (username, domain);
        KeepAliveMode::Options
    }

    /// Who owns `domain` (a server's IP or FQDN): servers of one tenant (a provider's
    /// account) take each other's calls only with Interconnect. `None` when unknown, and by
    /// default.
    fn tenant(&self, domain: &str) -> Option<i64> {
        let _ = domain;
        None
    }
}

/// A [`UserDirectory`] in memory, for the control plane to fill and tests to use. Users added
/// without a domain are accepted in any domain (a node addressed by IP has no domain).
#[derive(Debug, Default)]
pub struct MemoryDirectory {
    users: RwLock<HashMap<(String, Option<String>), Secret>>,
    /// Users without an entry get the trait's default mode.
    modes: RwLock<HashMap<(String, Option<String>), KeepAliveMode>>,
}

impl MemoryDirectory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a user. `domain` is compared case-insensitively.
    pub fn insert(&self, username: &str, domain: Option<&str>, secret: Secret) {
        let key = (username.to_string(), domain.map(str::to_ascii_lowercase));
        self.write().insert(key, secret);
    }

    /// Removes a user; true if it existed.
    pub fn remove(&self, username: &str, domain: Option<&str>) -> bool {
        let key = (username.to_string(), domain.map(str::to_ascii_lowercase));
        self.write().remove(&key).is_some()
    }

    /// Sets the keep-alive mode of a user, with the same domain rule as [`Self::insert`].
    pub fn set_keepalive_mode(&self, username: &str, domain: Option<&str>, mode: KeepAliveMode) {
        let key = (username.to_string(), domain.map(str::to_ascii_lowercase));
        self.modes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, mode);
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<(String, Option<String>), Secret>> {
        // Single inserts and removes leave the map consistent: a poisoned lock is usable.
        self.users.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl UserDirectory for MemoryDirectory {
    fn secret(&self, username: &str, domain: &str) -> Option<Secret> {
        let users = self.users.read().unwrap_or_else(|p| p.into_inner());
        users
            .get(&(username.to_string(), Some(domain.to_ascii_lowercase())))
            .or_else(|| users.get(&(username.to_string(), None)))
            .cloned()
    }

    fn keepalive_mode(&self, username: &str, domain: &str) -> KeepAliveMode {
        let modes = self.modes.read().unwrap_or_else(|p| p.into_inner());
        // Asked before every keep-alive: when no user has a mode of their own (the usual
        // case), answer without building the lookup keys.
        if modes.is_empty() {
            return KeepAliveMode::default();
        }
        modes
            .get(&(username.to_string(), Some(domain.to_ascii_lowercase())))
            .or_else(|| modes.get(&(username.to_string(), None)))
            .copied()
            .unwrap_or_default()
    }
}
