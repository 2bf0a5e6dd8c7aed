//! sipfleet's own settings (the `[sipfleet]` part of `Leptos.toml`). The server binary loads
//! them and applies `SIPFLEET_*` overrides; services only read them.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Where the SQLite store lives (`sipfleet.db` inside it).
    pub data_dir: PathBuf,
    /// Days a new server runs before its trial ends. Fractions are allowed (`0.5` is twelve
    /// hours), so a staging console can watch a trial end within minutes.
    pub trial_days: f64,
    /// Minutes before a resize takes effect.
    pub resize_activation_minutes: u32,
    /// Seconds between two NAT keep-alives to one registered contact.
    #[serde(default = "default_keepalive_seconds")]
    pub keepalive_seconds: u64,
    /// Seconds OS Cycle lets active calls finish (new calls refused) before the restart.
    #[serde(default = "default_drain_seconds")]
    pub drain_seconds: u64,
    /// Seconds between two passes of the scheduled work (renewing or expiring servers,
    /// activating resizes, Auto Upgrade).
    #[serde(default = "default_schedule_seconds")]
    pub schedule_seconds: u64,
    pub zones: Vec<ZoneSettings>,
    /// The SIP trace collectors of the two data zones.
    #[serde(default)]
    pub trace: TraceSettings,
}

/// Where each data zone's trace collector listens (UDP and TCP, one port for both). Port 0
/// takes any free port (tests).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub struct TraceSettings {
    pub us: std::net::SocketAddr,
    pub eu: std::net::SocketAddr,
}

impl Default for TraceSettings {
    fn default() -> Self {
        TraceSettings {
            us: std::net::SocketAddr::from(([127, 0, 0, 1], 9060)),
            eu: std::net::SocketAddr::from(([127, 0, 0, 1], 9061)),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ZoneSettings {
    pub name: String,
    pub label: String,
    /// Addresses servers in this zone get, as `first-last` (inclusive).
    pub pool: String,
}

impl ZoneSettings {
    /// The pool's first and last address; `None` when it does not parse or is reversed.
    pub fn pool_bounds(&self) -> Option<(Ipv4Addr, Ipv4Addr)> {
        let (first, last) = self.pool.split_once('-')?;
        let first: Ipv4Addr = first.trim().parse().ok()?;
        let last: Ipv4Addr = last.trim().parse().ok()?;
        (u32::from(first) <= u32::from(last)).then_some((first, last))
    }
}

impl Settings {
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("sipfleet.db")
    }

    /// How long a new server's trial lasts, in whole seconds.
    pub fn trial_seconds(&self) -> i64 {
        (self.trial_days * 24.0 * 3600.0).round() as i64
    }
}

fn default_keepalive_seconds() -> u64 {
    30
}

fn default_drain_seconds() -> u64 {
    60
}

fn default_schedule_seconds() -> u64 {
    30
}
