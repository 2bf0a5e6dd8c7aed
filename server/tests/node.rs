//! A deployed server is a real SIP node: it answers OPTIONS over UDP and TCP on its own IP,
//! and keeps answering after a flood of garbage.
//!
//! The flood carries foreign and broken Via headers, so the test command runs this file
//! inside a network namespace that has only loopback.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use app::model::{ServerRow, ServerStatus};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sip_engine::{options_ping, ProbeTransport};
use tokio::io::AsyncWriteExt;

const PING: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployed_switch_answers_options_and_survives_ten_thousand_bad_datagrams() {
    let app = common::spawn_app("127.0.60.1-127.0.60.20").await;
    let client = app.account_with_balance("ops@acme.test", 100).await;
    let row: ServerRow = client
        .call(
            "deploy_server",
            &[("zone", "test-zone"), ("kind", "switch")],
        )
        .await
        .expect("deploy succeeds");
    assert_eq!(row.status, ServerStatus::Running);
    assert_eq!(row.ip, "127.0.60.1");
    let target: SocketAddr = format!("{}:5060", row.ip).parse().unwrap();

    options_ping(target, ProbeTransport::Udp, PING)
        .await
        .expect("200 OK over UDP");
    options_ping(target, ProbeTransport::Tcp, PING)
        .await
        .expect("200 OK over TCP");

    // 10,000 datagrams: pure noise, truncated OPTIONS, and OPTIONS with bytes flipped.
    let valid = sip_engine::probe::options_request(
        target,
        "127.0.0.1:40000".parse().unwrap(),
        "UDP",
        "fuzz-call",
    );
    let valid = valid.as_bytes();
    let mut rng = StdRng::seed_from_u64(0x5197_f1ee7);
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..10_000u32 {
        let datagram: Vec<u8> = match i % 3 {
            0 => (0..rng.random_range(0..1500))
                .map(|_| rng.random())
                .collect(),
            1 => valid[..rng.random_range(0..valid.len())].to_vec(),
            _ => {
                let mut bytes = valid.to_vec();
                for _ in 0..rng.random_range(1..8) {
                    let at = rng.random_range(0..bytes.len());
                    bytes[at] = rng.random();
                }
                bytes
            }
        };
        let _ = socket.send_to(&datagram, target).await;
        if i % 500 == 0 {
            // Let the node drain its socket so the kernel buffer never overflows.
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    // A broken TCP stream is closed; the listener keeps accepting.
    for garbage in [
        &b"\x00\x01\x02 not sip\r\n\r\n"[..],
        b"OPTIONS sip:x SIP/2.0\r\nContent-Length: lots\r\n\r\n",
    ] {
        let mut stream = tokio::net::TcpStream::connect(target).await.unwrap();
        stream.write_all(garbage).await.unwrap();
    }

    options_ping(target, ProbeTransport::Udp, PING)
        .await
        .expect("still 200 OK over UDP");
    options_ping(target, ProbeTransport::Tcp, PING)
        .await
        .expect("still 200 OK over TCP");
    let stats = app
        .server
        .state
        .engine
        .stats(row.id)
        .expect("node still running");
    assert!(
        stats.dropped + stats.bad_requests > 1000,
        "the flood reached the node: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_stored_as_running_get_their_nodes_back_at_start() {
    let app = common::spawn_app("127.0.61.1-127.0.61.20").await;
    let client = app.account_with_balance("boot@acme.test", 100).await;
    let row: ServerRow = client
        .call(
            "deploy_server",
            &[("zone", "test-zone"), ("kind", "dispatcher")],
        )
        .await
        .unwrap();
    let target: SocketAddr = format!("{}:5060", row.ip).parse().unwrap();
    // The process goes away: its nodes with it.
    app.server.state.engine.stop_all().await;
    assert!(
        options_ping(target, ProbeTransport::Udp, Duration::from_millis(600))
            .await
            .is_err()
    );
    // A new start over the same store restores the node.
    let restored = app::ssr::fleet::restore_nodes(&app.server.state)
        .await
        .unwrap();
    assert_eq!(restored, 1);
    options_ping(target, ProbeTransport::Udp, PING)
        .await
        .expect("restored node answers");
}
