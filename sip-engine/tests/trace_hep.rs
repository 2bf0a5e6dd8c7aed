//! SIP trace: a node configured with a collector ships a HEP3 copy of each request it
//! receives and each answer it sends, over UDP by default and over TCP with TCP SIP Trace,
//! where a burst of a thousand requests arrives whole. Loopback only; every wait and loop is
//! bounded.

use std::net::SocketAddr;
use std::time::Duration;

use sip_engine::trace::{decode, packet_len};
use sip_engine::{Engine, NodeConfig, NodeRole, NodeSpec, TraceTarget};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UdpSocket};

const NODE_IP: &str = "127.0.102.1";
const PORT: u16 = 15094;
const WAIT: Duration = Duration::from_secs(5);

fn options(n: usize, from: SocketAddr) -> String {
    format!(
        "OPTIONS sip:{NODE_IP} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKtrace{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@test>;tag=t\r\nTo: <sip:{NODE_IP}>\r\n\
         Call-ID: trace-{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

fn traced(collector: SocketAddr, over_tcp: bool) -> NodeConfig {
    NodeConfig {
        tcp_sip_trace: over_tcp,
        trace: Some(TraceTarget {
            collector,
            node: SocketAddr::new(NODE_IP.parse().unwrap(), PORT),
            agent: 91,
            over_tcp,
        }),
        ..NodeConfig::default()
    }
}

#[tokio::test]
async fn a_node_ships_its_messages_in_hep_over_udp_then_over_tcp_without_loss() {
    let engine = Engine::new("test");
    engine
        .start(NodeSpec {
            id: 91,
            ip: NODE_IP.parse().unwrap(),
            udp_port: PORT,
            tcp_port: PORT,
            role: NodeRole::Switch,
        })
        .await
        .expect("node starts");
    let node = SocketAddr::new(NODE_IP.parse().unwrap(), PORT);
    let phone = UdpSocket::bind("127.0.102.2:0").await.unwrap();
    let phone_addr = phone.local_addr().unwrap();
    let mut buf = vec![0u8; 65_535];

    // Over UDP: the request in, the 200 out, each one datagram.
    let udp_collector = UdpSocket::bind("127.0.102.3:0").await.unwrap();
    engine.configure(91, traced(udp_collector.local_addr().unwrap(), false));
    phone
        .send_to(options(0, phone_addr).as_bytes(), node)
        .await
        .unwrap();
    tokio::time::timeout(WAIT, phone.recv_from(&mut buf))
        .await
        .expect("answered")
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (len, from) = tokio::time::timeout(WAIT, udp_collector.recv_from(&mut buf))
            .await
            .expect("a HEP datagram")
            .unwrap();
        assert_eq!(from.ip(), node.ip(), "shipped from the node's address");
        seen.push(decode(&buf[..len]).expect("valid HEP3"));
    }
    assert_eq!((seen[0].source, seen[0].destination), (phone_addr, node));
    assert!(seen[0].payload.starts_with(b"OPTIONS sip:"));
    assert_eq!((seen[1].source, seen[1].destination), (node, phone_addr));
    assert!(seen[1].payload.starts_with(b"SIP/2.0 200 OK"));
    assert!(seen.iter().all(|m| m.agent == 91 && !m.stream));

    // Over TCP: a burst, every message of which reaches the collector.
    let tcp_collector = TcpListener::bind("127.0.102.3:0").await.unwrap();
    engine.configure(91, traced(tcp_collector.local_addr().unwrap(), true));
    const BURST: usize = 1000;
    let sender = async {
        let mut answered = 0;
        for n in 1..=BURST {
            phone
                .send_to(options(n, phone_addr).as_bytes(), node)
                .await
                .unwrap();
            let mut reply = [0u8; 2048];
            if tokio::time::timeout(WAIT, phone.recv_from(&mut reply))
                .await
                .is_ok()
            {
                answered += 1;
            }
        }
        answered
    };
    let collector = async {
        let (mut connection, from) = tokio::time::timeout(WAIT, tcp_collector.accept())
            .await
            .expect("the node connects")
            .unwrap();
        assert_eq!(from.ip(), node.ip());
        let mut stream = Vec::new();
        let mut packets = Vec::new();
        while packets.len() < 2 * BURST {
            let mut chunk = [0u8; 16_384];
            let read = tokio::time::timeout(WAIT, connection.read(&mut chunk))
                .await
                .expect("more trace in time")
                .unwrap();
            assert!(read > 0, "the node keeps the connection open");
            stream.extend_from_slice(&chunk[..read]);
            while let Ok(Some(len)) = packet_len(&stream) {
                if stream.len() < len {
                    break;
                }
                packets.push(decode(&stream[..len]).expect("valid HEP3"));
                stream.drain(..len);
            }
        }
        packets
    };
    let (answered, packets) = tokio::join!(sender, collector);
    assert_eq!(answered, BURST);
    assert_eq!(packets.len(), 2 * BURST);
    assert!(packets.iter().all(|m| m.agent == 91));
    let requests = packets
        .iter()
        .filter(|m| m.payload.starts_with(b"OPTIONS "))
        .count();
    assert_eq!(requests, BURST);
    assert_eq!(engine.trace_dropped(91), Some(0));
    engine.stop_all().await;
}
