//! The stateful proxy core (RFC 3261 §16): sending a request on, and its answers back.
//!
//! A request forwarded statefully runs in a client transaction of the node's
//! [`TransactionLayer`] (which retransmits over UDP); the [`Forwarder`] keeps, per forwarded
//! request, a *response context*: whom to relay the answers to, so that a CANCEL from the
//! caller can follow the INVITE downstream ([`Forwarder::cancel`]) and a callee that never
//! answers gets the caller a 408 ([`Forwarder::poll`]).
//!
//! One request may go to several targets (as a router decides):
//! - **in parallel** (forking, §16.7): every branch rings at once. Provisional answers of
//!   every branch reach the caller; the first 2xx (or any 6xx) goes through at once and the
//!   other branches are cancelled; otherwise the caller gets the best final answer once
//!   every branch has one (a 6xx, else the lowest code), or 408 when none answered at all.
//! - **in series** (failover): one branch at a time, within the caller's one transaction. A
//!   branch that answers 408 or 500–503, or nothing within its time, gives way to the next
//!   target (a silent INVITE branch is cancelled first); a 2xx, 3xx, 4xx, 504 and above,
//!   or 6xx ends the search and goes to the caller. When every target failed, the caller
//!   gets the best of their answers, or 408.
//!
//! Choices and limits of this build:
//! - Streams: a phone registered over TCP, TLS or a WebSocket is reached over the
//!   connection it registered on, while that is open ([`Streams`]), and a caller on a
//!   stream gets its responses on its connection. The node's Via names the transport the
//!   request really leaves on.
//! - No DNS: a next hop must be an IP address (404 otherwise), in a `sip:` URI (416).
//! - Phones behind NAT: the Contact of an initial INVITE and of the callee's 1xx/2xx is
//!   pointed at the address the message came from, when the two differ (as Kamailio's
//!   `fix_nated_contact` does). A phone that sends from the socket it listens on (what
//!   RFC 3581's rport assumes, and what the registrar relies on for incoming calls) is then
//!   reachable for in-dialog requests even when it wrote a private address in its Contact.

pub mod rewrite;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rsip::{Headers, Method, Request, Response, StatusCode};
use tokio::time::Instant;

use crate::message::{call_id, encode_request, encode_response, to_tag};
use crate::transaction::client::ClientKey;
use crate::transaction::{ClientError, Key, Outbound, TransactionLayer};
use crate::transport::Streams;
use rewrite::{
    cancel_for, client_key, count_values, next_hop, route_uris, without_top_via, Hop, Mark,
};

/// How long a forwarded request waits for its first answer: 64·T1, as Timers B and F.
pub const NO_ANSWER: Duration = Duration::from_secs(32);
/// Timer C (RFC 3261 §16.6 step 11): how long an INVITE may ring after its last
/// provisional response; "greater than 3 minutes".
const TIMER_C: Duration = Duration::from_secs(181);
/// How long an answered INVITE is remembered, so that the callee's retransmitted 2xx still
/// reach the caller (RFC 6026 §7.1; 64·T1 like Timer M).
const LINGER: Duration = Duration::from_secs(32);

/// How the branches of one request are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// All at once (forking).
    Parallel,
    /// One after the other; each target gets `patience` to answer at all (any response,
    /// 100 Trying included) before the next is tried. After a provisional answer it rings
    /// under Timer C like any INVITE.
    Serial { patience: Duration },
}

/// The caller of a forwarded request: where its answers go.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Its server transaction, which records what is relayed (retransmissions, ACK).
    pub server: Option<Key>,
    /// Its request's headers, to build a 408 from.
    pub headers: Headers,
    pub source: SocketAddr,
    /// Where responses to it go (the UDP response-target rules of its top Via, or its
    /// stream connection).
    pub target: SocketAddr,
}

/// A response the forwarder relays to the caller of a forwarded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relayed {
    /// The response with the node's Via popped, encoded and addressed to the caller.
    pub out: Outbound,
    /// The same response, unencoded: what the dialog event reads (never parsed again).
    pub response: Response,
    /// The caller's server transaction, which records it (retransmissions, ACK matching).
    pub server: Option<Key>,
    pub code: u16,
    pub to_tag: Option<String>,
    /// The fork this answer settles: its other branches are to be cancelled
    /// ([`Forwarder::cancel_group`]).
    pub settles: Option<u64>,
    /// The Call-ID, when this answers an INVITE (whose call holds a channel).
    pub invite_call: Option<String>,
    /// The first 2xx of the caller's transaction (not a retransmission, nor another
    /// branch's): the one that confirms the call.
    pub first_answer: bool,
    /// The body of the INVITE as forwarded on the branch that answered (the offer), for a
    /// 2xx to an INVITE.
    pub offer: Option<Vec<u8>>,
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

/// A request the forwarder will not send on: the status to answer with, and why.
pub type Refusal = (StatusCode, &'static str);

/// What a CANCEL from the caller finds (RFC 3261 §16.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// No pending INVITE of that caller: 481.
    Unknown,
    /// The INVITE is known: answer the CANCEL 200 and send these downstream, one per
    /// branch still ringing (none when the INVITE was answered already).
    Pending(Vec<Outbound>),
}

/// What came of a response for a client transaction of the forwarder.
#[derive(Debug, Default)]
pub struct Handled {
    /// For the caller.
    pub relay: Option<Relayed>,
    /// For the next target of a serial search (and the CANCEL of the one given up).
    pub send: Vec<Outbound>,
}

/// What the forwarder's timers produced.
#[derive(Debug, Default)]
pub struct Expired {
    /// Callers whose request no branch answered: each is owed a 408.
    pub timed_out: Vec<TimedOut>,
    /// Searches that ended in silence: the best answer the other branches gave, for the
    /// caller.
    pub relayed: Vec<Relayed>,
    /// The next targets of serial searches whose current branch went silent, and the
    /// CANCELs of those branches.
    pub send: Vec<Outbound>,
}

/// The branches of one request sent to several targets, and what the caller has been told.
#[derive(Debug)]
struct Group {
    mode: Mode,
    members: Vec<ClientKey>,
    /// Branches without a final response.
    pending: usize,
    /// Contexts still in the table.
    live: usize,
    /// The best final non-2xx response so far, held until the search ends.
    best: Option<Relayed>,
    /// A final response went to the caller.
    settled: bool,
    /// Serial: the targets not tried yet, prepared, in order.
    queue: VecDeque<(Request, SocketAddr)>,
}

/// One request forwarded statefully (RFC 3261 §16's response context).
#[derive(Debug)]
struct Context {
    invite: bool,
    caller: Arc<Caller>,
    /// The request as sent downstream, for building its CANCEL.
    forwarded: Request,
    target: SocketAddr,
    /// A branch of a serial search (its patience may be short).
    serial: bool,
    /// A final response came on this branch (and, ungrouped, went to the caller).
    answered: bool,
    deadline: Instant,
    group: Option<u64>,
}

#[derive(Debug, Default)]
struct Table {
    contexts: HashMap<ClientKey, Context>,
    by_server: HashMap<Key, ClientKey>,
    /// Deadlines; an entry may be stale (the context's deadline moved): checked when popped.
    due: BinaryHeap<Reverse<(Instant, ClientKey)>>,
    groups: HashMap<u64, Group>,
    next_group: u64,
}

impl Table {
    fn remove(&mut self, key: &ClientKey) -> Option<Context> {
        let context = self.contexts.remove(key)?;
        // A group's caller is known by its first branch until the last one is gone.
        let last = match context.group {
            Some(id) => match self.groups.get_mut(&id) {
                Some(group) => {
                    group.live = group.live.saturating_sub(1);
                    let last = group.live == 0 && group.queue.is_empty();
                    if last {
                        self.groups.remove(&id);
                    }
                    last
                }
                None => true,
            },
            None => true,
        };
        if let (true, Some(server)) = (last, &context.caller.server) {
            self.by_server.remove(server);
        }
        Some(context)
    }
}

/// Which of two final answers a group gives its caller (RFC 3261 §16.7 step 6): a 6xx,
/// else the lower code.
fn better(candidate: u16, best: Option<&Relayed>) -> bool {
    let rank = |code: u16| if code >= 600 { 0 } else { code };
    best.is_none_or(|best| rank(candidate) < rank(best.code))
}

/// Whether a serial search goes on to its next target after this final answer: 408, and
/// 500–503 (the target broke, does not do it, or is full: another may). 504 and above are
/// not: a 504 says the target reached *its* next hop and that timed out, which another
/// target would only repeat, and 505/513 would fail the same everywhere.
fn fails_over(code: u16) -> bool {
    code == 408 || (500..=503).contains(&code)
}

/// One node's forwarder: its own address (what it writes in Via and Record-Route), its
/// open stream connections, and the response contexts.
#[derive(Debug)]
pub struct Forwarder {
    local: SocketAddr,
    /// A std `Mutex`, never held across an `.await`: every operation is a few map updates.
    table: Mutex<Table>,
    streams: Arc<Streams>,
    /// Woken when a deadline comes before every other (a serial target's short patience).
    changed: tokio::sync::Notify,
}

impl Forwarder {
    /// The forwarder of the node listening on `local` (UDP), reaching stream peers through
    /// `streams`.
    pub fn new(local: SocketAddr, streams: Arc<Streams>) -> Self {
        Forwarder {
            local,
            table: Mutex::default(),
            streams,
            changed: tokio::sync::Notify::new(),
        }
    }

    /// Resolves when a deadline earlier than every other was added (see
    /// [`next_deadline`](Self::next_deadline)).
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// The node's own address, as it appears in Via and Record-Route.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    pub fn streams(&self) -> &Arc<Streams> {
        &self.streams
    }

    /// What the node writes of itself into a request for `target`.
    pub fn hop(&self, target: SocketAddr) -> Hop {
        Hop {
            local: self.local,
            transport: self.streams.transport_to(target),
        }
    }

    /// Whether `uri` addresses this node.
    pub fn names_me(&self, uri: &str) -> bool {
        rewrite::names(self.local, uri)
    }

    /// Whether the top Route of `request` names this node (it was record-routed here, or a
    /// caller pre-routed it here).
    pub fn routed_here(&self, request: &Request) -> bool {
        route_uris(&request.headers)
            .first()
            .is_some_and(|uri| self.names_me(uri))
    }

    /// A request that names this node in its top Route (loose routing, RFC 3261 §16.4):
    /// after that Route, the next one is the next hop, or the Request-URI when none is left.
    /// `None` when the next hop is this node too (the request is the node's own). A new
    /// request (no To tag) pre-routed through the node to somewhere else is refused: the
    /// node is no open relay.
    pub fn loose_route(
        &self,
        request: &Request,
        source: SocketAddr,
    ) -> Option<Result<(Request, SocketAddr), Refusal>> {
        self.loose_route_from(request, source, false)
    }

    /// As [`loose_route`](Self::loose_route); but from a `trusted` source (a Dispatcher's
    /// switch, sending a call along the Path the Dispatcher gave a REGISTER) a new request
    /// is relayed too, record-routed, and when the node's Route is the last one and
    /// names a NAT address ([`rewrite::NAT_PARAM`]) it goes there.
    pub fn loose_route_from(
        &self,
        request: &Request,
        source: SocketAddr,
        trusted: bool,
    ) -> Option<Result<(Request, SocketAddr), Refusal>> {
        let routes = route_uris(&request.headers);
        let via_me = routes.first().is_some_and(|uri| self.names_me(uri));
        if !via_me {
            return None;
        }
        let next = match routes.get(1) {
            Some(route) => route.clone(),
            None => request.uri.to_string(),
        };
        if self.names_me(&next) {
            return None;
        }
        let initial = to_tag(&request.headers).is_none();
        if initial && !trusted {
            return Some(Err((StatusCode::Forbidden, "Relaying Not Allowed")));
        }
        if let Some(refusal) = rewrite::max_forwards_refusal(request) {
            return Some(Err(refusal));
        }
        let nat = routes
            .first()
            .filter(|_| initial && routes.len() == 1)
            .and_then(|uri| rewrite::nat_of(uri));
        let mark = if initial {
            Mark::RecordRoute
        } else {
            Mark::Nothing
        };
        let hop = match nat {
            Some(addr) => Ok(addr),
            None => next_hop(&next, &self.streams),
        };
        Some(match hop {
            Ok(target) if target == self.local => Err((StatusCode::LoopDetected, "Loop Detected")),
            Ok(target) => Ok((
                rewrite::prepare(
                    request,
                    source,
                    self.hop(target),
                    None,
                    true,
                    mark,
                    self.streams.contains(source),
                ),
                target,
            )),
            Err(refusal) => Err(refusal),
        })
    }

    /// An initial request as it leaves for `target` (record-routed, its Request-URI
    /// replaced by `uri` when given, the node's own Route popped if it carries one). A
    /// REGISTER makes no dialog: it gets a Path naming the node instead (RFC 3327), so the
    /// registrar sends requests for the contact through here.
    pub fn prepare_initial(
        &self,
        request: &Request,
        source: SocketAddr,
        uri: Option<rsip::Uri>,
        target: SocketAddr,
    ) -> Request {
        self.prepare_routed(request, source, uri, target, &[])
    }

    /// As [`prepare_initial`](Self::prepare_initial), sent along `route` (a registered
    /// contact's Path, nearest first), whose first entry is `target`.
    pub fn prepare_routed(
        &self,
        request: &Request,
        source: SocketAddr,
        uri: Option<rsip::Uri>,
        target: SocketAddr,
        route: &[String],
    ) -> Request {
        let mark = if request.method == Method::Register {
            Mark::Path
        } else {
            Mark::RecordRoute
        };
        let prepared = rewrite::prepare(
            request,
            source,
            self.hop(target),
            uri,
            self.routed_here(request),
            mark,
            self.streams.contains(source),
        );
        rewrite::with_route(prepared, route)
    }

    /// Sends `branches` (prepared requests and their targets) on behalf of `caller`, as
    /// `mode` says, and remembers where their responses go. An ACK is forwarded
    /// statelessly (it gets no response); everything else runs in client transactions.
    /// Returns what to send now. Branches that cannot start are left out (a serial search
    /// moves on to the next); an error only when none could.
    pub fn forward(
        &self,
        transactions: &TransactionLayer,
        caller: Caller,
        mode: Mode,
        branches: Vec<(Request, SocketAddr)>,
        now: Instant,
    ) -> Result<Vec<Outbound>, ClientError> {
        if let [(request, target)] = branches.as_slice() {
            if request.method == Method::Ack {
                return Ok(vec![Outbound {
                    bytes: encode_request(request),
                    target: *target,
                }]);
            }
        }
        let caller = Arc::new(caller);
        // One branch needs no group: its answers go straight to the caller.
        let mut branches = branches;
        if branches.len() == 1 {
            let (request, target) = branches.remove(0);
            return self
                .start_branch(transactions, &caller, request, target, None, None, now)
                .map(|out| vec![out]);
        }
        let id = {
            let mut table = self.lock();
            table.next_group += 1;
            let id = table.next_group;
            table.groups.insert(
                id,
                Group {
                    mode,
                    members: Vec::new(),
                    pending: 0,
                    live: 0,
                    best: None,
                    settled: false,
                    queue: VecDeque::new(),
                },
            );
            id
        };
        let mut sent = Vec::new();
        let mut error = None;
        match mode {
            Mode::Parallel => {
                for (request, target) in branches {
                    match self.start_branch(
                        transactions,
                        &caller,
                        request,
                        target,
                        Some(id),
                        None,
                        now,
                    ) {
                        Ok(out) => sent.push(out),
                        Err(e) => error = Some(e),
                    }
                }
            }
            Mode::Serial { .. } => {
                if let Some(group) = self.lock().groups.get_mut(&id) {
                    group.queue = branches.into_iter().collect();
                }
                match self.next_in_series(transactions, &caller, id, now) {
                    Ok(out) => sent.extend(out),
                    Err(e) => error = Some(e),
                }
            }
        }
        match (sent.is_empty(), error) {
            (true, Some(error)) => {
                self.lock().groups.remove(&id);
                Err(error)
            }
            _ => Ok(sent),
        }
    }

    /// Starts the next target of serial group `id` that can start; `None` when none is
    /// left.
    fn next_in_series(
        &self,
        transactions: &TransactionLayer,
        caller: &Arc<Caller>,
        id: u64,
        now: Instant,
    ) -> Result<Option<Outbound>, ClientError> {
        let mut last_error = None;
        loop {
            let (next, patience) = {
                let mut table = self.lock();
                let Some(group) = table.groups.get_mut(&id) else {
                    return Ok(None);
                };
                let patience = match group.mode {
                    Mode::Serial { patience } => Some(patience),
                    Mode::Parallel => None,
                };
                (group.queue.pop_front(), patience)
            };
            let Some((request, target)) = next else {
                return match last_error {
                    Some(error) => Err(error),
                    None => Ok(None),
                };
            };
            match self.start_branch(
                transactions,
                caller,
                request,
                target,
                Some(id),
                patience,
                now,
            ) {
                Ok(out) => return Ok(Some(out)),
                Err(error) => last_error = Some(error),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn start_branch(
        &self,
        transactions: &TransactionLayer,
        caller: &Arc<Caller>,
        forwarded: Request,
        target: SocketAddr,
        group: Option<u64>,
        patience: Option<Duration>,
        now: Instant,
    ) -> Result<Outbound, ClientError> {
        let invite = forwarded.method == Method::Invite;
        let handle = transactions.client.start(
            forwarded.clone(),
            target,
            self.streams.transport_to(target),
            now,
        )?;
        let deadline = now + patience.unwrap_or(NO_ANSWER);
        let mut table = self.lock();
        if let Some(server) = &caller.server {
            // A group's caller is found through its first branch.
            if !table.by_server.contains_key(server) || group.is_none() {
                table.by_server.insert(server.clone(), handle.key.clone());
            }
        }
        if let Some(group) = group.and_then(|id| table.groups.get_mut(&id)) {
            group.members.push(handle.key.clone());
            group.pending += 1;
            group.live += 1;
        }
        let earliest = crate::transaction::schedule(&mut table.due, deadline, handle.key.clone());
        table.contexts.insert(
            handle.key,
            Context {
                invite,
                caller: caller.clone(),
                forwarded,
                target,
                serial: patience.is_some(),
                answered: false,
                deadline,
                group,
            },
        );
        drop(table);
        if earliest {
            self.changed.notify_one();
        }
        Ok(handle.first)
    }

    /// A response that matched a client transaction: what to relay to the caller, if it
    /// answers a forwarded request and is worth relaying, and what else to send. 100 Trying
    /// stops here (RFC 3261 §16.7); after the first final response only retransmitted 2xx
    /// go on, since the caller's ACK to a 2xx is end-to-end (RFC 6026). A branch of a fork
    /// relays its provisional answers and a 2xx or 6xx at once (which settles the fork: see
    /// [`Relayed::settles`]); its other final answers wait for the rest of the fork. A
    /// branch of a serial search that fails over starts the next target. `source` is where
    /// the response came from: a 1xx/2xx's Contact is pointed there (see the module's notes
    /// on NAT). `reason` is the reason phrase it came with, relayed as it is.
    pub fn on_response(
        &self,
        transactions: &TransactionLayer,
        response: &Response,
        reason: Option<&str>,
        source: SocketAddr,
        now: Instant,
    ) -> Handled {
        let Some(key) = client_key(response) else {
            return Handled::default();
        };
        let code = response.status_code.code();
        let mut table = self.lock();
        let Some(context) = table.contexts.get_mut(&key) else {
            return Handled::default();
        };
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
        } else if code < 200
            && context.invite
            && !context.answered
            && (code > 100 || context.serial)
        {
            // Ringing: Timer C. A 100 only shows a serial branch is alive: it then waits as
            // long as any request for its final answer, not just its patience.
            context.deadline = now + if code > 100 { TIMER_C } else { NO_ANSWER };
            reschedule = Some(context.deadline);
        }
        let group_id = context.group;
        let caller = context.caller.clone();
        let offer =
            (context.invite && (200..300).contains(&code)).then(|| context.forwarded.body.clone());
        // A 1xx/2xx's Contact is pointed at where it came from only when it came straight
        // from the callee: no proxy beyond this node added a Record-Route (a Dispatcher's
        // switch, or the Dispatcher a switch reaches a phone through, did). A REGISTER's
        // 200 lists the phone's bindings, which are no one's NAT address here.
        let from_callee = count_values(&response.headers, false)
            <= count_values(&context.forwarded.headers, false)
            && context.forwarded.method != Method::Register;
        let relayed_response = without_top_via(
            response,
            (code < 300 && from_callee).then_some((source, self.streams.contains(source))),
        );
        let relayed = Relayed {
            out: Outbound {
                bytes: encode_response(&relayed_response, reason),
                target: caller.target,
            },
            response: relayed_response,
            server: caller.server.clone(),
            code,
            to_tag: to_tag(&response.headers).map(str::to_string),
            settles: None,
            invite_call: context
                .invite
                .then(|| call_id(&response.headers).map(str::to_string))
                .flatten(),
            first_answer: false,
            offer,
        };
        let answered = context.answered && !first_final;
        let mut next_target = false;
        let relay = match group_id.and_then(|id| table.groups.get_mut(&id).map(|g| (id, g))) {
            None => match code {
                100 => None,
                101..=199 => (!answered).then_some(relayed),
                200..=299 => Some(Relayed {
                    first_answer: first_final,
                    ..relayed
                }),
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
                        group.queue.clear();
                        Some(Relayed {
                            settles: first.then_some(id),
                            first_answer: first && first_final,
                            ..relayed
                        })
                    }
                    _ if !first_final || group.settled => None,
                    600.. => {
                        group.settled = true;
                        group.queue.clear();
                        Some(Relayed {
                            settles: Some(id),
                            ..relayed
                        })
                    }
                    _ => match group.mode {
                        Mode::Serial { .. } if !fails_over(code) => {
                            group.settled = true;
                            group.queue.clear();
                            Some(relayed)
                        }
                        Mode::Serial { .. } if !group.queue.is_empty() => {
                            if better(code, group.best.as_ref()) {
                                group.best = Some(relayed);
                            }
                            next_target = true;
                            None
                        }
                        _ => {
                            if better(code, group.best.as_ref()) {
                                group.best = Some(relayed);
                            }
                            if group.pending == 0 && group.queue.is_empty() {
                                group.settled = true;
                                group.best.take()
                            } else {
                                None
                            }
                        }
                    },
                }
            }
        };
        let mut earliest = false;
        if let Some(at) = reschedule {
            if at <= now {
                table.remove(&key);
            } else {
                earliest = crate::transaction::schedule(&mut table.due, at, key);
            }
        }
        drop(table);
        if earliest {
            self.changed.notify_one();
        }
        let mut handled = Handled {
            relay,
            send: Vec::new(),
        };
        if let (true, Some(id)) = (next_target, group_id) {
            self.fail_over(
                transactions,
                &caller,
                id,
                now,
                &mut handled.send,
                &mut handled.relay,
            );
        }
        handled
    }

    /// Moves serial group `id` on to its next target; when none can start, the caller gets
    /// the best answer so far (through `relay`).
    fn fail_over(
        &self,
        transactions: &TransactionLayer,
        caller: &Arc<Caller>,
        id: u64,
        now: Instant,
        send: &mut Vec<Outbound>,
        relay: &mut Option<Relayed>,
    ) -> bool {
        match self.next_in_series(transactions, caller, id, now) {
            Ok(Some(out)) => {
                send.push(out);
                true
            }
            Ok(None) | Err(_) => {
                let mut table = self.lock();
                if let Some(group) = table.groups.get_mut(&id) {
                    group.settled = true;
                    *relay = group.best.take();
                    if group.live == 0 {
                        table.groups.remove(&id);
                        if let Some(server) = &caller.server {
                            table.by_server.remove(server);
                        }
                    }
                }
                false
            }
        }
    }

    /// The CANCELs for every branch of group `id` that has not answered finally: sent when
    /// another branch answered 2xx or 6xx (RFC 3261 §16.7 step 10).
    pub fn cancel_group(
        &self,
        transactions: &TransactionLayer,
        id: u64,
        now: Instant,
    ) -> Vec<Outbound> {
        let cancels: Vec<(Request, SocketAddr)> = {
            let table = self.lock();
            let Some(group) = table.groups.get(&id) else {
                return Vec::new();
            };
            group
                .members
                .iter()
                .filter_map(|key| table.contexts.get(key))
                .filter(|context| !context.answered)
                .map(|context| (cancel_for(&context.forwarded), context.target))
                .collect()
        };
        cancels
            .into_iter()
            .filter_map(|(cancel, target)| self.start_cancel(transactions, cancel, target, now))
            .collect()
    }

    /// Starts the client transaction of a CANCEL; `None` when one exists already for that
    /// branch (it retransmits).
    fn start_cancel(
        &self,
        transactions: &TransactionLayer,
        cancel: Request,
        target: SocketAddr,
        now: Instant,
    ) -> Option<Outbound> {
        let handle = transactions
            .client
            .start(cancel, target, self.streams.transport_to(target), now)
            .ok()?;
        Some(handle.first)
    }

    /// A CANCEL for the INVITE whose server transaction is `invite` (RFC 3261 §16.10): the
    /// CANCELs to send downstream, one per branch still waiting, each in its own client
    /// transaction. They are sent at once even before a callee answered provisionally: the
    /// INVITE left first, on the same path. A serial search tries no further target.
    pub fn cancel(&self, transactions: &TransactionLayer, invite: &Key, now: Instant) -> Cancelled {
        let mut table = self.lock();
        let Some(key) = table.by_server.get(invite).cloned() else {
            return Cancelled::Unknown;
        };
        let Some(context) = table.contexts.get(&key) else {
            return Cancelled::Unknown;
        };
        if let Some(id) = context.group {
            let settled = match table.groups.get_mut(&id) {
                Some(group) => {
                    group.queue.clear();
                    group.settled
                }
                None => true,
            };
            drop(table);
            if settled {
                return Cancelled::Pending(Vec::new());
            }
            return Cancelled::Pending(self.cancel_group(transactions, id, now));
        }
        if context.answered {
            return Cancelled::Pending(Vec::new());
        }
        let cancel = cancel_for(&context.forwarded);
        let target = context.target;
        drop(table);
        Cancelled::Pending(
            self.start_cancel(transactions, cancel, target, now)
                .into_iter()
                .collect(),
        )
    }

    /// Forgets contexts whose time is up. The callers of those never answered are owed 408;
    /// a fork whose last branch went silent owes its caller the best answer of the others;
    /// a serial search whose branch went silent cancels it and tries its next target.
    pub fn poll(&self, transactions: &TransactionLayer, now: Instant) -> Expired {
        let mut expired = Expired::default();
        let mut failovers = Vec::new();
        {
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
                // Settle the group before the context leaves it (the last one takes it
                // along).
                let unanswered = table.contexts.get(&key).is_some_and(|c| !c.answered);
                let group_id = table.contexts.get(&key).and_then(|c| c.group);
                let mut owed_408 = unanswered;
                if let (true, Some(id)) = (unanswered, group_id) {
                    if let Some(group) = table.groups.get_mut(&id) {
                        group.pending = group.pending.saturating_sub(1);
                        owed_408 = false;
                        if !group.settled && !group.queue.is_empty() {
                            // A silent serial branch: cancel it, try the next target.
                            if let Some(context) = table.contexts.get(&key) {
                                let cancel = context
                                    .invite
                                    .then(|| (cancel_for(&context.forwarded), context.target));
                                failovers.push((
                                    cancel,
                                    context.caller.clone(),
                                    id,
                                    context.invite,
                                ));
                            }
                        } else if group.pending == 0 && !group.settled {
                            group.settled = true;
                            match group.best.take() {
                                Some(best) => expired.relayed.push(best),
                                None => owed_408 = true,
                            }
                        }
                    }
                }
                if let Some(context) = table.remove(&key) {
                    if owed_408 {
                        let caller = &context.caller;
                        expired.timed_out.push(TimedOut {
                            server: caller.server.clone(),
                            invite_call: context
                                .invite
                                .then(|| call_id(&caller.headers).map(str::to_string))
                                .flatten(),
                            headers: caller.headers.clone(),
                            source: caller.source,
                        });
                    }
                }
            }
        }
        for (cancel, caller, id, invite) in failovers {
            if let Some((cancel, target)) = cancel {
                expired
                    .send
                    .extend(self.start_cancel(transactions, cancel, target, now));
            }
            let mut relay = None;
            let started = self.fail_over(
                transactions,
                &caller,
                id,
                now,
                &mut expired.send,
                &mut relay,
            );
            match relay {
                Some(best) => expired.relayed.push(best),
                None if !started => expired.timed_out.push(TimedOut {
                    server: caller.server.clone(),
                    invite_call: invite
                        .then(|| call_id(&caller.headers).map(str::to_string))
                        .flatten(),
                    headers: caller.headers.clone(),
                    source: caller.source,
                }),
                None => {}
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // Every update leaves the table consistent, so a poisoned lock is still usable.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    //! The forwarder with the location router in front of it, as a node uses them: one
    //! decision per request, then the branches it sends and the answers it relays. The
    //! fixture below keeps the shape of a single proxy so each test reads as a call flow.

    use std::sync::Arc;
    use std::time::SystemTime;

    use rsip::headers::UntypedHeader;
    use rsip::Header;

    use super::rewrite::{max_forwards_refusal, nat_fixed_contact};
    use super::*;
    use crate::digest::Secret;
    use crate::directory::MemoryDirectory;
    use crate::location::{Binding, Change, LocationStore, MemoryLocationStore};
    use crate::route::location::LocationRouter;
    use crate::route::{Inquiry, Route, Router};
    use crate::transport::Transport;

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
            path: Vec::new(),
        }
    }

    /// What the node makes of a request: the router's decision, prepared for sending.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Decision {
        Answer {
            status: StatusCode,
            reason: &'static str,
        },
        Forward {
            request: Request,
            target: SocketAddr,
        },
        Fork {
            branches: Vec<(Request, SocketAddr)>,
        },
    }

    /// A node's routing half: the location router and the forwarder.
    struct Proxy {
        router: LocationRouter,
        forwarder: Forwarder,
    }

    impl Proxy {
        /// As the node's pipeline does: loose routing first, then the router for an
        /// initial INVITE (after its Max-Forwards check); `None` for the node's own.
        fn route(&self, request: &Request, source: SocketAddr) -> Option<Decision> {
            let answer = |(status, reason)| Decision::Answer { status, reason };
            if let Some(routed) = self.forwarder.loose_route(request, source) {
                return Some(match routed {
                    Ok((request, target)) => Decision::Forward { request, target },
                    Err(refusal) => answer(refusal),
                });
            }
            if request.method != Method::Invite
                || crate::message::to_tag(&request.headers).is_some()
            {
                return None;
            }
            if let Some(refusal) = max_forwards_refusal(request) {
                return Some(answer(refusal));
            }
            let inquiry = Inquiry {
                request,
                source,
                peers: &[],
                now: SystemTime::now(),
            };
            let mut branches: Vec<(Request, SocketAddr)> = match self.router.route(&inquiry) {
                Route::Local => return None,
                Route::Refuse { status, reason, .. } => {
                    return Some(Decision::Answer { status, reason })
                }
                Route::Parallel(targets) | Route::Serial(targets) => targets
                    .into_iter()
                    .map(|t| {
                        (
                            self.forwarder
                                .prepare_routed(request, source, t.uri, t.addr, &t.route),
                            t.addr,
                        )
                    })
                    .collect(),
            };
            Some(match branches.len() {
                1 => {
                    let (request, target) = branches.remove(0);
                    Decision::Forward { request, target }
                }
                _ => Decision::Fork { branches },
            })
        }

        fn start(
            &self,
            layer: &TransactionLayer,
            original: &Request,
            mode: Mode,
            branches: Vec<(Request, SocketAddr)>,
            now: Instant,
        ) -> Vec<Outbound> {
            let caller = Caller {
                server: Key::of_request(original),
                headers: original.headers.clone(),
                source: caller(),
                target: caller(),
            };
            self.forwarder
                .forward(layer, caller, mode, branches, now)
                .unwrap()
        }

        fn on_response(
            &self,
            layer: &TransactionLayer,
            response: &Response,
            source: SocketAddr,
            now: Instant,
        ) -> Option<Relayed> {
            self.forwarder
                .on_response(layer, response, None, source, now)
                .relay
        }
    }

    /// A router and forwarder whose directory knows `bob` and `carol`; `bob` is bound as
    /// given.
    fn proxy(bindings: Vec<Binding>) -> Proxy {
        let directory = Arc::new(MemoryDirectory::new());
        directory.insert("bob", None, Secret::Password("pw".into()));
        directory.insert("carol", None, Secret::Password("pw".into()));
        let store = Arc::new(MemoryLocationStore::new());
        let changes: Vec<Change> = bindings.into_iter().map(Change::Upsert).collect();
        store
            .apply("sip:bob@127.0.84.10", &changes, SystemTime::now())
            .unwrap();
        let local: SocketAddr = NODE.parse().unwrap();
        let streams = Arc::new(Streams::default());
        Proxy {
            router: LocationRouter::new(
                crate::directory::domain_of(local.ip()),
                directory,
                store,
                streams.clone(),
            ),
            forwarder: Forwarder::new(local, streams),
        }
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
        proxy.route(request, caller())
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
    fn phones_registered_through_a_dispatcher_are_rung_along_its_path_each_one() {
        let dispatcher: SocketAddr = "127.0.84.20:5060".parse().unwrap();
        let path = format!("<sip:{dispatcher};lr;nat=198.51.100.7~40001>");
        let through = |contact: &str| Binding {
            path: vec![path.clone()],
            ..binding(contact, dispatcher, Transport::Udp, true)
        };
        let bindings = vec![
            through("sip:bob@192.168.1.20:5060"),
            through("sip:bob@192.168.1.21:5060"),
        ];
        let Some(Decision::Fork { branches }) = route(&proxy(bindings), &invite("bob", "")) else {
            panic!("two phones behind one dispatcher are two phones");
        };
        for (request, target) in &branches {
            assert_eq!(*target, dispatcher);
            let text = request.to_string();
            assert!(text.contains(&format!("Route: {path}\r\n")), "{text}");
            assert!(text.starts_with("INVITE sip:bob@192.168.1.2"), "{text}");
        }
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
            p.route(&invite("bob", ""), caller()),
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
        let mut sent = p.start(
            &layer,
            &original,
            Mode::Parallel,
            vec![(request, target)],
            now,
        );
        let text = String::from_utf8(sent.remove(0).bytes).unwrap();
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
        let relayed = p
            .on_response(&layer, &ringing, target, now)
            .expect("relayed");
        assert_eq!(relayed.out.target, caller());
        let out = String::from_utf8(relayed.out.bytes).unwrap();
        assert_eq!(out.matches("Via:").count(), 1, "{out}");
        assert!(out.contains("branch=z9hG4bKcall"), "{out}");
        assert_eq!(relayed.to_tag.as_deref(), Some("b"));

        // Ringing for longer than Timer C: the caller gets 408.
        tokio::time::advance(TIMER_C + Duration::from_secs(1)).await;
        let expired = p.forwarder.poll(&layer, Instant::now());
        assert_eq!(expired.timed_out.len(), 1);
        assert!(expired.relayed.is_empty());
        assert_eq!(p.forwarder.pending(), 0);
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
        let sent = p.start(layer, &original, Mode::Parallel, branches.clone(), now);
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
            .on_response(
                &layer,
                &answer_to(&at_desk, "180 Ringing", "d"),
                desk(),
                now,
            )
            .expect("ringing reaches the caller");
        assert_eq!((ringing.code, ringing.settles), (180, None));
        let ok = p
            .on_response(
                &layer,
                &answer_to(&at_softphone, "200 OK", "s"),
                softphone(),
                now,
            )
            .expect("the answer reaches the caller");
        assert_eq!(ok.code, 200);
        let fork = ok.settles.expect("the first 2xx settles the fork");

        let cancels = p.forwarder.cancel_group(&layer, fork, now);
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
                &layer,
                &answer_to(&at_desk, "487 Request Terminated", "d"),
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
                &layer,
                &answer_to(&at_desk, "486 Busy Here", "d"),
                desk(),
                now
            )
            .is_none());
        let best = p
            .on_response(
                &layer,
                &answer_to(&at_softphone, "480 Temporarily Unavailable", "s"),
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
                &layer,
                &answer_to(&at_desk, "486 Busy Here", "d"),
                desk(),
                now
            )
            .is_none());
        tokio::time::advance(NO_ANSWER + Duration::from_secs(1)).await;
        let expired = p.forwarder.poll(&layer, Instant::now());
        assert!(expired.timed_out.is_empty(), "{expired:?}");
        assert_eq!(expired.relayed.len(), 1);
        assert_eq!(expired.relayed[0].code, 486);

        // A 6xx ends the fork at once.
        let p = proxy(bob_on_two_phones());
        let now = Instant::now();
        let (_, at_softphone) = ring_both(&p, &layer, now);
        let decline = p
            .on_response(
                &layer,
                &answer_to(&at_softphone, "603 Decline", "s"),
                softphone(),
                now,
            )
            .expect("a 6xx goes through at once");
        assert!(decline.settles.is_some());
    }

    /// Two prepared branches of an INVITE for bob, to the desk phone then the softphone.
    fn two_targets(p: &Proxy, original: &Request) -> Vec<(Request, SocketAddr)> {
        [
            ("sip:bob@10.0.0.21", desk()),
            ("sip:bob@10.0.0.22", softphone()),
        ]
        .into_iter()
        .map(|(uri, target)| {
            let uri = rsip::Uri::try_from(uri).unwrap();
            (
                p.forwarder
                    .prepare_initial(original, caller(), Some(uri), target),
                target,
            )
        })
        .collect()
    }

    fn serial() -> Mode {
        Mode::Serial {
            patience: Duration::from_secs(2),
        }
    }

    fn request_of(out: &Outbound) -> Request {
        match crate::message::parse(&out.bytes) {
            Ok(rsip::SipMessage::Request(request)) => request,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_serial_search_tries_the_next_target_when_the_first_answers_503() {
        let p = proxy(vec![]);
        let layer = TransactionLayer::default();
        let now = Instant::now();
        let original = invite("bob", "");
        let sent = p.start(&layer, &original, serial(), two_targets(&p, &original), now);
        assert_eq!(sent.len(), 1, "one target at a time");
        assert_eq!(sent[0].target, desk());
        let first = request_of(&sent[0]);

        let handled = p.forwarder.on_response(
            &layer,
            &answer_to(&first, "503 Service Unavailable", "d"),
            None,
            desk(),
            now,
        );
        assert!(handled.relay.is_none(), "the caller does not see the 503");
        assert_eq!(
            handled.send.len(),
            1,
            "the same INVITE goes to the next target"
        );
        assert_eq!(handled.send[0].target, softphone());
        let second = request_of(&handled.send[0]);
        assert_eq!(second.uri.to_string(), "sip:bob@10.0.0.22");
        assert_eq!(
            crate::message::call_id(&second.headers),
            Some("c1"),
            "within the caller's one transaction"
        );

        let ok = p
            .on_response(&layer, &answer_to(&second, "200 OK", "s"), softphone(), now)
            .expect("the second target's answer reaches the caller");
        assert_eq!(ok.code, 200);
        assert!(ok.first_answer);
        assert!(
            p.forwarder
                .cancel(&layer, &Key::of_request(&original).unwrap(), now)
                == Cancelled::Pending(Vec::new()),
            "answered: nothing left to cancel"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_serial_search_cancels_a_silent_target_and_tries_the_next_after_its_patience() {
        let p = proxy(vec![]);
        let layer = TransactionLayer::default();
        let now = Instant::now();
        let original = invite("bob", "");
        let sent = p.start(&layer, &original, serial(), two_targets(&p, &original), now);
        assert_eq!(sent[0].target, desk());

        tokio::time::advance(Duration::from_millis(1900)).await;
        let expired = p.forwarder.poll(&layer, Instant::now());
        assert!(
            expired.send.is_empty(),
            "still within its patience: {expired:?}"
        );

        tokio::time::advance(Duration::from_millis(200)).await;
        let expired = p.forwarder.poll(&layer, Instant::now());
        assert!(expired.timed_out.is_empty() && expired.relayed.is_empty());
        let targets: Vec<(SocketAddr, String)> = expired
            .send
            .iter()
            .map(|out| (out.target, request_of(out).method.to_string()))
            .collect();
        assert_eq!(
            targets,
            vec![
                (desk(), "CANCEL".to_string()),
                (softphone(), "INVITE".to_string())
            ]
        );
        // The second target rings (Timer C now) and answers.
        let second = request_of(&expired.send[1]);
        let ringing = p
            .on_response(
                &layer,
                &answer_to(&second, "180 Ringing", "s"),
                softphone(),
                now,
            )
            .expect("ringing reaches the caller");
        assert_eq!(ringing.code, 180);
        tokio::time::advance(Duration::from_secs(10)).await;
        let expired = p.forwarder.poll(&layer, Instant::now());
        assert!(expired.send.is_empty() && expired.timed_out.is_empty());
    }

    #[test]
    fn a_serial_search_fails_over_on_408_and_500_to_503_but_not_on_504_and_above() {
        for code in [408, 500, 501, 502, 503] {
            assert!(fails_over(code), "{code}");
        }
        for code in [404, 486, 504, 505, 513, 580, 603] {
            assert!(!fails_over(code), "{code}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_serial_search_ends_at_a_6xx_or_4xx_and_at_the_last_failure_gives_the_best() {
        // 603 from the first target: the caller gets it, nobody else is tried.
        let p = proxy(vec![]);
        let layer = TransactionLayer::default();
        let now = Instant::now();
        let original = invite("bob", "");
        let sent = p.start(&layer, &original, serial(), two_targets(&p, &original), now);
        let handled = p.forwarder.on_response(
            &layer,
            &answer_to(&request_of(&sent[0]), "603 Decline", "d"),
            None,
            desk(),
            now,
        );
        assert_eq!(handled.relay.map(|r| r.code), Some(603));
        assert!(handled.send.is_empty());

        // 486 ends the search too (busy is an answer, not a failure).
        let p = proxy(vec![]);
        let sent = p.start(&layer, &original, serial(), two_targets(&p, &original), now);
        let handled = p.forwarder.on_response(
            &layer,
            &answer_to(&request_of(&sent[0]), "486 Busy Here", "d"),
            None,
            desk(),
            now,
        );
        assert_eq!(handled.relay.map(|r| r.code), Some(486));
        assert!(handled.send.is_empty());

        // 503 then 500: every target failed, the caller gets the better of the two.
        let p = proxy(vec![]);
        let sent = p.start(&layer, &original, serial(), two_targets(&p, &original), now);
        let handled = p.forwarder.on_response(
            &layer,
            &answer_to(&request_of(&sent[0]), "503 Service Unavailable", "d"),
            None,
            desk(),
            now,
        );
        let handled = p.forwarder.on_response(
            &layer,
            &answer_to(
                &request_of(&handled.send[0]),
                "500 Server Internal Error",
                "s",
            ),
            None,
            softphone(),
            now,
        );
        assert_eq!(handled.relay.map(|r| r.code), Some(500));
        assert!(handled.send.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancel_from_the_caller_stops_a_serial_search() {
        let p = proxy(vec![]);
        let layer = TransactionLayer::default();
        let now = Instant::now();
        let original = invite("bob", "");
        let sent = p.start(&layer, &original, serial(), two_targets(&p, &original), now);
        let Cancelled::Pending(cancels) =
            p.forwarder
                .cancel(&layer, &Key::of_request(&original).unwrap(), now)
        else {
            panic!("known");
        };
        assert_eq!(cancels.len(), 1);
        assert_eq!(cancels[0].target, desk());
        let terminated = p.forwarder.on_response(
            &layer,
            &answer_to(&request_of(&sent[0]), "487 Request Terminated", "d"),
            None,
            desk(),
            now,
        );
        assert_eq!(terminated.relay.map(|r| r.code), Some(487));
        assert!(terminated.send.is_empty(), "no next target after a CANCEL");
    }

    #[test]
    fn each_router_decision_kind_is_what_the_node_acts_on() {
        // Answer here (the node's own), refuse, and forward in parallel: the location
        // router's three kinds.
        let p = proxy(bob_on_two_phones());
        let inquiry = |request: &Request| {
            let request = request.clone();
            move |router: &LocationRouter| {
                router.route(&Inquiry {
                    request: &request,
                    source: caller(),
                    peers: &[],
                    now: SystemTime::now(),
                })
            }
        };
        let options = request(
            "OPTIONS sip:bob@127.0.84.10 SIP/2.0",
            "To: <sip:bob@127.0.84.10>\r\n",
        );
        assert_eq!(inquiry(&options)(&p.router), Route::Local);
        assert_eq!(
            inquiry(&invite("mallory", ""))(&p.router),
            Route::refuse(StatusCode::NotFound, "Not Found")
        );
        let Route::Parallel(targets) = inquiry(&invite("bob", ""))(&p.router) else {
            panic!("parallel");
        };
        let mut addrs: Vec<SocketAddr> = targets.iter().map(|t| t.addr).collect();
        addrs.sort();
        assert_eq!(addrs, vec![desk(), softphone()]);
    }

    #[test]
    fn the_node_s_via_names_the_transport_the_request_really_leaves_on() {
        let p = proxy(vec![]);
        let original = invite("bob", "");
        let via_of = |request: &Request| {
            request
                .headers
                .iter()
                .find_map(|h| match h {
                    Header::Via(via) => Some(via.value().to_string()),
                    _ => None,
                })
                .unwrap()
        };
        let over_udp = p
            .forwarder
            .prepare_initial(&original, caller(), None, desk());
        assert!(via_of(&over_udp).starts_with("SIP/2.0/UDP 127.0.84.10:5060;"));
        for (transport, token) in [
            (Transport::Tls, "TLS"),
            (Transport::Wss, "WSS"),
            (Transport::Tcp, "TCP"),
        ] {
            let (_open, _queue) = p.forwarder.streams().open(desk(), transport);
            let over_stream = p
                .forwarder
                .prepare_initial(&original, caller(), None, desk());
            assert!(
                via_of(&over_stream).starts_with(&format!("SIP/2.0/{token} 127.0.84.10:5060;")),
                "{}",
                via_of(&over_stream)
            );
        }
    }
}
