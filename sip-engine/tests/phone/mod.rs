//! A test phone's side of registration and calling: the REGISTER it sends and the MD5
//! digest answers to a node's challenges, and reading and answering what the node sends
//! (shared by the real-socket tests).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

use sip_engine::digest::{ha1, Algorithm, Credentials, QopParams};

/// A quoted parameter of a challenge header.
pub fn param(header: &str, name: &str) -> String {
    header
        .split(&format!("{name}=\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("{name} in {header}"))
        .to_string()
}

/// A REGISTER of `user` at `node_ip` from `phone`, with `authorization` (a whole header
/// line, or empty).
pub fn register(
    user: &str,
    node_ip: &str,
    phone: SocketAddr,
    cseq: u32,
    authorization: &str,
) -> String {
    format!(
        "REGISTER sip:{node_ip} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {phone};branch=z9hG4bKreg{user}{cseq};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@{node_ip}>;tag={user}reg\r\n\
         To: <sip:{user}@{node_ip}>\r\n\
         Call-ID: test-register-{user}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{user}@{phone}>\r\n\
         Expires: 600\r\n\
         {authorization}Content-Length: 0\r\n\r\n"
    )
}

/// The Authorization line that answers the MD5 challenge in `challenge` (a 401).
pub fn authorization(user: &str, password: &str, node_ip: &str, challenge: &str) -> String {
    digest_answer(
        challenge,
        "WWW-Authenticate",
        "Authorization",
        user,
        password,
        &format!("sip:{node_ip}"),
        "REGISTER",
    )
}

/// The Proxy-Authorization line that answers the MD5 challenge in `challenge` (a 407 to
/// an INVITE whose Request-URI is `uri`).
pub fn proxy_authorization(user: &str, password: &str, uri: &str, challenge: &str) -> String {
    digest_answer(
        challenge,
        "Proxy-Authenticate",
        "Proxy-Authorization",
        user,
        password,
        uri,
        "INVITE",
    )
}

/// The `answer_header` line answering the MD5 `challenge_header` of `challenge` for a
/// `method` request to `uri`.
fn digest_answer(
    challenge: &str,
    challenge_header: &str,
    answer_header: &str,
    user: &str,
    password: &str,
    uri: &str,
    method: &str,
) -> String {
    let header = challenge
        .split("\r\n")
        .find(|line| {
            line.starts_with(&format!("{challenge_header}:")) && line.contains("algorithm=MD5")
        })
        .unwrap_or_else(|| panic!("an MD5 {challenge_header} in {challenge}"));
    let mut credentials = Credentials {
        username: user.into(),
        realm: param(header, "realm"),
        nonce: param(header, "nonce"),
        uri: uri.into(),
        response: String::new(),
        algorithm: Algorithm::Md5,
        opaque: Some(param(header, "opaque")),
        qop: Some(QopParams {
            qop: "auth".into(),
            nc: "00000001".into(),
            cnonce: "phone-cnonce".into(),
        }),
    };
    let key = ha1(Algorithm::Md5, user, &credentials.realm, password);
    credentials.response = credentials.expected_response(&key, method);
    format!(
        "{answer_header}: Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", \
         response=\"{}\", algorithm=MD5, opaque=\"{}\", qop=auth, nc=00000001, \
         cnonce=\"phone-cnonce\"\r\n",
        credentials.realm,
        credentials.nonce,
        credentials.uri,
        credentials.response,
        credentials.opaque.unwrap_or_default()
    )
}

/// The next SIP message for a phone, as text, skipping the node's keep-alives; fails the
/// test after `wait`.
pub async fn receive(phone: &UdpSocket, wait: Duration) -> (String, SocketAddr) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let (len, from) = tokio::time::timeout(wait, phone.recv_from(&mut buf))
            .await
            .expect("a message arrives in time")
            .expect("recv works");
        let text = String::from_utf8_lossy(&buf[..len]).into_owned();
        let keepalive = text.starts_with("OPTIONS ") && text.contains("Call-ID: ka-");
        if !keepalive && !text.trim().is_empty() {
            return (text, from);
        }
    }
}

/// Registers `user` from `phone` at the node `node` (domain `node_ip`) with digest
/// authentication.
pub async fn sign_in(
    phone: &UdpSocket,
    user: &str,
    password: &str,
    node_ip: &str,
    node: SocketAddr,
    wait: Duration,
) {
    let addr = phone.local_addr().unwrap();
    phone
        .send_to(register(user, node_ip, addr, 1, "").as_bytes(), node)
        .await
        .unwrap();
    let (challenge, _) = receive(phone, wait).await;
    assert!(challenge.starts_with("SIP/2.0 401 "), "{challenge}");
    let auth = authorization(user, password, node_ip, &challenge);
    phone
        .send_to(register(user, node_ip, addr, 2, &auth).as_bytes(), node)
        .await
        .unwrap();
    let (ok, _) = receive(phone, wait).await;
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
}

/// The values of every `name:` header line of a message, in order.
pub fn headers<'a>(message: &'a str, name: &str) -> Vec<&'a str> {
    message
        .split("\r\n")
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
        .collect()
}

/// The callee's response to `request`: Vias, Record-Route, From, Call-ID and CSeq copied, a
/// To tag added (RFC 3261 §8.2.6, §12.1.1).
pub fn respond(request: &str, status: &str, contact: SocketAddr) -> String {
    let mut copied = String::new();
    for line in request.split("\r\n") {
        if line.starts_with("To:") {
            if line.contains(";tag=") {
                copied.push_str(&format!("{line}\r\n"));
            } else {
                copied.push_str(&format!("{line};tag=callee\r\n"));
            }
        } else if ["Via:", "Record-Route:", "From:", "Call-ID:", "CSeq:"]
            .iter()
            .any(|name| line.starts_with(name))
        {
            copied.push_str(&format!("{line}\r\n"));
        }
    }
    format!("SIP/2.0 {status}\r\n{copied}Contact: <sip:b@{contact}>\r\nContent-Length: 0\r\n\r\n")
}
