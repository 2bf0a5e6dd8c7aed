//! Value types shared by the browser and the server. Each parses from what a user types and
//! rejects what the product cannot use, so code past the boundary never re-checks.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// Dispatcher (load balancer in front of a cluster) or Switch (a cluster member).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServerKind {
    Dispatcher,
    Switch,
}

impl ServerKind {
    pub const ALL: [ServerKind; 2] = [ServerKind::Dispatcher, ServerKind::Switch];

    /// The form and store spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::Dispatcher => "dispatcher",
            ServerKind::Switch => "switch",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ServerKind::Dispatcher => "Dispatcher",
            ServerKind::Switch => "Switch",
        }
    }
}

impl FromStr for ServerKind {
    type Err = AppError;
    fn from_str(s: &str) -> Result<Self, AppError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "dispatcher" => Ok(ServerKind::Dispatcher),
            "switch" => Ok(ServerKind::Switch),
            _ => Err(AppError::field("kind", "Choose Dispatcher or Switch.")),
        }
    }
}

/// Where a server is in its life; see PRODUCT.md for what each means to calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServerStatus {
    Installing,
    Running,
    Stopped,
    Rebooting,
    Updating,
    Expired,
}

impl ServerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerStatus::Installing => "installing",
            ServerStatus::Running => "running",
            ServerStatus::Stopped => "stopped",
            ServerStatus::Rebooting => "rebooting",
            ServerStatus::Updating => "updating",
            ServerStatus::Expired => "expired",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ServerStatus::Installing => "Installing",
            ServerStatus::Running => "Running",
            ServerStatus::Stopped => "Stopped",
            ServerStatus::Rebooting => "Rebooting",
            ServerStatus::Updating => "Updating",
            ServerStatus::Expired => "Expired",
        }
    }
}

impl FromStr for ServerStatus {
    type Err = AppError;
    fn from_str(s: &str) -> Result<Self, AppError> {
        Ok(match s {
            "installing" => ServerStatus::Installing,
            "running" => ServerStatus::Running,
            "stopped" => ServerStatus::Stopped,
            "rebooting" => ServerStatus::Rebooting,
            "updating" => ServerStatus::Updating,
            "expired" => ServerStatus::Expired,
            _ => return Err(AppError::field("status", "Unknown status.")),
        })
    }
}

/// An IPv4 address a server can be given: not unspecified, broadcast or multicast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServerIp(Ipv4Addr);

impl ServerIp {
    pub fn parse(s: &str) -> Result<Self, AppError> {
        let ip: Ipv4Addr = s
            .trim()
            .parse()
            .map_err(|_| AppError::field("ip", "Enter an IPv4 address such as 127.0.1.1."))?;
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
            return Err(AppError::field(
                "ip",
                "This address cannot be given to a server.",
            ));
        }
        Ok(ServerIp(ip))
    }

    pub fn addr(self) -> Ipv4Addr {
        self.0
    }
}

impl fmt::Display for ServerIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

macro_rules! bounded_number {
    ($(#[$doc:meta])* $name:ident, $inner:ty, $field:literal, $min:expr, $max:expr, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name($inner);

        impl $name {
            pub const MIN: $inner = $min;
            pub const MAX: $inner = $max;

            pub fn parse(s: &str) -> Result<Self, AppError> {
                let message = || {
                    AppError::field(
                        $field,
                        format!(concat!($what, " must be a whole number from {} to {}."), $min, $max),
                    )
                };
                let value: $inner = s.trim().parse().map_err(|_| message())?;
                Self::new(value).ok_or_else(message)
            }

            pub fn new(value: $inner) -> Option<Self> {
                ($min..=$max).contains(&value).then_some($name(value))
            }

            pub fn get(self) -> $inner {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

bounded_number!(
    /// Concurrent calls a server may carry. 1001 and more needs a reboot to apply (PRODUCT.md).
    Channels, u32, "channels", 1, 100_000, "Channels"
);
bounded_number!(
    /// New calls per second a server (or a whole cluster) may accept.
    Cps, u32, "cps", 1, 10_000, "CPS"
);
bounded_number!(
    /// A SIP listening port. Ports below 1024 are refused: a node never needs privileges.
    Port, u16, "port", 1024, 65_535, "Port"
);

/// A cluster's name: 1–48 characters of letters, digits, space, dot, dash or underscore.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClusterName(String);

impl ClusterName {
    pub fn parse(s: &str) -> Result<Self, AppError> {
        let s = s.trim();
        if s.is_empty() || s.chars().count() > 48 {
            return Err(AppError::field(
                "name",
                "A cluster name has 1 to 48 characters.",
            ));
        }
        if !s.chars().all(|c| c.is_alphanumeric() || " .-_".contains(c)) {
            return Err(AppError::field(
                "name",
                "Use letters, digits, spaces, dots, dashes and underscores only.",
            ));
        }
        Ok(ClusterName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A server's alias: unique in its account, 1–40 of letters, digits, dot, dash, underscore.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Alias(String);

impl Alias {
    pub fn parse(s: &str) -> Result<Self, AppError> {
        let s = s.trim();
        if s.is_empty()
            || s.len() > 40
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
        {
            return Err(AppError::field(
                "alias",
                "An alias has 1 to 40 letters, digits, dots, dashes or underscores.",
            ));
        }
        Ok(Alias(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address, lower-cased. Checked for shape only; nothing is sent to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, AppError> {
        let s = s.trim().to_lowercase();
        let bad = || AppError::field("email", "Enter an email address such as ops@example.com.");
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || domain.len() < 3
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || s.len() > 254
            || s.chars()
                .any(|c| c.is_whitespace() || c == ',' || c == '<' || c == '>')
        {
            return Err(bad());
        }
        Ok(Email(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password: 10 to 128 characters. Its text never leaves the server function.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPassword(String);

impl NewPassword {
    pub fn parse(s: &str) -> Result<Self, AppError> {
        let n = s.chars().count();
        if !(10..=128).contains(&n) {
            return Err(AppError::field("password", "Use 10 to 128 characters."));
        }
        Ok(NewPassword(s.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(…)")
    }
}

/// A company name as shown on invoices: 2–80 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CompanyName(String);

impl CompanyName {
    pub fn parse(s: &str) -> Result<Self, AppError> {
        let s = s.trim();
        let n = s.chars().count();
        if !(2..=80).contains(&n) || s.chars().any(char::is_control) {
            return Err(AppError::field(
                "company",
                "A company name has 2 to 80 characters.",
            ));
        }
        Ok(CompanyName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An amount of US dollars in cents, so that sums are exact.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Usd(pub i64);

impl Usd {
    pub fn dollars(d: i64) -> Self {
        Usd(d * 100)
    }

    /// Parses "20", "20.5" or "20.50" (no sign, at most two decimals).
    pub fn parse(s: &str) -> Result<Self, AppError> {
        let bad = || AppError::field("amount", "Enter an amount in dollars, such as 50 or 12.50.");
        let s = s.trim().trim_start_matches('$');
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        if whole.is_empty()
            || frac.len() > 2
            || !whole.chars().all(|c| c.is_ascii_digit())
            || !frac.chars().all(|c| c.is_ascii_digit())
        {
            return Err(bad());
        }
        let whole: i64 = whole.parse().map_err(|_| bad())?;
        let frac: i64 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
        whole
            .checked_mul(100)
            .and_then(|c| c.checked_add(frac))
            .map(Usd)
            .ok_or_else(bad)
    }
}

impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}${}.{:02}", abs / 100, abs % 100)
    }
}

/// The signed-in user as the console shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub email: String,
    pub company: String,
    pub balance: Usd,
    pub is_operator: bool,
}

/// One row of the Servers list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServerRow {
    pub id: i64,
    pub alias: String,
    pub ip: String,
    pub zone: String,
    pub kind: ServerKind,
    // What is absent or false is left out of the JSON: a page carries its rows twice (as
    // HTML and as hydration data), so every field a row can spare counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub channels_in_use: u32,
    pub channels: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cps_now: u32,
    pub cps: u32,
    /// The day the paid or trial period ends, as `YYYY-MM-DD` (UTC).
    pub expires: String,
    pub status: ServerStatus,
    /// The control plane's last measurement of the node; `None` until one was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// A resize waiting for its time: the new channel count and when it becomes active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_resize: Option<(u32, String)>,
    /// The node runs an older node release than the current one (see *Run Server Update*).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending_update: bool,
}

/// Whether a count is zero: an idle server's figures are left out of its row's JSON.
fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The node release nodes get when they start: what the operator published last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReleaseView {
    pub revision: u64,
    pub keepalive_seconds: u64,
}

/// Round trips the control plane measured to a node, in microseconds; `None` when that
/// ping got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Health {
    /// SIP OPTIONS round trip.
    pub sip_us: Option<u32>,
    /// ICMP echo round trip.
    pub icmp_us: Option<u32>,
}

impl Health {
    /// "0.42 ms", or "✗ no answer".
    pub fn describe(us: Option<u32>) -> String {
        match us {
            Some(us) => format!("{:.2} ms", f64::from(us) / 1000.0),
            None => "✗ no answer".into(),
        }
    }
}

/// A zone a server can be deployed into, with how many addresses it has left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneInfo {
    pub name: String,
    pub label: String,
    pub free_addresses: u32,
}

/// The Getting Started checklist, with the company details it holds so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checklist {
    pub company: String,
    pub address: String,
    pub country: String,
    pub company_details: bool,
    pub first_top_up: bool,
    pub terms_accepted: bool,
}

impl Checklist {
    pub fn done(&self) -> usize {
        [self.company_details, self.first_top_up, self.terms_accepted]
            .iter()
            .filter(|d| **d)
            .count()
    }

    pub fn complete(&self) -> bool {
        self.done() == 3
    }

    /// The items still open, as the deploy refusal names them.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if !self.company_details {
            missing.push("company details");
        }
        if !self.first_top_up {
            missing.push("a first top-up");
        }
        if !self.terms_accepted {
            missing.push("accepting the terms of service");
        }
        missing
    }
}

/// A postal address for invoices: 5–200 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Address(String);

impl Address {
    pub fn parse(s: &str) -> Result<Self, AppError> {
        let s = s.trim();
        let n = s.chars().count();
        if !(5..=200).contains(&n) || s.chars().any(|c| c.is_control() && c != '\n') {
            return Err(AppError::field(
                "address",
                "An address has 5 to 200 characters.",
            ));
        }
        Ok(Address(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A country as an ISO 3166-1 alpha-2 code (GB, US, IN…), upper-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Country(String);

impl Country {
    pub fn parse(s: &str) -> Result<Self, AppError> {
        let s = s.trim().to_ascii_uppercase();
        if s.len() != 2 || !s.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(AppError::field(
                "country",
                "Enter the two-letter country code, such as GB or US.",
            ));
        }
        Ok(Country(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What deploying one more server requires: "$20 (+ $20 X other servers in your account)".
pub fn deploy_requirement(other_servers: i64) -> Usd {
    Usd::dollars(20 + 20 * other_servers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_numbers_refuse_out_of_range_and_junk() {
        assert_eq!(Channels::parse(" 100 ").unwrap().get(), 100);
        assert!(Channels::parse("0").is_err());
        assert!(Channels::parse("100001").is_err());
        assert!(Cps::parse("ten").is_err());
        assert!(Port::parse("80").is_err());
        assert_eq!(Port::parse("5060").unwrap().get(), 5060);
        assert_eq!(
            Channels::parse("x")
                .unwrap_err()
                .for_field("channels")
                .unwrap(),
            "Channels must be a whole number from 1 to 100000."
        );
    }

    #[test]
    fn server_ip_refuses_unusable_addresses() {
        assert!(ServerIp::parse("127.0.1.1").is_ok());
        assert!(ServerIp::parse("0.0.0.0").is_err());
        assert!(ServerIp::parse("255.255.255.255").is_err());
        assert!(ServerIp::parse("224.0.0.1").is_err());
        assert!(ServerIp::parse("127.0.1").is_err());
    }

    #[test]
    fn names_and_emails_parse_strictly() {
        assert!(ClusterName::parse("London core").is_ok());
        assert!(ClusterName::parse("").is_err());
        assert!(ClusterName::parse("a;drop").is_err());
        assert_eq!(
            Email::parse(" Ops@Example.COM ").unwrap().as_str(),
            "ops@example.com"
        );
        assert!(Email::parse("no-at-sign").is_err());
        assert!(Email::parse("a@b").is_err());
        assert!(NewPassword::parse("short").is_err());
    }

    #[test]
    fn dollars_parse_and_print_exactly() {
        assert_eq!(Usd::parse("12.5").unwrap(), Usd(1250));
        assert_eq!(Usd::parse("$20").unwrap(), Usd(2000));
        assert!(Usd::parse("-5").is_err());
        assert!(Usd::parse("1.234").is_err());
        assert_eq!(Usd(123456).to_string(), "$1234.56");
        assert_eq!(deploy_requirement(2), Usd::dollars(60));
    }
}

/// What the Actions menu of a server can do. Each one acts on the node at once ("these
/// actions occur in real-time"), so the console asks for confirmation first and says what
/// happens to live calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServerCommand {
    Install,
    Start,
    Stop,
    Restart,
    OsCycle,
    PowerCycle,
    /// *Run Server Update*: offered by the pending-update banner, not the Actions menu.
    Update,
}

impl ServerCommand {
    pub const ALL: [ServerCommand; 6] = [
        ServerCommand::Install,
        ServerCommand::Start,
        ServerCommand::Stop,
        ServerCommand::Restart,
        ServerCommand::OsCycle,
        ServerCommand::PowerCycle,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ServerCommand::Install => "install",
            ServerCommand::Start => "start",
            ServerCommand::Stop => "stop",
            ServerCommand::Restart => "restart",
            ServerCommand::OsCycle => "os_cycle",
            ServerCommand::PowerCycle => "power_cycle",
            ServerCommand::Update => "update",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ServerCommand::Install => "Install Server",
            ServerCommand::Start => "Start Server",
            ServerCommand::Stop => "Stop Server",
            ServerCommand::Restart => "Restart Server",
            ServerCommand::OsCycle => "OS Cycle",
            ServerCommand::PowerCycle => "Power Cycle",
            ServerCommand::Update => "Run Server Update",
        }
    }

    /// What the action does to the node and its live calls, shown before confirming.
    pub fn consequence(self) -> &'static str {
        match self {
            ServerCommand::Install => {
                "Reinstalls the node from the standard image and restores the server's \
                 configuration onto it (ports, flags, UAC Auth, FQDN are kept). Live calls are \
                 dropped (both ends get a BYE); registrations are kept."
            }
            ServerCommand::Start => "Starts the node. It answers SIP again once it is up.",
            ServerCommand::Stop => {
                "Stops the node: live calls are dropped (both ends get a BYE) and it answers no SIP \
                 until started."
            }
            ServerCommand::Restart => {
                "Restarts the node: live calls are dropped (both ends get a BYE) and it comes back \
                 within seconds."
            }
            ServerCommand::OsCycle => {
                "Graceful restart: the node refuses new calls, lets live calls finish (up to the \
                 drain timeout; the rest then get a BYE), then restarts."
            }
            ServerCommand::PowerCycle => {
                "Hard restart, like pressing the power button: the node stops at once with no \
                 goodbyes to callers, then starts again."
            }
            ServerCommand::Update => {
                "Restarts the node on the current node release: live calls are dropped and it \
                 comes back within seconds. With Auto Upgrade on, this happens by itself once \
                 the server carries no calls."
            }
        }
    }
}

impl FromStr for ServerCommand {
    type Err = AppError;
    fn from_str(s: &str) -> Result<Self, AppError> {
        ServerCommand::ALL
            .into_iter()
            .chain([ServerCommand::Update])
            .find(|a| a.as_str() == s)
            .ok_or_else(|| AppError::field("action", "Unknown server action."))
    }
}

/// An account as the operator's page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRow {
    pub id: i64,
    pub company: String,
    pub email: String,
    pub balance: Usd,
    pub servers: i64,
}

/// A cluster and what its members add up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRow {
    pub id: i64,
    pub name: String,
    pub members: i64,
    pub channels: i64,
    pub cps: i64,
}

/// A server's configuration as the detail page edits it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerConfig {
    pub cluster_id: Option<i64>,
    pub interconnect: bool,
    pub uac_auth_username: Option<String>,
    /// Whether a UAC Auth password is stored; the password itself is never sent back.
    pub uac_auth_password_set: bool,
    /// The carrier's registrar (`IP:port`) the server registers to.
    pub uac_auth_registrar: Option<String>,
    pub fqdn: Option<String>,
    pub auto_upgrade: bool,
    pub disable_uac_ping: bool,
    pub uac_location_sharing: bool,
    pub tls_internals: bool,
    pub restrict_direct: bool,
    pub tcp_sip_trace: bool,
    pub data_zone: DataZone,
    pub digest_algorithms: DigestChoice,
    pub udp_port: u16,
    pub tcp_port: u16,
    pub tls_port: u16,
    pub failover_enabled: bool,
    pub failover_target_id: Option<i64>,
    /// A Dispatcher's balancing over its cluster's switches (see [`Dispatching`]).
    pub dispatching: Dispatching,
    /// A Switch's share under the weighted algorithm, relative to its cluster's others.
    pub weight: u32,
    /// The control plane's version of this configuration.
    pub version: i64,
}

/// How a Dispatcher spreads requests over the Switch servers of its cluster, and how it
/// watches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dispatching {
    pub balancing: Balancing,
    /// Seconds between two OPTIONS probes to each switch.
    pub probe_interval: u32,
    /// Missed probes in a row that make a switch Inactive.
    pub probe_failures: u32,
    /// Answered probes in a row that make an Inactive switch Active again.
    pub probe_successes: u32,
    /// AnyReg: the Dispatcher answers REGISTERs itself, into the cluster's shared
    /// location, instead of balancing them to the switches.
    pub any_reg: bool,
}

impl Default for Dispatching {
    fn default() -> Self {
        Dispatching {
            balancing: Balancing::default(),
            probe_interval: 5,
            probe_failures: 2,
            probe_successes: 2,
            any_reg: false,
        }
    }
}

impl Dispatching {
    /// The bounds the form accepts: `(field, least, most)`.
    pub const PROBE_BOUNDS: [(&'static str, u32, u32); 3] = [
        ("probe_interval", 1, 300),
        ("probe_failures", 1, 10),
        ("probe_successes", 1, 10),
    ];
    /// The weights a Switch may have.
    pub const WEIGHTS: (u32, u32) = (1, 1000);
}

/// One Switch as a Dispatcher sees it: its probed state, latency and traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwitchHealth {
    pub id: i64,
    pub alias: String,
    pub ip: String,
    /// Active (takes new calls) or Inactive (probes unanswered); `None` while the
    /// Dispatcher does not run.
    pub active: Option<bool>,
    /// The probes' round trip, a moving average, in microseconds.
    pub latency_us: Option<u32>,
    /// Calls the Dispatcher sent it in the last minute.
    pub sent_last_minute: u64,
    /// Its part of those calls, 0 to 1.
    pub share: f32,
}

impl SwitchHealth {
    pub fn state(&self) -> &'static str {
        match self.active {
            Some(true) => "Active",
            Some(false) => "Inactive",
            None => "Unknown",
        }
    }
}

/// How a server is drawn in its cluster's picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Shade {
    /// Running, and taking calls (a switch: Active at every running Dispatcher).
    Up,
    /// Installing, rebooting or updating.
    Busy,
    /// Not running, or a switch that a Dispatcher probes in vain.
    Down,
}

impl Shade {
    pub fn as_str(self) -> &'static str {
        match self {
            Shade::Up => "up",
            Shade::Busy => "busy",
            Shade::Down => "down",
        }
    }
}

/// One server in a cluster's picture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PictureNode {
    pub id: i64,
    pub alias: String,
    pub ip: String,
    pub shade: Shade,
    /// What the box says under the name: status or probe state.
    pub state: String,
    pub channels_in_use: u32,
    pub channels: u32,
    pub cps_now: u32,
    pub cps: u32,
}

/// A cluster drawn as its Dispatchers above its Switches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterPicture {
    pub id: i64,
    pub name: String,
    pub dispatchers: Vec<PictureNode>,
    pub switches: Vec<PictureNode>,
}

/// A Dispatcher's balancing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Balancing {
    /// Each switch in turn.
    #[default]
    RoundRobin,
    /// In proportion to the switches' weights.
    Weighted,
    /// The switch with the fewest calls in progress.
    LeastChannels,
    /// One switch per Call-ID (a rendezvous hash): every request of a call lands together.
    HashCallId,
    /// One switch per user (From or digest username): a phone's REGISTERs and calls stick.
    HashUser,
}

impl Balancing {
    pub const ALL: [Balancing; 5] = [
        Balancing::RoundRobin,
        Balancing::Weighted,
        Balancing::LeastChannels,
        Balancing::HashCallId,
        Balancing::HashUser,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Balancing::RoundRobin => "round-robin",
            Balancing::Weighted => "weighted",
            Balancing::LeastChannels => "least-channels",
            Balancing::HashCallId => "hash-call-id",
            Balancing::HashUser => "hash-user",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Balancing::RoundRobin => "Round-robin",
            Balancing::Weighted => "Weighted",
            Balancing::LeastChannels => "Least channels in use",
            Balancing::HashCallId => "Hash over Call-ID",
            Balancing::HashUser => "Hash over user",
        }
    }

    pub fn parse(s: &str) -> Result<Self, AppError> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|choice| choice.as_str() == s)
            .ok_or_else(|| AppError::field("balancing", "Choose one of the listed algorithms."))
    }
}

/// Where a server's data (CDRs, routing) is processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataZone {
    Us,
    Eu,
}

impl DataZone {
    pub fn as_str(self) -> &'static str {
        match self {
            DataZone::Us => "us",
            DataZone::Eu => "eu",
        }
    }

    pub fn parse(s: &str) -> Result<Self, AppError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "us" => Ok(DataZone::Us),
            "eu" => Ok(DataZone::Eu),
            _ => Err(AppError::field("data_zone", "Choose US or EU.")),
        }
    }
}

/// Which digest algorithms a server's challenges offer, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum DigestChoice {
    /// MD5, then SHA-256: every phone can register (those that read only the first
    /// challenge often know only MD5).
    #[default]
    Md5ThenSha256,
    /// SHA-256, then MD5: phones that read every challenge pick the stronger one.
    Sha256ThenMd5,
    /// SHA-256 only: phones that know only MD5 cannot register.
    Sha256Only,
}

impl DigestChoice {
    pub const ALL: [DigestChoice; 3] = [
        DigestChoice::Md5ThenSha256,
        DigestChoice::Sha256ThenMd5,
        DigestChoice::Sha256Only,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DigestChoice::Md5ThenSha256 => "md5-sha256",
            DigestChoice::Sha256ThenMd5 => "sha256-md5",
            DigestChoice::Sha256Only => "sha256",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            DigestChoice::Md5ThenSha256 => "MD5, then SHA-256",
            DigestChoice::Sha256ThenMd5 => "SHA-256, then MD5",
            DigestChoice::Sha256Only => "SHA-256 only",
        }
    }

    pub fn parse(s: &str) -> Result<Self, AppError> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|choice| choice.as_str() == s)
            .ok_or_else(|| AppError::field("digest_algorithms", "Choose one of the listed orders."))
    }
}

/// A fully qualified domain name for WebRTC/TLS: labels of letters, digits and dashes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fqdn(String);

impl Fqdn {
    pub fn parse(s: &str) -> Result<Self, AppError> {
        let s = s.trim().trim_end_matches('.').to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if s.len() > 253 || s.split('.').count() < 2 || !s.split('.').all(label_ok) {
            return Err(AppError::field(
                "fqdn",
                "Enter a domain name such as sip.example.com.",
            ));
        }
        Ok(Fqdn(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Everything the detail page's configuration sections show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerConfigView {
    pub server_id: i64,
    pub config: ServerConfig,
    /// Which settings apply: a Dispatcher's balancing, or a Switch's weight.
    pub kind: ServerKind,
    pub clusters: Vec<(i64, String)>,
    /// Other members of the server's cluster: the only allowed failover targets.
    pub failover_candidates: Vec<(i64, String)>,
    /// The configuration version the node runs, `None` when it does not run.
    pub node_version: Option<i64>,
    /// The port the node serves SIP over TLS on, `None` when it serves no TLS.
    pub tls_serving: Option<u16>,
    /// Why the node serving TLS does not serve secure WebSocket on 7443 as well (the
    /// port is taken on its address, say).
    pub websocket_refused: Option<String>,
    /// The node's control port, probed over TLS (TLS Internals); `None` without it.
    pub control_port: Option<u16>,
    /// Where the node's upstream registration (UAC Auth) stands, in words.
    pub uac_status: String,
}

/// A server's SIP trace, as its data zone's collector holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceView {
    /// "US" or "EU".
    pub zone: String,
    /// The collector's address.
    pub collector: String,
    /// How the server's nodes ship their trace now: "UDP" or "TCP".
    pub shipped_over: String,
    /// Newest first.
    pub messages: Vec<TraceLine>,
}

/// One traced SIP message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceLine {
    /// UTC, to the millisecond.
    pub time: String,
    pub from: String,
    pub to: String,
    /// The request or status line.
    pub first_line: String,
    /// How this message reached the collector: "UDP" or "TCP".
    pub shipped_over: String,
    /// The whole message.
    pub text: String,
}

/// How a SIP user's contacts are kept alive through NAT (PRODUCT.md: per SIP user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum KeepAlive {
    Disabled,
    Crlf,
    #[default]
    Options,
    OptionsWithTimeout,
}

impl KeepAlive {
    pub const ALL: [KeepAlive; 4] = [
        KeepAlive::Disabled,
        KeepAlive::Crlf,
        KeepAlive::Options,
        KeepAlive::OptionsWithTimeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeepAlive::Disabled => "disabled",
            KeepAlive::Crlf => "crlf",
            KeepAlive::Options => "options",
            KeepAlive::OptionsWithTimeout => "options_timeout",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            KeepAlive::Disabled => "Disabled",
            KeepAlive::Crlf => "Enabled (CRLF)",
            KeepAlive::Options => "Enabled (OPTIONS)",
            KeepAlive::OptionsWithTimeout => "Enabled with timeout",
        }
    }

    pub fn parse(s: &str) -> Result<Self, AppError> {
        KeepAlive::ALL
            .into_iter()
            .find(|k| k.as_str() == s.trim())
            .ok_or_else(|| AppError::field("keepalive", "Choose a keep-alive mode."))
    }
}
