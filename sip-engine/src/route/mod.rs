//! Where a new request goes: one [`Router`] per job, chosen by the node's role.
//!
//! A router makes one decision per out-of-dialog request the node does not answer itself
//! (a Switch's initial INVITEs; every new request but ACK and CANCEL on a Dispatcher):
//! answer it here, refuse it, or send it to one or more targets, all at once
//! ([`Route::Parallel`], forking) or one after the other ([`Route::Serial`], failover). It
//! only decides; the forwarder ([`crate::forward`]) rewrites, sends, and relays the
//! answers. Requests inside a dialog follow their Route set and never reach a router.
//!
//! - [`location::LocationRouter`]: a registered user's contacts (what a Switch does).
//! - [`dispatch::DispatchRouter`]: the healthy switches of a Dispatcher's cluster, in the
//!   order its balancing algorithm gives (what a Dispatcher does).

pub mod dispatch;
pub mod location;

use std::net::{IpAddr, SocketAddr};
use std::time::SystemTime;

use rsip::{Request, StatusCode};

/// One place a request may be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The Request-URI it gets (a contact); `None` keeps the one it came with.
    pub uri: Option<rsip::Uri>,
    /// Where it is sent: over UDP, or the stream connection that peer holds open.
    pub addr: SocketAddr,
    /// The Route set it is sent with, nearest first (a contact's Path, RFC 3327: the
    /// Dispatcher that holds the phone's NAT binding); `addr` is its first hop. Empty for
    /// none.
    pub route: Vec<String>,
}

impl Target {
    /// A target reached directly, without a Route set.
    pub fn direct(uri: Option<rsip::Uri>, addr: SocketAddr) -> Self {
        Target {
            uri,
            addr,
            route: Vec::new(),
        }
    }
}

/// What a router decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Not the router's: the node answers it itself (as it does OPTIONS).
    Local,
    /// Answer with `status`; `reason` replaces the reason phrase and says why;
    /// `retry_after` (seconds) goes in a `Retry-After` header, telling a caller refused
    /// for a while (503) when to try again.
    Refuse {
        status: StatusCode,
        reason: &'static str,
        retry_after: Option<u32>,
    },
    /// Every target at once; the caller gets the first 2xx, or the best final answer
    /// (RFC 3261 §16.7).
    Parallel(Vec<Target>),
    /// One target after the other, within the caller's one transaction: the next is tried
    /// when one times out or answers 408 or 500–503; any other final answer ends the
    /// search.
    Serial(Vec<Target>),
}

impl Route {
    /// A refusal without `Retry-After`: what most refusals are (404, 480…).
    pub fn refuse(status: StatusCode, reason: &'static str) -> Self {
        Route::Refuse {
            status,
            reason,
            retry_after: None,
        }
    }

    /// 503 with `Retry-After: retry_after`: nothing can take the request now, but
    /// something may in that many seconds.
    pub fn unavailable(reason: &'static str, retry_after: u32) -> Self {
        Route::Refuse {
            status: StatusCode::ServiceUnavailable,
            reason,
            retry_after: Some(retry_after),
        }
    }
}

/// What a router is told beside the request.
#[derive(Debug, Clone, Copy)]
pub struct Inquiry<'a> {
    pub request: &'a Request,
    /// Where it came from.
    pub source: SocketAddr,
    /// Servers whose registrations this node serves too: the other members of its
    /// cluster, and those sharing their location with it.
    pub peers: &'a [IpAddr],
    pub now: SystemTime,
}

/// Decides where new requests go. Called on the receiving task: answer from memory.
pub trait Router: Send + Sync + std::fmt::Debug {
    fn route(&self, inquiry: &Inquiry<'_>) -> Route;
}
