//! Server-only code: state, the store, authentication and the services behind the server
//! functions. Compiled with the `ssr` feature only; the browser bundle never sees it.
//!
//! # Layout
//! - `state`: what every handler and server function reaches; `settings`: sipfleet's own
//!   settings; `auth`: passwords, sessions, who is asking.
//! - `store`: every query, by aggregate; a change is written with its audit row.
//! - Services, one per area, each the only path from server functions to the store for
//!   its changes: `fleet` (deploying and running servers), `config` (a server's
//!   configuration, pushed to its node), `clusters`, `sip_users`, `certificates`.
//! - Behind the nodes: `directory` (the SIP users they authenticate), `locations`
//!   (registrations written behind to the store), `internal_tls` (the control plane's CA),
//!   `monitor` (health and live pages), `traces` (HEP collectors), `nettools` (ping and
//!   trace route from a node).
//! - `schedule`: renewals, expiries, resizes and Auto Upgrade, on time.

pub mod auth;
pub mod certificates;
pub mod clusters;
pub mod config;
pub mod directory;
pub mod fleet;
pub mod internal_tls;
pub mod locations;
pub mod monitor;
pub mod nettools;
pub mod schedule;
pub mod settings;
pub mod sip_users;
pub mod state;
pub mod store;
pub mod traces;

/// Now, in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// `YYYY-MM-DD` of a Unix time, in UTC.
pub fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| "—".into())
}

/// `YYYY-MM-DD HH:MM UTC` of a Unix time.
pub fn date_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| format!("{} {:02}:{:02} UTC", t.date(), t.hour(), t.minute()))
        .unwrap_or_else(|_| "—".into())
}
