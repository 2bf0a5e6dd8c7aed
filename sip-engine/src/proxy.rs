//! Routing calls to registered users: a stateful proxy (RFC 3261 §16).
//!
//! [`Proxy::route`] decides what becomes of a request: an INVITE for a user of this node's
//! domain goes to that user's contact (at the address its REGISTER came from, which reaches
//! a phone behind NAT), an in-dialog request that names this node in its top `Route` goes on
//! to the next hop, anything else is the node's own business. The decision is pure; the
//! node sends what it decides.
//!
//! Forwarded requests run in client transactions of the node's [`TransactionLayer`] (which
//! retransmit over UDP); the proxy remembers, per forwarded request, whom to relay the
//! responses to ([`Proxy::forward`], [`Proxy::on_response`]), so that a CANCEL from the
//! caller can follow the INVITE downstream ([`Proxy::cancel`]) and a callee that never
//! answers gets the caller a 408 ([`Proxy::poll`]).
//!
//! Choices and limits of this build:
//! - Parallel forking (RFC 3261 §16.7): an INVITE for a user with several live UDP contacts
//!   rings them all at once ([`Decision::Fork`]). Provisional answers of every branch reach
//!   the caller; the first 2xx (or any 6xx) goes through at once and the other branches are
//!   cancelled; otherwise the caller gets the best final answer once every branch has one (a
//!   6xx, else the lowest code), or 408 when none answered at all. Offline bindings
//!   (keep-alives unanswered) are skipped.
//! - Streams: a phone registered over TCP, TLS or a WebSocket is reached over the
//!   connection it registered on, while that is open ([`Streams`]; a closed one gets 480
//!   "Connection Closed"), and a caller on a stream gets its responses on its connection.
//!   Requests the node starts itself (to carriers, to peers) still leave over UDP.
//! - No DNS: a next hop must be an IP address (404 otherwise), in a `sip:` URI (416).
//! - A caller that claims one of the domain's users in its From is challenged (407) by
//!   the node before the proxy sees its INVITE ([`crate::Registrar::authorize_caller`]);
//!   a loose-routed request is relayed only when it is in-dialog (To tag), so the node is no
//!   open relay for new requests.
//! - Phones behind NAT: the Contact of an initial INVITE and of the callee's 1xx/2xx is
//!   pointed at the address the message came from, when the two differ (as Kamailio's
//!   `fix_nated_contact` does). A phone that sends from the socket it listens on (what
//!   RFC 3581's rport assumes, and what the registrar relies on for incoming calls) is then
//!   reachable for in-dialog requests even when it wrote a private address in its Contact.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rsip::common::uri::{Host, Scheme};
use rsip::headers::UntypedHeader;
use rsip::{Header, Headers, Method, Request, Response, StatusCode};
use tokio::time::Instant;

use crate::calls::End;
use crate::keepalive::KeepAlive;
use crate::location::{Binding, LocationStore};
use crate::message::{encode_request, encode_response, header_param, split_header_list, stamp_via};
use crate::registrar::{uri_of, UserDirectory};
use crate::transaction::client::ClientKey;
use crate::transaction::{ClientError, Key, Outbound, TransactionLayer, MAGIC_COOKIE};
use crate::transport::{Streams, Transport};

/// Max-Forwards of a request that carried none (RFC 3261 §16.6 step 3).
const DEFAULT_MAX_FORWARDS: u32 = 70;
/// How long a forwarded request waits for its first answer: 64·T1, as Timers B and F.
const NO_ANSWER: Duration = Duration::from_secs(32);
/// Timer C (RFC 3261 §16.6 step 11): how long an INVITE may ring after its last
/// provisional response; "greater than 3 minutes".
const TIMER_C: Duration = Duration::from_secs(181);
/// How long an answered INVITE is remembered, so that the callee's retransmitted 2xx still
/// reach the caller (RFC 6026 §7.1; 64·T1 like Timer M).
const LINGER: Duration = Duration::from_secs(32);

/// What to do with a request the proxy claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Answer it with `status`; `reason` replaces the reason phrase and says why.
    Answer {
        status: StatusCode,
        reason: &'static str,
    },
    /// Send `request` (Via pushed, Max-Forwards decremented, Route popped, Request-URI and
    /// Record-Route set as needed) to `target` over UDP.
    Forward {
        request: Request,
        target: SocketAddr,
    },
    /// Send each request to its target at once: one branch per contact of the callee.
    Fork {
        branches: Vec<(Request, SocketAddr)>,
    },
}

impl Decision {
    fn answer(status: StatusCode, reason: &'static str) -> Self {
        Decision::Answer { status, reason }
    }
}

/// A response the proxy relays to the caller of a forwarded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relayed {
    /// The response with the node's Via popped, addressed to the caller.
    pub out: Outbound,
    /// The caller's server transaction, which records it (retransmissions, ACK matching).
    pub server: Option<Key>,
    pub code: u16,
    pub to_tag: Option<String>,
    /// The fork this answer settles: its other branches are to be cancelled
    /// ([`Proxy::cancel_fork`]).
    pub settles: Option<u64>,
    /// The Call-ID, when this answers an INVITE (whose call holds a channel).
    pub invite_call: Option<String>,
}

/// A forwarded request that got no final response in time: the caller is owed a 408.
#[derive(Debug, Clone)]
pub struct TimedOut {
    pub server: Option<Key>,
    /// The caller's request headers, to build the response from.
    pub headers: Headers,
    pub source: SocketAddr,
    /// The Call-ID, when the request was an INVITE.
    pub invite_call: Option<String>,
}

/// What a CANCEL from the caller finds (RFC 3261 §16.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// No pending INVITE of that caller: 481.
    Unknown,
    /// The INVITE is known: answer the CANCEL 200 and send these downstream, one per
    /// branch still ringing (none when the INVITE was answered already).
    Pending(Vec<Outbound>),
}

/// What the proxy's timers produced.
#[derive(Debug, Default)]
pub struct Expired {
    /// Callers whose request no branch answered: each is owed a 408.
    pub timed_out: Vec<TimedOut>,
    /// Forks whose last branch went silent: the best answer the others gave, for the caller.
    pub relayed: Vec<Relayed>,
}

/// The branches of one forked INVITE, and what the caller has been told.
#[derive(Debug, Default)]
struct Fork {
    members: Vec<ClientKey>,
    /// Branches without a final response.
    pending: usize,
    /// Contexts still in the table.
    live: usize,
    /// The best final non-2xx response so far, held until every branch has answered.
    best: Option<Relayed>,
    /// A final response went to the caller.
    settled: bool,
}

/// One request forwarded statefully (RFC 3261 §16's response context).
#[derive(Debug)]
struct Context {
    invite: bool,
    server: Option<Key>,
    caller_headers: Headers,
    caller_source: SocketAddr,
    /// Where responses to the caller go (the UDP response-target rules of its top Via).
    caller_target: SocketAddr,
    /// The request as sent downstream, for building its CANCEL.
    forwarded: Request,
    target: SocketAddr,
    /// A final response came on this branch (and, unforked, went to the caller).
    answered: bool,
    deadline: Instant,
    fork: Option<u64>,
}

#[derive(Debug, Default)]
struct Table {
    contexts: HashMap<ClientKey, Context>,
    by_server: HashMap<Key, ClientKey>,
    /// Deadlines; an entry may be stale (the context's deadline moved): checked when popped.
    due: BinaryHeap<Reverse<(Instant, ClientKey)>>,
    forks: HashMap<u64, Fork>,
    next_fork: u64,
}

impl Table {
    fn remove(&mut self, key: &ClientKey) -> Option<Context> {
        let context = self.contexts.remove(key)?;
        // A fork's caller is known by its first branch until the last one is gone.
        let last = match context.fork {
            Some(id) => match self.forks.get_mut(&id) {
                Some(fork) => {
                    fork.live = fork.live.saturating_sub(1);
                    let last = fork.live == 0;
                    if last {
                        self.forks.remove(&id);
                    }
                    last
                }
                None => true,
            },
            None => true,
        };
        if let (true, Some(server)) = (last, &context.server) {
            self.by_server.remove(server);
        }
        Some(context)
    }
}

/// Which of two final answers a fork gives its caller (RFC 3261 §16.7 step 6): a 6xx,
/// else the lower code.
fn better(candidate: u16, best: Option<&Relayed>) -> bool {
    let rank = |code: u16| if code >= 600 { 0 } else { code };
    best.is_none_or(|best| rank(candidate) < rank(best.code))
}

/// One node's proxy: its own address (what it writes in Via and Record-Route and recognises
/// in Route), its domain, and where users and bindings come from.
#[derive(Debug)]
pub struct Proxy {
    local: SocketAddr,
    domain: String,
    directory: Arc<dyn UserDirectory>,
    store: Arc<dyn LocationStore>,
    /// A std `Mutex`, never held across an `.await`: every operation is a few map updates.
    table: Mutex<Table>,
    /// The node's open stream connections (see [`Streams`]).
    streams: Arc<Streams>,
}

impl Proxy {
    /// A proxy for the node listening on `local` (UDP), routing to the users of `directory`
    /// bound in `store` under `sip:<user>@<local IP>`, as the registrar stores them.
    pub fn new(
        directory: Arc<dyn UserDirectory>,
        store: Arc<dyn LocationStore>,
        local: SocketAddr,
    ) -> Self {
        Proxy {
            local,
            domain: KeepAlive::domain_of(local.ip()),
            directory,
            store,
            table: Mutex::default(),
            streams: Arc::default(),
        }
    }

    /// The same proxy, reaching phones registered over stream connections through
    /// `streams` (the node's open connections).
    pub fn with_streams(mut self, streams: Arc<Streams>) -> Self {
        self.streams = streams;
        self
    }

    /// The node's own address, as it appears in Via and Record-Route.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// The host of the AORs it routes to (`sip:<user>@<domain>`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// What becomes of `request` (received from `source`), or `None` when
    /// it is the node's own to answer (OPTIONS, REGISTER, and anything not routed).
    ///
    /// `peers` are the other members of the node's cluster: their users' registrations are
    /// this node's too (a user registered on one member is reachable through every member).
    pub fn route(
        &self,
        request: &Request,
        source: SocketAddr,
        peers: &[IpAddr],
        now: SystemTime,
    ) -> Option<Decision> {
        let routes = route_uris(&request.headers);
        let via_me = routes.first().is_some_and(|uri| self.names_me(uri));
        // Loose routing (RFC 3261 §16.4): after our own Route, the next Route is the next
        // hop, or the Request-URI when none is left.
        let next = match routes.get(usize::from(via_me)) {
            Some(route) => route.clone(),
            None => request.uri.to_string(),
        };
        let decision = if via_me && !self.names_me(&next) {
            if to_tag(&request.headers).is_none() {
                // A new request pre-routed through us to somewhere else: not ours to relay.
                return Some(Decision::answer(
                    StatusCode::Forbidden,
                    "Relaying Not Allowed",
                ));
            }
            if let Some(refusal) = max_forwards_refusal(request) {
                return Some(refusal);
            }
            match next_hop(&next, &self.streams) {
                Ok(target) => Decision::Forward {
                    request: self.prepare(request, source, None, via_me, false),
                    target,
                },
                Err((status, reason)) => Decision::answer(status, reason),
            }
        } else if request.method == Method::Invite && to_tag(&request.headers).is_none() {
            if let Some(refusal) = max_forwards_refusal(request) {
                return Some(refusal);
            }
            self.locate(request, source, via_me, peers, now)
        } else {
            return None;
        };
        Some(match decision {
            Decision::Forward { target, .. } if target == self.local => {
                Decision::answer(StatusCode::LoopDetected, "Loop Detected")
            }
            decision => decision,
        })
    }

    /// An initial INVITE: to the contacts of the Request-URI's user in this node's domain,
    /// wherever in the cluster (`peers`) the user registered.
    fn locate(
        &self,
        request: &Request,
        source: SocketAddr,
        pop_route: bool,
        peers: &[IpAddr],
        now: SystemTime,
    ) -> Decision {
        let Some(user) = request.uri.user().filter(|u| !u.is_empty()) else {
            return Decision::answer(StatusCode::NotFound, "Not Found");
        };
        if self.directory.secret(user, &self.domain).is_none() {
            return Decision::answer(StatusCode::NotFound, "Not Found");
        }
        let domains = std::iter::once(self.domain.clone())
            .chain(peers.iter().map(|peer| KeepAlive::domain_of(*peer)));
        let mut bindings = Vec::new();
        for domain in domains {
            let aor = format!("sip:{user}@{domain}");
            match self.store.lookup(&aor, now) {
                Ok(found) => bindings.extend(found),
                Err(error) => {
                    tracing::warn!(%error, %aor, "proxy: location store unavailable");
                    return Decision::answer(
                        StatusCode::ServerInternalError,
                        "Location Unavailable",
                    );
                }
            }
        }
        let live = pick(&bindings);
        if live.is_empty() {
            return Decision::answer(
                StatusCode::TemporarilyUnavailable,
                "Temporarily Unavailable",
            );
        }
        let mut branches: Vec<(Request, SocketAddr)> = live
            .iter()
            // A stream contact is reached over the connection it registered on, while that
            // is open.
            .filter(|binding| {
                binding.transport == Transport::Udp || self.streams.contains(binding.received)
            })
            .filter_map(|binding| {
                let contact = rsip::Uri::try_from(binding.contact.as_str()).ok()?;
                Some((
                    self.prepare(request, source, Some(contact), pop_route, true),
                    binding.received,
                ))
            })
            .collect();
        match branches.len() {
            0 if live.iter().all(|b| b.transport == Transport::Tcp) => {
                Decision::answer(StatusCode::TemporarilyUnavailable, "Connection Closed")
            }
            0 => Decision::answer(StatusCode::TemporarilyUnavailable, "Invalid Contact"),
            1 => {
                let (request, target) = branches.remove(0);
                Decision::Forward { request, target }
            }
            _ => Decision::Fork { branches },
        }
    }

    /// An initial INVITE this node is too full to carry, handed to `target` (its capacity
    /// failover, another member of its cluster) as it came, the Request-URI unchanged; the
    /// node record-routes itself, so the dialog's requests keep the path the caller knows.
    pub fn hand_over(&self, request: &Request, source: SocketAddr, target: SocketAddr) -> Decision {
        if target == self.local {
            return Decision::answer(StatusCode::LoopDetected, "Loop Detected");
        }
        let via_me = route_uris(&request.headers)
            .first()
            .is_some_and(|uri| self.names_me(uri));
        Decision::Forward {
            request: self.prepare(request, source, None, via_me, true),
            target,
        }
    }

    /// The request as it leaves this node (RFC 3261 §16.6): the node's Via on top (with a
    /// fresh branch), the caller's Via stamped with `received`/`rport`, Max-Forwards one
    /// lower, the node's own Route popped, and for an initial INVITE the contact as
    /// Request-URI and a Record-Route that keeps the dialog's requests coming through here.
    fn prepare(
        &self,
        request: &Request,
        source: SocketAddr,
        uri: Option<rsip::Uri>,
        pop_route: bool,
        record_route: bool,
    ) -> Request {
        let mut headers = Headers::default();
        let branch = format!("{MAGIC_COOKIE}{:016x}", rand::random::<u64>());
        headers.push(Header::Via(rsip::headers::Via::new(format!(
            "SIP/2.0/UDP {};branch={branch};rport",
            self.local
        ))));
        if record_route {
            headers.push(Header::RecordRoute(rsip::headers::RecordRoute::new(
                format!("<sip:{};lr>", self.local),
            )));
        }
        let (mut top_via, mut route_popped, mut max_forwards) = (true, !pop_route, false);
        for header in request.headers.iter() {
            match header {
                Header::Via(via) if top_via => {
                    top_via = false;
                    headers.push(Header::Via(rsip::headers::Via::new(stamp_via(
                        via.value(),
                        source,
                    ))));
                }
                Header::MaxForwards(value) => {
                    max_forwards = true;
                    let left = max_forwards_of(value.value()).unwrap_or(DEFAULT_MAX_FORWARDS);
                    headers.push(Header::MaxForwards(rsip::headers::MaxForwards::new(
                        left.saturating_sub(1).to_string(),
                    )));
                }
                Header::Route(route) if !route_popped => {
                    route_popped = true;
                    let rest = split_header_list(route.value());
                    if rest.len() > 1 {
                        headers.push(Header::Route(rsip::headers::Route::new(
                            rest[1..].join(", "),
                        )));
                    }
                }
                Header::Contact(contact) if record_route => {
                    let value = contact.value();
                    let fixed = nat_fixed_contact(value, source, self.streams.contains(source));
                    headers.push(Header::Contact(rsip::headers::Contact::new(
                        fixed.unwrap_or_else(|| value.to_string()),
                    )));
                }
                other => headers.push(other.clone()),
            }
        }
        if !max_forwards {
            headers.push(Header::MaxForwards(rsip::headers::MaxForwards::new(
                (DEFAULT_MAX_FORWARDS - 1).to_string(),
            )));
        }
        Request {
            method: request.method,
            uri: uri.unwrap_or_else(|| request.uri.clone()),
            version: request.version.clone(),
            headers,
            body: request.body.clone(),
        }
    }

    /// Sends `forwarded` (a [`Decision::Forward`]) on behalf of the caller whose request had
    /// `caller_headers` and came from `caller_source`, and remembers where its responses go.
    /// An ACK is forwarded statelessly (it gets no response); everything else runs in a
    /// client transaction. Returns what to send now.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        transactions: &TransactionLayer,
        server: Option<Key>,
        caller_headers: &Headers,
        caller_source: SocketAddr,
        caller_target: SocketAddr,
        forwarded: Request,
        target: SocketAddr,
        now: Instant,
    ) -> Result<Outbound, ClientError> {
        self.forward_branch(
            transactions,
            server,
            caller_headers,
            caller_source,
            caller_target,
            forwarded,
            target,
            None,
            now,
        )
    }

    /// Sends every branch of a [`Decision::Fork`], each in its own client transaction, as
    /// one fork: the caller gets one final answer for them all (see [`Proxy::on_response`]).
    /// Returns what to send now. Branches that cannot start are left out; an error only when
    /// none could.
    #[allow(clippy::too_many_arguments)]
    pub fn fork(
        &self,
        transactions: &TransactionLayer,
        server: Option<Key>,
        caller_headers: &Headers,
        caller_source: SocketAddr,
        caller_target: SocketAddr,
        branches: Vec<(Request, SocketAddr)>,
        now: Instant,
    ) -> Result<Vec<Outbound>, ClientError> {
        let id = {
            let mut table = self.lock();
            table.next_fork += 1;
            let id = table.next_fork;
            table.forks.insert(id, Fork::default());
            id
        };
        let mut sent = Vec::new();
        let mut error = None;
        for (forwarded, target) in branches {
            match self.forward_branch(
                transactions,
                server.clone(),
                caller_headers,
                caller_source,
                caller_target,
                forwarded,
                target,
                Some(id),
                now,
            ) {
                Ok(out) => sent.push(out),
                Err(e) => error = Some(e),
            }
        }
        match (sent.is_empty(), error) {
            (true, Some(error)) => {
                self.lock().forks.remove(&id);
                Err(error)
            }
            _ => Ok(sent),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn forward_branch(
        &self,
        transactions: &TransactionLayer,
        server: Option<Key>,
        caller_headers: &Headers,
        caller_source: SocketAddr,
        caller_target: SocketAddr,
        forwarded: Request,
        target: SocketAddr,
        fork: Option<u64>,
        now: Instant,
    ) -> Result<Outbound, ClientError> {
        if forwarded.method == Method::Ack {
            return Ok(Outbound {
                bytes: encode_request(&forwarded),
                target,
            });
        }
        let invite = forwarded.method == Method::Invite;
        let handle = transactions.client.start(
            forwarded.clone(),
            target,
            self.streams.transport_to(target),
            now,
        )?;
        let deadline = now + NO_ANSWER;
        let mut table = self.lock();
        if let Some(server) = &server {
            // A fork's caller is found through its first branch.
            if !table.by_server.contains_key(server) || fork.is_none() {
                table.by_server.insert(server.clone(), handle.key.clone());
            }
        }
        if let Some(group) = fork.and_then(|id| table.forks.get_mut(&id)) {
            group.members.push(handle.key.clone());
            group.pending += 1;
            group.live += 1;
        }
        table.due.push(Reverse((deadline, handle.key.clone())));
        table.contexts.insert(
            handle.key,
            Context {
                invite,
                server,
                caller_headers: caller_headers.clone(),
                caller_source,
                caller_target,
                forwarded,
                target,
                answered: false,
                deadline,
                fork,
            },
        );
        Ok(handle.first)
    }

    /// A response that matched a client transaction: the one to relay to the caller, if it
    /// answers a forwarded request and is worth relaying. 100 Trying stops here (RFC 3261
    /// §16.7); after the first final response only retransmitted 2xx go on, since the
    /// caller's ACK to a 2xx is end-to-end (RFC 6026). A branch of a fork relays its
    /// provisional answers and a 2xx or 6xx at once (which settles the fork: see
    /// [`Relayed::settles`]); its other final answers wait for the rest of the fork.
    /// `source` is where the response came from: a 1xx/2xx's Contact is pointed there (see
    /// the module's notes on NAT). `reason` is the reason phrase it came with, relayed as it
    /// is.
    pub fn on_response(
        &self,
        response: &Response,
        reason: Option<&str>,
        source: SocketAddr,
        now: Instant,
    ) -> Option<Relayed> {
        let key = client_key(response)?;
        let code = response.status_code.code();
        let mut table = self.lock();
        let context = table.contexts.get_mut(&key)?;
        let first_final = code >= 200 && !context.answered;
        let mut reschedule = None;
        if first_final {
            context.answered = true;
            context.deadline = now
                + if context.invite {
                    LINGER
                } else {
                    Duration::ZERO
                };
            reschedule = Some(context.deadline);
        } else if code > 100 && code < 200 && context.invite && !context.answered {
            context.deadline = now + TIMER_C;
            reschedule = Some(context.deadline);
        }
        let fork = context.fork;
        let relayed = Relayed {
            out: Outbound {
                bytes: encode_response(
                    &without_top_via(
                        response,
                        (code < 300).then_some((source, self.streams.contains(source))),
                    ),
                    reason,
                ),
                target: context.caller_target,
            },
            server: context.server.clone(),
            code,
            to_tag: to_tag(&response.headers),
            settles: None,
            invite_call: context.invite.then(|| call_id(&response.headers)).flatten(),
        };
        let answered = context.answered && !first_final;
        let relay = match fork.and_then(|id| table.forks.get_mut(&id).map(|f| (id, f))) {
            None => match code {
                100 => None,
                101..=199 => (!answered).then_some(relayed),
                200..=299 => Some(relayed),
                _ => first_final.then_some(relayed),
            },
            Some((id, group)) => {
                if first_final {
                    group.pending = group.pending.saturating_sub(1);
                }
                match code {
                    100 => None,
                    101..=199 => (!answered && !group.settled).then_some(relayed),
                    // Every 2xx goes on (the caller may get several: RFC 3261 §16.7 step 5).
                    200..=299 => {
                        let first = !group.settled;
                        group.settled = true;
                        Some(Relayed {
                            settles: first.then_some(id),
                            ..relayed
                        })
                    }
                    _ if !first_final || group.settled => None,
                    600.. => {
                        group.settled = true;
                        Some(Relayed {
                            settles: Some(id),
                            ..relayed
                        })
                    }
                    _ => {
                        if better(code, group.best.as_ref()) {
                            group.best = Some(relayed);
                        }
                        if group.pending == 0 {
                            group.settled = true;
                            group.best.take()
                        } else {
                            None
                        }
                    }
                }
            }
        };
        if let Some(at) = reschedule {
            if at <= now {
                table.remove(&key);
            } else {
                table.due.push(Reverse((at, key)));
            }
        }
        relay
    }

    /// The CANCELs for every branch of fork `id` that has not answered finally: sent when
    /// another branch answered 2xx or 6xx (RFC 3261 §16.7 step 10).
    pub fn cancel_fork(
        &self,
        transactions: &TransactionLayer,
        id: u64,
        now: Instant,
    ) -> Vec<Outbound> {
        let cancels: Vec<(Request, SocketAddr)> = {
            let table = self.lock();
            let Some(fork) = table.forks.get(&id) else {
                return Vec::new();
            };
            fork.members
                .iter()
                .filter_map(|key| table.contexts.get(key))
                .filter(|context| !context.answered)
                .map(|context| (cancel_for(&context.forwarded), context.target))
                .collect()
        };
        cancels
            .into_iter()
            .filter_map(|(cancel, target)| {
                // An error means a CANCEL of that branch exists already, and retransmits.
                let handle = transactions
                    .client
                    .start(cancel, target, self.streams.transport_to(target), now)
                    .ok()?;
                Some(handle.first)
            })
            .collect()
    }

    /// A CANCEL for the INVITE whose server transaction is `invite` (RFC 3261 §16.10): the
    /// CANCELs to send downstream, one per branch still waiting, each in its own client
    /// transaction. They are sent at once even before a callee answered provisionally: the
    /// INVITE left first, on the same path.
    pub fn cancel(&self, transactions: &TransactionLayer, invite: &Key, now: Instant) -> Cancelled {
        let table = self.lock();
        let Some(context) = table
            .by_server
            .get(invite)
            .and_then(|key| table.contexts.get(key))
        else {
            return Cancelled::Unknown;
        };
        if let Some(id) = context.fork {
            let settled = table.forks.get(&id).is_none_or(|fork| fork.settled);
            drop(table);
            if settled {
                return Cancelled::Pending(Vec::new());
            }
            return Cancelled::Pending(self.cancel_fork(transactions, id, now));
        }
        if context.answered {
            return Cancelled::Pending(Vec::new());
        }
        let cancel = cancel_for(&context.forwarded);
        let target = context.target;
        drop(table);
        match transactions
            .client
            .start(cancel, target, self.streams.transport_to(target), now)
        {
            Ok(handle) => Cancelled::Pending(vec![handle.first]),
            // Already cancelled: the first CANCEL's transaction retransmits.
            Err(_) => Cancelled::Pending(Vec::new()),
        }
    }

    /// Forgets contexts whose time is up. The callers of those never answered are owed 408;
    /// a fork whose last branch went silent owes its caller the best answer of the others.
    pub fn poll(&self, now: Instant) -> Expired {
        let mut expired = Expired::default();
        let mut table = self.lock();
        while let Some(Reverse((at, _))) = table.due.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, key))) = table.due.pop() else {
                break;
            };
            if table.contexts.get(&key).is_none_or(|c| c.deadline > now) {
                continue;
            }
            // Settle the fork before the context leaves it (the last one takes it along).
            let unanswered = table.contexts.get(&key).is_some_and(|c| !c.answered);
            let fork = table.contexts.get(&key).and_then(|c| c.fork);
            let mut owed_408 = unanswered;
            if let (true, Some(group)) = (unanswered, fork.and_then(|id| table.forks.get_mut(&id)))
            {
                group.pending = group.pending.saturating_sub(1);
                owed_408 = false;
                if group.pending == 0 && !group.settled {
                    group.settled = true;
                    match group.best.take() {
                        Some(best) => expired.relayed.push(best),
                        None => owed_408 = true,
                    }
                }
            }
            if let Some(context) = table.remove(&key) {
                if owed_408 {
                    expired.timed_out.push(TimedOut {
                        server: context.server,
                        invite_call: context
                            .invite
                            .then(|| call_id(&context.caller_headers))
                            .flatten(),
                        headers: context.caller_headers,
                        source: context.caller_source,
                    });
                }
            }
        }
        expired
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.lock().due.peek().map(|Reverse((at, _))| *at)
    }

    /// How many forwarded requests are remembered (for tests and statistics).
    pub fn pending(&self) -> usize {
        self.lock().contexts.len()
    }

    /// The caller of an initial INVITE, from the `request` as it came and as the node
    /// `forwarded` it (whose Contact points at the caller's NAT address): the end a BYE
    /// to the caller goes to. Its routes come with the answer ([`Proxy::answer_ends`]).
    pub fn caller_of(request: &Request, forwarded: &Request) -> Option<End> {
        let party = request.headers.iter().find_map(|h| match h {
            Header::From(from) => Some(from.value().to_string()),
            _ => None,
        })?;
        let contact = forwarded.headers.iter().find_map(|h| match h {
            Header::Contact(contact) => uri_of(contact.value()).map(str::to_string),
            _ => None,
        })?;
        let cseq = request.headers.iter().find_map(|h| match h {
            Header::CSeq(cseq) => cseq_number(cseq.value()),
            _ => None,
        })?;
        Some(End {
            party,
            contact,
            routes: Vec::new(),
            cseq: Some(cseq),
        })
    }

    /// What the first 2xx to an INVITE (as relayed to the caller) says about the call's
    /// ends: the callee (its To, its Contact, the Record-Route entries between this node
    /// and it) and the Record-Route entries between this node and the caller. Entries
    /// above the node's own were added downstream of it, entries below upstream.
    pub fn answer_ends(&self, response: &Response) -> Option<(End, Vec<String>)> {
        let party = response.headers.iter().find_map(|h| match h {
            Header::To(to) => Some(to.value().to_string()),
            _ => None,
        })?;
        let contact = response.headers.iter().find_map(|h| match h {
            Header::Contact(contact) => uri_of(contact.value()).map(str::to_string),
            _ => None,
        })?;
        let entries: Vec<String> = response
            .headers
            .iter()
            .filter_map(|h| match h {
                Header::RecordRoute(route) => Some(route.value()),
                _ => None,
            })
            .flat_map(split_header_list)
            .map(|entry| entry.trim().to_string())
            .collect();
        let mine = entries
            .iter()
            .position(|entry| uri_of(entry).is_some_and(|uri| self.names_me(uri)));
        let (towards_callee, towards_caller) = match mine {
            Some(at) => (
                entries[..at].iter().rev().cloned().collect(),
                entries[at + 1..].to_vec(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        let callee = End {
            party,
            contact,
            routes: towards_callee,
            cseq: None,
        };
        Some((callee, towards_caller))
    }

    /// A BYE from this node to the call's end `to`, on behalf of its other end `from`
    /// (whose From, tag and CSeq it carries, so `to` takes it as its peer's), with a
    /// `Reason` header (RFC 3326) that says why. `None` when `to` cannot be reached
    /// (its next hop is not an IP address, or a closed stream connection).
    pub fn bye(
        &self,
        call_id: &str,
        to: &End,
        from: &End,
        reason: &str,
    ) -> Option<(Request, SocketAddr)> {
        let uri = rsip::Uri::try_from(to.contact.as_str()).ok()?;
        let next = to
            .routes
            .first()
            .and_then(|route| uri_of(route))
            .unwrap_or(&to.contact);
        let target = next_hop(next, &self.streams).ok()?;
        let branch = format!("{MAGIC_COOKIE}{:016x}", rand::random::<u64>());
        let mut headers = Headers::default();
        headers.push(Header::Via(rsip::headers::Via::new(format!(
            "SIP/2.0/UDP {};branch={branch};rport",
            self.local
        ))));
        headers.push(Header::MaxForwards(rsip::headers::MaxForwards::new(
            DEFAULT_MAX_FORWARDS.to_string(),
        )));
        if !to.routes.is_empty() {
            headers.push(Header::Route(rsip::headers::Route::new(
                to.routes.join(", "),
            )));
        }
        headers.push(Header::From(rsip::headers::From::new(from.party.clone())));
        headers.push(Header::To(rsip::headers::To::new(to.party.clone())));
        headers.push(Header::CallId(rsip::headers::CallId::new(call_id)));
        let cseq = from.cseq.map_or(1, |seen| seen.saturating_add(1));
        headers.push(Header::CSeq(rsip::headers::CSeq::new(format!(
            "{cseq} BYE"
        ))));
        headers.push(Header::Other("Reason".into(), reason.into()));
        headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
            "0",
        )));
        let request = Request {
            method: Method::Bye,
            uri,
            version: rsip::Version::V2,
            headers,
            body: Vec::new(),
        };
        Some((request, target))
    }

    /// Whether `uri` addresses this node: its IP, and its port (5060 when none is given).
    fn names_me(&self, uri: &str) -> bool {
        let Ok(uri) = rsip::Uri::try_from(uri) else {
            return false;
        };
        let port = uri.port().map_or(5060, |p| u16::from(*p));
        ip_of(uri.host()) == Some(self.local.ip()) && port == self.local.port()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // Every update leaves the table consistent, so a poisoned lock is still usable.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
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

/// The URIs of the Route headers, in order, one per element of comma-separated lists.
fn route_uris(headers: &Headers) -> Vec<String> {
    headers
        .iter()
        .filter_map(|h| match h {
            Header::Route(route) => Some(route.value()),
            _ => None,
        })
        .flat_map(split_header_list)
        .filter_map(uri_of)
        .map(str::to_string)
        .collect()
}

/// The Call-ID of a message.
pub fn call_id(headers: &Headers) -> Option<String> {
    headers.iter().find_map(|h| match h {
        Header::CallId(id) => Some(id.value().to_string()),
        _ => None,
    })
}

fn to_tag(headers: &Headers) -> Option<String> {
    headers.iter().find_map(|h| match h {
        Header::To(to) => header_param(to.value(), "tag").map(str::to_string),
        _ => None,
    })
}

/// The number of a CSeq header's value (`"42 INVITE"`).
pub fn cseq_number(value: &str) -> Option<u32> {
    value.split_whitespace().next()?.parse().ok()
}

fn max_forwards_of(value: &str) -> Option<u32> {
    value.trim().parse().ok()
}

/// 483 for a request that may not be forwarded any further (RFC 3261 §16.3 step 3: a
/// Max-Forwards of 0 on arrival), 400 for one that is not a number.
fn max_forwards_refusal(request: &Request) -> Option<Decision> {
    let value = request.headers.iter().find_map(|h| match h {
        Header::MaxForwards(value) => Some(value.value()),
        _ => None,
    })?;
    match max_forwards_of(value) {
        Some(0) => Some(Decision::answer(StatusCode::TooManyHops, "Too Many Hops")),
        Some(_) => None,
        None => Some(Decision::answer(
            StatusCode::BadRequest,
            "Invalid Max-Forwards",
        )),
    }
}

/// Where a next-hop URI is reached: an IP address and port (5060 by default) of a `sip:`
/// URI, over UDP or an open stream connection. Never resolved through DNS.
fn next_hop(uri: &str, streams: &Streams) -> Result<SocketAddr, (StatusCode, &'static str)> {
    let Ok(uri) = rsip::Uri::try_from(uri) else {
        return Err((StatusCode::UnsupportedUriScheme, "Unsupported URI"));
    };
    if !matches!(uri.scheme, None | Some(Scheme::Sip)) {
        return Err((StatusCode::UnsupportedUriScheme, "Unsupported URI Scheme"));
    }
    let Some(ip) = ip_of(uri.host()) else {
        return Err((StatusCode::NotFound, "Next Hop Is Not An IP Address"));
    };
    let port = uri.port().map_or(5060, |p| u16::from(*p));
    // A stream next hop is reached over the connection it opened to this node (the
    // contacts of stream callers and callees are pointed at theirs), never a new one.
    let stream = uri
        .transport()
        .is_some_and(|t| !t.to_string().eq_ignore_ascii_case("udp"));
    if stream && !streams.contains(SocketAddr::new(ip, port)) {
        return Err((
            StatusCode::TemporarilyUnavailable,
            "Only UDP Next Hops Supported",
        ));
    }
    Ok(SocketAddr::new(ip, port))
}

fn ip_of(host: &Host) -> Option<IpAddr> {
    match host {
        Host::IpAddr(ip) => Some(*ip),
        Host::Domain(domain) => domain
            .to_string()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok(),
    }
}

/// The client transaction a response belongs to: its top Via's branch and CSeq method.
fn client_key(response: &Response) -> Option<ClientKey> {
    let via = response.headers.iter().find_map(|h| match h {
        Header::Via(via) => Some(via.value()),
        _ => None,
    })?;
    let branch = header_param(split_header_list(via).first()?, "branch")?.to_string();
    let method = response.headers.iter().find_map(|h| match h {
        Header::CSeq(cseq) => cseq.method().ok(),
        _ => None,
    })?;
    Some(ClientKey {
        branch,
        method: method.to_string(),
    })
}

/// The response without its top Via (the node's own), even when the callee folded several
/// Vias into one header line; with `contact_source`, its Contact pointed at that address.
fn without_top_via(response: &Response, contact_source: Option<(SocketAddr, bool)>) -> Response {
    let mut headers = Headers::default();
    let mut popped = false;
    for header in response.headers.iter() {
        match header {
            Header::Via(via) if !popped => {
                popped = true;
                let rest = split_header_list(via.value());
                if rest.len() > 1 {
                    headers.push(Header::Via(rsip::headers::Via::new(rest[1..].join(", "))));
                }
            }
            Header::Contact(contact) => {
                let value = contact.value();
                let fixed = contact_source.and_then(|(source, over_stream)| {
                    nat_fixed_contact(value, source, over_stream)
                });
                headers.push(Header::Contact(rsip::headers::Contact::new(
                    fixed.unwrap_or_else(|| value.to_string()),
                )));
            }
            other => headers.push(other.clone()),
        }
    }
    Response {
        status_code: response.status_code.clone(),
        version: response.version.clone(),
        headers,
        body: response.body.clone(),
    }
}

/// `value` (one Contact header) with its `sip:` URI's host and port replaced by `source`,
/// or `None` when it already names `source` or is not a single `sip:` URI (a `*`, a list,
/// `sips:`). A TCP, TLS or WebSocket contact that came over UDP keeps what the phone wrote;
/// one that came `over_stream` names the connection it came on, the only way back to a
/// WebRTC client (whose Contact host is a made-up `.invalid` name, RFC 7118 §5) and to a
/// phone behind NAT.
fn nat_fixed_contact(value: &str, source: SocketAddr, over_stream: bool) -> Option<String> {
    if split_header_list(value).len() != 1 {
        return None;
    }
    let written = uri_of(value)?;
    let mut uri = rsip::Uri::try_from(written).ok()?;
    if !matches!(uri.scheme, None | Some(Scheme::Sip)) {
        return None;
    }
    let transport = uri.params.iter().find_map(|param| match param {
        rsip::Param::Transport(transport) => Some(*transport),
        _ => None,
    });
    if !over_stream && transport.is_some_and(|t| t != rsip::Transport::Udp) {
        return None;
    }
    let port = uri.port().map_or(5060, |p| u16::from(*p));
    if ip_of(uri.host()) == Some(source.ip()) && port == source.port() {
        return None;
    }
    uri.host_with_port = source.into();
    Some(value.replacen(written, &uri.to_string(), 1))
}

/// The CANCEL of a forwarded INVITE (RFC 3261 §9.1): its Request-URI, top Via (so the same
/// branch), From, To, Call-ID, CSeq number and Route set.
fn cancel_for(invite: &Request) -> Request {
    let mut headers = Headers::default();
    if let Some(via) = invite.headers.iter().find(|h| matches!(h, Header::Via(_))) {
        headers.push(via.clone());
    }
    headers.push(Header::MaxForwards(rsip::headers::MaxForwards::new(
        DEFAULT_MAX_FORWARDS.to_string(),
    )));
    for header in invite.headers.iter() {
        match header {
            Header::From(_) | Header::To(_) | Header::CallId(_) | Header::Route(_) => {
                headers.push(header.clone())
            }
            Header::CSeq(cseq) => {
                let seq = cseq.seq().unwrap_or_default();
                headers.push(Header::CSeq(rsip::headers::CSeq::new(format!(
                    "{seq} CANCEL"
                ))));
            }
            _ => {}
        }
    }
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        "0",
    )));
    Request {
        method: Method::Cancel,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// The server-transaction key of the INVITE a CANCEL names: the CANCEL's own key with the
/// method INVITE (RFC 3261 §9.2: same branch and sent-by, or same identifying fields).
pub fn invite_key_of(cancel: &Key) -> Key {
    match cancel.clone() {
        Key::Branch {
            branch, sent_by, ..
        } => Key::Branch {
            branch,
            sent_by,
            method: Method::Invite.to_string(),
        },
        Key::Legacy {
            request_uri,
            from_tag,
            call_id,
            cseq,
            top_via,
            ..
        } => Key::Legacy {
            request_uri,
            from_tag,
            call_id,
            cseq,
            top_via,
            method: Method::Invite.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Secret;
    use crate::location::{Change, MemoryLocationStore};
    use crate::registrar::MemoryDirectory;

    const NODE: &str = "127.0.84.10:5060";

    fn caller() -> SocketAddr {
        "127.0.84.11:40000".parse().unwrap()
    }

    fn phone() -> SocketAddr {
        "127.0.84.12:41000".parse().unwrap()
    }

    fn binding(contact: &str, received: SocketAddr, transport: Transport, online: bool) -> Binding {
        Binding {
            contact: contact.into(),
            expires_at: SystemTime::now() + Duration::from_secs(600),
            received,
            transport,
            call_id: "reg".into(),
            cseq: 1,
            user_agent: None,
            last_keepalive: None,
            latency: None,
            missed_keepalives: 0,
            online,
        }
    }

    /// A proxy whose directory knows `bob` and `carol`; `bob` is bound as given.
    fn proxy(bindings: Vec<Binding>) -> Proxy {
        let directory = Arc::new(MemoryDirectory::new());
        directory.insert("bob", None, Secret::Password("pw".into()));
        directory.insert("carol", None, Secret::Password("pw".into()));
        let store = Arc::new(MemoryLocationStore::new());
        let changes: Vec<Change> = bindings.into_iter().map(Change::Upsert).collect();
        store
            .apply("sip:bob@127.0.84.10", &changes, SystemTime::now())
            .unwrap();
        Proxy::new(directory, store, NODE.parse().unwrap())
    }

    fn natted_bob() -> Vec<Binding> {
        vec![binding(
            "sip:bob@192.168.1.20:5060",
            phone(),
            Transport::Udp,
            true,
        )]
    }

    fn request(first_line: &str, extra: &str) -> Request {
        let text = format!(
            "{first_line}\r\nVia: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKcall;rport\r\n{extra}From: <sip:alice@127.0.84.10>;tag=a\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        match crate::message::parse(text.as_bytes()) {
            Ok(rsip::SipMessage::Request(request)) => request,
            other => panic!("{other:?}"),
        }
    }

    fn invite(user: &str, extra: &str) -> Request {
        request(
            &format!("INVITE sip:{user}@127.0.84.10 SIP/2.0"),
            &format!("To: <sip:{user}@127.0.84.10>\r\nMax-Forwards: 70\r\n{extra}"),
        )
    }

    fn route(proxy: &Proxy, request: &Request) -> Option<Decision> {
        proxy.route(request, caller(), &[], SystemTime::now())
    }

    fn answer(status: StatusCode, reason: &'static str) -> Option<Decision> {
        Some(Decision::Answer { status, reason })
    }

    #[test]
    fn an_invite_for_a_registered_user_goes_to_its_nat_address_with_record_route_and_via() {
        let Some(Decision::Forward { request, target }) =
            route(&proxy(natted_bob()), &invite("bob", ""))
        else {
            panic!("forwarded");
        };
        assert_eq!(target, phone(), "the received address, not the contact's");
        assert_eq!(request.uri.to_string(), "sip:bob@192.168.1.20:5060");
        let text = request.to_string();
        let vias: Vec<&str> = text.lines().filter(|l| l.starts_with("Via:")).collect();
        assert_eq!(vias.len(), 2, "{text}");
        assert!(vias[0].starts_with(&format!("Via: SIP/2.0/UDP {NODE};branch=z9hG4bK")));
        assert!(vias[1].contains("rport=40000") && vias[1].contains("received=127.0.84.11"));
        assert!(
            text.contains(&format!("Record-Route: <sip:{NODE};lr>\r\n")),
            "{text}"
        );
        assert!(text.contains("Max-Forwards: 69\r\n"), "{text}");
    }

    #[test]
    fn contacts_behind_nat_are_pointed_at_the_address_the_message_came_from() {
        let natted = invite(
            "bob",
            "Contact: <sip:alice@10.0.0.7:5062;ob>;+sip.instance=\"x\"\r\n",
        );
        let Some(Decision::Forward { request, .. }) = route(&proxy(natted_bob()), &natted) else {
            panic!("forwarded");
        };
        let text = request.to_string();
        assert!(
            text.contains("Contact: <sip:alice@127.0.84.11:40000;ob>;+sip.instance=\"x\"\r\n"),
            "{text}"
        );
        // Already right, over TCP, or not a single sip: URI: left as the phone wrote it.
        for kept in [
            "<sip:alice@127.0.84.11:40000>",
            "<sip:alice@10.0.0.7;transport=tcp>",
            "<sips:alice@10.0.0.7>",
            "<sip:a@10.0.0.7>, <sip:b@10.0.0.8>",
        ] {
            assert_eq!(nat_fixed_contact(kept, caller(), false), None, "{kept}");
        }
        assert_eq!(
            nat_fixed_contact("sip:bob@192.168.1.20", phone(), false).as_deref(),
            Some("sip:bob@127.0.84.12:41000")
        );
        // Over a stream, even a WebRTC client's made-up host names the connection.
        assert_eq!(
            nat_fixed_contact("<sip:w@df7jal23ls0d.invalid;transport=ws>", phone(), true)
                .as_deref(),
            // (rsip writes the transport token in capitals; URI parameters ignore case.)
            Some("<sip:w@127.0.84.12:41000;transport=WS>")
        );
    }

    #[test]
    fn an_unknown_user_gets_404_and_a_known_one_without_a_live_binding_480() {
        let p = proxy(vec![binding(
            "sip:bob@192.168.1.20",
            phone(),
            Transport::Udp,
            false,
        )]);
        assert_eq!(
            route(&p, &invite("mallory", "")),
            answer(StatusCode::NotFound, "Not Found")
        );
        assert_eq!(
            route(&p, &invite("carol", "")),
            answer(
                StatusCode::TemporarilyUnavailable,
                "Temporarily Unavailable"
            )
        );
        assert_eq!(
            route(&p, &invite("bob", "")),
            answer(
                StatusCode::TemporarilyUnavailable,
                "Temporarily Unavailable"
            ),
            "an offline binding is not live"
        );
    }

    #[test]
    fn max_forwards_0_gets_483_and_1_is_forwarded_as_0() {
        let p = proxy(natted_bob());
        let mut exhausted = invite("bob", "");
        exhausted
            .headers
            .retain(|h| !matches!(h, Header::MaxForwards(_)));
        exhausted
            .headers
            .push(Header::MaxForwards(rsip::headers::MaxForwards::new("0")));
        assert_eq!(
            route(&p, &exhausted),
            answer(StatusCode::TooManyHops, "Too Many Hops")
        );
        let mut last = exhausted.clone();
        last.headers
            .retain(|h| !matches!(h, Header::MaxForwards(_)));
        last.headers
            .push(Header::MaxForwards(rsip::headers::MaxForwards::new("1")));
        let Some(Decision::Forward { request, .. }) = route(&p, &last) else {
            panic!("forwarded");
        };
        assert!(request.to_string().contains("Max-Forwards: 0\r\n"));
    }

    #[test]
    fn a_stream_contact_without_its_connection_gets_480_and_a_stream_caller_is_proxied() {
        let p = proxy(vec![binding(
            "sip:bob@192.168.1.20;transport=tcp",
            phone(),
            Transport::Tcp,
            true,
        )]);
        assert_eq!(
            route(&p, &invite("bob", "")),
            answer(StatusCode::TemporarilyUnavailable, "Connection Closed")
        );
        let p = proxy(natted_bob());
        assert!(matches!(
            p.route(&invite("bob", ""), caller(), &[], SystemTime::now()),
            Some(Decision::Forward { .. })
        ));
    }

    fn in_dialog(uri: &str, routes: &str) -> Request {
        request(
            &format!("BYE {uri} SIP/2.0"),
            &format!("To: <sip:bob@127.0.84.10>;tag=b\r\nMax-Forwards: 70\r\n{routes}"),
        )
    }

    #[test]
    fn an_in_dialog_request_naming_the_node_loses_that_route_and_goes_to_the_next_hop() {
        let p = proxy(vec![]);
        let bye = in_dialog(
            "sip:bob@127.0.84.12:41000",
            &format!("Route: <sip:{NODE};lr>\r\n"),
        );
        let Some(Decision::Forward { request, target }) = route(&p, &bye) else {
            panic!("forwarded");
        };
        assert_eq!(target, phone());
        assert_eq!(request.uri.to_string(), "sip:bob@127.0.84.12:41000");
        let text = request.to_string();
        assert!(!text.contains("Route:"), "{text}");
        assert!(!text.contains("Record-Route"), "{text}");

        let two = in_dialog(
            "sip:bob@127.0.84.12:41000",
            &format!("Route: <sip:{NODE};lr>, <sip:127.0.84.13:5070;lr>\r\n"),
        );
        let Some(Decision::Forward { request, target }) = route(&p, &two) else {
            panic!("forwarded");
        };
        assert_eq!(target, "127.0.84.13:5070".parse().unwrap());
        assert!(request
            .to_string()
            .contains("Route: <sip:127.0.84.13:5070;lr>\r\n"));
    }

    #[test]
    fn next_hops_are_never_resolved_and_new_requests_are_not_relayed() {
        let p = proxy(vec![]);
        let by_name = in_dialog(
            "sip:bob@phone.example.com",
            &format!("Route: <sip:{NODE};lr>\r\n"),
        );
        assert_eq!(
            route(&p, &by_name),
            answer(StatusCode::NotFound, "Next Hop Is Not An IP Address")
        );
        let secure = in_dialog(
            "sips:bob@127.0.84.12:41000",
            &format!("Route: <sip:{NODE};lr>\r\n"),
        );
        assert!(matches!(
            route(&p, &secure),
            Some(Decision::Answer {
                status: StatusCode::UnsupportedUriScheme,
                ..
            })
        ));
        let relay = invite(
            "bob",
            &format!("Route: <sip:{NODE};lr>, <sip:10.9.9.9;lr>\r\n"),
        );
        assert_eq!(
            route(&p, &relay),
            answer(StatusCode::Forbidden, "Relaying Not Allowed")
        );
        let own = in_dialog("sip:127.0.84.10", "");
        assert_eq!(route(&p, &own), None, "not routed: the node's own");
    }

    #[tokio::test(start_paused = true)]
    async fn responses_are_relayed_to_the_caller_without_the_node_s_via_and_silence_gets_408() {
        let p = proxy(natted_bob());
        let layer = TransactionLayer::default();
        let original = invite("bob", "");
        let Some(Decision::Forward { request, target }) = route(&p, &original) else {
            panic!("forwarded");
        };
        let now = Instant::now();
        let sent = p
            .forward(
                &layer,
                Key::of_request(&original),
                &original.headers,
                caller(),
                caller(),
                request,
                target,
                now,
            )
            .unwrap();
        let text = String::from_utf8(sent.bytes).unwrap();
        let ringing = text
            .replacen("INVITE sip:bob@192.168.1.20:5060", "SIP/2.0 180 Ringing", 1)
            .replace(
                "To: <sip:bob@127.0.84.10>",
                "To: <sip:bob@127.0.84.10>;tag=b",
            );
        let Ok(rsip::SipMessage::Response(ringing)) = crate::message::parse(ringing.as_bytes())
        else {
            panic!("a response: {ringing}");
        };
        let relayed = p.on_response(&ringing, None, target, now).expect("relayed");
        assert_eq!(relayed.out.target, caller());
        let out = String::from_utf8(relayed.out.bytes).unwrap();
        assert_eq!(out.matches("Via:").count(), 1, "{out}");
        assert!(out.contains("branch=z9hG4bKcall"), "{out}");
        assert_eq!(relayed.to_tag.as_deref(), Some("b"));

        // Ringing for longer than Timer C: the caller gets 408.
        tokio::time::advance(TIMER_C + Duration::from_secs(1)).await;
        let expired = p.poll(Instant::now());
        assert_eq!(expired.timed_out.len(), 1);
        assert!(expired.relayed.is_empty());
        assert_eq!(p.pending(), 0);
    }

    fn desk() -> SocketAddr {
        "127.0.84.21:41000".parse().unwrap()
    }

    fn softphone() -> SocketAddr {
        "127.0.84.22:41000".parse().unwrap()
    }

    /// bob on two phones, plus an offline one and a stale Contact of the desk phone.
    fn bob_on_two_phones() -> Vec<Binding> {
        // Made in this order, each expires a little after the one before: the stale Contact
        // is the desk phone's older registration.
        let stale = binding("sip:bob-old@10.0.0.21", desk(), Transport::Udp, true);
        std::thread::sleep(Duration::from_millis(2));
        vec![
            stale,
            binding("sip:bob@10.0.0.21", desk(), Transport::Udp, true),
            binding("sip:bob@10.0.0.22", softphone(), Transport::Udp, true),
            binding(
                "sip:bob@10.0.0.23",
                "127.0.84.23:41000".parse().unwrap(),
                Transport::Udp,
                false,
            ),
        ]
    }

    /// A callee's answer to `forwarded`, as the node would receive it.
    fn answer_to(forwarded: &Request, status_line: &str, tag: &str) -> Response {
        let text = forwarded.to_string();
        let rest = &text[text.find("\r\n").unwrap()..];
        let text = format!("SIP/2.0 {status_line}{rest}").replace(
            "To: <sip:bob@127.0.84.10>",
            &format!("To: <sip:bob@127.0.84.10>;tag={tag}"),
        );
        match crate::message::parse(text.as_bytes()) {
            Ok(rsip::SipMessage::Response(response)) => response,
            other => panic!("{other:?}"),
        }
    }

    /// Forks an INVITE for bob; returns the branches sent to the desk phone and softphone.
    fn ring_both(p: &Proxy, layer: &TransactionLayer, now: Instant) -> (Request, Request) {
        let original = invite("bob", "");
        let Some(Decision::Fork { branches }) = route(p, &original) else {
            panic!("forked");
        };
        assert_eq!(branches.len(), 2, "one branch per live phone: {branches:?}");
        let sent = p
            .fork(
                layer,
                Key::of_request(&original),
                &original.headers,
                caller(),
                caller(),
                branches.clone(),
                now,
            )
            .unwrap();
        assert_eq!(sent.len(), 2);
        let to = |target: SocketAddr| {
            branches
                .iter()
                .find(|(_, t)| *t == target)
                .map(|(r, _)| r.clone())
                .expect("a branch")
        };
        (to(desk()), to(softphone()))
    }

    #[tokio::test(start_paused = true)]
    async fn a_user_on_several_phones_rings_them_all_and_the_first_answer_cancels_the_rest() {
        let p = proxy(bob_on_two_phones());
        let layer = TransactionLayer::default();
        let now = Instant::now();
        let (at_desk, at_softphone) = ring_both(&p, &layer, now);
        assert_eq!(at_desk.uri.to_string(), "sip:bob@10.0.0.21");
        assert_eq!(at_softphone.uri.to_string(), "sip:bob@10.0.0.22");

        let ringing = p
            .on_response(&answer_to(&at_desk, "180 Ringing", "d"), None, desk(), now)
            .expect("ringing reaches the caller");
        assert_eq!((ringing.code, ringing.settles), (180, None));
        let ok = p
            .on_response(
                &answer_to(&at_softphone, "200 OK", "s"),
                None,
                softphone(),
                now,
            )
            .expect("the answer reaches the caller");
        assert_eq!(ok.code, 200);
        let fork = ok.settles.expect("the first 2xx settles the fork");

        let cancels = p.cancel_fork(&layer, fork, now);
        assert_eq!(cancels.len(), 1, "only the phone still ringing");
        assert_eq!(cancels[0].target, desk());
        let cancel = String::from_utf8(cancels[0].bytes.clone()).unwrap();
        assert!(
            cancel.starts_with("CANCEL sip:bob@10.0.0.21 SIP/2.0\r\n"),
            "{cancel}"
        );
        // The cancelled phone's 487 ends its branch without reaching the caller.
        assert!(p
            .on_response(
                &answer_to(&at_desk, "487 Request Terminated", "d"),
                None,
                desk(),
                now
            )
            .is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_fork_answers_with_the_best_final_response_once_every_phone_answered_or_went_silent()
    {
        // Both refuse: the lower code, once both did.
        let p = proxy(bob_on_two_phones());
        let layer = TransactionLayer::default();
        let now = Instant::now();
        let (at_desk, at_softphone) = ring_both(&p, &layer, now);
        assert!(p
            .on_response(
                &answer_to(&at_desk, "486 Busy Here", "d"),
                None,
                desk(),
                now
            )
            .is_none());
        let best = p
            .on_response(
                &answer_to(&at_softphone, "480 Temporarily Unavailable", "s"),
                None,
                softphone(),
                now,
            )
            .expect("every phone answered");
        assert_eq!((best.code, best.settles), (480, None));

        // One refuses, the other never answers: the refusal, when the silence times out.
        let p = proxy(bob_on_two_phones());
        let (at_desk, _) = ring_both(&p, &layer, now);
        assert!(p
            .on_response(
                &answer_to(&at_desk, "486 Busy Here", "d"),
                None,
                desk(),
                now
            )
            .is_none());
        tokio::time::advance(NO_ANSWER + Duration::from_secs(1)).await;
        let expired = p.poll(Instant::now());
        assert!(expired.timed_out.is_empty(), "{expired:?}");
        assert_eq!(expired.relayed.len(), 1);
        assert_eq!(expired.relayed[0].code, 486);

        // A 6xx ends the fork at once.
        let p = proxy(bob_on_two_phones());
        let now = Instant::now();
        let (_, at_softphone) = ring_both(&p, &layer, now);
        let decline = p
            .on_response(
                &answer_to(&at_softphone, "603 Decline", "s"),
                None,
                softphone(),
                now,
            )
            .expect("a 6xx goes through at once");
        assert!(decline.settles.is_some());
    }
}
