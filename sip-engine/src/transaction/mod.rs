//! Transactions (RFC 3261 §17): the layer between the transport and the parts of a node that
//! decide what to answer (registrar, later proxy and dialogs).
//!
//! The layer is sans-I/O: it keeps the state of every transaction and the time each timer is
//! due, and hands back what must be sent. The UDP loop asks it for [`TransactionLayer::next_deadline`],
//! sleeps until then (or until [`TransactionLayer::changed`] says a new timer exists) and
//! sends what [`TransactionLayer::poll`] returns. Keeping sockets out of the state machines
//! is what lets the tests drive them with tokio's paused clock.
//!
//! - [`server`]: absorbs retransmitted requests and retransmits final responses to INVITE
//!   until the ACK arrives (Timers G, H, I, J).
//! - [`client`]: retransmits requests until answered and gives up after 64·T1 (Timers A, B,
//!   D, E, F, K).

pub mod client;
pub mod server;

use std::time::Duration;

use rsip::headers::UntypedHeader;
use rsip::{Header, Method, Request};
use tokio::time::Instant;

use crate::message::header_param;

pub use client::{ClientError, ClientHandle, ClientTransactions, ResponseDisposition};
pub use server::{Received, ServerTransactions};

/// The magic cookie that marks an RFC 3261 branch (§8.1.1.7): only such branches are unique
/// enough to be a transaction's identity.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// The base timer values of RFC 3261 §17.1.1.1. Configurable so a test or a deployment on a
/// low-latency network can shorten them; every other timer derives from these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// Round-trip estimate: the first retransmission interval.
    pub t1: Duration,
    /// Cap on the retransmission interval of non-INVITE requests and INVITE responses.
    pub t2: Duration,
    /// How long a message may linger in the network: Timers I and K.
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl Timers {
    /// 64·T1: Timers B, F, H, J (and L, M of RFC 6026).
    pub fn transaction_timeout(&self) -> Duration {
        self.t1 * 64
    }
}

pub use crate::transport::Outbound;

/// Pushes the deadline `at` of `key` onto a timer heap; true when it comes before every
/// deadline already there. Only then must the timer task be woken: it sleeps until the
/// earliest deadline it saw, and a later one changes nothing for it. (Most new deadlines are
/// later: a transaction's end, 32 s away.) Without this, every request woke the timer task
/// only for it to go back to sleep.
pub(crate) fn schedule<K: Ord>(
    due: &mut std::collections::BinaryHeap<std::cmp::Reverse<(Instant, K)>>,
    at: Instant,
    key: K,
) -> bool {
    let earliest = due
        .peek()
        .is_none_or(|std::cmp::Reverse((top, _))| at < *top);
    due.push(std::cmp::Reverse((at, key)));
    earliest
}

/// What identifies a server transaction (RFC 3261 §17.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// RFC 3261 peers: the top Via's branch (with the magic cookie) and sent-by, and the
    /// method, ACK counting as INVITE so that it finds the INVITE transaction it acknowledges.
    Branch {
        branch: String,
        sent_by: String,
        method: String,
    },
    /// RFC 2543 peers, whose branch is not unique: the request's identifying fields. An ACK
    /// must also carry the To tag of the response being acknowledged; that check is made
    /// against the transaction, not the key.
    Legacy {
        request_uri: String,
        from_tag: String,
        call_id: String,
        cseq: u32,
        top_via: String,
        method: String,
    },
}

impl Key {
    /// The server-transaction key of a request, `None` when it lacks what a key needs (such
    /// a request is answered statelessly).
    pub fn of_request(request: &Request) -> Option<Key> {
        let top_via = request.headers.iter().find_map(|h| match h {
            Header::Via(via) => Some(via.value()),
            _ => None,
        })?;
        let method = match request.method {
            Method::Ack => Method::Invite.to_string(),
            ref other => other.to_string(),
        };
        let branch = header_param(top_via, "branch").unwrap_or_default();
        if branch.starts_with(MAGIC_COOKIE) {
            let sent_by = top_via
                .split(';')
                .next()
                .and_then(|sent| sent.split_whitespace().nth(1))?
                .to_ascii_lowercase();
            return Some(Key::Branch {
                branch: branch.to_string(),
                sent_by,
                method,
            });
        }
        let mut from_tag = None;
        let mut call_id = None;
        let mut cseq = None;
        for header in request.headers.iter() {
            match header {
                Header::From(from) => {
                    from_tag = Some(header_param(from.value(), "tag").unwrap_or_default())
                }
                Header::CallId(id) => call_id = Some(id.value()),
                Header::CSeq(value) => cseq = value.seq().ok(),
                _ => {}
            }
        }
        Some(Key::Legacy {
            request_uri: request.uri.to_string(),
            from_tag: from_tag?.to_string(),
            call_id: call_id?.to_string(),
            cseq: cseq?,
            top_via: top_via.trim().to_string(),
            method,
        })
    }
}

/// Both halves of the layer, sharing one notion of time, so a transport has a single thing
/// to poll.
#[derive(Debug)]
pub struct TransactionLayer {
    pub server: ServerTransactions,
    pub client: ClientTransactions,
}

impl TransactionLayer {
    pub fn new(timers: Timers) -> Self {
        TransactionLayer {
            server: ServerTransactions::new(timers),
            client: ClientTransactions::new(timers),
        }
    }

    /// The earliest instant at which [`poll`](Self::poll) has something to do. It may be
    /// early (a timer that was since cancelled): polling then simply returns nothing.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.server.next_deadline(), self.client.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires every timer due at `now`: returns the retransmissions to send and drops
    /// finished transactions.
    pub fn poll(&self, now: Instant) -> Vec<Outbound> {
        let mut out = self.server.poll(now);
        out.extend(self.client.poll(now));
        out
    }

    /// Completes when a timer was added since the last call, so a sleeping driver re-reads
    /// [`next_deadline`](Self::next_deadline).
    pub async fn changed(&self) {
        tokio::select! {
            _ = self.server.changed() => {}
            _ = self.client.changed() => {}
        }
    }
}

impl Default for TransactionLayer {
    fn default() -> Self {
        TransactionLayer::new(Timers::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str) -> Request {
        match crate::message::parse(text.as_bytes()) {
            Ok(rsip::SipMessage::Request(request)) => request,
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn an_ack_has_the_key_of_the_invite_it_acknowledges() {
        let invite = request("INVITE sip:a@x SIP/2.0\r\nVia: SIP/2.0/UDP h:5060;branch=z9hG4bK1\r\nFrom: <sip:b@x>;tag=f\r\nTo: <sip:a@x>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n");
        let ack = request("ACK sip:a@x SIP/2.0\r\nVia: SIP/2.0/UDP H:5060;branch=z9hG4bK1\r\nFrom: <sip:b@x>;tag=f\r\nTo: <sip:a@x>;tag=t\r\nCall-ID: c\r\nCSeq: 1 ACK\r\n\r\n");
        let key = Key::of_request(&invite).unwrap();
        assert!(matches!(key, Key::Branch { .. }));
        assert_eq!(Key::of_request(&ack), Some(key));
    }

    #[test]
    fn a_branch_without_the_magic_cookie_falls_back_to_rfc_2543_matching() {
        let text = "OPTIONS sip:a@x SIP/2.0\r\nVia: SIP/2.0/UDP h:5060;branch=old1\r\nFrom: <sip:b@x>;tag=f\r\nTo: <sip:a@x>\r\nCall-ID: c\r\nCSeq: 4 OPTIONS\r\n\r\n";
        let key = Key::of_request(&request(text)).unwrap();
        assert!(matches!(key, Key::Legacy { cseq: 4, ref from_tag, .. } if from_tag == "f"));
        let other = text.replace("CSeq: 4", "CSeq: 5");
        assert_ne!(Key::of_request(&request(&other)), Some(key));
    }
}
