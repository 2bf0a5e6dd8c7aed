//! One canonical domain per server: a phone that registers under the server's FQDN is the
//! same user as one registering under its IP. Over real loopback UDP sockets: `b` registers
//! as `b@<fqdn>`, a caller from elsewhere dials `sip:b@<ip>` and reaches it, the node's
//! keep-alives find it, and a caller claiming a user under the FQDN is challenged like
//! one under the IP.
//!
//! Every wait is bounded by a timeout.

mod phone;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sip_engine::{
    Engine, KeepAliveSettings, MemoryDirectory, MemoryLocationStore, NodeConfig, NodeRole,
    NodeSpec, Secret,
};
use tokio::net::UdpSocket;

const NODE_IP: &str = "127.0.86.1";
const FQDN: &str = "pbx.example.test";
const PORT: u16 = 15086;
const PASSWORD: &str = "correct-horse";
const WAIT: Duration = Duration::from_secs(5);

fn invite(from: &str, to_uri: &str, caller: SocketAddr, branch: &str) -> String {
    format!(
        "INVITE {to_uri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {caller};branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <{from}>;tag=caller\r\n\
         To: <{to_uri}>\r\n\
         Call-ID: fqdn-{branch}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:caller@{caller}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// The next message on `socket` that is not a 100 Trying (keep-alives included).
async fn next(socket: &UdpSocket) -> String {
    let mut buf = vec![0u8; 65_535];
    loop {
        let (len, _) = tokio::time::timeout(WAIT, socket.recv_from(&mut buf))
            .await
            .expect("a message in time")
            .expect("recv works");
        let text = String::from_utf8_lossy(&buf[..len]).into_owned();
        if !text.starts_with("SIP/2.0 100 ") {
            return text;
        }
    }
}

#[tokio::test]
async fn a_phone_registered_under_the_fqdn_is_reached_by_its_ip_and_kept_alive() {
    let directory = Arc::new(MemoryDirectory::new());
    directory.insert("a", None, Secret::Password(PASSWORD.into()));
    directory.insert("b", None, Secret::Password(PASSWORD.into()));
    let store = Arc::new(MemoryLocationStore::new());
    let engine = Engine::new("test")
        .with_directory(directory, store.clone())
        .with_keepalive(KeepAliveSettings {
            interval: Duration::from_millis(500),
            max_missed: 3,
        });
    engine
        .start(NodeSpec {
            id: 86,
            ip: NODE_IP.parse().unwrap(),
            udp_port: PORT,
            tcp_port: PORT,
            role: NodeRole::Switch,
        })
        .await
        .expect("node starts");
    assert!(engine.configure(
        86,
        NodeConfig {
            fqdn: Some(FQDN.into()),
            ..NodeConfig::default()
        }
    ));
    let node = SocketAddr::new(NODE_IP.parse().unwrap(), PORT);
    let phone_b = UdpSocket::bind("127.0.86.3:0").await.unwrap();
    let b = phone_b.local_addr().unwrap();
    phone::sign_in(&phone_b, "b", PASSWORD, FQDN, node, WAIT).await;
    use sip_engine::LocationStore;
    let bound = store
        .lookup(&format!("sip:b@{NODE_IP}"), std::time::SystemTime::now())
        .unwrap();
    assert_eq!(bound.len(), 1, "kept under the canonical domain");
    assert!(store
        .lookup(&format!("sip:b@{FQDN}"), std::time::SystemTime::now())
        .unwrap()
        .is_empty());

    // A caller from elsewhere dials b at the server's IP: the INVITE reaches the phone.
    let caller = UdpSocket::bind("127.0.86.2:0").await.unwrap();
    let from = caller.local_addr().unwrap();
    caller
        .send_to(
            invite(
                "sip:carrier@198.51.100.9",
                &format!("sip:b@{NODE_IP}"),
                from,
                "in1",
            )
            .as_bytes(),
            node,
        )
        .await
        .unwrap();
    let reached = loop {
        let message = next(&phone_b).await;
        if message.starts_with("INVITE ") {
            break message;
        }
    };
    assert!(
        reached.starts_with(&format!("INVITE sip:b@{b} SIP/2.0\r\n")),
        "{reached}"
    );

    // The node's keep-alives go to it too.
    let keepalive = loop {
        let message = next(&phone_b).await;
        if message.starts_with("OPTIONS ") && message.contains("Call-ID: ka-") {
            break message;
        }
    };
    assert!(
        keepalive.contains(&format!("To: <sip:b@{NODE_IP}>")),
        "{keepalive}"
    );

    // Calling out as a user under the FQDN takes the user's password, as under the IP.
    caller
        .send_to(
            invite(
                &format!("sip:a@{FQDN}"),
                &format!("sip:b@{NODE_IP}"),
                from,
                "out1",
            )
            .as_bytes(),
            node,
        )
        .await
        .unwrap();
    let refused = next(&caller).await;
    assert!(refused.starts_with("SIP/2.0 407 "), "{refused}");
    assert!(refused.contains(&format!("realm=\"{FQDN}\"")), "{refused}");
    engine.stop_all().await;
}
