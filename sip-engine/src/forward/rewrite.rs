//! How a request and its responses are rewritten as they pass the node (RFC 3261 §16.6 and
//! §16.7): Via pushed and popped, Max-Forwards counted down, the node's Route popped,
//! Record-Route added, Contacts behind NAT pointed at where they came from, and the CANCEL
//! of a forwarded INVITE. Pure functions of their inputs: no state, no I/O.

use std::net::{IpAddr, SocketAddr};

use rsip::common::uri::{Host, Scheme};
use rsip::headers::UntypedHeader;
use rsip::{Header, Headers, Method, Request, Response, StatusCode};

use crate::message::{header_param, split_header_list, stamp_via, uri_of};
use crate::transaction::client::ClientKey;
use crate::transaction::{Key, MAGIC_COOKIE};
use crate::transport::{Streams, Transport};

/// Max-Forwards of a request that carried none (RFC 3261 §16.6 step 3).
pub const DEFAULT_MAX_FORWARDS: u32 = 70;

/// What the node writes of itself into a request it sends on.
#[derive(Debug, Clone, Copy)]
pub struct Hop {
    /// The node's own address (its UDP socket): the sent-by of its Via and the host of its
    /// Record-Route.
    pub local: SocketAddr,
    /// The transport the request leaves on (its Via's sent-protocol).
    pub transport: Transport,
}

impl Hop {
    /// The node's Via with a fresh branch.
    pub fn via(&self) -> Header {
        let branch = format!("{MAGIC_COOKIE}{:016x}", rand::random::<u64>());
        Header::Via(rsip::headers::Via::new(format!(
            "SIP/2.0/{} {};branch={branch};rport",
            self.transport.via_token(),
            self.local
        )))
    }
}

/// Whether `uri` addresses the node at `local`: its IP, and its port (5060 when none is
/// given).
pub fn names(local: SocketAddr, uri: &str) -> bool {
    let Ok(uri) = rsip::Uri::try_from(uri) else {
        return false;
    };
    let port = uri.port().map_or(5060, |p| u16::from(*p));
    ip_of(uri.host()) == Some(local.ip()) && port == local.port()
}

/// What the node writes of itself into a request beside its Via.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Nothing: a request inside a dialog, which has its route set already.
    Nothing,
    /// A Record-Route (an initial request): the dialog's later requests come through here.
    RecordRoute,
    /// A Path (RFC 3327; a REGISTER, which makes no dialog and must not be
    /// record-routed): requests for the registered contact come through here. It carries
    /// the address the REGISTER came from ([`NAT_PARAM`]), where such a request goes on.
    Path,
}

/// The parameter of a node's Path URI that names the address a REGISTER came from
/// (`<ip>~<port>`: no colon, which some parsers cut a parameter's value at). A request that
/// comes back along that Path goes there: behind NAT, the only address that reaches the
/// phone, whatever its Contact says (as Kamailio's path module does with `received`).
pub const NAT_PARAM: &str = "nat";

/// The flag of a node's Path URI that says the REGISTER came over a stream (TCP, TLS,
/// WebSocket): the phone keeps that connection open itself (RFC 5626 keep-alives), and a
/// UDP keep-alive to its address would reach nothing.
pub const STREAM_PARAM: &str = "stream";

/// [`STREAM_PARAM`] as written after a URI's other parameters.
const STREAM_FLAG: &str = ";stream";

/// The Path entry (a header value) a node at `local` writes for a REGISTER that came from
/// `source`: its own loose-routing URI, with `source` as [`NAT_PARAM`]. One form for both
/// ways a Dispatcher stands in a phone's Path — the Path it adds to a REGISTER it balances
/// to a switch, and the one it stores itself under AnyReg — so a request that comes back
/// along either is relayed the same way (the forwarder's `loose_route_from`) and the
/// Dispatcher's keep-alives find the same NAT address in it. `stream` adds
/// [`STREAM_PARAM`].
pub fn path_entry(local: SocketAddr, source: SocketAddr, stream: bool) -> String {
    format!(
        "<sip:{local};lr;{NAT_PARAM}={}~{}{}>",
        source.ip(),
        source.port(),
        if stream { STREAM_FLAG } else { "" }
    )
}

/// How many values the Via headers (`via`) or the Record-Route headers hold, however they
/// are folded into lines.
pub fn count_values(headers: &Headers, via: bool) -> usize {
    headers
        .iter()
        .map(|header| match header {
            Header::Via(value) if via => split_header_list(value.value()).len(),
            Header::RecordRoute(value) if !via => split_header_list(value.value()).len(),
            _ => 0,
        })
        .sum()
}

/// The request as it leaves the node (RFC 3261 §16.6): the node's Via on top (with a fresh
/// branch), the caller's Via stamped with `received`/`rport`, Max-Forwards one lower, the
/// node's own Route popped (`pop_route`), `uri` as the Request-URI when given, and what
/// `mark` says: with a Record-Route (an initial request) the caller's Contact is also
/// pointed at the address it sent from (`source_is_stream`: over the connection it
/// opened) — when the request came straight from the phone (one Via). One relayed by
/// another proxy (a Dispatcher, a cluster member) keeps its Contact: the address it came
/// from is that proxy's, and in-dialog requests sent there would end at it.
/// A Path goes above any Path already there.
pub fn prepare(
    request: &Request,
    source: SocketAddr,
    hop: Hop,
    uri: Option<rsip::Uri>,
    pop_route: bool,
    mark: Mark,
    source_is_stream: bool,
) -> Request {
    let mut headers = Headers::default();
    headers.push(hop.via());
    let record_route = mark == Mark::RecordRoute;
    let from_phone = count_values(&request.headers, true) == 1;
    match mark {
        Mark::Nothing => {}
        Mark::RecordRoute => headers.push(Header::RecordRoute(rsip::headers::RecordRoute::new(
            format!("<sip:{};lr>", hop.local),
        ))),
        Mark::Path => headers.push(Header::Other(
            "Path".into(),
            path_entry(hop.local, source, source_is_stream),
        )),
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
            Header::Contact(contact) if record_route && from_phone => {
                let value = contact.value();
                let fixed = nat_fixed_contact(value, source, source_is_stream);
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

/// `request` with `route` (header values, nearest first: a contact's Path) as its Route
/// set, right below the node's own Via, above any Route it had.
pub fn with_route(request: Request, route: &[String]) -> Request {
    if route.is_empty() {
        return request;
    }
    let mut headers = Headers::default();
    let mut placed = false;
    for header in request.headers {
        let via = matches!(header, Header::Via(_));
        headers.push(header);
        if via && !placed {
            placed = true;
            headers.push(Header::Route(rsip::headers::Route::new(route.join(", "))));
        }
    }
    Request { headers, ..request }
}

/// The address a node's Path URI `uri` names with [`NAT_PARAM`], if any.
pub fn nat_of(uri: &str) -> Option<SocketAddr> {
    let value = uri.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case(NAT_PARAM)
            .then_some(value.trim())
    })?;
    let (ip, port) = value.rsplit_once('~')?;
    Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
}

/// Whether a node's Path URI `uri` carries [`STREAM_PARAM`].
pub fn over_stream(uri: &str) -> bool {
    uri.split(';')
        .skip(1)
        .any(|param| param.trim().eq_ignore_ascii_case(STREAM_PARAM))
}

/// The URIs of the Route headers, in order, one per element of comma-separated lists.
pub fn route_uris(headers: &Headers) -> Vec<String> {
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

fn max_forwards_of(value: &str) -> Option<u32> {
    value.trim().parse().ok()
}

/// 483 for a request that may not be forwarded any further (RFC 3261 §16.3 step 3: a
/// Max-Forwards of 0 on arrival), 400 for one that is not a number.
pub fn max_forwards_refusal(request: &Request) -> Option<(StatusCode, &'static str)> {
    let value = request.headers.iter().find_map(|h| match h {
        Header::MaxForwards(value) => Some(value.value()),
        _ => None,
    })?;
    match max_forwards_of(value) {
        Some(0) => Some((StatusCode::TooManyHops, "Too Many Hops")),
        Some(_) => None,
        None => Some((StatusCode::BadRequest, "Invalid Max-Forwards")),
    }
}

/// Where a next-hop URI is reached: an IP address and port (5060 by default) of a `sip:`
/// URI, over UDP or an open stream connection. Never resolved through DNS.
pub fn next_hop(uri: &str, streams: &Streams) -> Result<SocketAddr, (StatusCode, &'static str)> {
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

pub fn ip_of(host: &Host) -> Option<IpAddr> {
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
pub fn client_key(response: &Response) -> Option<ClientKey> {
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
pub fn without_top_via(
    response: &Response,
    contact_source: Option<(SocketAddr, bool)>,
) -> Response {
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
pub fn nat_fixed_contact(value: &str, source: SocketAddr, over_stream: bool) -> Option<String> {
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
pub fn cancel_for(invite: &Request) -> Request {
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
