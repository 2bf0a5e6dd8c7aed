//! Both ends of a call as the console's tests play them: a carrier that sends INVITEs over
//! UDP and a registered phone that answers them.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

pub const WAIT: Duration = Duration::from_secs(5);

/// The next message on `socket` other than keep-alives and ACKs, as text, and its sender.
pub async fn next(socket: &UdpSocket) -> (String, SocketAddr) {
    next_within(socket, WAIT).await
}

/// As [`next`], waiting up to `wait` for it.
pub async fn next_within(socket: &UdpSocket, wait: Duration) -> (String, SocketAddr) {
    let mut buf = vec![0u8; 8192];
    loop {
        let (len, from) = tokio::time::timeout(wait, socket.recv_from(&mut buf))
            .await
            .expect("a message in time")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..len]).to_string();
        let noise = text.trim().is_empty()
            || text.starts_with("ACK ")
            || (text.starts_with("OPTIONS ") && text.contains("Call-ID: ka-"))
            || text.starts_with("SIP/2.0 100 ");
        if !noise {
            return (text, from);
        }
    }
}

/// A carrier's INVITE for `user` at `node`.
pub fn invite(caller: SocketAddr, node: SocketAddr, user: &str, call: &str) -> String {
    let host = node.ip();
    format!(
        "INVITE sip:{user}@{host} SIP/2.0\r\nVia: SIP/2.0/UDP {caller};branch=z9hG4bK{call};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:carrier@192.0.2.1>;tag=c\r\nTo: <sip:{user}@{host}>\r\n\
         Call-ID: {call}\r\nCSeq: 1 INVITE\r\nContact: <sip:carrier@{caller}>\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The phone's answer to a request it got: the headers a response copies, a To tag.
pub fn answer(request: &str, status: &str) -> String {
    let mut copied = String::new();
    for line in request.split("\r\n") {
        if line.starts_with("To:") && !line.contains(";tag=") {
            copied.push_str(&format!("{line};tag=phone\r\n"));
        } else if ["Via:", "Record-Route:", "From:", "To:", "Call-ID:", "CSeq:"]
            .iter()
            .any(|name| line.starts_with(name))
        {
            copied.push_str(&format!("{line}\r\n"));
        }
    }
    format!("SIP/2.0 {status}\r\n{copied}Content-Length: 0\r\n\r\n")
}

pub fn status_line(message: &str) -> &str {
    message.lines().next().unwrap_or_default()
}

/// Calls bob at `node` from `socket`; returns the status line of the first final answer.
pub async fn call_from(socket: &UdpSocket, node: SocketAddr, call: &str) -> String {
    let from = socket.local_addr().unwrap();
    socket
        .send_to(invite(from, node, "bob", call).as_bytes(), node)
        .await
        .unwrap();
    // Earlier calls' answers are retransmitted until acknowledged: skip them.
    loop {
        let (answer, _) = next(socket).await;
        if answer.contains(&format!("Call-ID: {call}\r\n")) {
            return status_line(&answer).to_string();
        }
    }
}

/// `answer`, with the phone's Contact (every 2xx to an INVITE has one).
pub fn answer_with_contact(request: &str, status: &str, contact: SocketAddr) -> String {
    answer(request, status).replacen(
        "Content-Length: 0",
        &format!("Contact: <sip:bob@{contact}>\r\nContent-Length: 0"),
        1,
    )
}

/// Rings bob from the carrier and has him answer: the call holds a channel.
pub async fn answered_call(carrier: &UdpSocket, phone: &UdpSocket, node: SocketAddr, call: &str) {
    let from = carrier.local_addr().unwrap();
    carrier
        .send_to(invite(from, node, "bob", call).as_bytes(), node)
        .await
        .unwrap();
    let (ringing, _) = next(phone).await;
    assert!(ringing.starts_with("INVITE "), "{ringing}");
    let contact = phone.local_addr().unwrap();
    phone
        .send_to(
            answer_with_contact(&ringing, "200 OK", contact).as_bytes(),
            node,
        )
        .await
        .unwrap();
    let (ok, _) = next(carrier).await;
    assert_eq!(status_line(&ok), "SIP/2.0 200 OK");
}
