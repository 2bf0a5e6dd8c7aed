//! One server's SIP behaviour: given a message and where it came from, what to answer.
//!
//! Every request passes the server transaction layer first, so a retransmission is answered
//! from memory and never handled twice. A node serves OPTIONS (the health ping every SIP peer
//! and the control plane send), REGISTER when it was given a [`Registrar`], and answers every
//! other request with the status RFC 3261 prescribes for a method it does not serve. Replies
//! to its NAT keep-alives come back here like any response and are handed to
//! [`KeepAlive`], which needs no per-ping state to match them. With a [`Proxy`] it routes
//! calls to its registered users and relays their dialogs' requests and responses; the
//! dispatcher arrives in a later build behind the same entry point, [`Node::handle`].
//!
//! What [`Node::handle`] returns goes back to where the message came from; what is meant
//! for a third party (a forwarded request, a relayed response) leaves through the node's
//! outbound queue, which its UDP loop drains onto the same socket.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rsip::headers::UntypedHeader;
use rsip::{Header, Method, SipMessage, StatusCode};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::calls::{CallFigures, CallLimits, Calls, Full};
use crate::keepalive::KeepAlive;
use crate::message::{
    encode_response, header_param, is_known_method, is_token, parse, reason_phrase,
    request_method_token, response_to, salvage_request_headers, udp_response_target,
};
use crate::proxy::{call_id, invite_key_of, Cancelled, Decision, Proxy, Relayed};
use crate::registrar::Registrar;
use crate::trace::{TraceTarget, Tracer};
use crate::transaction::{Key, Outbound, Received, ResponseDisposition, TransactionLayer};
use crate::transport::tcp::FrameError;
use crate::transport::Streams;
use crate::uac::{Uac, UacRegistration};

/// How a client transaction the node started ends: its final response, or why none came.
pub type ClientOutcome =
    tokio::sync::oneshot::Receiver<Result<rsip::Response, crate::transaction::ClientError>>;

/// What a server is for: a Dispatcher balances load over switches, a Switch is a cluster
/// member that carries calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    Dispatcher,
    Switch,
}

pub use crate::transport::Transport;

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

/// Bytes to send and, for UDP, where to.
#[derive(Debug)]
pub struct Reply {
    pub bytes: Vec<u8>,
    pub target: SocketAddr,
}

/// The methods every node serves; everything else RFC 3261 defines gets 405 with the list.
const ALWAYS_ALLOWED: &[Method] = &[Method::Options];

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
    pub fqdn: Option<String>,
    pub uac_auth_username: Option<String>,
    /// UAC Auth: register upstream to this carrier (see [`crate::uac`]).
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

/// The reason phrase of a 503 for a node at its limits.
pub const AT_CAPACITY: &str = "Server at max cps / channels";

/// One running server's SIP logic, shared by its transports.
#[derive(Debug)]
pub struct Node {
    role: NodeRole,
    /// Sent as `Server:` so a peer (and the console) can tell which build answers.
    server_header: String,
    /// To-tag for responses this node generates statelessly.
    to_tag: String,
    stats: NodeStats,
    /// Absorbs retransmitted requests and retransmits what UDP may lose; the UDP loop drives
    /// its timers.
    transactions: TransactionLayer,
    /// Serves REGISTER when the control plane gave the engine SIP users; without it REGISTER
    /// gets 405 like any method this node does not serve.
    registrar: Option<Registrar>,
    /// Read on every request, written only when the control plane pushes a change: a std
    /// `RwLock`, never held across an `.await`.
    config: RwLock<NodeConfig>,
    /// NAT keep-alives to the contacts registered at this node; it also recognises their
    /// replies, which match no client transaction.
    keepalive: Option<Arc<KeepAlive>>,
    /// Routes INVITEs to registered users and relays their dialogs; `None` leaves INVITE
    /// unserved (405).
    proxy: Option<Proxy>,
    /// The calls holding this node's channels, checked against its limits.
    calls: Calls,
    /// Its own registration upstream (UAC Auth), driven by [`crate::uac::run`].
    uac: Arc<Uac>,
    /// Where messages for a third party go: the UDP loop sends them from the node's socket.
    /// Bounded; when full, a message is dropped like a lost datagram and the client
    /// transaction's retransmission (or the peer's) makes up for it.
    outbound: Option<mpsc::Sender<Outbound>>,
    /// The stream connections open to this node: what is sent to one of their peers goes
    /// down the connection, not out of the UDP socket.
    streams: Arc<Streams>,
    /// Hands copies of messages to the node's trace shipper.
    tracer: Tracer,
}

impl Node {
    pub fn new(role: NodeRole, build: &str) -> Self {
        Node {
            role,
            server_header: format!("sipfleet/{build}"),
            to_tag: format!("{:016x}", rand::random::<u64>()),
            stats: NodeStats::default(),
            transactions: TransactionLayer::default(),
            registrar: None,
            config: RwLock::default(),
            keepalive: None,
            proxy: None,
            calls: Calls::default(),
            uac: Arc::default(),
            outbound: None,
            streams: Arc::default(),
            tracer: Tracer::new().0,
        }
    }

    /// Replaces what the node runs with `config`, effective from the next request.
    pub fn configure(&self, config: NodeConfig) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = config;
        self.uac.changed.notify_one();
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

    /// The configuration the node runs now.
    pub fn config(&self) -> NodeConfig {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Why a request is refused by configuration before its method is served, if it is.
    fn policy_refusal(
        &self,
        method: &Method,
        source: SocketAddr,
    ) -> Option<(StatusCode, &'static str, Vec<Header>)> {
        if matches!(method, Method::Options | Method::Ack) {
            return None;
        }
        let config = self.config.read().unwrap_or_else(|p| p.into_inner());
        if config.restrict_direct && !config.allowed_sources.contains(&source.ip()) {
            return Some((StatusCode::Forbidden, "Direct Requests Not Allowed", vec![]));
        }
        if *method == Method::Invite
            && !config.interconnect
            && !config.cluster_peers.contains(&source.ip())
            && self.is_sibling(source)
        {
            return Some((StatusCode::Forbidden, "Interconnect Disabled", vec![]));
        }
        if *method == Method::Invite && config.refusing.is_some() {
            let retry = Header::RetryAfter(rsip::headers::RetryAfter::new("300"));
            return Some((
                StatusCode::ServiceUnavailable,
                "Service Unavailable",
                vec![retry],
            ));
        }
        None
    }

    /// Whether `source` is another server of the account this node belongs to.
    fn is_sibling(&self, source: SocketAddr) -> bool {
        let (Some(registrar), Some(proxy)) = (&self.registrar, &self.proxy) else {
            return false;
        };
        if source.ip() == proxy.local().ip() {
            return false;
        }
        let directory = registrar.directory();
        let own = directory.tenant(proxy.domain());
        own.is_some() && own == directory.tenant(&KeepAlive::domain_of(source.ip()))
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

    /// The same node, proxying calls with `proxy`; what it forwards leaves through `outbound`
    /// (drained by the node's UDP loop, [`crate::transport::udp::serve`]).
    pub fn with_proxy(mut self, proxy: Proxy, outbound: mpsc::Sender<Outbound>) -> Self {
        self.proxy = Some(proxy.with_streams(self.streams.clone()));
        self.outbound = Some(outbound);
        self
    }

    pub fn proxy(&self) -> Option<&Proxy> {
        self.proxy.as_ref()
    }

    /// The earliest instant at which [`poll`](Self::poll) has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let proxy = self.proxy.as_ref().and_then(Proxy::next_deadline);
        match (self.transactions.next_deadline(), proxy) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires the timers due at `now`: retransmissions, and 408 to the callers of forwarded
    /// requests that got no final response. Returns what to send.
    pub fn poll(&self, now: Instant) -> Vec<Outbound> {
        let out = self.poll_timers(now);
        for sent in &out {
            self.trace_out(&sent.bytes, sent.target);
        }
        out
    }

    /// What [`Node::poll`] sends, before it is traced.
    fn poll_timers(&self, now: Instant) -> Vec<Outbound> {
        let mut out = self.transactions.poll(now);
        self.calls.sweep(now);
        let Some(proxy) = &self.proxy else {
            return out;
        };
        let expired = proxy.poll(now);
        for relayed in expired.relayed {
            out.push(self.record_relayed(relayed, now));
        }
        for timed_out in expired.timed_out {
            if let Some(call) = &timed_out.invite_call {
                self.calls.failed(call);
            }
            let reply = self.reply(
                &timed_out.headers,
                StatusCode::RequestTimeout,
                vec![],
                timed_out.source,
                Transport::Udp,
                None,
            );
            let sent = Outbound {
                bytes: reply.bytes,
                target: reply.target,
            };
            if let Some(key) = &timed_out.server {
                self.transactions
                    .server
                    .respond(key, 408, sent.clone(), Some(&self.to_tag), now);
            }
            out.push(sent);
        }
        out
    }

    /// A response the proxy relays to a caller, recorded in the caller's server transaction
    /// (which then retransmits it and absorbs the caller's retransmissions); returns what to
    /// send.
    fn record_relayed(&self, relayed: Relayed, now: Instant) -> Outbound {
        match (&relayed.invite_call, relayed.code) {
            (Some(call), 200..=299) => {
                // Only the first 2xx of a call names its callee: the rest are not parsed.
                let ends = match &self.proxy {
                    Some(proxy) if self.calls.awaits_callee(call) => {
                        match crate::message::parse(&relayed.out.bytes) {
                            Ok(SipMessage::Response(response)) => proxy.answer_ends(&response),
                            _ => None,
                        }
                    }
                    _ => None,
                };
                self.calls.answered(call, ends);
            }
            (Some(call), 300..) => self.calls.failed(call),
            _ => {}
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
        let Some(proxy) = &self.proxy else {
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
                let Some((bye, target)) = proxy.bye(&dialog.call_id, to, from, reason) else {
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

    /// Queues a message for a third party; dropped (like a lost datagram) when the queue is
    /// full or gone.
    fn send_out(&self, out: Outbound) {
        self.trace_out(&out.bytes, out.target);
        let Some(out) = self.deliver_to_stream(out) else {
            return;
        };
        let Some(queue) = &self.outbound else {
            return;
        };
        if let Err(error) = queue.try_send(out) {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%error, "outbound queue refused a message");
        }
    }

    /// The same node, tracing through `tracer` (whose queue [`crate::trace::run`] drains).
    pub fn with_tracer(mut self, tracer: Tracer) -> Self {
        self.tracer = tracer;
        self
    }

    pub fn tracer(&self) -> &Tracer {
        &self.tracer
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
        self.config.read().unwrap_or_else(|p| p.into_inner()).trace
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
        let stream = transport != Transport::Udp;
        self.tracer
            .capture(target, bytes, source, destination, stream);
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

    /// The stream connections open to this node.
    pub fn streams(&self) -> &Streams {
        &self.streams
    }

    pub fn keepalive(&self) -> Option<&Arc<KeepAlive>> {
        self.keepalive.as_ref()
    }

    /// Whether the control plane turned keep-alives off for this server (*Disable UAC
    /// Ping*). Read before every keep-alive, so without cloning the configuration.
    pub fn uac_ping_disabled(&self) -> bool {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .disable_uac_ping
    }

    pub fn registrar(&self) -> Option<&Registrar> {
        self.registrar.as_ref()
    }

    /// The node's transaction layer, whose timers the UDP loop fires.
    pub fn transactions(&self) -> &TransactionLayer {
        &self.transactions
    }

    pub fn role(&self) -> NodeRole {
        self.role
    }

    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// Handles one complete message. Returns what to send back, if anything.
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
            Ok(SipMessage::Request(request)) => {
                self.stats.requests.fetch_add(1, Ordering::Relaxed);
                // A request without the headers a response must copy cannot be answered
                // properly; treat it as malformed.
                if !has_core_headers(&request.headers) {
                    return self.reject(bytes, source, transport, "Missing Mandatory Header");
                }
                let now = Instant::now();
                let key = Key::of_request(&request);
                if let Some(key) = &key {
                    let is_ack = request.method == Method::Ack;
                    let to_tag = request.headers.iter().find_map(|h| match h {
                        Header::To(to) => header_param(to.value(), "tag"),
                        _ => None,
                    });
                    match self
                        .transactions
                        .server
                        .receive(key, is_ack, to_tag, transport, now)
                    {
                        Received::Retransmission(resend) => {
                            return resend.map(|out| {
                                self.stats.responses.fetch_add(1, Ordering::Relaxed);
                                Reply {
                                    bytes: out.bytes,
                                    target: match transport {
                                        Transport::Udp => out.target,
                                        Transport::Tcp => source,
                                    },
                                }
                            });
                        }
                        Received::Unmatched | Received::New | Received::Untracked => {}
                    }
                }
                let mut reason = None;
                let refusal = self.policy_refusal(&request.method, source);
                let proxied = match (&refusal, &self.proxy) {
                    (None, Some(proxy)) => {
                        self.proxy_request(proxy, &request, key.as_ref(), source, transport, now)
                    }
                    _ => None,
                };
                let (status, extra) = match (&request.method, &self.registrar) {
                    _ if refusal.is_some() => match refusal {
                        Some((status, why, headers)) => {
                            reason = Some(why);
                            (status, headers)
                        }
                        None => return None,
                    },
                    _ if proxied.is_some() => match proxied {
                        Some(Proxied::Done(reply)) => return reply,
                        Some(Proxied::Answer(status, why)) => {
                            reason = Some(why);
                            (status, vec![])
                        }
                        Some(Proxied::Refused(answer)) => {
                            reason = answer.reason;
                            (answer.status, answer.headers)
                        }
                        Some(Proxied::Full(full)) => {
                            reason = Some(AT_CAPACITY);
                            let retry =
                                rsip::headers::RetryAfter::new(full.retry_after().to_string());
                            (
                                StatusCode::ServiceUnavailable,
                                vec![Header::RetryAfter(retry)],
                            )
                        }
                        None => return None,
                    },
                    // ACK never gets a response (RFC 3261 §17.2.1); one that no transaction
                    // absorbed acknowledges a 2xx, which this node never sends to INVITE.
                    (Method::Ack, _) => return None,
                    (Method::Options, _) => (StatusCode::OK, self.capabilities()),
                    (Method::Register, Some(registrar)) => {
                        let answer =
                            registrar.register(&request, source, transport, SystemTime::now());
                        reason = answer.reason;
                        (answer.status, answer.headers)
                    }
                    _ => (StatusCode::MethodNotAllowed, vec![self.allow_header()]),
                };
                let code = status.code();
                let reply = self.reply(&request.headers, status, extra, source, transport, reason);
                // A REGISTER's digest challenge is sent statelessly, as registrars commonly
                // do: the transaction would hold a response that any retransmission can get
                // afresh (with a new nonce), for 32 s, for every phone that registers.
                let stateless_challenge =
                    request.method == Method::Register && matches!(code, 401 | 407);
                if let Some(key) = &key {
                    if stateless_challenge {
                        self.transactions.server.forget(key);
                    } else {
                        let sent = Outbound {
                            bytes: reply.bytes.clone(),
                            target: reply.target,
                        };
                        self.transactions
                            .server
                            .respond(key, code, sent, Some(&self.to_tag), now);
                    }
                }
                Some(reply)
            }
            // A response belongs to one of our client transactions, answers a keep-alive
            // (sent without a transaction), or is stray and dropped (RFC 3261 §18.1.2).
            Ok(SipMessage::Response(response)) => {
                let now = Instant::now();
                match self.transactions.client.receive_response(&response, now) {
                    ResponseDisposition::Matched { send } => {
                        if let Some(relayed) = self.proxy.as_ref().and_then(|proxy| {
                            proxy.on_response(&response, reason_phrase(bytes), source, now)
                        }) {
                            let settles = relayed.settles;
                            self.send_out(self.record_relayed(relayed, now));
                            if let (Some(fork), Some(proxy)) = (settles, &self.proxy) {
                                for cancel in proxy.cancel_fork(&self.transactions, fork, now) {
                                    self.send_out(cancel);
                                }
                            }
                        }
                        send.map(|out| Reply {
                            bytes: out.bytes,
                            target: match transport {
                                Transport::Udp => out.target,
                                Transport::Tcp => source,
                            },
                        })
                    }
                    ResponseDisposition::Stray => {
                        if self.uac.on_response(&response) {
                            return None;
                        }
                        let keepalive_reply = self
                            .keepalive
                            .as_ref()
                            .is_some_and(|keepalive| keepalive.on_response(&response, now));
                        if !keepalive_reply {
                            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        None
                    }
                }
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

    /// What the proxy makes of a request, `None` when it is the node's own to answer.
    fn proxy_request(
        &self,
        proxy: &Proxy,
        request: &rsip::Request,
        key: Option<&Key>,
        source: SocketAddr,
        transport: Transport,
        now: Instant,
    ) -> Option<Proxied> {
        if request.method == Method::Cancel {
            let invite = key.map(invite_key_of)?;
            return Some(match proxy.cancel(&self.transactions, &invite, now) {
                Cancelled::Unknown => Proxied::Answer(
                    StatusCode::CallTransactionDoesNotExist,
                    "Call/Transaction Does Not Exist",
                ),
                Cancelled::Pending(downstream) => {
                    for out in downstream {
                        self.send_out(out);
                    }
                    Proxied::Answer(StatusCode::OK, "OK")
                }
            });
        }
        let initial_invite = request.method == Method::Invite
            && !request.headers.iter().any(|h| match h {
                Header::To(to) => header_param(to.value(), "tag").is_some(),
                _ => false,
            });
        if let (true, Some(registrar)) = (initial_invite, &self.registrar) {
            if let Err(answer) =
                registrar.authorize_caller(request, proxy.domain(), SystemTime::now())
            {
                return Some(Proxied::Refused(answer));
            }
        }
        let (limits, peers, failover, locations) = {
            let config = self.config.read().unwrap_or_else(|p| p.into_inner());
            // Where the callee may be registered: this node, its cluster, and the servers
            // that share their registrations with it.
            let mut locations = config.cluster_peers.clone();
            if config.uac_location_sharing {
                locations.extend(config.sharing_peers.iter().copied());
            }
            (
                config.limits,
                config.cluster_peers.clone(),
                config.failover,
                locations,
            )
        };
        // A new call takes a channel here, or goes to the failover member when this node is
        // full (unless a member handed it here already: it is not handed back), or is
        // refused.
        let call = call_id(&request.headers);
        let mut admitted = None;
        let mut handed_over = None;
        if let (true, Some(call)) = (initial_invite, &call) {
            match self.calls.admit(call, limits, now) {
                Ok(()) => admitted = Some(call.as_str()),
                Err(full) => match failover {
                    Some(target)
                        if transport == Transport::Udp && !peers.contains(&source.ip()) =>
                    {
                        handed_over = Some(proxy.hand_over(request, source, target));
                    }
                    _ => return Some(Proxied::Full(full)),
                },
            }
        }
        let decision = match handed_over {
            Some(decision) => decision,
            None => match proxy.route(request, source, &locations, SystemTime::now()) {
                Some(decision) => decision,
                None => {
                    admitted.inspect(|call| self.calls.failed(call));
                    return None;
                }
            },
        };
        if let Decision::Answer { .. } = decision {
            admitted.inspect(|call| self.calls.failed(call));
        }
        if let (Method::Bye, Decision::Forward { .. }, Some(call)) =
            (&request.method, &decision, &call)
        {
            self.calls.ended(call);
        }
        // What the node needs to end the call itself later: the caller as the callee will
        // see it, and the CSeq of each end's requests inside the call.
        match (&decision, admitted) {
            (
                Decision::Forward {
                    request: forwarded, ..
                },
                Some(call),
            ) => {
                if let Some(caller) = Proxy::caller_of(request, forwarded) {
                    self.calls.invited(call, caller);
                }
            }
            (Decision::Fork { branches }, Some(call)) => {
                if let Some(caller) = branches
                    .first()
                    .and_then(|(forwarded, _)| Proxy::caller_of(request, forwarded))
                {
                    self.calls.invited(call, caller);
                }
            }
            (Decision::Forward { .. }, None) if !initial_invite => {
                if let (Some(call), Some((from_tag, cseq))) = (&call, sender_of(request)) {
                    self.calls.in_dialog(call, &from_tag, cseq);
                }
            }
            _ => {}
        }
        let is_ack = request.method == Method::Ack;
        match decision {
            // ACK is never answered (RFC 3261 §17.2.1): one that cannot go on is dropped.
            Decision::Answer { .. } if is_ack => Some(Proxied::Done(None)),
            Decision::Answer { status, reason } => Some(Proxied::Answer(status, reason)),
            decision @ (Decision::Forward { .. } | Decision::Fork { .. }) => {
                // Responses go back where a stream caller's connection is; over UDP, where
                // its Via says (RFC 3261 §18.2.2).
                let caller = match transport {
                    Transport::Udp => udp_response_target(&request.headers, source),
                    Transport::Tcp => source,
                };
                let sent = match decision {
                    Decision::Forward {
                        request: forwarded,
                        target,
                    } => proxy
                        .forward(
                            &self.transactions,
                            key.cloned(),
                            &request.headers,
                            source,
                            caller,
                            forwarded,
                            target,
                            now,
                        )
                        .map(|out| vec![out]),
                    Decision::Fork { branches } => proxy.fork(
                        &self.transactions,
                        key.cloned(),
                        &request.headers,
                        source,
                        caller,
                        branches,
                        now,
                    ),
                    Decision::Answer { .. } => Ok(Vec::new()),
                };
                match sent {
                    Ok(out) => out.into_iter().for_each(|out| self.send_out(out)),
                    Err(error) => {
                        admitted.inspect(|call| self.calls.failed(call));
                        tracing::warn!(%error, "proxy: cannot start a client transaction");
                        return Some(if is_ack {
                            Proxied::Done(None)
                        } else {
                            Proxied::Answer(StatusCode::ServerInternalError, "Forwarding Failed")
                        });
                    }
                }
                if request.method != Method::Invite {
                    return Some(Proxied::Done(None));
                }
                // 100 Trying at once, so the caller stops retransmitting (RFC 3261 §16.2).
                let trying = self.reply(
                    &request.headers,
                    StatusCode::Trying,
                    vec![],
                    source,
                    transport,
                    None,
                );
                if let Some(key) = key {
                    let sent = Outbound {
                        bytes: trying.bytes.clone(),
                        target: trying.target,
                    };
                    self.transactions.server.respond(key, 100, sent, None, now);
                }
                Some(Proxied::Done(Some(trying)))
            }
        }
    }

    /// Answers what is left of a stream that could not be framed, when it starts with a
    /// request that can still be identified.
    pub fn reject_unframeable(
        &self,
        bytes: &[u8],
        source: SocketAddr,
        error: &FrameError,
    ) -> Option<Reply> {
        let reason = match error {
            FrameError::HeadTooLong => "Message Too Large",
            FrameError::BodyTooLong => "Message Too Large",
            FrameError::BadContentLength => "Bad Content-Length",
        };
        self.reject(bytes, source, Transport::Tcp, reason)
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
        mut extra: Vec<Header>,
        source: SocketAddr,
        transport: Transport,
        reason: Option<&str>,
    ) -> Reply {
        extra.push(Header::Server(rsip::headers::Server::new(
            self.server_header.clone(),
        )));
        let response = response_to(request_headers, status, source, &self.to_tag, extra);
        self.stats.responses.fetch_add(1, Ordering::Relaxed);
        let target = match transport {
            Transport::Udp => udp_response_target(request_headers, source),
            Transport::Tcp => source,
        };
        Reply {
            bytes: encode_response(&response, reason),
            target,
        }
    }

    /// `Allow`: what this node serves, REGISTER included when it has a registrar.
    fn allow_header(&self) -> Header {
        let mut methods: Vec<String> = ALWAYS_ALLOWED.iter().map(|m| m.to_string()).collect();
        if self.registrar.is_some() {
            methods.push(Method::Register.to_string());
        }
        if self.proxy.is_some() {
            for method in [Method::Invite, Method::Ack, Method::Cancel] {
                methods.push(method.to_string());
            }
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

/// What the proxy made of a request.
enum Proxied {
    /// Handled: send this back (or nothing).
    Done(Option<Reply>),
    /// Answer with this status and reason phrase.
    Answer(StatusCode, &'static str),
    /// Answer so: the caller must authenticate first (407), or may not call.
    Refused(crate::registrar::Answer),
    /// The node is at its limits: 503 with `Retry-After`.
    Full(Full),
}

/// The From tag and CSeq number of a request: which end of a call sent it, and its count.
fn sender_of(request: &rsip::Request) -> Option<(String, u32)> {
    let mut tag = None;
    let mut cseq = None;
    for header in request.headers.iter() {
        match header {
            Header::From(from) => tag = header_param(from.value(), "tag").map(str::to_string),
            Header::CSeq(value) => cseq = crate::proxy::cseq_number(value.value()),
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
        use crate::location::MemoryLocationStore;
        use crate::registrar::MemoryDirectory;
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
        use crate::location::{Binding, Change, LocationStore, MemoryLocationStore};
        use crate::registrar::MemoryDirectory;
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
        let proxy = Proxy::new(
            directory.clone(),
            store.clone(),
            "127.0.0.1:5060".parse().unwrap(),
        );
        let (tx, rx) = mpsc::channel(16);
        let node = node()
            .with_registrar(Registrar::new(directory, store, auth))
            .with_proxy(proxy, tx);
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
        let trying = n.handle(&to_bob("INVITE"), src(), Transport::Udp).unwrap();
        assert!(
            text(&trying).starts_with("SIP/2.0 100 "),
            "{}",
            text(&trying)
        );
        let invite = queued.try_recv().expect("the INVITE is queued");
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
}
