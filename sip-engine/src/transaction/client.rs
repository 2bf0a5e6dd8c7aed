//! Client transactions (RFC 3261 §17.1): requests this node sends (keep-alive OPTIONS,
//! forwarded requests), retransmitted over UDP until answered, abandoned after 64·T1.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use rsip::headers::UntypedHeader;
use rsip::{Header, Headers, Method, Request, Response};
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use super::{Outbound, Timers, MAGIC_COOKIE};
use crate::message::header_param;
use crate::transport::Transport;

/// Why a client transaction could not deliver a final response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("no final response within {0:?} (Timer B/F)")]
    Timeout(Duration),
    #[error("the request's top Via has no branch starting with the magic cookie")]
    NoBranch,
    #[error("a transaction with this branch and method already runs")]
    Duplicate,
}

/// What identifies a client transaction (RFC 3261 §17.1.3): we create the branch, so it is
/// unique, and the CSeq method tells a CANCEL from the INVITE it cancels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey {
    pub branch: String,
    pub method: String,
}

/// A started client transaction: send `first` now; the final response (or the timeout)
/// arrives on `outcome`. Retransmissions come out of [`ClientTransactions::poll`].
#[derive(Debug)]
pub struct ClientHandle {
    pub key: ClientKey,
    pub first: Outbound,
    pub outcome: oneshot::Receiver<Result<Response, ClientError>>,
}

/// What the layer made of a response.
#[derive(Debug, PartialEq, Eq)]
pub enum ResponseDisposition {
    /// It belonged to a transaction; send `send` (the ACK of a non-2xx final response to
    /// INVITE) if present.
    Matched { send: Option<Outbound> },
    /// No transaction of ours: drop it (RFC 3261 §18.1.2).
    Stray,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// INVITE sent (Calling) or non-INVITE sent (Trying): retransmitting.
    Sent,
    /// A provisional response arrived.
    Proceeding,
    /// A final response arrived: absorbing its retransmissions (Timers D, K; RFC 6026's M).
    Completed,
}

#[derive(Debug)]
struct Entry {
    invite: bool,
    reliable: bool,
    state: State,
    request: Request,
    sent: Outbound,
    retransmit_at: Option<Instant>,
    interval: Duration,
    expire_at: Instant,
    ack: Option<Outbound>,
    waiter: Option<oneshot::Sender<Result<Response, ClientError>>>,
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<ClientKey, Entry>,
    due: BinaryHeap<Reverse<(Instant, ClientKey)>>,
}

/// How long a final non-2xx response to INVITE is absorbed over UDP (Timer D, "at least
/// 32 s").
const TIMER_D: Duration = Duration::from_secs(32);
/// How long an INVITE may stay in Proceeding before it is dropped. RFC 3261 leaves this to
/// the TU (which sends CANCEL); a bound keeps a silent peer from pinning memory.
const PROCEEDING_GUARD: Duration = Duration::from_secs(200);

/// The client transactions of one node. A std `Mutex`, never held across an `.await`.
#[derive(Debug)]
pub struct ClientTransactions {
    timers: Timers,
    table: Mutex<Table>,
    changed: Notify,
}

impl ClientTransactions {
    pub fn new(timers: Timers) -> Self {
        ClientTransactions {
            timers,
            table: Mutex::default(),
            changed: Notify::new(),
        }
    }

    /// Starts a transaction for `request`, whose top Via must carry a fresh branch. `target`
    /// and `transport` say where it goes; over UDP it is retransmitted (Timer A doubling for
    /// INVITE, Timer E doubling up to T2 for the rest).
    pub fn start(
        &self,
        request: Request,
        target: SocketAddr,
        transport: Transport,
        now: Instant,
    ) -> Result<ClientHandle, ClientError> {
        let branch = top_via_branch(&request.headers).ok_or(ClientError::NoBranch)?;
        let key = ClientKey {
            branch,
            method: request.method.to_string(),
        };
        let invite = request.method == Method::Invite;
        let sent = Outbound {
            bytes: crate::message::encode_request(&request),
            target,
        };
        let (tx, rx) = oneshot::channel();
        let timeout = now + self.timers.transaction_timeout();
        let retransmit_at = (!transport.is_reliable()).then_some(now + self.timers.t1);
        let mut table = self.lock();
        if table.entries.contains_key(&key) {
            return Err(ClientError::Duplicate);
        }
        table.entries.insert(
            key.clone(),
            Entry {
                invite,
                reliable: transport.is_reliable(),
                state: State::Sent,
                request,
                sent: sent.clone(),
                retransmit_at,
                interval: self.timers.t1,
                expire_at: timeout,
                ack: None,
                waiter: Some(tx),
            },
        );
        let mut earliest = super::schedule(&mut table.due, timeout, key.clone());
        if let Some(at) = retransmit_at {
            earliest |= super::schedule(&mut table.due, at, key.clone());
        }
        drop(table);
        if earliest {
            self.changed.notify_one();
        }
        Ok(ClientHandle {
            key,
            first: sent,
            outcome: rx,
        })
    }

    /// Matches a response to its transaction (top Via branch and CSeq method) and advances
    /// the state machine.
    pub fn receive_response(&self, response: &Response, now: Instant) -> ResponseDisposition {
        let Some(branch) = top_via_branch(&response.headers) else {
            return ResponseDisposition::Stray;
        };
        let Some(method) = response.headers.iter().find_map(|h| match h {
            Header::CSeq(cseq) => cseq.method().ok(),
            _ => None,
        }) else {
            return ResponseDisposition::Stray;
        };
        let key = ClientKey {
            branch,
            method: method.to_string(),
        };
        let timers = self.timers;
        let mut table = self.lock();
        let Some(entry) = table.entries.get_mut(&key) else {
            return ResponseDisposition::Stray;
        };
        let code = response.status_code.code();
        let mut schedule = None;
        let send = match entry.state {
            State::Completed => entry.ack.clone(),
            State::Sent | State::Proceeding if code < 200 => {
                entry.state = State::Proceeding;
                if entry.invite {
                    // Timer A stops; B no longer applies once the far end is proceeding.
                    entry.retransmit_at = None;
                    entry.expire_at = now + PROCEEDING_GUARD;
                    schedule = Some(entry.expire_at);
                } else if entry.retransmit_at.is_some() {
                    // Timer E keeps running, at T2 from now on (RFC 3261 §17.1.2.2).
                    entry.interval = timers.t2;
                }
                None
            }
            State::Sent | State::Proceeding => {
                entry.state = State::Completed;
                let udp = !entry.reliable;
                entry.retransmit_at = None;
                if let Some(waiter) = entry.waiter.take() {
                    let _ = waiter.send(Ok(response.clone()));
                }
                let linger = if !entry.invite {
                    // Timer K.
                    if udp {
                        timers.t4
                    } else {
                        Duration::ZERO
                    }
                } else if code < 300 {
                    // RFC 6026 Timer M: absorb 2xx retransmissions.
                    timers.transaction_timeout()
                } else {
                    entry.ack = Some(Outbound {
                        bytes: crate::message::encode_request(&ack_for(&entry.request, response)),
                        target: entry.sent.target,
                    });
                    // Timer D.
                    if udp {
                        TIMER_D
                    } else {
                        Duration::ZERO
                    }
                };
                entry.expire_at = now + linger;
                schedule = Some(entry.expire_at);
                entry.ack.clone()
            }
        };
        let earliest = schedule.is_some_and(|at| super::schedule(&mut table.due, at, key));
        drop(table);
        if earliest {
            self.changed.notify_one();
        }
        ResponseDisposition::Matched { send }
    }

    /// Fires the timers due at `now`: retransmissions to send; timed-out transactions report
    /// [`ClientError::Timeout`] to their caller.
    pub fn poll(&self, now: Instant) -> Vec<Outbound> {
        let timers = self.timers;
        let mut out = Vec::new();
        let mut table = self.lock();
        while let Some(Reverse((at, _))) = table.due.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, key))) = table.due.pop() else {
                break;
            };
            let Some(entry) = table.entries.get_mut(&key) else {
                continue;
            };
            if entry.expire_at <= now {
                if let Some(waiter) = entry.waiter.take() {
                    let _ = waiter.send(Err(ClientError::Timeout(timers.transaction_timeout())));
                }
                table.entries.remove(&key);
                continue;
            }
            if entry.retransmit_at.is_some_and(|at| at <= now) {
                out.push(entry.sent.clone());
                entry.interval = if entry.invite {
                    // Timer A doubles without a cap; B ends it at 64·T1.
                    entry.interval * 2
                } else if entry.state == State::Proceeding {
                    timers.t2
                } else {
                    (entry.interval * 2).min(timers.t2)
                };
                let next = now + entry.interval;
                entry.retransmit_at = Some(next);
                table.due.push(Reverse((next, key)));
            }
        }
        out
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.lock().due.peek().map(|Reverse((at, _))| *at)
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) async fn changed(&self) {
        self.changed.notified().await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // Every update leaves the table consistent, so a poisoned lock is still usable.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn top_via_branch(headers: &Headers) -> Option<String> {
    let via = headers.iter().find_map(|h| match h {
        Header::Via(via) => Some(via.value()),
        _ => None,
    })?;
    header_param(via, "branch")
        .filter(|b| b.starts_with(MAGIC_COOKIE))
        .map(str::to_string)
}

/// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): the original's Request-URI,
/// top Via, From, Call-ID, CSeq number and Route set, the response's To.
fn ack_for(request: &Request, response: &Response) -> Request {
    let mut headers = Headers::default();
    if let Some(via) = request.headers.iter().find(|h| matches!(h, Header::Via(_))) {
        headers.push(via.clone());
    }
    headers.push(Header::MaxForwards(rsip::headers::MaxForwards::new("70")));
    for header in request.headers.iter() {
        match header {
            Header::From(_) | Header::CallId(_) | Header::Route(_) => headers.push(header.clone()),
            Header::CSeq(cseq) => {
                let seq = cseq.seq().unwrap_or_default();
                headers.push(Header::CSeq(rsip::headers::CSeq::new(format!("{seq} ACK"))));
            }
            _ => {}
        }
    }
    if let Some(to) = response.headers.iter().find(|h| matches!(h, Header::To(_))) {
        headers.push(to.clone());
    }
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        "0",
    )));
    Request {
        method: Method::Ack,
        uri: request.uri.clone(),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> SocketAddr {
        "127.0.0.1:5070".parse().unwrap()
    }

    fn request(method: &str) -> Request {
        let text = format!("{method} sip:a@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKclient1\r\nFrom: <sip:n@127.0.0.1>;tag=f\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: cl-1\r\nCSeq: 3 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
        match crate::message::parse(text.as_bytes()) {
            Ok(rsip::SipMessage::Request(request)) => request,
            other => panic!("{other:?}"),
        }
    }

    fn response(code: u16, method: &str) -> Response {
        let text = format!("SIP/2.0 {code} X\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKclient1\r\nFrom: <sip:n@127.0.0.1>;tag=f\r\nTo: <sip:a@127.0.0.1>;tag=r\r\nCall-ID: cl-1\r\nCSeq: 3 {method}\r\nContent-Length: 0\r\n\r\n");
        match crate::message::parse(text.as_bytes()) {
            Ok(rsip::SipMessage::Response(response)) => response,
            other => panic!("{other:?}"),
        }
    }

    /// Runs the paused clock from timer to timer for `until`, recording when (since
    /// `start`) each retransmission went out.
    async fn run(layer: &ClientTransactions, start: Instant, until: Duration) -> Vec<u64> {
        let mut sent = Vec::new();
        while let Some(at) = layer.next_deadline() {
            if at > start + until {
                break;
            }
            tokio::time::advance(at.saturating_duration_since(Instant::now())).await;
            for _ in layer.poll(Instant::now()) {
                sent.push((Instant::now() - start).as_millis() as u64);
            }
        }
        sent
    }

    #[tokio::test(start_paused = true)]
    async fn a_non_invite_request_is_retransmitted_at_t1_doubling_up_to_t2_and_timer_f_fires_at_64_t1(
    ) {
        let layer = ClientTransactions::new(Timers::default());
        let start = Instant::now();
        let mut handle = layer
            .start(request("OPTIONS"), target(), Transport::Udp, start)
            .unwrap();
        let sent = run(&layer, start, Duration::from_secs(40)).await;
        assert_eq!(
            sent,
            [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
        );
        assert_eq!(
            handle.outcome.try_recv(),
            Ok(Err(ClientError::Timeout(Duration::from_secs(32))))
        );
        assert!(layer.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_final_response_stops_retransmission_and_is_delivered() {
        let layer = ClientTransactions::new(Timers::default());
        let start = Instant::now();
        let mut handle = layer
            .start(request("OPTIONS"), target(), Transport::Udp, start)
            .unwrap();
        assert_eq!(run(&layer, start, Duration::from_millis(600)).await, [500]);
        let ok = response(200, "OPTIONS");
        assert_eq!(
            layer.receive_response(&ok, Instant::now()),
            ResponseDisposition::Matched { send: None }
        );
        assert_eq!(handle.outcome.try_recv().map(|r| r.is_ok()), Ok(true));
        // A retransmitted 200 is absorbed during Timer K, then the transaction is gone.
        assert_eq!(
            layer.receive_response(&ok, Instant::now()),
            ResponseDisposition::Matched { send: None }
        );
        assert!(run(&layer, start, Duration::from_secs(60)).await.is_empty());
        assert_eq!(
            layer.receive_response(&ok, Instant::now()),
            ResponseDisposition::Stray
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_invite_is_retransmitted_by_timer_a_without_a_cap_until_a_provisional() {
        let layer = ClientTransactions::new(Timers::default());
        let start = Instant::now();
        let _handle = layer
            .start(request("INVITE"), target(), Transport::Udp, start)
            .unwrap();
        assert_eq!(
            run(&layer, start, Duration::from_secs(16)).await,
            [500, 1500, 3500, 7500, 15500]
        );
        layer.receive_response(&response(180, "INVITE"), Instant::now());
        assert!(run(&layer, start, Duration::from_secs(100))
            .await
            .is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejected_invite_is_acknowledged_and_the_ack_repeated_for_each_retransmission() {
        let layer = ClientTransactions::new(Timers::default());
        let now = Instant::now();
        let mut handle = layer
            .start(request("INVITE"), target(), Transport::Udp, now)
            .unwrap();
        let busy = response(486, "INVITE");
        let ResponseDisposition::Matched { send: Some(ack) } = layer.receive_response(&busy, now)
        else {
            panic!("no ACK");
        };
        let text = String::from_utf8(ack.bytes.clone()).unwrap();
        assert!(
            text.starts_with("ACK sip:a@127.0.0.1:5070 SIP/2.0\r\n"),
            "{text}"
        );
        assert!(
            text.contains("CSeq: 3 ACK") && text.contains("tag=r"),
            "{text}"
        );
        assert_eq!(
            layer.receive_response(&busy, now),
            ResponseDisposition::Matched { send: Some(ack) }
        );
        assert_eq!(
            handle
                .outcome
                .try_recv()
                .map(|r| r.map(|r| r.status_code.code())),
            Ok(Ok(486))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn over_tcp_a_request_is_never_retransmitted_but_still_times_out() {
        let layer = ClientTransactions::new(Timers::default());
        let start = Instant::now();
        let mut handle = layer
            .start(request("OPTIONS"), target(), Transport::Tcp, start)
            .unwrap();
        assert!(run(&layer, start, Duration::from_secs(40)).await.is_empty());
        assert!(matches!(
            handle.outcome.try_recv(),
            Ok(Err(ClientError::Timeout(_)))
        ));
    }
}
