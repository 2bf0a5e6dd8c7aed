//! The SIP engine that every sipfleet server runs.
//!
//! It knows nothing of the console, HTTP or SQL: the control plane drives it through
//! [`Engine`], the one handle it holds, gives it SIP users and a location store through the
//! [`UserDirectory`] and [`LocationStore`] traits, and measures it with [`probe`].
//!
//! # Layout
//! A request goes transport → transaction → policy → router → forwarder → transport, with
//! the registrar and keep-alives beside the proxy path. No module imports one that imports
//! it back.
//! - [`message`]: bytes ↔ SIP messages — parsing with `rsip` behind a panic guard, salvaging
//!   enough of a broken request to answer it with 400, building responses (RFC 3261 §8.2.6,
//!   with the `received`/`rport` rules of RFC 3581), and the header getters the hot paths
//!   use.
//! - [`transport`]: the sockets and the [`transport::Inbound`] trait they hand frames up
//!   through, knowing nothing above it: UDP reader threads (with a task draining the
//!   node's outbound queue, and the [`transport::Outlet`] keep-alives send their batches
//!   through), TCP and TLS connections framed by `Content-Length`, secure WebSocket; the
//!   [`transport::Transport`] a message really travels on.
//! - [`transaction`]: RFC 3261 §17 server and client transactions, sans-I/O: retransmitted
//!   requests are absorbed, lost responses and requests retransmitted over UDP (T1/T2/T4).
//! - [`config`]: what the control plane tells a node to run ([`NodeConfig`], [`NodeRole`],
//!   a Dispatcher's [`DispatchConfig`]).
//! - [`directory`]: the SIP users ([`UserDirectory`]), their keep-alive modes, tenants.
//! - [`digest`]: digest authentication (MD5, SHA-256) with stateless HMAC-sealed nonces and
//!   nonce-count replay protection.
//! - [`location`]: [`LocationStore`], the only owner of bindings (with the Path they came
//!   through), and an in-memory one.
//! - [`registrar`]: REGISTER (RFC 3261 §10.3, with Path: RFC 3327), and the caller check
//!   (407) of new calls. A Dispatcher under AnyReg registers phones too, as their edge: it
//!   writes itself first in each binding's Path, as in the Path of a REGISTER it balances.
//! - [`keepalive`]: NAT keep-alives (CRLF or OPTIONS) to registered UDP contacts, spread
//!   over the interval; a contact registered through a Dispatcher (or at it, under AnyReg)
//!   is pinged by that Dispatcher alone, at the NAT address its Path recorded. Replies matched by Call-ID
//!   alone give latency and find phones that went away.
//! - [`limits`]: call admission: channel and CPS limits, counted per node or per cluster.
//! - [`dialog`]: calls as dialogs: the [`dialog::DialogEvent`]s a node emits, the
//!   [`dialog::DialogObserver`]s that consume them, and the BYE a node sends to end a call.
//! - [`route`]: the [`route::Router`] trait (one decision per new request: answer, refuse,
//!   parallel or serial targets) and its implementations — [`route::location`], a
//!   registered user's contacts (a Switch); [`route::dispatch`], the healthy switches in
//!   the order of the Dispatcher's balancing algorithm.
//! - [`health`]: a Dispatcher's switches — OPTIONS probes from its own socket, Active and
//!   Inactive by thresholds, latency, calls sent per switch ([`SwitchStatus`]).
//! - [`forward`]: the stateful proxy core — response contexts, parallel forking and serial
//!   failover within one transaction, CANCEL, Timer C — and ([`forward::rewrite`]) the
//!   RFC 3261 §16.6 rewriting of what passes (Record-Route, or Path on a REGISTER).
//! - [`node`]: one server's pipeline ([`node::Node`]) and its [`node::policy`] (Restrict
//!   Direct, Interconnect, refusing nodes); its timers run in a task of their own. A
//!   Dispatcher's pipeline sends every new request to its router, unauthenticated and
//!   unlimited (the switches do both); only under AnyReg does it answer REGISTERs itself,
//!   with its registrar (never a call: no 407 from a Dispatcher).
//! - [`uac`]: UAC Auth, the node's own registration upstream to a carrier.
//! - [`trace`]: copies of every message shipped as HEP3 to a collector.
//! - [`handle`]: [`Engine`], which starts and stops nodes, gives each its router and
//!   services (the registrar to every node, a Dispatcher's for AnyReg alone), and reports
//!   what each one runs.
//! - [`probe`]: the control plane's side: an OPTIONS ping that measures the round trip.

pub mod config;
pub mod dialog;
pub mod digest;
pub mod directory;
pub mod forward;
pub mod handle;
pub mod health;
pub mod keepalive;
pub mod limits;
pub mod location;
pub mod message;
pub mod node;
pub mod probe;
pub mod registrar;
pub mod route;
pub mod trace;
pub mod transaction;
pub mod transport;
pub mod uac;

pub use config::{
    Balancing, DigestAlgorithms, DispatchConfig, NodeConfig, NodeRole, SwitchTarget,
    UacRegistration,
};
pub use digest::Secret;
pub use directory::{KeepAliveMode, MemoryDirectory, UserDirectory};
pub use handle::{Engine, NodeSpec, Release, StartError, TlsSpec};
pub use health::SwitchStatus;
pub use keepalive::KeepAliveSettings;
pub use limits::{CallFigures, CallLimits};
pub use location::{Binding, LocationStore, MemoryLocationStore};
pub use node::NodeStats;
pub use probe::{options_ping, options_ping_tls, PingError, ProbeTransport};
pub use registrar::Registrar;
pub use trace::TraceTarget;
pub use uac::UacStatus;
