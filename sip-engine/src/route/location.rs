//! Routing to registered users: an INVITE for a user of the node's domain rings that
//! user's contacts, at the address each REGISTER came from (which reaches a phone behind
//! NAT), wherever in the cluster the user registered. A contact registered through a
//! Dispatcher (its REGISTER carried a Path, RFC 3327) is rung along that Path instead: the
//! Dispatcher holds the phone's NAT binding, so the call reaches the phone from there.

use std::cmp::Reverse;
use std::sync::Arc;

use rsip::StatusCode;

use super::{Inquiry, Route, Router, Target};
use crate::directory::{domain_of, UserDirectory};
use crate::forward::rewrite::next_hop;
use crate::location::{Binding, LocationStore};
use crate::message::uri_of;
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
                !binding.path.is_empty()
                    || binding.transport == Transport::Udp
                    || self.streams.contains(binding.received)
            })
            .filter_map(|binding| {
                let contact = rsip::Uri::try_from(binding.contact.as_str()).ok()?;
                if binding.path.is_empty() {
                    return Some(Target::direct(Some(contact), binding.received));
                }
                // Registered through a proxy (a Dispatcher): along its Path, from whose
                // address the phone's NAT lets the call in.
                let first = uri_of(&binding.path[0])?;
                let addr = next_hop(first, &self.streams).ok()?;
                Some(Target {
                    uri: Some(contact),
                    addr,
                    route: binding.path.clone(),
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
/// Contact). Bindings that came through a proxy (a Path) all share its address: those are
/// told apart by their contact.
fn pick(bindings: &[Binding]) -> Vec<&Binding> {
    let mut live: Vec<&Binding> = bindings.iter().filter(|b| b.online).collect();
    live.sort_by_key(|b| Reverse(b.expires_at));
    let mut seen = Vec::new();
    live.retain(|b| {
        let contact = (!b.path.is_empty()).then_some(b.contact.as_str());
        let key = (b.received, b.transport, contact);
        let new = !seen.contains(&key);
        seen.push(key);
        new
    });
    live
}
