//! The SIP engine that every sipfleet server runs.
//!
//! It knows nothing of the console, HTTP or SQL: the control plane drives it through
//! [`Engine`], the one handle it holds, and measures it with [`probe`].
//!
//! # Layout
//! - [`message`]: bytes ↔ SIP messages — parsing with `rsip` behind a panic guard, salvaging
//!   enough of a broken request to answer it with 400, and building responses (RFC 3261
//!   §8.2.6, with the `received`/`rport` rules of RFC 3581).
//! - [`transport`]: the sockets — a UDP receive loop, and TCP connections framed by
//!   `Content-Length` (rsip parses one message, it does not find where one ends in a stream).
//! - [`node`]: one server's SIP behaviour: what it answers to each request.
//! - [`handle`]: [`Engine`], which starts and stops nodes and reports what each one runs.
//! - [`probe`]: the control plane's side: an OPTIONS ping that measures the round trip.

pub mod handle;
pub mod message;
pub mod node;
pub mod probe;
pub mod transport;

pub use handle::{Engine, NodeSpec, StartError};
pub use node::{NodeRole, NodeStats};
pub use probe::{options_ping, PingError, ProbeTransport};
