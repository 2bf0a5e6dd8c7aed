//! A test phone's side of registration: the REGISTER it sends and the MD5 digest answer
//! to a node's challenge (shared by the real-socket tests).
#![allow(dead_code)]

use std::net::SocketAddr;

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
    let header = challenge
        .split("\r\n")
        .find(|line| line.starts_with("WWW-Authenticate:") && line.contains("algorithm=MD5"))
        .unwrap_or_else(|| panic!("an MD5 challenge in {challenge}"));
    let mut credentials = Credentials {
        username: user.into(),
        realm: param(header, "realm"),
        nonce: param(header, "nonce"),
        uri: format!("sip:{node_ip}"),
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
    credentials.response = credentials.expected_response(&key, "REGISTER");
    format!(
        "Authorization: Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", \
         response=\"{}\", algorithm=MD5, opaque=\"{}\", qop=auth, nc=00000001, \
         cnonce=\"phone-cnonce\"\r\n",
        credentials.realm,
        credentials.nonce,
        credentials.uri,
        credentials.response,
        credentials.opaque.unwrap_or_default()
    )
}
