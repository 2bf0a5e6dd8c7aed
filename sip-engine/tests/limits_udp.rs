//! Channel and CPS limits over real loopback UDP: a node refuses the call over its limits
//! with 503 "Server at max cps / channels" and `Retry-After`, frees a channel when a call
//! fails or ends, counts the calls of a cluster's members together, finds users registered
//! at another member, and hands a call to its capacity-failover member when it is full.
//!
//! Callers call from a carrier's domain (not the node's), so no 407 stands in the way.
//! Every wait is bounded.

mod phone;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use sip_engine::{
    CallFigures, CallLimits, Engine, KeepAliveSettings, MemoryDirectory, MemoryLocationStore,
    NodeConfig, NodeRole, NodeSpec, Secret,
};
use tokio::net::UdpSocket;

const PASSWORD: &str = "correct-horse";
const WAIT: Duration = Duration::from_secs(5);
const PORT: u16 = 5060;

fn engine() -> Engine {
    let directory = Arc::new(MemoryDirectory::new());
    directory.insert("b", None, Secret::Password(PASSWORD.into()));
    Engine::new("test")
        .with_directory(directory, Arc::new(MemoryLocationStore::new()))
        .with_keepalive(KeepAliveSettings {
            interval: Duration::from_secs(3600),
            max_missed: 3,
        })
}

async fn start(engine: &Engine, id: i64, ip: &str, config: NodeConfig) -> SocketAddr {
    let ip: IpAddr = ip.parse().unwrap();
    engine
        .start(NodeSpec {
            id,
            ip,
            udp_port: PORT,
            tcp_port: PORT,
            role: NodeRole::Switch,
        })
        .await
        .expect("node starts");
    assert!(engine.configure(id, config));
    SocketAddr::new(ip, PORT)
}

fn limits(channels: u32, cps: u32) -> Option<CallLimits> {
    Some(CallLimits { channels, cps })
}

fn in_use(engine: &Engine, id: i64) -> u32 {
    engine
        .call_figures(id)
        .expect("the node runs")
        .channels_in_use
}

/// A carrier calling `b` at `node`; each call has its own Call-ID.
struct Caller {
    socket: UdpSocket,
}

impl Caller {
    async fn bind(ip: &str) -> Self {
        Caller {
            socket: UdpSocket::bind((ip, 0)).await.unwrap(),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    fn invite(&self, call: &str, node: SocketAddr) -> String {
        let me = self.addr();
        format!(
            "INVITE sip:b@{} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch=z9hG4bK{call};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:carrier@192.0.2.1>;tag=caller\r\n\
             To: <sip:b@{}>\r\n\
             Call-ID: {call}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:carrier@{me}>\r\n\
             Content-Length: 0\r\n\r\n",
            node.ip(),
            node.ip()
        )
    }

    /// Sends the INVITE of `call` to `node`; returns the first answer other than 100.
    async fn call(&self, call: &str, node: SocketAddr) -> String {
        self.send(&self.invite(call, node), node).await;
        self.answer().await
    }

    async fn send(&self, message: &str, node: SocketAddr) {
        self.socket.send_to(message.as_bytes(), node).await.unwrap();
    }

    async fn answer(&self) -> String {
        loop {
            let (answer, _) = phone::receive(&self.socket, WAIT).await;
            if !answer.starts_with("SIP/2.0 100 ") {
                return answer;
            }
        }
    }

    /// The hop-by-hop ACK of a final non-2xx answer to `call`'s INVITE.
    async fn acknowledge(&self, call: &str, refusal: &str, node: SocketAddr) {
        let me = self.addr();
        let to = phone::headers(refusal, "To")[0];
        let ack = format!(
            "ACK sip:b@{} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch=z9hG4bK{call};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:carrier@192.0.2.1>;tag=caller\r\n\
             To: {to}\r\n\
             Call-ID: {call}\r\n\
             CSeq: 1 ACK\r\n\
             Content-Length: 0\r\n\r\n",
            node.ip()
        );
        self.send(&ack, node).await;
    }

    /// The BYE of an answered call, along the 200's route set.
    async fn hang_up(&self, call: &str, ok: &str, node: SocketAddr) {
        let me = self.addr();
        let target = phone::headers(ok, "Contact")[0]
            .trim_start_matches('<')
            .trim_end_matches('>');
        let route = phone::headers(ok, "Record-Route").join(", ");
        let to = phone::headers(ok, "To")[0];
        let bye = format!(
            "BYE {target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch=z9hG4bKbye{call};rport\r\n\
             Route: {route}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:carrier@192.0.2.1>;tag=caller\r\n\
             To: {to}\r\n\
             Call-ID: {call}\r\n\
             CSeq: 2 BYE\r\n\
             Content-Length: 0\r\n\r\n"
        );
        self.send(&bye, node).await;
    }
}

/// The next request for the callee other than an ACK (the node acknowledges the callee's
/// refusals itself).
async fn ringing(phone: &UdpSocket) -> (String, SocketAddr) {
    loop {
        let (request, from) = phone::receive(phone, WAIT).await;
        if !request.starts_with("ACK ") {
            return (request, from);
        }
    }
}

/// Asserts that a refusal is the node's "at capacity" 503 with the given `Retry-After`.
fn assert_at_capacity(answer: &str, retry_after: &str) {
    assert!(
        answer.starts_with("SIP/2.0 503 Server at max cps / channels\r\n"),
        "{answer}"
    );
    assert_eq!(
        phone::headers(answer, "Retry-After"),
        [retry_after],
        "{answer}"
    );
}

/// Asserts that nothing reaches `phone` for a while.
async fn assert_silent(phone: &UdpSocket) {
    let mut buf = [0u8; 2048];
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    while let Ok(got) = tokio::time::timeout_at(deadline, phone.recv_from(&mut buf)).await {
        let (len, _) = got.unwrap();
        let text = String::from_utf8_lossy(&buf[..len]);
        assert!(text.starts_with("ACK "), "unexpected message: {text}");
    }
}

#[tokio::test]
async fn a_node_at_its_channel_limit_refuses_until_a_call_ends() {
    let engine = engine();
    let node = start(
        &engine,
        1,
        "127.0.86.1",
        NodeConfig {
            limits: limits(1, 100),
            ..NodeConfig::default()
        },
    )
    .await;
    let caller = Caller::bind("127.0.86.2").await;
    let phone_b = UdpSocket::bind("127.0.86.3:0").await.unwrap();
    let b = phone_b.local_addr().unwrap();
    phone::sign_in(&phone_b, "b", PASSWORD, "127.0.86.1", node, WAIT).await;

    // The first call takes the only channel as soon as it rings.
    caller.send(&caller.invite("call-1", node), node).await;
    let (invite, _) = ringing(&phone_b).await;
    phone_b
        .send_to(phone::respond(&invite, "180 Ringing", b).as_bytes(), node)
        .await
        .unwrap();
    assert!(caller.answer().await.starts_with("SIP/2.0 180 "));
    assert_eq!(in_use(&engine, 1), 1);

    let refusal = caller.call("call-2", node).await;
    assert_at_capacity(&refusal, "10");
    caller.acknowledge("call-2", &refusal, node).await;
    assert_silent(&phone_b).await;

    phone_b
        .send_to(phone::respond(&invite, "200 OK", b).as_bytes(), node)
        .await
        .unwrap();
    let ok = caller.answer().await;
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
    assert_eq!(in_use(&engine, 1), 1, "an answered call keeps its channel");

    // The BYE frees it.
    caller.hang_up("call-1", &ok, node).await;
    let (bye, _) = ringing(&phone_b).await;
    assert!(bye.starts_with("BYE "), "{bye}");
    phone_b
        .send_to(phone::respond(&bye, "200 OK", b).as_bytes(), node)
        .await
        .unwrap();
    assert!(caller.answer().await.starts_with("SIP/2.0 200 "));
    assert_eq!(in_use(&engine, 1), 0);

    // A call the callee refuses frees its channel too.
    caller.send(&caller.invite("call-3", node), node).await;
    let (invite, _) = ringing(&phone_b).await;
    assert!(invite.contains("Call-ID: call-3"), "{invite}");
    phone_b
        .send_to(phone::respond(&invite, "486 Busy Here", b).as_bytes(), node)
        .await
        .unwrap();
    let busy = caller.answer().await;
    assert!(busy.starts_with("SIP/2.0 486 "), "{busy}");
    caller.acknowledge("call-3", &busy, node).await;
    assert_eq!(in_use(&engine, 1), 0);

    engine.stop_all().await;
}

#[tokio::test]
async fn a_node_at_its_cps_limit_refuses_for_the_rest_of_the_second() {
    let engine = engine();
    let node = start(
        &engine,
        2,
        "127.0.86.11",
        NodeConfig {
            limits: limits(100, 2),
            ..NodeConfig::default()
        },
    )
    .await;
    let caller = Caller::bind("127.0.86.12").await;
    let phone_b = UdpSocket::bind("127.0.86.13:0").await.unwrap();
    let b = phone_b.local_addr().unwrap();
    phone::sign_in(&phone_b, "b", PASSWORD, "127.0.86.11", node, WAIT).await;

    // The callee refuses at once, so only the rate limits: two calls pass, the third not.
    let started = std::time::Instant::now();
    for call in ["cps-1", "cps-2"] {
        caller.send(&caller.invite(call, node), node).await;
        let (invite, _) = ringing(&phone_b).await;
        phone_b
            .send_to(phone::respond(&invite, "486 Busy Here", b).as_bytes(), node)
            .await
            .unwrap();
        let busy = caller.answer().await;
        assert!(busy.starts_with("SIP/2.0 486 "), "{busy}");
        caller.acknowledge(call, &busy, node).await;
    }
    let refusal = caller.call("cps-3", node).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the test was too slow to tell"
    );
    assert_at_capacity(&refusal, "1");
    caller.acknowledge("cps-3", &refusal, node).await;
    assert_eq!(
        engine.call_figures(2),
        Some(CallFigures {
            channels_in_use: 0,
            cps_now: 2
        })
    );

    // Once the second of those calls has passed, there is room again (the node's own
    // counter says when; it must within about a second).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while engine
        .call_figures(2)
        .is_some_and(|figures| figures.cps_now > 0)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the CPS window never passed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the window lasts a second"
    );
    caller.send(&caller.invite("cps-4", node), node).await;
    let (invite, _) = ringing(&phone_b).await;
    assert!(invite.contains("Call-ID: cps-4"), "{invite}");

    engine.stop_all().await;
}

#[tokio::test]
async fn cluster_members_share_their_budget_and_a_full_member_hands_calls_to_its_failover() {
    let engine = engine();
    let (a_ip, b_ip): (IpAddr, IpAddr) =
        ("127.0.87.1".parse().unwrap(), "127.0.87.5".parse().unwrap());
    let node_b = SocketAddr::new(b_ip, PORT);
    // A: one channel, fails over to B. B: two channels. Both count in cluster 7.
    let node_a = start(
        &engine,
        3,
        "127.0.87.1",
        NodeConfig {
            limits: limits(1, 100),
            cluster: Some(7),
            cluster_peers: vec![b_ip],
            failover: Some(node_b),
            ..NodeConfig::default()
        },
    )
    .await;
    start(
        &engine,
        4,
        "127.0.87.5",
        NodeConfig {
            limits: limits(2, 100),
            cluster: Some(7),
            cluster_peers: vec![a_ip],
            ..NodeConfig::default()
        },
    )
    .await;
    let caller = Caller::bind("127.0.87.2").await;
    let phone_b = UdpSocket::bind("127.0.87.3:0").await.unwrap();
    let b = phone_b.local_addr().unwrap();
    // b registers at A only.
    phone::sign_in(&phone_b, "b", PASSWORD, "127.0.87.1", node_a, WAIT).await;

    caller.send(&caller.invite("c-1", node_a), node_a).await;
    let (first, from) = ringing(&phone_b).await;
    assert_eq!(from, node_a);
    phone_b
        .send_to(phone::respond(&first, "180 Ringing", b).as_bytes(), node_a)
        .await
        .unwrap();
    assert!(caller.answer().await.starts_with("SIP/2.0 180 "));

    // A is full: the next call goes to B, which finds b's registration at A.
    caller.send(&caller.invite("c-2", node_a), node_a).await;
    let (second, from) = ringing(&phone_b).await;
    assert_eq!(from, node_b, "the failover member carries the call");
    assert_eq!(
        phone::headers(&second, "Record-Route"),
        [format!("<sip:{node_b};lr>"), format!("<sip:{node_a};lr>")]
    );
    phone_b
        .send_to(phone::respond(&second, "200 OK", b).as_bytes(), node_b)
        .await
        .unwrap();
    let ok = caller.answer().await;
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
    assert_eq!((in_use(&engine, 3), in_use(&engine, 4)), (1, 1));

    // The cluster's two channels are taken: B refuses a call of its own, and A's failover
    // gets B's refusal.
    let refusal = caller.call("c-3", node_b).await;
    assert_at_capacity(&refusal, "10");
    caller.acknowledge("c-3", &refusal, node_b).await;
    let refusal = caller.call("c-4", node_a).await;
    assert_at_capacity(&refusal, "10");
    caller.acknowledge("c-4", &refusal, node_a).await;
    assert_silent(&phone_b).await;

    // The first call fails: one channel of the cluster is free, and B (two channels) has
    // room for a call of its own again, though A (one channel) would not.
    phone_b
        .send_to(
            phone::respond(&first, "486 Busy Here", b).as_bytes(),
            node_a,
        )
        .await
        .unwrap();
    let busy = caller.answer().await;
    assert!(busy.starts_with("SIP/2.0 486 "), "{busy}");
    caller.acknowledge("c-1", &busy, node_a).await;
    assert_eq!((in_use(&engine, 3), in_use(&engine, 4)), (0, 1));
    caller.send(&caller.invite("c-5", node_b), node_b).await;
    let (fifth, from) = ringing(&phone_b).await;
    assert_eq!(from, node_b);
    assert!(fifth.contains("Call-ID: c-5"), "{fifth}");

    engine.stop_all().await;
}
