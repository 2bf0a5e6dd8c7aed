//! A phone's side of SIP in the console's tests: registering with digest authentication.

use std::net::SocketAddr;
use std::time::Duration;

use md5::{Digest, Md5};
use tokio::net::UdpSocket;

pub fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The value of `name="…"` or `name=…` in a challenge.
pub fn param(challenge: &str, name: &str) -> Option<String> {
    let at = challenge.find(&format!("{name}="))? + name.len() + 1;
    let rest = &challenge[at..];
    Some(match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next()?.to_string(),
        None => rest.split([',', ' ', '\r']).next()?.to_string(),
    })
}

pub async fn exchange(socket: &UdpSocket, target: SocketAddr, request: &str) -> String {
    socket.send_to(request.as_bytes(), target).await.unwrap();
    let mut buf = vec![0u8; 8192];
    let (len, _) = tokio::time::timeout(Duration::from_secs(3), socket.recv_from(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    String::from_utf8_lossy(&buf[..len]).to_string()
}

/// REGISTERs `user` with `password` as a phone would: unauthenticated first, then answering
/// the MD5 challenge. Returns the final status line.
pub async fn register(target: SocketAddr, user: &str, password: &str, call_id: &str) -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    register_from(&socket, target, user, password, call_id).await
}

/// As [`register`], from a given socket (the phone's).
pub async fn register_from(
    socket: &UdpSocket,
    target: SocketAddr,
    user: &str,
    password: &str,
    call_id: &str,
) -> String {
    let local = socket.local_addr().unwrap();
    let host = target.ip();
    let request = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:{host} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{call_id}{cseq};rport\r\nMax-Forwards: 70\r\n\
             From: <sip:{user}@{host}>;tag=t{cseq}\r\nTo: <sip:{user}@{host}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@{local}>\r\nExpires: 300\r\n{auth}User-Agent: sipfleet-test\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let first = exchange(socket, target, &request(1, "")).await;
    assert!(first.starts_with("SIP/2.0 401"), "{first}");
    let challenge = first
        .lines()
        .filter(|l| l.starts_with("WWW-Authenticate:"))
        .find(|l| l.contains("MD5"))
        .unwrap_or_else(|| panic!("an MD5 challenge: {first}"))
        .to_string();
    let realm = param(&challenge, "realm").unwrap();
    let nonce = param(&challenge, "nonce").unwrap();
    let opaque = param(&challenge, "opaque");
    let uri = format!("sip:{host}");
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("REGISTER:{uri}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}"));
    let opaque = opaque
        .map(|o| format!(", opaque=\"{o}\""))
        .unwrap_or_default();
    let auth = format!(
        "Authorization: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0ffee\"{opaque}\r\n"
    );
    let second = exchange(socket, target, &request(2, &auth)).await;
    second.lines().next().unwrap_or_default().to_string()
}
