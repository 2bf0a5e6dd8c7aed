//! What the control plane tells a node to run: its role and its configuration.
//!
//! A plain value, pushed whole ([`crate::Engine::configure`]) and published on a `watch`
//! channel inside the node, so that the pipeline and each background service (keep-alives,
//! UAC registration) read the same version without reaching into one another.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::digest::Algorithm;
use crate::limits::CallLimits;
use crate::trace::TraceTarget;

/// What a server is for: a Dispatcher balances load over switches, a Switch is a cluster
/// member that carries calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    Dispatcher,
    Switch,
}

/// Where and as whom a node registers upstream.
#[derive(Clone, PartialEq, Eq)]
pub struct UacRegistration {
    /// The carrier's registrar (no DNS: an address).
    pub registrar: SocketAddr,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for UacRegistration {
    /// Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UacRegistration")
            .field("registrar", &self.registrar)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Which digest algorithms a node offers when it challenges, in order. Phones that read only
/// the first challenge and know only MD5 (many deployed hard phones, SIPp 3.6) cannot
/// answer one that offers SHA-256 first, so MD5 leads by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DigestAlgorithms {
    /// MD5, then SHA-256: every phone can register.
    #[default]
    Md5ThenSha256,
    /// SHA-256, then MD5: phones that read every challenge pick the stronger one.
    Sha256ThenMd5,
    /// SHA-256 only: MD5 credentials are refused.
    Sha256Only,
}

impl DigestAlgorithms {
    /// The challenges offered, in this order.
    pub fn algorithms(self) -> &'static [Algorithm] {
        match self {
            DigestAlgorithms::Md5ThenSha256 => &[Algorithm::Md5, Algorithm::Sha256],
            DigestAlgorithms::Sha256ThenMd5 => &[Algorithm::Sha256, Algorithm::Md5],
            DigestAlgorithms::Sha256Only => &[Algorithm::Sha256],
        }
    }
}

/// A server's configuration as the control plane pushes it to its node. The node runs
/// exactly this (the control plane reads it back through [`crate::Engine::config`]);
/// `version` says which of the control plane's configurations it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeConfig {
    pub version: i64,
    /// Takes calls handed over by the account's other servers (the directory knows which
    /// addresses are theirs: [`crate::UserDirectory::tenant`]); without it, a new call from
    /// one of them is refused (403). Members of the node's own cluster always may hand calls
    /// over (capacity failover).
    pub interconnect: bool,
    /// No NAT keep-alives to registered contacts.
    pub disable_uac_ping: bool,
    /// UAC Location Array Sharing: users registered at `sharing_peers` are reached through
    /// this node too (for unclustered servers; a cluster shares its registrations anyway).
    pub uac_location_sharing: bool,
    /// The account's other unclustered servers that share their registrations.
    pub sharing_peers: Vec<IpAddr>,
    pub tls_internals: bool,
    /// Serve requests (other than OPTIONS pings) only from `allowed_sources`: a switch that
    /// takes traffic only through its cluster's dispatchers.
    pub restrict_direct: bool,
    pub allowed_sources: Vec<IpAddr>,
    pub tcp_sip_trace: bool,
    pub auto_upgrade: bool,
    /// `us` or `eu`.
    pub data_zone: String,
    /// The server's FQDN: users registering or calling under it are the users of its IP.
    pub fqdn: Option<String>,
    /// The digest algorithms its challenges offer.
    pub digest: DigestAlgorithms,
    pub uac_auth_username: Option<String>,
    /// UAC Auth: register upstream to this carrier (the node's `uac` service).
    pub uac_registration: Option<UacRegistration>,
    /// When set, new calls (INVITE) are refused with 503 and this reason: an expired server,
    /// or one draining before a restart.
    pub refusing: Option<String>,
    /// The channels and CPS the server was deployed (or resized) with; `None` admits every
    /// call.
    pub limits: Option<CallLimits>,
    /// The cluster whose budget the node's calls count in (the engine gives every member of
    /// a cluster the same one); `None` counts them on their own.
    pub cluster: Option<i64>,
    /// The other members of the cluster: their registrations reach users through this node
    /// too, and a call they hand over here is never handed on.
    pub cluster_peers: Vec<IpAddr>,
    /// Capacity failover: where a call goes when this node is at its limits (another member
    /// of its cluster, which admits or refuses it under its own).
    pub failover: Option<SocketAddr>,
    /// Where the node ships a copy of every SIP message (see [`crate::trace`]): the
    /// collector of the server's data zone, over TCP when `tcp_sip_trace` is on. `None`
    /// traces nothing.
    pub trace: Option<TraceTarget>,
    /// What a Dispatcher balances over and how (its cluster's switches); `None` for a
    /// Switch. A Dispatcher without it has no switch to send to and refuses with 503.
    pub dispatch: Option<DispatchConfig>,
}

/// How a Dispatcher picks the switch for a new request, chosen per Dispatcher on its
/// config page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Balancing {
    /// Each switch in turn: the even spread, with nothing to configure.
    #[default]
    RoundRobin,
    /// In proportion to each switch's [`SwitchTarget::weight`] (smooth weighted
    /// round-robin: a 3:1 pair gets A A B A, never A A A B in bursts).
    Weighted,
    /// The switch with the fewest calls in progress sent by this Dispatcher: long calls
    /// do not pile up on one switch.
    LeastChannels,
    /// A rendezvous hash of the Call-ID: every request of a call (a re-sent INVITE after
    /// a 407 too) reaches the same switch.
    HashCallId,
    /// A rendezvous hash of the caller (its auth username, else its From user): a user's
    /// REGISTERs and calls stick to one switch.
    HashUser,
}

impl Balancing {
    /// Every algorithm, in the order the console lists them.
    pub const ALL: [Balancing; 5] = [
        Balancing::RoundRobin,
        Balancing::Weighted,
        Balancing::LeastChannels,
        Balancing::HashCallId,
        Balancing::HashUser,
    ];

    /// The name the console stores and shows: `round-robin`, `weighted`,
    /// `least-channels`, `hash-call-id`, `hash-user`.
    pub fn as_str(self) -> &'static str {
        match self {
            Balancing::RoundRobin => "round-robin",
            Balancing::Weighted => "weighted",
            Balancing::LeastChannels => "least-channels",
            Balancing::HashCallId => "hash-call-id",
            Balancing::HashUser => "hash-user",
        }
    }

    /// The algorithm an [`as_str`](Self::as_str) name stands for; `None` for anything
    /// else (a stored value from a newer build, say).
    pub fn parse(name: &str) -> Option<Balancing> {
        Balancing::ALL.into_iter().find(|b| b.as_str() == name)
    }
}

impl std::fmt::Display for Balancing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One switch a Dispatcher may send to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SwitchTarget {
    /// The control plane's id of the switch server: the key its health and traffic are
    /// reported under ([`crate::Engine::dispatch_status`]) and the input of the hashes,
    /// so a switch keeps its share when its address or its place in the list changes.
    pub id: i64,
    /// Its UDP SIP address.
    pub addr: SocketAddr,
    /// Its share under [`Balancing::Weighted`] (ignored by the other algorithms); a
    /// weight of 0 takes calls only when no weighted switch is left.
    pub weight: u32,
}

/// A Dispatcher's balancing: the algorithm, the switches, and how they are probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchConfig {
    /// How the switch of each new request is picked.
    pub algorithm: Balancing,
    /// The Switch servers of the Dispatcher's cluster, in the console's order (round-robin
    /// goes down this list).
    pub switches: Vec<SwitchTarget>,
    /// How often each switch gets an OPTIONS probe; 5 s by default.
    pub probe_interval: Duration,
    /// Consecutive unanswered probes that take an Active switch out; 2 by default (one
    /// lost datagram is ordinary).
    pub probe_failures: u32,
    /// Consecutive answered probes that bring an Inactive switch back; 2 by default (a
    /// switch that is still starting may answer once and go again).
    pub probe_successes: u32,
    /// AnyReg (the console's "Use AnyReg Server"): the Dispatcher answers REGISTERs
    /// itself, digest-authenticated, into the cluster's shared location store under its
    /// own domain (its IP, which the switches look under as a cluster peer's), and no
    /// switch sees them. Each binding gets a Path naming the Dispatcher and the phone's NAT
    /// address, as a REGISTER balanced to a switch would carry, so the switches still
    /// call the phone through the Dispatcher and the Dispatcher alone sends its
    /// keep-alives. It costs the Dispatcher the registrar's work (a digest check and a
    /// store write per REGISTER), which the switches no longer share; it saves the
    /// REGISTER's extra hop. Off (the default): REGISTERs are balanced to the switches,
    /// with a Path.
    pub any_reg: bool,
}

impl Default for DispatchConfig {
    /// Round-robin over no switch, probed every 5 s, out after 2 misses, back after 2
    /// answers; REGISTERs balanced (no AnyReg).
    fn default() -> Self {
        DispatchConfig {
            algorithm: Balancing::default(),
            switches: Vec::new(),
            probe_interval: Duration::from_secs(5),
            probe_failures: 2,
            probe_successes: 2,
            any_reg: false,
        }
    }
}
