//! One server's SIP behaviour: given a message and where it came from, what to answer.
//!
//! The first engine build serves OPTIONS (the health ping every SIP peer and the control
//! plane send) and answers every other request with the status RFC 3261 prescribes for a
//! method it does not serve. Registrar, proxy and dispatcher behaviour arrive in later builds
//! behind the same entry point, [`Node::handle`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use rsip::headers::UntypedHeader;
use rsip::{Header, Method, SipMessage, StatusCode};

use crate::message::{
    is_known_method, is_token, parse, request_method_token, response_to, salvage_request_headers,
    udp_response_target,
};
use crate::transport::tcp::FrameError;

/// What a server is for: a Dispatcher balances load over switches, a Switch is a cluster
/// member that carries calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    Dispatcher,
    Switch,
}

/// The transport a message arrived on; responses over UDP go to a computed address, over a
/// stream back on the same connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

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

/// The methods this build serves; everything else RFC 3261 defines gets 405 with this list.
const ALLOWED: &[Method] = &[Method::Options];

/// One running server's SIP logic, shared by its transports.
#[derive(Debug)]
pub struct Node {
    role: NodeRole,
    /// Sent as `Server:` so a peer (and the console) can tell which build answers.
    server_header: String,
    /// To-tag for responses this node generates statelessly.
    to_tag: String,
    stats: NodeStats,
}

impl Node {
    pub fn new(role: NodeRole, build: &str) -> Self {
        Node {
            role,
            server_header: format!("sipfleet/{build}"),
            to_tag: format!("{:016x}", rand::random::<u64>()),
            stats: NodeStats::default(),
        }
    }

    pub fn role(&self) -> NodeRole {
        self.role
    }

    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// Handles one complete message. Returns what to send back, if anything.
    pub fn handle(&self, bytes: &[u8], source: SocketAddr, transport: Transport) -> Option<Reply> {
        match parse(bytes) {
            Ok(SipMessage::Request(request)) => {
                self.stats.requests.fetch_add(1, Ordering::Relaxed);
                // A request without the headers a response must copy cannot be answered
                // properly; treat it as malformed.
                if !has_core_headers(&request.headers) {
                    return self.reject(bytes, source, transport, "Missing Mandatory Header");
                }
                let (status, extra) = match request.method {
                    // ACK never gets a response (RFC 3261 §17.2.1).
                    Method::Ack => return None,
                    Method::Options => (StatusCode::OK, self.capabilities()),
                    _ => (StatusCode::MethodNotAllowed, vec![allow_header()]),
                };
                Some(self.reply(&request.headers, status, extra, source, transport))
            }
            // Responses would belong to client transactions; this build starts none, so any
            // response that arrives is stray and is dropped (RFC 3261 §18.1.2).
            Ok(SipMessage::Response(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                None
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
                                vec![allow_header()],
                                source,
                                transport,
                            ));
                        }
                    }
                }
                self.reject(bytes, source, transport, "Malformed Request")
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
        let mut reply = self.reply(&headers, StatusCode::BadRequest, vec![], source, transport);
        reply.bytes = with_reason(&reply.bytes, reason);
        Some(reply)
    }

    fn reply(
        &self,
        request_headers: &rsip::Headers,
        status: StatusCode,
        mut extra: Vec<Header>,
        source: SocketAddr,
        transport: Transport,
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
            bytes: response.to_string().into_bytes(),
            target,
        }
    }

    fn capabilities(&self) -> Vec<Header> {
        vec![
            allow_header(),
            Header::Accept(rsip::headers::Accept::new("application/sdp")),
        ]
    }
}

fn allow_header() -> Header {
    let methods: Vec<String> = ALLOWED.iter().map(|m| m.to_string()).collect();
    Header::Allow(rsip::headers::Allow::new(methods.join(", ")))
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

/// Replaces the default reason phrase of a 400 with one that says what was wrong.
fn with_reason(response: &[u8], reason: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(response);
    match text.split_once("\r\n") {
        Some((_, rest)) => format!("SIP/2.0 400 {reason}\r\n{rest}").into_bytes(),
        None => response.to_vec(),
    }
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
}
