//! The SIP engine that every sipfleet server runs.
//!
//! It knows nothing of the console, HTTP or SQL: the control plane drives it through
//! [`Engine`], the one handle it holds, gives it SIP users and a location store through the
//! [`UserDirectory`] and [`LocationStore`] traits, and measures it with [`probe`].
//!
//! # Layout
//! Layers follow the data: transport → transaction → registrar and proxy → location, with
//! keep-alives beside the registrar.
//! - [`message`]: bytes ↔ SIP messages — parsing with `rsip` behind a panic guard, salvaging
//!   enough of a broken request to answer it with 400, and building responses (RFC 3261
//!   §8.2.6, with the `received`/`rport` rules of RFC 3581).
//! - [`transport`]: the sockets — a UDP receive loop (which also fires transaction timers),
//!   and TCP connections framed by `Content-Length` (rsip parses one message, it does not
//!   find where one ends in a stream).
//! - [`transaction`]: RFC 3261 §17 server and client transactions, sans-I/O: retransmitted
//!   requests are absorbed, lost responses and requests retransmitted over UDP (T1/T2/T4).
//! - [`calls`]: call admission: channel and CPS limits, counted per node or per cluster.
//! - [`digest`]: digest authentication (MD5, SHA-256) with stateless HMAC-sealed nonces and
//!   nonce-count replay protection.
//! - [`registrar`]: REGISTER (RFC 3261 §10.3) against a [`UserDirectory`].
//! - [`location`]: [`LocationStore`], the only owner of bindings, and an in-memory one.
//! - [`keepalive`]: NAT keep-alives (CRLF or OPTIONS) to registered UDP contacts, spread
//!   over the interval; replies matched by Call-ID alone give latency and find phones that
//!   went away.
//! - [`proxy`]: routing calls to registered users (RFC 3261 §16): INVITE to the user's
//!   contact at its NAT address, Record-Route, loose routing of in-dialog requests, CANCEL,
//!   and relaying responses back along the Via.
//! - [`uac`]: UAC Auth, the node's own registration upstream to a carrier.
//! - [`node`]: one server's SIP behaviour: what it answers to each request.
//! - [`handle`]: [`Engine`], which starts and stops nodes and reports what each one runs.
//! - [`probe`]: the control plane's side: an OPTIONS ping that measures the round trip.

pub mod calls;
pub mod digest;
pub mod handle;
pub mod keepalive;
pub mod location;
pub mod message;
pub mod node;
pub mod probe;
pub mod proxy;
pub mod registrar;
pub mod trace;
pub mod transaction;
pub mod transport;
pub mod uac;

pub use calls::{CallFigures, CallLimits};
pub use digest::Secret;
pub use handle::{Engine, NodeSpec, Release, StartError, TlsSpec};
pub use keepalive::{KeepAliveMode, KeepAliveSettings};
pub use location::{Binding, LocationStore, MemoryLocationStore};
pub use node::{NodeConfig, NodeRole, NodeStats};
pub use probe::{options_ping, options_ping_tls, PingError, ProbeTransport};
pub use proxy::Proxy;
pub use registrar::{MemoryDirectory, Registrar, UserDirectory};
pub use trace::TraceTarget;
pub use uac::{UacRegistration, UacStatus};
