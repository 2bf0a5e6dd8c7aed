//! One server's SIP behaviour: the pipeline every message it receives goes through.
//!
//! A request reads top to bottom:
//! 1. **transport** → [`Node::receive`] (the [`Inbound`] the transports hand frames to);
//! 2. **transaction**: a retransmission is answered from the server transaction's memory
//!    and goes no further;
//! 3. **policy** ([`policy`]): what the configuration refuses (Restrict Direct,
//!    Interconnect, a node refusing new calls);
//! 4. by what it asks for: a CANCEL follows its INVITE ([`Forwarder::cancel`]); a request
//!    that names the node in its Route goes on along its route set (loose routing; a new
//!    one only on a Dispatcher, from one of its switches: a call along the Path it gave a
//!    phone's REGISTER); a REGISTER goes to the [`Registrar`] (beside the proxy path,
//!    never through it); OPTIONS is answered here; an initial INVITE is checked (caller
//!    authorization, call admission under the node's limits) and handed to the role's
//!    [`Router`]. A Dispatcher does none of that itself: every new request but ACK and
//!    CANCEL goes to its router (which balances it over the switches, who authenticate and
//!    admit), save the OPTIONS the router leaves to the node, and under AnyReg
//!    ([`crate::DispatchConfig::any_reg`]) the REGISTERs, which its registrar answers as
//!    the phones' edge (a Path naming itself in each binding);
//! 5. **forwarder** ([`Forwarder`]): the stateful proxy core sends what the router decided,
//!    in parallel or in series, and relays the answers;
//! 6. back down to the **transport**: what [`Node::receive`] returns goes back where the
//!    message came from; what is meant for a third party leaves through the node's outbound
//!    queue (drained by its UDP loop) or the stream connection its peer holds open.
//!
//! Responses go to the client transaction they answer and on to the forwarder; answers to
//! the node's own keep-alives and upstream registrations are claimed by those services.
//! Everything the node learns of a call is emitted as one [`DialogEvent`], in one place
//! ([`Node::emit`]); call admission is its first consumer. Timers run in a task of their
//! own ([`run_timers`]), not in any transport's loop.

pub mod policy;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rsip::headers::UntypedHeader;
use rsip::{Header, Method, Request, SipMessage, StatusCode};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::NodeConfig;
use crate::dialog::{answer_ends, bye, caller_of, DialogEvent, DialogObserver};
use crate::directory::domain_of;
use crate::forward::rewrite::{invite_key_of, max_forwards_refusal};
use crate::forward::{Caller, Cancelled, Forwarder, Mode, Relayed};
use crate::health::Switches;
use crate::keepalive::KeepAlive;
use crate::limits::{CallFigures, Calls, Full};
use crate::message::{
    call_id, cseq_number, encode_response_to, header_param, is_known_method, is_token, parse,
    reason_phrase, request_method_token, salvage_request_headers, to_tag, udp_response_target,
};
use crate::registrar::{Registrar, Site};
use crate::route::{Inquiry, Route, Router, Target};
use crate::trace::{TraceTarget, Tracer};
use crate::transaction::{Key, Outbound, Received, ResponseDisposition, TransactionLayer};
use crate::transport::{udp, FrameError, Inbound, Outlet, Reply, Streams, Transport};
use crate::uac::Uac;

pub use crate::config::NodeRole;

/// How a client transaction the node started ends: its final response, or why none came.
pub type ClientOutcome =
    tokio::sync::oneshot::Receiver<Result<rsip::Response, crate::transaction::ClientError>>;

/// Counters a node keeps about its own traffic. Plain atomics: read by the control plane at
/// any moment without stopping the node.
#[derive(Debug, Default)]
pub struct NodeStats {
    pub requests: AtomicU64,
    pub responses: AtomicU64,
    pub bad_requests: AtomicU64,
    pub dropped: AtomicU64,
}

/// A snapshot of [`NodeStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    pub requests: u64,
    pub responses: u64,
    pub bad_requests: u64,
    pub dropped: u64,
}

impl NodeStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            responses: self.responses.load(Ordering::Relaxed),
            bad_requests: self.bad_requests.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// The methods every node serves; everything else RFC 3261 defines gets 405 with the list.
const ALWAYS_ALLOWED: &[Method] = &[Method::Options];

/// The reason phrase of a 503 for a node at its limits.
pub const AT_CAPACITY: &str = "Server at max cps / channels";

/// How long a Dispatcher waits for a switch's first answer to an INVITE before it tries
/// the next switch: a live switch sends 100 Trying at once, so two seconds of silence mean
/// it is gone (well before the caller's own 32 s give up).
pub const SWITCH_PATIENCE_INVITE: std::time::Duration = std::time::Duration::from_secs(2);

/// The same for other requests, which get no 100 from a switch and wait for the switch's
/// own final answer (a phone's to a MESSAGE, say): longer, so a slow answer is not
/// mistaken for a dead switch and the request sent twice.
pub const SWITCH_PATIENCE: std::time::Duration = std::time::Duration::from_secs(8);

/// The methods a Dispatcher passes on to its switches, beside OPTIONS: what `Allow` says.
const DISPATCHED: &[Method] = &[
    Method::Invite,
    Method::Ack,
    Method::Cancel,
    Method::Bye,
    Method::Register,
    Method::Message,
    Method::Subscribe,
    Method::Notify,
    Method::Refer,
    Method::Info,
    Method::Update,
    Method::PRack,
    Method::Publish,
];

/// Messages waiting for the node's UDP loop: what the forwarder sends on or relays,
/// retransmissions, upstream registrations. When full, the forwarder drops (as UDP would,
/// and retransmission makes up for it); timers wait. (Keep-alives do not queue: their task
/// sends each batch itself, see [`crate::transport::Outlet`].)
const OUTBOUND_QUEUE: usize = 1024;

/// What the node answers a request with, when it answers it itself.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    /// Replaces the status's reason phrase when it would hide the cause.
    reason: Option<Cow<'static, str>>,
    headers: Vec<Header>,
}

impl Answer {
    fn new(status: StatusCode, headers: Vec<Header>) -> Self {
        Answer {
            status,
            reason: None,
            headers,
        }
    }

    fn why(status: StatusCode, reason: &'static str) -> Self {
        Answer {
            status,
            reason: Some(Cow::Borrowed(reason)),
            headers: Vec::new(),
        }
    }
}

/// What became of a request.
#[derive(Debug)]
enum Served {
    /// Handled (forwarded, or absorbed): send this back, if anything.
    Done(Option<Reply>),
    /// Answer it so, in its server transaction.
    Answer(Answer),
}

/// One running server's SIP logic, shared by its transports and tasks.
#[derive(Debug)]
pub struct Node {
    role: NodeRole,
    /// Sent as `Server:` so a peer (and the console) can tell which build answers.
    server_header: Header,
    /// To-tag for responses this node generates statelessly.
    to_tag: String,
    stats: NodeStats,
    /// Absorbs retransmitted requests and retransmits what UDP may lose; [`run_timers`]
    /// drives its timers.
    transactions: TransactionLayer,
    /// Serves REGISTER when the control plane gave the engine SIP users; without it REGISTER
    /// gets 405 like any method this node does not serve. A Dispatcher's serves only under
    /// AnyReg (otherwise its REGISTERs are balanced) and never challenges a call.
    registrar: Option<Registrar>,
    /// What the node runs, published to its background services. Read on every request
    /// (a short read lock, never held across an `.await`), written when the control plane
    /// pushes a change.
    config: watch::Sender<NodeConfig>,
    /// NAT keep-alives to the contacts registered at this node; it also recognises their
    /// replies, which match no client transaction.
    keepalive: Option<Arc<KeepAlive>>,
    /// Decides where initial INVITEs go; `None` leaves INVITE unserved (405).
    router: Option<Arc<dyn Router>>,
    /// Sends what the router decided and relays the answers; present with a router.
    forwarder: Option<Forwarder>,
    /// The domain of the node's users (its IP): the realm a caller claiming one of them is
    /// challenged in.
    domain: String,
    /// The calls holding this node's channels, checked against its limits.
    calls: Arc<Calls>,
    /// Told every dialog event, `calls` first.
    observers: Vec<Arc<dyn DialogObserver>>,
    /// Its own registration upstream (UAC Auth), driven by [`crate::uac::run`].
    uac: Arc<Uac>,
    /// Where messages for a third party go: the UDP loop sends them from the node's socket.
    outbound: mpsc::Sender<Outbound>,
    /// The node's UDP socket itself, when it has one ([`Node::with_socket`]): what the
    /// handling of a message sends leaves from the thread that handled it, with no queue
    /// and no other thread to wake (on a busy Dispatcher that hand-over cost an eighth of
    /// its CPU). Retransmissions and the background services still use `outbound`.
    socket: Option<udp::Sender>,
    /// The other end of `outbound`, until the UDP loop takes it ([`Node::take_outgoing`]).
    outgoing: Mutex<Option<mpsc::Receiver<Outbound>>>,
    /// The stream connections open to this node: what is sent to one of their peers goes
    /// down the connection, not out of the UDP socket.
    streams: Arc<Streams>,
    /// Hands copies of messages to the node's trace shipper.
    tracer: Tracer,
    /// A Dispatcher's switches: it claims the answers to their probes.
    switches: Option<Arc<Switches>>,
}

impl Node {
    pub fn new(role: NodeRole, build: &str) -> Self {
        let calls = Arc::new(Calls::default());
        let (outbound, outgoing) = mpsc::channel(OUTBOUND_QUEUE);
        Node {
            role,
            server_header: Header::Server(rsip::headers::Server::new(format!("sipfleet/{build}"))),
            to_tag: format!("{:016x}", rand::random::<u64>()),
            stats: NodeStats::default(),
            transactions: TransactionLayer::default(),
            registrar: None,
            config: watch::Sender::new(NodeConfig::default()),
            keepalive: None,
            router: None,
            forwarder: None,
            domain: String::new(),
            observers: vec![calls.clone()],
            calls,
            uac: Arc::default(),
            outbound,
            socket: None,
            outgoing: Mutex::new(Some(outgoing)),
            streams: Arc::default(),
            tracer: Tracer::new().0,
            switches: None,
        }
    }

    /// The same node, sending what it forwards and relays straight from `socket` (a clone
    /// of its UDP socket) instead of through the outbound queue.
    pub fn with_socket(mut self, socket: udp::Sender) -> Self {
        self.socket = Some(socket);
        self
    }

    /// The same node, probing and counting `switches` (a Dispatcher's): it hands them the
    /// answers to their probes and tells them every dialog event (calls in progress per
    /// switch).
    pub fn with_switches(mut self, switches: Arc<Switches>) -> Self {
        self.observers.push(switches.clone());
        self.switches = Some(switches);
        self
    }

    /// A Dispatcher's switches, when it has them.
    pub fn switches(&self) -> Option<&Arc<Switches>> {
        self.switches.as_ref()
    }

    /// The same node, serving REGISTER with `registrar`.
    pub fn with_registrar(mut self, registrar: Registrar) -> Self {
        self.registrar = Some(registrar);
        self
    }

    /// The same node, keeping its registered contacts' NAT mappings open with `keepalive`
    /// (driven by [`crate::keepalive::run`]).
    pub fn with_keepalive(mut self, keepalive: KeepAlive) -> Self {
        self.keepalive = Some(Arc::new(keepalive));
        self
    }

    /// The same node, routing initial INVITEs with `router` and forwarding them from
    /// `local` (its UDP address, written in Via and Record-Route).
    pub fn with_router(mut self, router: Arc<dyn Router>, local: SocketAddr) -> Self {
        self.router = Some(router);
        self.forwarder = Some(Forwarder::new(local, self.streams.clone()));
        self.domain = domain_of(local.ip());
        self
    }

    /// The same node, also telling `observer` every dialog event.
    pub fn with_observer(mut self, observer: Arc<dyn DialogObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// The same node, tracing through `tracer` (whose queue [`crate::trace::run`] drains).
    pub fn with_tracer(mut self, tracer: Tracer) -> Self {
        self.tracer = tracer;
        self
    }

    /// Replaces what the node runs with `config`, effective from the next request; its
    /// services see the change on their [`subscribe`](Self::subscribe)d receivers.
    pub fn configure(&self, config: NodeConfig) {
        self.config.send_replace(config);
    }

    /// The configuration the node runs now.
    pub fn config(&self) -> NodeConfig {
        self.config.borrow().clone()
    }

    /// A receiver of the node's configuration, for a background service.
    pub fn subscribe(&self) -> watch::Receiver<NodeConfig> {
        self.config.subscribe()
    }

    /// The queue of datagrams for the node's UDP loop; `None` once taken.
    pub fn take_outgoing(&self) -> Option<mpsc::Receiver<Outbound>> {
        self.outgoing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// A sender into the node's UDP queue, for its UAC service.
    pub fn outbound(&self) -> mpsc::Sender<Outbound> {
        self.outbound.clone()
    }

    /// The node's upstream registration.
    pub fn uac(&self) -> &Arc<Uac> {
        &self.uac
    }

    /// The calls this node carries.
    pub fn calls(&self) -> &Calls {
        &self.calls
    }

    /// Channels in use and calls in the last second, as the console shows them.
    pub fn call_figures(&self) -> CallFigures {
        self.calls.figures(Instant::now())
    }

    /// The node's stream connections, for a router that reaches phones over them.
    pub fn streams_handle(&self) -> Arc<Streams> {
        self.streams.clone()
    }

    pub fn forwarder(&self) -> Option<&Forwarder> {
        self.forwarder.as_ref()
    }

    pub fn tracer(&self) -> &Tracer {
        &self.tracer
    }

    pub fn keepalive(&self) -> Option<&Arc<KeepAlive>> {
        self.keepalive.as_ref()
    }

    pub fn registrar(&self) -> Option<&Registrar> {
        self.registrar.as_ref()
    }

    /// The node's transaction layer.
    pub fn transactions(&self) -> &TransactionLayer {
        &self.transactions
    }

    pub fn role(&self) -> NodeRole {
        self.role
    }

    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// Tells every observer `event`.
    fn emit(&self, event: DialogEvent<'_>) {
        for observer in &self.observers {
            observer.on_dialog(&event);
        }
    }

    /// The earliest instant at which [`poll`](Self::poll) has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let forwarder = self.forwarder.as_ref().and_then(Forwarder::next_deadline);
        match (self.transactions.next_deadline(), forwarder) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires the timers due at `now`: retransmissions, the next target of a serial search
    /// whose branch went silent, and 408 to the callers of forwarded requests that got no
    /// final response. Returns what to send (traced already).
    pub fn poll(&self, now: Instant) -> Vec<Outbound> {
        let out = self.poll_timers(now);
        for sent in &out {
            self.trace_out(&sent.bytes, sent.target);
        }
        out
    }

    fn poll_timers(&self, now: Instant) -> Vec<Outbound> {
        let mut out = self.transactions.poll(now);
        self.calls.sweep(now);
        let Some(forwarder) = &self.forwarder else {
            return out;
        };
        let expired = forwarder.poll(&self.transactions, now);
        out.extend(expired.send);
        for relayed in expired.relayed {
            out.push(self.record_relayed(relayed, now));
        }
        for timed_out in expired.timed_out {
            if let Some(call) = &timed_out.invite_call {
                self.emit(DialogEvent::Failed {
                    call_id: call,
                    code: 408,
                });
            }
            let reply = self.reply(
                &timed_out.headers,
                StatusCode::RequestTimeout,
                vec![],
                timed_out.source,
                Transport::Udp,
                None,
            );
            if let Some(key) = &timed_out.server {
                self.transactions
                    .server
                    .respond(key, 408, reply.clone(), Some(&self.to_tag), now);
            }
            out.push(reply);
        }
        out
    }

    /// A response the forwarder relays to a caller: told to the dialog's observers, and
    /// recorded in the caller's server transaction (which then retransmits it and absorbs
    /// the caller's retransmissions). Returns what to send.
    fn record_relayed(&self, relayed: Relayed, now: Instant) -> Outbound {
        if let Some(call) = &relayed.invite_call {
            match relayed.code {
                101..=199 => self.emit(DialogEvent::Early {
                    call_id: call,
                    code: relayed.code,
                }),
                200..=299 if relayed.first_answer => {
                    let callee = self
                        .forwarder
                        .as_ref()
                        .and_then(|f| answer_ends(f.local(), &relayed.response));
                    self.emit(DialogEvent::Confirmed {
                        call_id: call,
                        callee,
                        offer: relayed.offer.as_deref().unwrap_or_default(),
                        answer: &relayed.response.body,
                    });
                }
                300.. => self.emit(DialogEvent::Failed {
                    call_id: call,
                    code: relayed.code,
                }),
                _ => {}
            }
        }
        if let Some(key) = &relayed.server {
            self.transactions.server.respond(
                key,
                relayed.code,
                relayed.out.clone(),
                relayed.to_tag.as_deref(),
                now,
            );
        }
        relayed.out
    }

    /// Ends every answered call the node carries, as a proxy can for the two ends it stands
    /// between: a BYE to each end on behalf of the other, with an RFC 3326 `Reason`, each in
    /// a client transaction (retransmitted over UDP until answered, while the node runs).
    /// The calls' channels are free at once. Returns how many calls it ended and the BYEs'
    /// outcomes, for a caller that waits for the answers before stopping the node.
    pub fn hang_up(&self, reason: &str) -> (usize, Vec<ClientOutcome>) {
        let Some(forwarder) = &self.forwarder else {
            return (0, Vec::new());
        };
        let dialogs = self.calls.take_dialogs();
        let now = Instant::now();
        let mut outcomes = Vec::with_capacity(dialogs.len() * 2);
        for dialog in &dialogs {
            for (to, from) in [
                (&dialog.callee, &dialog.caller),
                (&dialog.caller, &dialog.callee),
            ] {
                let Some((bye, target)) = bye(
                    forwarder.local(),
                    &self.streams,
                    &dialog.call_id,
                    to,
                    from,
                    reason,
                ) else {
                    tracing::debug!(call = %dialog.call_id, contact = %to.contact, "no way to send a BYE");
                    continue;
                };
                let transport = self.streams.transport_to(target);
                match self.transactions.client.start(bye, target, transport, now) {
                    Ok(handle) => {
                        self.send_out(handle.first);
                        outcomes.push(handle.outcome);
                    }
                    Err(error) => tracing::warn!(%error, "cannot start the transaction of a BYE"),
                }
            }
        }
        (dialogs.len(), outcomes)
    }

    /// Traces `out` and sends it down the stream connection of its target if one is open;
    /// otherwise gives it back, for the UDP socket.
    fn route_out(&self, out: Outbound) -> Option<Outbound> {
        self.trace_out(&out.bytes, out.target);
        self.deliver_to_stream(out)
    }

    /// Sends a message for a third party: down its stream, or from the UDP socket, or
    /// through the outbound queue; dropped (like a lost datagram) when the queue is full or
    /// gone.
    fn send_out(&self, out: Outbound) {
        let Some(out) = self.route_out(out) else {
            return;
        };
        if let Some(socket) = &self.socket {
            socket.send(out);
            return;
        }
        if let Err(error) = self.outbound.try_send(out) {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%error, "outbound queue refused a message");
        }
    }

    /// Sends `out` down the stream connection of its target if one is open; otherwise
    /// gives it back, for the UDP socket.
    pub fn deliver_to_stream(&self, out: Outbound) -> Option<Outbound> {
        let target = out.target;
        self.streams
            .send(target, out.bytes)
            .err()
            .map(|bytes| Outbound { bytes, target })
    }

    /// Copies `bytes`, which the node sends to `peer` over its stream connection if one is
    /// open, else over UDP, to the trace, when the node traces. (The stream table is only
    /// looked at when it does.)
    fn trace_out(&self, bytes: &[u8], peer: SocketAddr) {
        if let Some(target) = self.trace_target() {
            let transport = self.streams.transport_to(peer);
            self.capture(target, bytes, peer, transport, false);
        }
    }

    fn trace_target(&self) -> Option<TraceTarget> {
        self.config.borrow().trace
    }

    /// Copies `bytes` to the trace, when the node traces: `inbound` from `peer`, or out to
    /// it.
    fn trace(&self, bytes: &[u8], peer: SocketAddr, transport: Transport, inbound: bool) {
        if let Some(target) = self.trace_target() {
            self.capture(target, bytes, peer, transport, inbound);
        }
    }

    fn capture(
        &self,
        target: TraceTarget,
        bytes: &[u8],
        peer: SocketAddr,
        transport: Transport,
        inbound: bool,
    ) {
        let (source, destination) = if inbound {
            (peer, target.node)
        } else {
            (target.node, peer)
        };
        self.tracer
            .capture(target, bytes, source, destination, transport.is_reliable());
    }

    /// Handles one message from `source`: what to answer it with, if anything. Both are
    /// traced.
    pub fn handle(&self, bytes: &[u8], source: SocketAddr, transport: Transport) -> Option<Reply> {
        self.trace(bytes, source, transport, true);
        let reply = self.handle_message(bytes, source, transport);
        if let Some(reply) = &reply {
            self.trace(&reply.bytes, reply.target, transport, false);
        }
        reply
    }

    fn handle_message(
        &self,
        bytes: &[u8],
        source: SocketAddr,
        transport: Transport,
    ) -> Option<Reply> {
        // Answers to keep-alives are most of what a registrar receives between bursts of
        // REGISTERs: read their Call-ID and code without parsing the whole response.
        if let (Some(keepalive), Some((code, call_id))) =
            (&self.keepalive, crate::keepalive::answer_of(bytes))
        {
            if keepalive.on_answer(call_id, code, Instant::now()) {
                return None;
            }
        }
        match parse(bytes) {
            Ok(SipMessage::Request(request)) => self.on_request(&request, bytes, source, transport),
            Ok(SipMessage::Response(response)) => {
                self.on_response(&response, bytes, source, transport)
            }
            Err(_) => {
                // rsip only knows the methods it names: a well-formed request with an
                // extension method gets 501, not 400.
                if let Some(method) = request_method_token(bytes) {
                    if is_token(method) && !is_known_method(method) {
                        if let Some(headers) = salvage_request_headers(bytes) {
                            self.stats.requests.fetch_add(1, Ordering::Relaxed);
                            return Some(self.reply(
                                &headers,
                                StatusCode::NotImplemented,
                                vec![self.allow_header()],
                                source,
                                transport,
                                None,
                            ));
                        }
                    }
                }
                self.reject(bytes, source, transport, "Malformed Request")
            }
        }
    }

    /// A request, from the transaction layer down to its answer.
    fn on_request(
        &self,
        request: &Request,
        bytes: &[u8],
        source: SocketAddr,
        transport: Transport,
    ) -> Option<Reply> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        // A request without the headers a response must copy cannot be answered properly;
        // treat it as malformed.
        if !has_core_headers(&request.headers) {
            return self.reject(bytes, source, transport, "Missing Mandatory Header");
        }
        let now = Instant::now();
        let key = Key::of_request(request);
        if let Some(key) = &key {
            let is_ack = request.method == Method::Ack;
            match self.transactions.server.receive(
                key,
                is_ack,
                to_tag(&request.headers),
                transport,
                now,
            ) {
                Received::Retransmission(resend) => {
                    return resend.map(|out| {
                        self.stats.responses.fetch_add(1, Ordering::Relaxed);
                        Reply {
                            bytes: out.bytes,
                            target: if transport.is_reliable() {
                                source
                            } else {
                                out.target
                            },
                        }
                    });
                }
                Received::Unmatched | Received::New | Received::Untracked => {}
            }
        }
        let answer = match self.serve(request, key.as_ref(), source, transport, now) {
            Served::Done(reply) => return reply,
            Served::Answer(answer) => answer,
        };
        let code = answer.status.code();
        let reply = self.reply(
            &request.headers,
            answer.status,
            answer.headers,
            source,
            transport,
            answer.reason.as_deref(),
        );
        // A REGISTER's digest challenge is sent statelessly, as registrars commonly do: the
        // transaction would hold a response that any retransmission can get afresh (with a
        // new nonce), for 32 s, for every phone that registers.
        let stateless_challenge = request.method == Method::Register && matches!(code, 401 | 407);
        if let Some(key) = &key {
            if stateless_challenge {
                self.transactions.server.forget(key);
            } else {
                self.transactions
                    .server
                    .respond(key, code, reply.clone(), Some(&self.to_tag), now);
            }
        }
        Some(reply)
    }

    /// What a new (not retransmitted) request gets: steps 3 to 5 of the pipeline.
    fn serve(
        &self,
        request: &Request,
        key: Option<&Key>,
        source: SocketAddr,
        transport: Transport,
        now: Instant,
    ) -> Served {
        let refused = policy::refusal(&self.config.borrow(), &request.method, source, || {
            self.is_sibling(source)
        });
        if let Some(refusal) = refused {
            return Served::Answer(Answer {
                status: refusal.status,
                reason: Some(refusal.reason),
                headers: refusal.headers,
            });
        }
        if let Some(forwarder) = &self.forwarder {
            if request.method == Method::Cancel {
                if let Some(key) = key {
                    return self.cancel(forwarder, key, now);
                }
            }
            if request
                .headers
                .iter()
                .any(|h| matches!(h, Header::Route(_)))
            {
                // A Dispatcher's switch sends a call for a phone registered through
                // the Dispatcher along the Path it gave: that new request is relayed.
                let trusted = self.role == NodeRole::Dispatcher
                    && self
                        .config
                        .borrow()
                        .dispatch
                        .as_ref()
                        .is_some_and(|d| d.switches.iter().any(|s| s.addr.ip() == source.ip()));
                match forwarder.loose_route_from(request, source, trusted) {
                    Some(Ok((forwarded, target))) => {
                        return self.forward_in_dialog(
                            forwarder, request, key, source, transport, forwarded, target, now,
                        )
                    }
                    Some(Err(_)) if request.method == Method::Ack => return Served::Done(None),
                    Some(Err((status, reason))) => {
                        return Served::Answer(Answer::why(status, reason))
                    }
                    None => {}
                }
            }
        }
        match (&request.method, &self.registrar, &self.router) {
            // ACK never gets a response (RFC 3261 §17.2.1); one that no transaction
            // absorbed and no route carries acknowledges a 2xx not sent through here.
            (Method::Ack, _, _) => Served::Done(None),
            (Method::Register, Some(registrar), _) if self.registers() => {
                self.register(registrar, request, source, transport)
            }
            (method, _, Some(router))
                if self.role == NodeRole::Dispatcher
                    && *method != Method::Cancel
                    && to_tag(&request.headers).is_none() =>
            {
                self.call(router.as_ref(), request, key, source, transport, now)
            }
            (Method::Options, _, _) => {
                Served::Answer(Answer::new(StatusCode::OK, self.capabilities()))
            }
            (Method::Invite, _, Some(router)) if to_tag(&request.headers).is_none() => {
                self.call(router.as_ref(), request, key, source, transport, now)
            }
            _ => Served::Answer(Answer::new(
                StatusCode::MethodNotAllowed,
                vec![self.allow_header()],
            )),
        }
    }

    /// Whether a REGISTER is the node's own registrar's: always on a Switch; on a
    /// Dispatcher only under AnyReg ([`crate::DispatchConfig::any_reg`]), else it is
    /// balanced to the switches like any new request.
    fn registers(&self) -> bool {
        match self.role {
            NodeRole::Switch => true,
            NodeRole::Dispatcher => self
                .config
                .borrow()
                .dispatch
                .as_ref()
                .is_some_and(|dispatch| dispatch.any_reg),
        }
    }

    /// A REGISTER, answered by the node's registrar under the node's names. A Dispatcher
    /// (AnyReg) registers as the phone's edge: its own address goes first in the binding's
    /// Path ([`Site::edge`]).
    fn register(
        &self,
        registrar: &Registrar,
        request: &Request,
        source: SocketAddr,
        transport: Transport,
    ) -> Served {
        let config = self.config.borrow();
        let fqdn = config.fqdn.as_deref().map(str::to_ascii_lowercase);
        let aliases: Vec<&str> = fqdn.iter().map(String::as_str).collect();
        let edge = match self.role {
            NodeRole::Dispatcher => self.forwarder.as_ref().map(Forwarder::local),
            NodeRole::Switch => None,
        };
        let site = Site {
            domain: &self.domain,
            aliases: &aliases,
            algorithms: Some(config.digest.algorithms()),
            edge,
        };
        let answer = registrar.register_at(request, source, transport, &site, SystemTime::now());
        Served::Answer(Answer {
            status: answer.status,
            reason: answer.reason.map(Cow::Borrowed),
            headers: answer.headers,
        })
    }

    /// A CANCEL: 200 and CANCELs downstream when its INVITE is being forwarded, else 481.
    fn cancel(&self, forwarder: &Forwarder, key: &Key, now: Instant) -> Served {
        match forwarder.cancel(&self.transactions, &invite_key_of(key), now) {
            Cancelled::Unknown => Served::Answer(Answer::why(
                StatusCode::CallTransactionDoesNotExist,
                "Call/Transaction Does Not Exist",
            )),
            Cancelled::Pending(downstream) => {
                for out in downstream {
                    self.send_out(out);
                }
                Served::Answer(Answer::why(StatusCode::OK, "OK"))
            }
        }
    }

    /// A new request for the router. On a Switch, an initial INVITE: the caller authorized,
    /// the call admitted under the node's limits (or handed to its capacity failover). On a
    /// Dispatcher, any new request, neither authorized nor limited here: its switches do
    /// both, under the cluster's budget. Then routed and forwarded.
    fn call(
        &self,
        router: &dyn Router,
        request: &Request,
        key: Option<&Key>,
        source: SocketAddr,
        transport: Transport,
        now: Instant,
    ) -> Served {
        let dispatcher = self.role == NodeRole::Dispatcher;
        let invite = request.method == Method::Invite;
        if let (Some(registrar), false) = (&self.registrar, dispatcher) {
            let config = self.config.borrow();
            let fqdn = config.fqdn.as_deref().map(str::to_ascii_lowercase);
            let aliases: Vec<&str> = fqdn.iter().map(String::as_str).collect();
            let site = Site {
                domain: &self.domain,
                aliases: &aliases,
                algorithms: Some(config.digest.algorithms()),
                edge: None,
            };
            let authorized = registrar.authorize_caller_at(request, &site, SystemTime::now());
            drop(config);
            if let Err(answer) = authorized {
                return Served::Answer(Answer {
                    status: answer.status,
                    reason: answer.reason.map(Cow::Borrowed),
                    headers: answer.headers,
                });
            }
        }
        if let Some((status, reason)) = max_forwards_refusal(request) {
            return Served::Answer(Answer::why(status, reason));
        }
        let (limits, failover, peers, locations) = {
            let config = self.config.borrow();
            // Where the callee may be registered: this node, its cluster, and the servers
            // that share their registrations with it.
            let mut locations = config.cluster_peers.clone();
            if config.uac_location_sharing {
                locations.extend(config.sharing_peers.iter().copied());
            }
            let from_peer = config.cluster_peers.contains(&source.ip());
            if dispatcher {
                (None, None, from_peer, locations)
            } else {
                (config.limits, config.failover, from_peer, locations)
            }
        };
        let call = call_id(&request.headers).filter(|_| invite);
        // A new call takes a channel here, or goes to the failover member when this node is
        // full (unless a member handed it here already: it is not handed back), or is
        // refused. A Dispatcher's calls are counted (its figures, and its BYEs when it
        // stops), never limited.
        let mut admitted = None;
        let mut route = None;
        if let Some(call) = call {
            match self.calls.admit(call, limits, now) {
                Ok(()) => admitted = Some(call),
                Err(full) => match failover {
                    Some(target) if transport == Transport::Udp && !peers => {
                        route = Some(Route::Serial(vec![Target::direct(None, target)]));
                    }
                    _ => return Served::Answer(at_capacity(full)),
                },
            }
        }
        let route = route.unwrap_or_else(|| {
            router.route(&Inquiry {
                request,
                source,
                peers: &locations,
                now: SystemTime::now(),
            })
        });
        let failed = |code: u16| {
            if let Some(call) = admitted {
                self.emit(DialogEvent::Failed {
                    call_id: call,
                    code,
                });
            }
        };
        let not_allowed = || {
            Served::Answer(Answer::new(
                StatusCode::MethodNotAllowed,
                vec![self.allow_header()],
            ))
        };
        let Some(forwarder) = &self.forwarder else {
            failed(405);
            return not_allowed();
        };
        let (mode, targets) = match route {
            // The router leaves it to the node: an OPTIONS is answered, anything else is
            // not served here.
            Route::Local if request.method == Method::Options => {
                return Served::Answer(Answer::new(StatusCode::OK, self.capabilities()));
            }
            Route::Local => {
                failed(405);
                return not_allowed();
            }
            Route::Refuse {
                status,
                reason,
                retry_after,
            } => {
                failed(status.code());
                let mut answer = Answer::why(status, reason);
                if let Some(seconds) = retry_after {
                    answer
                        .headers
                        .push(Header::RetryAfter(rsip::headers::RetryAfter::new(
                            seconds.to_string(),
                        )));
                }
                return Served::Answer(answer);
            }
            Route::Parallel(targets) => (Mode::Parallel, targets),
            Route::Serial(targets) => {
                let patience = match (dispatcher, invite) {
                    (true, true) => SWITCH_PATIENCE_INVITE,
                    (true, false) => SWITCH_PATIENCE,
                    (false, _) => crate::forward::NO_ANSWER,
                };
                (Mode::Serial { patience }, targets)
            }
        };
        if targets
            .iter()
            .any(|target| target.addr == forwarder.local())
        {
            failed(482);
            return Served::Answer(Answer::why(StatusCode::LoopDetected, "Loop Detected"));
        }
        let branches: Vec<(Request, SocketAddr)> = targets
            .into_iter()
            .map(|target| {
                (
                    forwarder.prepare_routed(
                        request,
                        source,
                        target.uri,
                        target.addr,
                        &target.route,
                    ),
                    target.addr,
                )
            })
            .collect();
        // What the node needs to end the call itself later: the caller as the callee will
        // see it.
        let caller = branches
            .first()
            .filter(|_| invite)
            .and_then(|(forwarded, _)| caller_of(request, forwarded));
        // Told before the INVITE leaves: a callee may answer at once.
        if let (Some(call), Some(caller)) = (call, caller) {
            self.emit(DialogEvent::Invited {
                call_id: call,
                caller,
                offer: &request.body,
            });
        }
        if invite {
            self.send_trying(request, key, source, transport, now);
        }
        let sent = forwarder.forward(
            &self.transactions,
            self.caller(request, key, source, transport),
            mode,
            branches,
            now,
        );
        match sent {
            Ok(out) => out.into_iter().for_each(|out| self.send_out(out)),
            Err(error) => {
                failed(500);
                tracing::warn!(%error, "cannot start a client transaction");
                return Served::Answer(Answer::why(
                    StatusCode::ServerInternalError,
                    "Forwarding Failed",
                ));
            }
        }
        Served::Done(None)
    }

    /// A request inside a dialog, on its way along the route set to `target`.
    #[allow(clippy::too_many_arguments)]
    fn forward_in_dialog(
        &self,
        forwarder: &Forwarder,
        request: &Request,
        key: Option<&Key>,
        source: SocketAddr,
        transport: Transport,
        forwarded: Request,
        target: SocketAddr,
        now: Instant,
    ) -> Served {
        let is_ack = request.method == Method::Ack;
        // Told before it leaves: once the far end has it, the call may be ended at once,
        // and the BYE must count on from this request's CSeq.
        if let Some(call) = call_id(&request.headers) {
            if request.method == Method::Bye {
                self.emit(DialogEvent::Ended { call_id: call });
            } else if to_tag(&request.headers).is_some() {
                if let Some((from_tag, cseq)) = sender_of(request) {
                    self.emit(DialogEvent::InDialog {
                        call_id: call,
                        from_tag,
                        cseq,
                    });
                }
            }
        }
        if request.method == Method::Invite {
            self.send_trying(request, key, source, transport, now);
        }
        let sent = forwarder.forward(
            &self.transactions,
            self.caller(request, key, source, transport),
            Mode::Parallel,
            vec![(forwarded, target)],
            now,
        );
        match sent {
            Ok(out) => out.into_iter().for_each(|out| self.send_out(out)),
            Err(error) => {
                tracing::warn!(%error, "cannot start a client transaction");
                return if is_ack {
                    Served::Done(None)
                } else {
                    Served::Answer(Answer::why(
                        StatusCode::ServerInternalError,
                        "Forwarding Failed",
                    ))
                };
            }
        }
        Served::Done(None)
    }

    /// The caller of `request`, as the forwarder relays its answers to it: responses go
    /// back where a stream caller's connection is; over UDP, where its Via says (RFC 3261
    /// §18.2.2).
    fn caller(
        &self,
        request: &Request,
        key: Option<&Key>,
        source: SocketAddr,
        transport: Transport,
    ) -> Caller {
        Caller {
            server: key.cloned(),
            headers: request.headers.clone(),
            source,
            target: if transport.is_reliable() {
                source
            } else {
                udp_response_target(&request.headers, source)
            },
        }
    }

    /// 100 Trying for an INVITE about to be forwarded, so the caller stops retransmitting
    /// (RFC 3261 §16.2); recorded in its server transaction. It leaves by the path the
    /// relayed responses take, and before the INVITE does: whatever the callee answers
    /// reaches the caller after it, however the node's threads are scheduled (a 100 that
    /// overtook nothing but arrived after the 200 would be a stray to the caller).
    fn send_trying(
        &self,
        request: &Request,
        key: Option<&Key>,
        source: SocketAddr,
        transport: Transport,
        now: Instant,
    ) {
        let trying = self.reply(
            &request.headers,
            StatusCode::Trying,
            vec![],
            source,
            transport,
            None,
        );
        if let Some(key) = key {
            self.transactions
                .server
                .respond(key, 100, trying.clone(), None, now);
        }
        self.send_out(trying);
    }

    /// A response: to the client transaction it answers, and on to the forwarder; or to
    /// the service whose request it answers; or dropped as stray (RFC 3261 §18.1.2).
    fn on_response(
        &self,
        response: &rsip::Response,
        bytes: &[u8],
        source: SocketAddr,
        transport: Transport,
    ) -> Option<Reply> {
        let now = Instant::now();
        match self.transactions.client.receive_response(response, now) {
            ResponseDisposition::Matched { send } => {
                if let Some(forwarder) = &self.forwarder {
                    let handled = forwarder.on_response(
                        &self.transactions,
                        response,
                        reason_phrase(bytes),
                        source,
                        now,
                    );
                    for out in handled.send {
                        self.send_out(out);
                    }
                    if let Some(relayed) = handled.relay {
                        let settles = relayed.settles;
                        self.send_out(self.record_relayed(relayed, now));
                        if let Some(group) = settles {
                            for cancel in forwarder.cancel_group(&self.transactions, group, now) {
                                self.send_out(cancel);
                            }
                        }
                    }
                }
                send.map(|out| Reply {
                    bytes: out.bytes,
                    target: if transport.is_reliable() {
                        source
                    } else {
                        out.target
                    },
                })
            }
            ResponseDisposition::Stray => {
                if self.uac.on_response(response) {
                    return None;
                }
                let keepalive_reply = self
                    .keepalive
                    .as_ref()
                    .is_some_and(|keepalive| keepalive.on_response(response, now));
                let probe_reply = !keepalive_reply
                    && self
                        .switches
                        .as_ref()
                        .is_some_and(|switches| switches.on_response(response, now));
                if !keepalive_reply && !probe_reply {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
                None
            }
        }
    }

    /// Whether `source` is another server of the account this node belongs to.
    fn is_sibling(&self, source: SocketAddr) -> bool {
        // A Dispatcher's registrar serves AnyReg's REGISTERs only: what it lets through
        // stays as it was without one (its switches judge the calls).
        if self.role == NodeRole::Dispatcher {
            return false;
        }
        let (Some(registrar), Some(forwarder)) = (&self.registrar, &self.forwarder) else {
            return false;
        };
        if source.ip() == forwarder.local().ip() {
            return false;
        }
        let directory = registrar.directory();
        let own = directory.tenant(&self.domain);
        own.is_some() && own == directory.tenant(&domain_of(source.ip()))
    }

    /// Answers what is left of a stream that could not be framed, when it starts with a
    /// request that can still be identified.
    pub fn reject_unframeable(
        &self,
        bytes: &[u8],
        source: SocketAddr,
        transport: Transport,
        error: &FrameError,
    ) -> Option<Reply> {
        let reason = match error {
            FrameError::HeadTooLong => "Message Too Large",
            FrameError::BodyTooLong => "Message Too Large",
            FrameError::BadContentLength => "Bad Content-Length",
        };
        self.reject(bytes, source, transport, reason)
    }

    /// 400 with a reason when the input is a request we can identify, else a silent drop.
    fn reject(
        &self,
        bytes: &[u8],
        source: SocketAddr,
        transport: Transport,
        reason: &str,
    ) -> Option<Reply> {
        let Some(headers) = salvage_request_headers(bytes) else {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        if request_method_token(bytes) == Some("ACK") {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.stats.bad_requests.fetch_add(1, Ordering::Relaxed);
        Some(self.reply(
            &headers,
            StatusCode::BadRequest,
            vec![],
            source,
            transport,
            Some(reason),
        ))
    }

    fn reply(
        &self,
        request_headers: &rsip::Headers,
        status: StatusCode,
        extra: Vec<Header>,
        source: SocketAddr,
        transport: Transport,
        reason: Option<&str>,
    ) -> Reply {
        let bytes = encode_response_to(
            request_headers,
            status,
            reason,
            source,
            &self.to_tag,
            extra.iter().chain([&self.server_header]),
        );
        self.stats.responses.fetch_add(1, Ordering::Relaxed);
        let target = if transport.is_reliable() {
            source
        } else {
            udp_response_target(request_headers, source)
        };
        Reply { bytes, target }
    }

    /// `Allow`: what this node serves, REGISTER included when it has a registrar.
    fn allow_header(&self) -> Header {
        let mut methods: Vec<String> = ALWAYS_ALLOWED.iter().map(|m| m.to_string()).collect();
        if self.registrar.is_some() {
            methods.push(Method::Register.to_string());
        }
        match (&self.router, self.role) {
            (Some(_), NodeRole::Dispatcher) => {
                for method in DISPATCHED {
                    if !(*method == Method::Register && self.registrar.is_some()) {
                        methods.push(method.to_string());
                    }
                }
            }
            (Some(_), NodeRole::Switch) => {
                for method in [Method::Invite, Method::Ack, Method::Cancel] {
                    methods.push(method.to_string());
                }
            }
            (None, _) => {}
        }
        Header::Allow(rsip::headers::Allow::new(methods.join(", ")))
    }

    fn capabilities(&self) -> Vec<Header> {
        vec![
            self.allow_header(),
            Header::Accept(rsip::headers::Accept::new("application/sdp")),
        ]
    }
}

impl Inbound for Node {
    fn receive(&self, bytes: &[u8], source: SocketAddr, transport: Transport) -> Option<Reply> {
        self.handle(bytes, source, transport)
    }

    fn unframeable(
        &self,
        bytes: &[u8],
        source: SocketAddr,
        transport: Transport,
        error: &FrameError,
    ) -> Option<Reply> {
        self.reject_unframeable(bytes, source, transport, error)
    }

    fn streams(&self) -> &Streams {
        &self.streams
    }
}

/// Fires `node`'s timers until `shutdown` is cancelled: retransmissions, Timer C and the
/// forwarder's deadlines. What they send goes down the stream it is for, or waits for a
/// place in the UDP queue (a retransmission is never dropped for a full queue).
pub async fn run_timers(node: Arc<Node>, shutdown: CancellationToken) {
    loop {
        let deadline = node.next_deadline();
        let timer = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let forwarder_changed = async {
            match &node.forwarder {
                Some(forwarder) => forwarder.changed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = timer => {
                for out in node.poll_timers(Instant::now()) {
                    let Some(out) = node.route_out(out) else {
                        continue;
                    };
                    if node.outbound.send(out).await.is_err() {
                        // The UDP loop is gone: the node is stopping.
                        return;
                    }
                }
            }
            // A new timer may be due before the one slept on.
            _ = node.transactions.changed() => {}
            _ = forwarder_changed => {}
        }
    }
}

/// 503 for a node at its limits, with `Retry-After`.
fn at_capacity(full: Full) -> Answer {
    let retry = rsip::headers::RetryAfter::new(full.retry_after().to_string());
    Answer {
        status: StatusCode::ServiceUnavailable,
        reason: Some(Cow::Borrowed(AT_CAPACITY)),
        headers: vec![Header::RetryAfter(retry)],
    }
}

/// The From tag and CSeq number of a request: which end of a call sent it, and its count.
fn sender_of(request: &Request) -> Option<(&str, u32)> {
    let mut tag = None;
    let mut cseq = None;
    for header in request.headers.iter() {
        match header {
            Header::From(from) => tag = header_param(from.value(), "tag"),
            Header::CSeq(value) => cseq = cseq_number(value.value()),
            _ => {}
        }
    }
    Some((tag?, cseq?))
}

fn has_core_headers(headers: &rsip::Headers) -> bool {
    let (mut via, mut from, mut to, mut call_id, mut cseq) = (false, false, false, false, false);
    for header in headers.iter() {
        match header {
            Header::Via(_) => via = true,
            Header::From(_) => from = true,
            Header::To(_) => to = true,
            Header::CallId(_) => call_id = true,
            Header::CSeq(_) => cseq = true,
            _ => {}
        }
    }
    via && from && to && call_id && cseq
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Node {
        Node::new(NodeRole::Switch, "test")
    }

    fn src() -> SocketAddr {
        "127.0.0.1:5099".parse().unwrap()
    }

    fn request(method: &str) -> Vec<u8> {
        format!(
            "{method} sip:node@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKabc;rport\r\nFrom: <sip:probe@127.0.0.1>;tag=f1\r\nTo: <sip:node@127.0.0.1>\r\nCall-ID: call-1\r\nCSeq: 7 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    fn text(reply: &Reply) -> String {
        String::from_utf8(reply.bytes.clone()).unwrap()
    }

    #[test]
    fn options_gets_200_with_the_request_identifiers_copied() {
        let reply = node()
            .handle(&request("OPTIONS"), src(), Transport::Udp)
            .unwrap();
        let text = text(&reply);
        assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}");
        assert!(text.contains("Call-ID: call-1"));
        assert!(text.contains("CSeq: 7 OPTIONS"));
        assert!(text.contains("rport=5099"));
        assert!(text.contains("To: <sip:node@127.0.0.1>;tag="));
        assert_eq!(reply.target, src());
    }

    #[test]
    fn a_method_the_node_does_not_serve_gets_405_and_an_unknown_one_501() {
        let reply = node()
            .handle(&request("INVITE"), src(), Transport::Udp)
            .unwrap();
        assert!(text(&reply).starts_with("SIP/2.0 405 "));
        assert!(text(&reply).contains("Allow: OPTIONS"));
        let reply = node()
            .handle(&request("FROBNICATE"), src(), Transport::Udp)
            .unwrap();
        assert!(text(&reply).starts_with("SIP/2.0 501 "), "{}", text(&reply));
    }

    #[test]
    fn a_retransmitted_invite_gets_the_same_final_response_from_its_transaction() {
        let n = node();
        let first = n.handle(&request("INVITE"), src(), Transport::Udp).unwrap();
        let again = n.handle(&request("INVITE"), src(), Transport::Udp).unwrap();
        assert_eq!(first.bytes, again.bytes);
        assert_eq!(n.transactions().server.len(), 1);
        let ack = String::from_utf8(request("ACK"))
            .unwrap()
            .replace("To: <sip:node@127.0.0.1>", "To: <sip:node@127.0.0.1>;tag=x");
        assert!(n.handle(ack.as_bytes(), src(), Transport::Udp).is_none());
        assert_eq!(n.stats().snapshot().requests, 3);
    }

    fn registrar_node() -> Node {
        use crate::digest::{Authenticator, Secret};
        use crate::directory::MemoryDirectory;
        use crate::location::MemoryLocationStore;
        use std::sync::Arc;
        let directory = Arc::new(MemoryDirectory::new());
        directory.insert("alice", None, Secret::Password("pw".into()));
        let auth = Arc::new(Authenticator::with_random_secret(
            std::time::Duration::from_secs(300),
        ));
        let store = Arc::new(MemoryLocationStore::new());
        node().with_registrar(Registrar::new(directory, store, auth))
    }

    #[test]
    fn without_a_registrar_register_gets_405_and_allow_omits_it() {
        let reply = node()
            .handle(&request("REGISTER"), src(), Transport::Udp)
            .unwrap();
        assert!(text(&reply).starts_with("SIP/2.0 405 "));
        assert!(text(&reply).contains("Allow: OPTIONS\r\n"));
    }

    #[test]
    fn with_a_registrar_register_is_challenged_and_allow_lists_it() {
        let n = registrar_node();
        let register = String::from_utf8(request("REGISTER"))
            .unwrap()
            .replace("To: <sip:node@", "To: <sip:alice@");
        let reply = n
            .handle(register.as_bytes(), src(), Transport::Udp)
            .unwrap();
        assert!(text(&reply).starts_with("SIP/2.0 401 "), "{}", text(&reply));
        assert!(text(&reply).contains("algorithm=SHA-256"));
        assert!(text(&reply).contains("algorithm=MD5"));
        // Challenges are stateless: no transaction is kept, and a retransmission is
        // challenged afresh, with a nonce of its own.
        assert!(n.transactions().server.is_empty());
        let again = n
            .handle(register.as_bytes(), src(), Transport::Udp)
            .unwrap();
        assert!(text(&again).starts_with("SIP/2.0 401 "));
        assert_ne!(reply.bytes, again.bytes, "a new nonce");
        let options = n
            .handle(&request("OPTIONS"), src(), Transport::Udp)
            .unwrap();
        assert!(text(&options).starts_with("SIP/2.0 200 OK\r\n"));
        assert!(text(&options).contains("Allow: OPTIONS, REGISTER\r\n"));
    }

    #[test]
    fn a_register_without_a_user_in_to_gets_400_with_the_reason() {
        let register = String::from_utf8(request("REGISTER"))
            .unwrap()
            .replace("To: <sip:node@", "To: <sip:");
        let reply = registrar_node()
            .handle(register.as_bytes(), src(), Transport::Udp)
            .unwrap();
        assert!(
            text(&reply).starts_with("SIP/2.0 400 Invalid Address-of-Record\r\n"),
            "{}",
            text(&reply)
        );
    }

    #[test]
    fn restrict_direct_refuses_other_sources_but_still_answers_pings() {
        let n = node();
        n.configure(NodeConfig {
            restrict_direct: true,
            allowed_sources: vec!["127.0.0.7".parse().unwrap()],
            ..NodeConfig::default()
        });
        let reply = n.handle(&request("INVITE"), src(), Transport::Udp).unwrap();
        assert!(
            text(&reply).starts_with("SIP/2.0 403 Direct Requests Not Allowed\r\n"),
            "{}",
            text(&reply)
        );
        let reply = n
            .handle(&request("OPTIONS"), src(), Transport::Udp)
            .unwrap();
        assert!(text(&reply).starts_with("SIP/2.0 200 OK"));
        let dispatcher: SocketAddr = "127.0.0.7:5060".parse().unwrap();
        let other = String::from_utf8(request("INVITE"))
            .unwrap()
            .replace("z9hG4bKabc", "z9hG4bKother");
        let reply = n
            .handle(other.as_bytes(), dispatcher, Transport::Udp)
            .unwrap();
        assert!(text(&reply).starts_with("SIP/2.0 405 "), "{}", text(&reply));
    }

    #[test]
    fn a_refusing_node_answers_invite_with_503_and_retry_after() {
        let n = node();
        n.configure(NodeConfig {
            refusing: Some("expired".into()),
            ..NodeConfig::default()
        });
        let reply = n.handle(&request("INVITE"), src(), Transport::Udp).unwrap();
        assert!(text(&reply).starts_with("SIP/2.0 503 "), "{}", text(&reply));
        assert!(text(&reply).contains("Retry-After: 300"));
        assert_eq!(n.config().refusing.as_deref(), Some("expired"));
    }

    #[test]
    fn ack_and_stray_responses_get_nothing() {
        assert!(node()
            .handle(&request("ACK"), src(), Transport::Udp)
            .is_none());
        let response = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK1\r\nFrom: <sip:a>;tag=1\r\nTo: <sip:b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        assert!(node().handle(response, src(), Transport::Udp).is_none());
    }

    #[test]
    fn a_request_missing_call_id_gets_dropped_and_a_broken_header_gets_400() {
        let mut no_call_id = String::from_utf8(request("OPTIONS")).unwrap();
        no_call_id = no_call_id.replace("Call-ID: call-1\r\n", "");
        assert!(node()
            .handle(no_call_id.as_bytes(), src(), Transport::Udp)
            .is_none());

        let broken = String::from_utf8(request("OPTIONS"))
            .unwrap()
            .replace("Max-Forwards: 70\r\n", "Max-Forwards 70\r\n");
        let n = node();
        let reply = n.handle(broken.as_bytes(), src(), Transport::Udp).unwrap();
        assert!(
            text(&reply).starts_with("SIP/2.0 400 Malformed Request\r\n"),
            "{}",
            text(&reply)
        );
        assert!(text(&reply).contains("Call-ID: call-1"));
        let garbage = b"\xff\xfe not sip at all";
        assert!(n.handle(garbage, src(), Transport::Udp).is_none());
        assert!(n.stats().snapshot().dropped >= 1);
    }

    /// A node with a registrar and a proxy at 127.0.0.1:5060 where `bob` is registered
    /// from 127.0.0.1:5070; returns what it queues for third parties.
    fn proxy_node() -> (Node, mpsc::Receiver<Outbound>) {
        use crate::digest::{Authenticator, Secret};
        use crate::directory::MemoryDirectory;
        use crate::location::{Binding, Change, LocationStore, MemoryLocationStore};
        let directory = Arc::new(MemoryDirectory::new());
        directory.insert("bob", None, Secret::Password("pw".into()));
        let store = Arc::new(MemoryLocationStore::new());
        let bob = Binding {
            contact: "sip:bob@127.0.0.1:5070".into(),
            expires_at: SystemTime::now() + std::time::Duration::from_secs(600),
            received: "127.0.0.1:5070".parse().unwrap(),
            transport: Transport::Udp,
            call_id: "r".into(),
            cseq: 1,
            user_agent: None,
            last_keepalive: None,
            latency: None,
            missed_keepalives: 0,
            online: true,
            path: Vec::new(),
        };
        store
            .apply(
                "sip:bob@127.0.0.1",
                &[Change::Upsert(bob)],
                SystemTime::now(),
            )
            .unwrap();
        let auth = Arc::new(Authenticator::with_random_secret(
            std::time::Duration::from_secs(300),
        ));
        let local: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let node = node();
        let router = Arc::new(crate::route::location::LocationRouter::new(
            domain_of(local.ip()),
            directory.clone(),
            store.clone(),
            node.streams_handle(),
        ));
        let node = node
            .with_registrar(Registrar::new(directory, store, auth))
            .with_router(router, local);
        let rx = node.take_outgoing().unwrap();
        (node, rx)
    }

    fn to_bob(method: &str) -> Vec<u8> {
        String::from_utf8(request(method))
            .unwrap()
            .replace(
                &format!("{method} sip:node@"),
                &format!("{method} sip:bob@"),
            )
            .replace("To: <sip:node@", "To: <sip:bob@")
            // A caller from another domain: an incoming call, which needs no credentials
            // (a caller of this node's own domain is challenged first: see the registrar).
            .replace(
                "From: <sip:probe@127.0.0.1>",
                "From: <sip:probe@198.51.100.9>",
            )
            .into_bytes()
    }

    #[tokio::test(start_paused = true)]
    async fn an_invite_gets_100_at_once_and_a_cancel_follows_it_downstream() {
        let (n, mut queued) = proxy_node();
        assert!(n.handle(&to_bob("INVITE"), src(), Transport::Udp).is_none());
        let trying = queued.try_recv().expect("the 100 is queued first");
        assert!(
            text(&trying).starts_with("SIP/2.0 100 "),
            "{}",
            text(&trying)
        );
        let invite = queued.try_recv().expect("then the INVITE");
        assert_eq!(invite.target, "127.0.0.1:5070".parse().unwrap());
        assert!(
            String::from_utf8_lossy(&invite.bytes).starts_with("INVITE sip:bob@127.0.0.1:5070 ")
        );

        let ok = n.handle(&to_bob("CANCEL"), src(), Transport::Udp).unwrap();
        assert!(text(&ok).starts_with("SIP/2.0 200 "), "{}", text(&ok));
        let cancel = queued.try_recv().expect("the CANCEL is queued");
        let cancel = String::from_utf8_lossy(&cancel.bytes).into_owned();
        assert!(
            cancel.starts_with("CANCEL sip:bob@127.0.0.1:5070 "),
            "{cancel}"
        );
        let branch = |text: &str| text.split("branch=").nth(1).map(|b| b[..20].to_string());
        assert_eq!(
            branch(&cancel),
            branch(&String::from_utf8_lossy(&invite.bytes))
        );

        let unknown = String::from_utf8(to_bob("CANCEL"))
            .unwrap()
            .replace("z9hG4bKabc", "z9hG4bKnone");
        let reply = n.handle(unknown.as_bytes(), src(), Transport::Udp).unwrap();
        assert!(text(&reply).starts_with("SIP/2.0 481 "), "{}", text(&reply));
    }

    #[tokio::test(start_paused = true)]
    async fn a_proxying_node_still_refuses_by_configuration_before_routing() {
        let (n, mut queued) = proxy_node();
        n.configure(NodeConfig {
            refusing: Some("expired".into()),
            ..NodeConfig::default()
        });
        let reply = n.handle(&to_bob("INVITE"), src(), Transport::Udp).unwrap();
        assert!(text(&reply).starts_with("SIP/2.0 503 "), "{}", text(&reply));
        assert!(queued.try_recv().is_err(), "nothing forwarded");
    }

    /// A router that only counts what it is asked.
    #[derive(Debug, Default)]
    struct Counting(std::sync::atomic::AtomicUsize);

    impl Router for Counting {
        fn route(&self, _: &Inquiry<'_>) -> Route {
            self.0.fetch_add(1, Ordering::Relaxed);
            Route::refuse(StatusCode::NotFound, "Not Found")
        }
    }

    #[test]
    fn register_and_options_go_beside_the_router_and_an_initial_invite_through_it() {
        let router = Arc::new(Counting::default());
        let n = registrar_node().with_router(router.clone(), "127.0.0.1:5060".parse().unwrap());
        let register = String::from_utf8(request("REGISTER"))
            .unwrap()
            .replace("To: <sip:node@", "To: <sip:alice@");
        let reply = n
            .handle(register.as_bytes(), src(), Transport::Udp)
            .unwrap();
        assert!(text(&reply).starts_with("SIP/2.0 401 "), "{}", text(&reply));
        let reply = n
            .handle(&request("OPTIONS"), src(), Transport::Udp)
            .unwrap();
        assert!(text(&reply).starts_with("SIP/2.0 200 "));
        assert_eq!(
            router.0.load(Ordering::Relaxed),
            0,
            "the router was never asked"
        );
        assert_eq!(n.forwarder().unwrap().pending(), 0);

        let invite = String::from_utf8(request("INVITE")).unwrap().replace(
            "From: <sip:probe@127.0.0.1>",
            "From: <sip:probe@198.51.100.9>",
        );
        let reply = n.handle(invite.as_bytes(), src(), Transport::Udp).unwrap();
        assert!(
            text(&reply).starts_with("SIP/2.0 404 Not Found"),
            "{}",
            text(&reply)
        );
        assert_eq!(router.0.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_digest_algorithms_offered_are_the_server_s_choice_md5_first_by_default() {
        use crate::config::DigestAlgorithms;
        let n = registrar_node();
        let register = String::from_utf8(request("REGISTER"))
            .unwrap()
            .replace("To: <sip:node@", "To: <sip:alice@");
        let offered = |n: &Node| {
            let reply = n
                .handle(register.as_bytes(), src(), Transport::Udp)
                .unwrap();
            text(&reply)
                .split("\r\n")
                .filter(|line| line.starts_with("WWW-Authenticate:"))
                .map(|line| {
                    line.split("algorithm=")
                        .nth(1)
                        .and_then(|rest| rest.split(&[',', ' '][..]).next())
                        .unwrap_or_default()
                        .to_string()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            offered(&n),
            ["MD5", "SHA-256"],
            "phones that read one challenge know MD5"
        );
        for (choice, expected) in [
            (DigestAlgorithms::Sha256ThenMd5, vec!["SHA-256", "MD5"]),
            (DigestAlgorithms::Sha256Only, vec!["SHA-256"]),
        ] {
            n.configure(NodeConfig {
                digest: choice,
                ..NodeConfig::default()
            });
            assert_eq!(offered(&n), expected, "{choice:?}");
        }
    }
}
