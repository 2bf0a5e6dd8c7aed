//! Routing to registered users: an INVITE for a user of the node's domain rings that
//! user's contacts, at the address each REGISTER came from (which reaches a phone behind
//! NAT), wherever in the cluster the user registered.

use std::cmp::Reverse;
use std::sync::Arc;

use rsip::StatusCode;

use super::{Inquiry, Route, Router, Target};
use crate::directory::{domain_of, UserDirectory};
use crate::location::{Binding, LocationStore};
use crate::transport::{Streams, Transport};

/// Routes to the contacts a user registered, found in the location store under
/// `sip:<user>@<domain>` (the node's own domain and its peers').
#[derive(Debug)]
pub struct LocationRouter {
    domain: String,
    directory: Arc<dyn UserDirectory>,
    store: Arc<dyn LocationStore>,
    /// The node's open stream connections: a stream contact is reached over the connection
    /// it registered on, while that is open.
    streams: Arc<Streams>,
}

impl LocationRouter {
    pub fn new(
        domain: String,
        directory: Arc<dyn UserDirectory>,
        store: Arc<dyn LocationStore>,
        streams: Arc<Streams>,
    ) -> Self {
        LocationRouter {
            domain,
            directory,
            store,
            streams,
        }
    }
}

impl Router for LocationRouter {
    /// An INVITE rings every live contact of the Request-URI's user at once (parallel
    /// forking); 404 for a user the directory does not know, 480 for one with no live
    /// contact. Anything else is the node's own.
    fn route(&self, inquiry: &Inquiry<'_>) -> Route {
        let request = inquiry.request;
        if request.method != rsip::Method::Invite {
            return Route::Local;
        }
        let Some(user) = request.uri.user().filter(|u| !u.is_empty()) else {
            return Route::refuse(StatusCode::NotFound, "Not Found");
        };
        if self.directory.secret(user, &self.domain).is_none() {
            return Route::refuse(StatusCode::NotFound, "Not Found");
        }
        let domains = std::iter::once(self.domain.clone())
            .chain(inquiry.peers.iter().map(|peer| domain_of(*peer)));
        let mut bindings = Vec::new();
        for domain in domains {
            let aor = format!("sip:{user}@{domain}");
            match self.store.lookup(&aor, inquiry.now) {
                Ok(found) => bindings.extend(found),
                Err(error) => {
                    tracing::warn!(%error, %aor, "location store unavailable");
                    return Route::refuse(StatusCode::ServerInternalError, "Location Unavailable");
                }
            }
        }
        let live = pick(&bindings);
        if live.is_empty() {
            return Route::refuse(
                StatusCode::TemporarilyUnavailable,
                "Temporarily Unavailable",
            );
        }
        let targets: Vec<Target> = live
            .iter()
            .filter(|binding| {
                binding.transport == Transport::Udp || self.streams.contains(binding.received)
            })
            .filter_map(|binding| {
                let contact = rsip::Uri::try_from(binding.contact.as_str()).ok()?;
                Some(Target {
                    uri: Some(contact),
                    addr: binding.received,
                })
            })
            .collect();
        match targets.len() {
            0 if live.iter().all(|b| b.transport.is_reliable()) => {
                Route::refuse(StatusCode::TemporarilyUnavailable, "Connection Closed")
            }
            0 => Route::refuse(StatusCode::TemporarilyUnavailable, "Invalid Contact"),
            _ => Route::Parallel(targets),
        }
    }
}

/// The bindings a call rings: the live ones, longest-registered first (bindings carry no
/// registration time; the latest expiry is usually the latest REGISTER), each phone once
/// (two contacts at one received address are the same phone re-registered under a new
/// Contact).
fn pick(bindings: &[Binding]) -> Vec<&Binding> {
    let mut live: Vec<&Binding> = bindings.iter().filter(|b| b.online).collect();
    live.sort_by_key(|b| Reverse(b.expires_at));
    let mut seen = Vec::new();
    live.retain(|b| {
        let new = !seen.contains(&(b.received, b.transport));
        seen.push((b.received, b.transport));
        new
    });
    live
}
