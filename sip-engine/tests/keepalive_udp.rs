//! NAT keep-alives over real loopback sockets: a phone registers with a node started through
//! [`Engine`], then gets the node's OPTIONS keep-alives from the port it registered to, and
//! its answer gives the binding a latency.
//!
//! Every wait is bounded by a timeout; the keep-alive interval is shortened for the test.

mod phone;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sip_engine::{
    Engine, KeepAliveSettings, LocationStore, MemoryDirectory, MemoryLocationStore, NodeRole,
    NodeSpec, Secret,
};
use tokio::net::UdpSocket;

const NODE_IP: &str = "127.0.81.1";
const PORT: u16 = 15081;
const USER: &str = "alice";
const PASSWORD: &str = "correct-horse";
const WAIT: Duration = Duration::from_secs(5);

/// The next datagram from the node, as text; fails the test after [`WAIT`].
async fn receive(phone: &UdpSocket) -> (String, SocketAddr) {
    let mut buf = vec![0u8; 65_535];
    let (len, from) = tokio::time::timeout(WAIT, phone.recv_from(&mut buf))
        .await
        .expect("the node answers in time")
        .expect("recv works");
    (String::from_utf8_lossy(&buf[..len]).into_owned(), from)
}

/// The phone's 200 to a request: its identifying headers copied, a To tag added.
fn ok_to(request: &str) -> String {
    let mut copied = String::new();
    for line in request.split("\r\n") {
        if line.starts_with("To:") {
            copied.push_str(&format!("{line};tag=phone\r\n"));
        } else if ["Via:", "From:", "Call-ID:", "CSeq:"]
            .iter()
            .any(|name| line.starts_with(name))
        {
            copied.push_str(&format!("{line}\r\n"));
        }
    }
    format!("SIP/2.0 200 OK\r\n{copied}Content-Length: 0\r\n\r\n")
}

/// Waits for the node's next OPTIONS keep-alive (skipping anything else).
async fn next_keepalive(phone: &UdpSocket) -> (String, SocketAddr) {
    loop {
        let (text, from) = receive(phone).await;
        if text.starts_with("OPTIONS ") {
            return (text, from);
        }
    }
}

#[tokio::test]
async fn a_registered_phone_gets_options_keep_alives_and_its_answer_sets_the_latency() {
    let directory = Arc::new(MemoryDirectory::new());
    directory.insert(USER, None, Secret::Password(PASSWORD.into()));
    let store = Arc::new(MemoryLocationStore::new());
    let engine = Engine::new("test")
        .with_directory(directory, store.clone())
        .with_keepalive(KeepAliveSettings {
            interval: Duration::from_millis(300),
            max_missed: 3,
        });
    engine
        .start(NodeSpec {
            id: 81,
            ip: NODE_IP.parse().unwrap(),
            udp_port: PORT,
            tcp_port: PORT,
            role: NodeRole::Switch,
        })
        .await
        .expect("node starts");
    let node: SocketAddr = SocketAddr::new(NODE_IP.parse().unwrap(), PORT);

    let phone = UdpSocket::bind("127.0.81.2:0").await.unwrap();
    let phone_addr = phone.local_addr().unwrap();
    phone
        .send_to(
            phone::register(USER, NODE_IP, phone_addr, 1, "").as_bytes(),
            node,
        )
        .await
        .unwrap();
    let (challenge, _) = receive(&phone).await;
    assert!(challenge.starts_with("SIP/2.0 401 "), "{challenge}");
    phone
        .send_to(
            phone::register(
                USER,
                NODE_IP,
                phone_addr,
                2,
                &phone::authorization(USER, PASSWORD, NODE_IP, &challenge),
            )
            .as_bytes(),
            node,
        )
        .await
        .unwrap();
    let (registered, _) = receive(&phone).await;
    assert!(registered.starts_with("SIP/2.0 200 "), "{registered}");

    let (ping, from) = next_keepalive(&phone).await;
    assert_eq!(
        from, node,
        "keep-alives leave from the port the phone registered to"
    );
    assert!(
        ping.starts_with(&format!("OPTIONS sip:{USER}@{phone_addr} SIP/2.0\r\n")),
        "{ping}"
    );
    assert!(ping.contains("Call-ID: ka-"), "{ping}");
    phone.send_to(ok_to(&ping).as_bytes(), node).await.unwrap();

    // The node reads the answer long before its next keep-alive, an interval later.
    next_keepalive(&phone).await;
    let aor = format!("sip:{USER}@{NODE_IP}");
    let bindings = store.lookup(&aor, SystemTime::now()).unwrap();
    assert_eq!(bindings.len(), 1);
    assert!(bindings[0].latency.is_some(), "{bindings:?}");
    assert!(bindings[0].last_keepalive.is_some());
    assert!(bindings[0].online);
    assert_eq!(engine.stats(81).map(|s| s.dropped), Some(0));
    engine.stop_all().await;
}
