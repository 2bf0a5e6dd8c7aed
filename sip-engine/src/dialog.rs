//! Calls as dialogs (RFC 3261 §12): what the node learns of each call as it passes, told
//! once, in one place, to whoever keeps count.
//!
//! The node emits a [`DialogEvent`] when an initial INVITE leaves (the caller is known), when
//! a callee rings, when the call is answered (the callee is known, with both bodies: the
//! offer and the answer), when it fails, and when a BYE ends it. Call admission
//! (`limits::Calls`) consumes them today; call records and a media relay are the
//! next [`DialogObserver`]s.
//!
//! The node can also end a call itself ([`bye`]): as a proxy standing between the two ends,
//! it sends each a BYE on behalf of the other.

use std::net::SocketAddr;

use rsip::headers::UntypedHeader;
use rsip::message::HeadersExt;
use rsip::{Header, Headers, Method, Request, Response};

use crate::forward::rewrite::{names, next_hop, Hop, DEFAULT_MAX_FORWARDS};
use crate::message::{cseq_number, split_header_list, uri_of};
use crate::transport::Streams;

/// One end of a call, as this node addresses a request to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    /// The header value that names this end in its own requests (the caller's From, the
    /// callee's To), tag included.
    pub party: String,
    /// Its Contact URI: the Request-URI of a request to it.
    pub contact: String,
    /// The Record-Route entries between this node and this end, nearest first: the Route
    /// set of a request from the node to it.
    pub routes: Vec<String>,
    /// The highest CSeq number this end has sent in the call; `None` before its first
    /// request.
    pub cseq: Option<u32>,
}

impl End {
    /// Whether a request with From tag `tag` comes from this end.
    pub fn sent(&self, tag: &str) -> bool {
        crate::message::header_param(&self.party, "tag") == Some(tag)
    }
}

/// An answered call, with what it takes to send each end a BYE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub call_id: String,
    pub caller: End,
    pub callee: End,
}

/// What happened to a call. Borrowed views of the messages: an observer copies what it
/// keeps.
#[derive(Debug)]
pub enum DialogEvent<'a> {
    /// An admitted initial INVITE left the node: `caller` as the callee will see it (its
    /// Contact pointed at its NAT address), `offer` the INVITE's body (SDP).
    Invited {
        call_id: &'a str,
        caller: End,
        offer: &'a [u8],
    },
    /// A callee answered provisionally (101–199): the call rings.
    Early { call_id: &'a str, code: u16 },
    /// The first 2xx of the call reached the caller. `callee` and the Record-Route
    /// entries towards the caller come from it ([`answer_ends`]); `offer` is the INVITE's
    /// body, `answer` the 2xx's.
    Confirmed {
        call_id: &'a str,
        callee: Option<(End, Vec<String>)>,
        offer: &'a [u8],
        answer: &'a [u8],
    },
    /// The INVITE got a final answer other than 2xx (or none in time): no call.
    Failed { call_id: &'a str, code: u16 },
    /// A request inside the call from the end whose From tag is `from_tag`, with its CSeq.
    InDialog {
        call_id: &'a str,
        from_tag: &'a str,
        cseq: u32,
    },
    /// A BYE passed: the call is over.
    Ended { call_id: &'a str },
}

/// Told every [`DialogEvent`] of a node's calls, on the receiving task: keep it short.
pub trait DialogObserver: Send + Sync + std::fmt::Debug {
    fn on_dialog(&self, event: &DialogEvent<'_>);
}

/// The caller of an initial INVITE, from the `request` as it came and as the node
/// `forwarded` it (whose Contact points at the caller's NAT address): the end a BYE to the
/// caller goes to. Its routes come with the answer ([`answer_ends`]).
pub fn caller_of(request: &Request, forwarded: &Request) -> Option<End> {
    let party = request.from_header().ok()?.value().to_string();
    let contact = uri_of(forwarded.contact_header().ok()?.value())?.to_string();
    let cseq = cseq_number(request.cseq_header().ok()?.value())?;
    Some(End {
        party,
        contact,
        routes: Vec::new(),
        cseq: Some(cseq),
    })
}

/// What the first 2xx to an INVITE (as relayed to the caller by the node at `local`) says
/// about the call's ends: the callee (its To, its Contact, the Record-Route entries between
/// the node and it) and the Record-Route entries between the node and the caller. Entries
/// above the node's own were added downstream of it, entries below upstream.
pub fn answer_ends(local: SocketAddr, response: &Response) -> Option<(End, Vec<String>)> {
    let party = response.to_header().ok()?.value().to_string();
    let contact = uri_of(response.contact_header().ok()?.value())?.to_string();
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
        .position(|entry| uri_of(entry).is_some_and(|uri| names(local, uri)));
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

/// A BYE from the node at `local` to the call's end `to`, on behalf of its other end
/// `from` (whose From, tag and CSeq it carries, so `to` takes it as its peer's), with a
/// `Reason` header (RFC 3326) that says why. `None` when `to` cannot be reached (its next
/// hop is not an IP address, or a closed stream connection).
pub fn bye(
    local: SocketAddr,
    streams: &Streams,
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
    let target = next_hop(next, streams).ok()?;
    let hop = Hop {
        local,
        transport: streams.transport_to(target),
    };
    let mut headers = Headers::default();
    headers.push(hop.via());
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
