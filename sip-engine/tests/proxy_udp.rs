//! A call between two registered phones through a node started with [`Engine`], over real
//! loopback UDP sockets: both phones register with MD5 digest, A calls `sip:b@<node>` (and
//! answers the node's 407 with its credentials, after one wrong try), B
//! gets the INVITE at the address it registered from with the node's Record-Route and Via,
//! its 180 and 200 reach A, and A's ACK and BYE follow the route set through the node.
//!
//! Every wait is bounded by a timeout.

mod phone;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sip_engine::{
    Engine, KeepAliveSettings, MemoryDirectory, MemoryLocationStore, NodeRole, NodeSpec, Secret,
};
use tokio::net::UdpSocket;

const NODE_IP: &str = "127.0.84.1";
const PORT: u16 = 15084;
const PASSWORD: &str = "correct-horse";
const WAIT: Duration = Duration::from_secs(5);

async fn receive(phone: &UdpSocket) -> (String, SocketAddr) {
    phone::receive(phone, WAIT).await
}

async fn sign_in(phone: &UdpSocket, user: &str, node: SocketAddr) {
    phone::sign_in(phone, user, PASSWORD, NODE_IP, node, WAIT).await
}

fn headers<'a>(message: &'a str, name: &str) -> Vec<&'a str> {
    phone::headers(message, name)
}

fn respond(request: &str, status: &str, contact: SocketAddr) -> String {
    phone::respond(request, status, contact)
}

/// An in-dialog request of A's: to B's Contact, along the route set of the 200.
fn in_dialog(method: &str, cseq: u32, a: SocketAddr, ok: &str) -> String {
    let target = headers(ok, "Contact")[0]
        .trim_start_matches('<')
        .trim_end_matches('>');
    let route = headers(ok, "Record-Route").join(", ");
    let to = headers(ok, "To")[0];
    format!(
        "{method} {target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {a};branch=z9hG4bK{method}{cseq};rport\r\n\
         Route: {route}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:a@{NODE_IP}>;tag=caller\r\n\
         To: {to}\r\n\
         Call-ID: proxy-test-call\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

#[tokio::test]
async fn a_call_between_two_registered_phones_goes_through_the_node_and_stays_on_its_route() {
    let directory = Arc::new(MemoryDirectory::new());
    directory.insert("a", None, Secret::Password(PASSWORD.into()));
    directory.insert("b", None, Secret::Password(PASSWORD.into()));
    let store = Arc::new(MemoryLocationStore::new());
    let engine = Engine::new("test")
        .with_directory(directory, store)
        .with_keepalive(KeepAliveSettings {
            interval: Duration::from_secs(3600),
            max_missed: 3,
        });
    engine
        .start(NodeSpec {
            id: 84,
            ip: NODE_IP.parse().unwrap(),
            udp_port: PORT,
            tcp_port: PORT,
            role: NodeRole::Switch,
        })
        .await
        .expect("node starts");
    let node = SocketAddr::new(NODE_IP.parse().unwrap(), PORT);
    let phone_a = UdpSocket::bind("127.0.84.2:0").await.unwrap();
    let phone_b = UdpSocket::bind("127.0.84.3:0").await.unwrap();
    let (a, b) = (phone_a.local_addr().unwrap(), phone_b.local_addr().unwrap());
    sign_in(&phone_a, "a", node).await;
    sign_in(&phone_b, "b", node).await;

    let invite = |cseq: u32, credentials: &str| {
        format!(
            "INVITE sip:b@{NODE_IP} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {a};branch=z9hG4bKinvite{cseq};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:a@{NODE_IP}>;tag=caller\r\n\
             To: <sip:b@{NODE_IP}>\r\n\
             Call-ID: proxy-test-call\r\n\
             CSeq: {cseq} INVITE\r\n\
             Contact: <sip:a@{a}>\r\n\
             {credentials}Content-Length: 0\r\n\r\n"
        )
    };
    // The ACK to a 407 (RFC 3261 §17.1.1.3): the INVITE's branch, the 407's To tag.
    let ack = |cseq: u32, refusal: &str| {
        let to = headers(refusal, "To")[0].to_string();
        format!(
            "ACK sip:b@{NODE_IP} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {a};branch=z9hG4bKinvite{cseq};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:a@{NODE_IP}>;tag=caller\r\n\
             To: {to}\r\n\
             Call-ID: proxy-test-call\r\n\
             CSeq: {cseq} ACK\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    // `a` calls as a user of the node's domain: it must prove it (407), and a wrong
    // password is challenged again; b never hears of either INVITE.
    phone_a
        .send_to(invite(1, "").as_bytes(), node)
        .await
        .unwrap();
    let (challenge, _) = receive(&phone_a).await;
    assert!(challenge.starts_with("SIP/2.0 407 "), "{challenge}");
    phone_a
        .send_to(ack(1, &challenge).as_bytes(), node)
        .await
        .unwrap();
    let uri = format!("sip:b@{NODE_IP}");
    let wrong = phone::proxy_authorization("a", "not the password", &uri, &challenge);
    phone_a
        .send_to(invite(2, &wrong).as_bytes(), node)
        .await
        .unwrap();
    let (again, _) = receive(&phone_a).await;
    assert!(again.starts_with("SIP/2.0 407 "), "{again}");
    phone_a
        .send_to(ack(2, &again).as_bytes(), node)
        .await
        .unwrap();
    let right = phone::proxy_authorization("a", PASSWORD, &uri, &again);
    phone_a
        .send_to(invite(3, &right).as_bytes(), node)
        .await
        .unwrap();
    let (trying, _) = receive(&phone_a).await;
    assert!(trying.starts_with("SIP/2.0 100 "), "{trying}");

    let (forwarded, from) = receive(&phone_b).await;
    assert_eq!(from, node, "the INVITE comes from the node");
    assert!(
        forwarded.starts_with(&format!("INVITE sip:b@{b} SIP/2.0\r\n")),
        "{forwarded}"
    );
    assert_eq!(
        headers(&forwarded, "Record-Route"),
        [format!("<sip:{node};lr>")]
    );
    let vias = headers(&forwarded, "Via");
    assert_eq!(vias.len(), 2, "{forwarded}");
    assert!(
        vias[0].starts_with(&format!("SIP/2.0/UDP {node};branch=z9hG4bK")),
        "{forwarded}"
    );
    assert!(
        vias[1].contains(&format!("rport={}", a.port())),
        "{forwarded}"
    );
    assert_eq!(headers(&forwarded, "Max-Forwards"), ["69"]);

    phone_b
        .send_to(respond(&forwarded, "180 Ringing", b).as_bytes(), node)
        .await
        .unwrap();
    let (ringing, _) = receive(&phone_a).await;
    assert!(ringing.starts_with("SIP/2.0 180 "), "{ringing}");
    assert_eq!(
        headers(&ringing, "Via").len(),
        1,
        "the node's Via is popped"
    );

    phone_b
        .send_to(respond(&forwarded, "200 OK", b).as_bytes(), node)
        .await
        .unwrap();
    let (ok, _) = receive(&phone_a).await;
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
    assert_eq!(headers(&ok, "Record-Route"), [format!("<sip:{node};lr>")]);

    phone_a
        .send_to(in_dialog("ACK", 3, a, &ok).as_bytes(), node)
        .await
        .unwrap();
    let (ack, from) = receive(&phone_b).await;
    assert_eq!(from, node);
    assert!(
        ack.starts_with(&format!("ACK sip:b@{b} SIP/2.0\r\n")),
        "{ack}"
    );
    assert!(
        headers(&ack, "Route").is_empty(),
        "the node popped its Route: {ack}"
    );

    phone_a
        .send_to(in_dialog("BYE", 4, a, &ok).as_bytes(), node)
        .await
        .unwrap();
    let (bye, _) = receive(&phone_b).await;
    assert!(
        bye.starts_with(&format!("BYE sip:b@{b} SIP/2.0\r\n")),
        "{bye}"
    );
    phone_b
        .send_to(respond(&bye, "200 OK", b).as_bytes(), node)
        .await
        .unwrap();
    let (bye_ok, _) = receive(&phone_a).await;
    assert!(bye_ok.starts_with("SIP/2.0 200 "), "{bye_ok}");
    assert!(bye_ok.contains("CSeq: 4 BYE"), "{bye_ok}");

    engine.stop_all().await;
}

/// The next answer on `phone` that is not provisional.
async fn final_answer(phone: &UdpSocket) -> String {
    loop {
        let (answer, _) = receive(phone).await;
        if !answer.starts_with("SIP/2.0 1") {
            return answer;
        }
    }
}

/// A node that is shut down the orderly way (Stop, Restart) ends its calls itself: each
/// end gets a BYE that looks like its peer's (From, To and tags swapped accordingly, the
/// CSeq counting on from the peer's last), addressed to its Contact, with a `Reason`. The
/// node waits for both 200s, and its channel is free at once.
#[tokio::test]
async fn shutting_a_node_down_ends_its_calls_with_a_bye_to_both_ends() {
    const IP: &str = "127.0.98.1";
    const CARRIER: &str = "127.0.98.9";
    let directory = Arc::new(MemoryDirectory::new());
    directory.insert("b", None, Secret::Password(PASSWORD.into()));
    let engine =
        Engine::new("test").with_directory(directory, Arc::new(MemoryLocationStore::new()));
    engine
        .start(NodeSpec {
            id: 98,
            ip: IP.parse().unwrap(),
            udp_port: PORT,
            tcp_port: PORT,
            role: NodeRole::Switch,
        })
        .await
        .expect("node starts");
    let node = SocketAddr::new(IP.parse().unwrap(), PORT);
    let carrier = UdpSocket::bind(format!("{CARRIER}:0")).await.unwrap();
    let phone_b = UdpSocket::bind("127.0.98.3:0").await.unwrap();
    let (a, b) = (carrier.local_addr().unwrap(), phone_b.local_addr().unwrap());
    phone::sign_in(&phone_b, "b", PASSWORD, IP, node, WAIT).await;

    // A carrier's caller rings b; b answers; the caller acknowledges and, inside the call,
    // sends a re-INVITE (CSeq 7) that b accepts.
    let request = |method: &str, uri: &str, cseq: u32, to: &str, route: &str| {
        format!(
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {a};branch=z9hG4bK{method}{cseq};rport\r\n\
             {route}Max-Forwards: 70\r\n\
             From: \"Carrier\" <sip:+4420@{CARRIER}>;tag=carrier-tag\r\n\
             To: {to}\r\n\
             Call-ID: shutdown-call\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:+4420@{a}>\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    let invite = request(
        "INVITE",
        &format!("sip:b@{IP}"),
        6,
        &format!("<sip:b@{IP}>"),
        "",
    );
    carrier.send_to(invite.as_bytes(), node).await.unwrap();
    let (forwarded, _) = receive(&phone_b).await;
    assert!(forwarded.starts_with("INVITE "), "{forwarded}");
    phone_b
        .send_to(respond(&forwarded, "200 OK", b).as_bytes(), node)
        .await
        .unwrap();
    let ok = final_answer(&carrier).await;
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
    let to = headers(&ok, "To")[0].to_string();
    let route = format!("Route: {}\r\n", headers(&ok, "Record-Route").join(", "));
    let b_contact = format!("sip:b@{b}");
    carrier
        .send_to(request("ACK", &b_contact, 6, &to, &route).as_bytes(), node)
        .await
        .unwrap();
    let (ack, _) = receive(&phone_b).await;
    assert!(ack.starts_with("ACK "), "{ack}");
    carrier
        .send_to(
            request("INVITE", &b_contact, 7, &to, &route).as_bytes(),
            node,
        )
        .await
        .unwrap();
    let (reinvite, _) = receive(&phone_b).await;
    assert!(reinvite.contains("CSeq: 7 INVITE"), "{reinvite}");
    phone_b
        .send_to(respond(&reinvite, "200 OK", b).as_bytes(), node)
        .await
        .unwrap();
    let reinvite_ok = final_answer(&carrier).await;
    assert!(reinvite_ok.starts_with("SIP/2.0 200 "), "{reinvite_ok}");
    assert_eq!(engine.call_figures(98).unwrap().channels_in_use, 1);

    // The node ends the call: both phones get a BYE, and answer it.
    let ending = tokio::spawn({
        let engine = engine.clone();
        async move {
            let started = tokio::time::Instant::now();
            (
                engine.hang_up(98, "Server restart").await,
                started.elapsed(),
            )
        }
    });
    let (to_b, from) = receive(&phone_b).await;
    assert_eq!(from, node);
    assert!(
        to_b.starts_with(&format!("BYE {b_contact} SIP/2.0\r\n")),
        "{to_b}"
    );
    assert_eq!(
        headers(&to_b, "From"),
        [format!("\"Carrier\" <sip:+4420@{CARRIER}>;tag=carrier-tag")]
    );
    assert_eq!(headers(&to_b, "To"), [to.as_str()]);
    assert_eq!(headers(&to_b, "Call-ID"), ["shutdown-call"]);
    assert_eq!(
        headers(&to_b, "CSeq"),
        ["8 BYE"],
        "after the caller's re-INVITE (7)"
    );
    assert_eq!(
        headers(&to_b, "Reason"),
        ["Q.850;cause=41;text=\"Server restart\""]
    );
    assert!(headers(&to_b, "Route").is_empty(), "{to_b}");
    let (to_a, from) = receive(&carrier).await;
    assert_eq!(from, node);
    assert!(
        to_a.starts_with(&format!("BYE sip:+4420@{a} SIP/2.0\r\n")),
        "{to_a}"
    );
    assert_eq!(headers(&to_a, "From"), [to.as_str()]);
    assert_eq!(
        headers(&to_a, "To"),
        [format!("\"Carrier\" <sip:+4420@{CARRIER}>;tag=carrier-tag")]
    );
    assert_eq!(
        headers(&to_a, "CSeq"),
        ["1 BYE"],
        "b had sent nothing in the call"
    );
    for (phone, bye, contact) in [(&phone_b, &to_b, b), (&carrier, &to_a, a)] {
        phone
            .send_to(phone::respond(bye, "200 OK", contact).as_bytes(), node)
            .await
            .unwrap();
    }
    let (ended, took) = ending.await.unwrap();
    assert_eq!(ended, 1);
    assert!(
        took < Duration::from_secs(1),
        "both answered at once: {took:?}"
    );
    assert_eq!(engine.call_figures(98).unwrap().channels_in_use, 0);
    // Nothing is left to end.
    assert_eq!(engine.hang_up(98, "again").await, 0);
    engine.stop_all().await;
}
