//! What the control plane tells a node to run: its role and its configuration.
//!
//! A plain value, pushed whole ([`crate::Engine::configure`]) and published on a `watch`
//! channel inside the node, so that the pipeline and each background service (keep-alives,
//! UAC registration) read the same version without reaching into one another.

use std::net::{IpAddr, SocketAddr};

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
}
