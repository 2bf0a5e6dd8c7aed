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
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

    // A stream that cannot be framed is closed, with nothing sent back when nothing in it
    // can be answered; the listener keeps accepting.
    for garbage in [
        &b"\xff\xfe\x00 not sip\r\n\r\n"[..],
        b"OPTIONS sip:x SIP/2.0\r\nContent-Length: lots\r\n\r\n",
    ] {
        let (answer, closed) = over_tcp(target, garbage).await;
        assert!(closed, "{garbage:?}: the node closes the connection");
        assert_eq!(answer, "", "{garbage:?}: nothing to answer");
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

/// Writes `bytes` on a new TCP connection to `target` and reads until the node closes it.
/// Returns what the node sent and whether it closed the connection (end of stream or a
/// reset) within [`PING`]; a connection still open then is `false`.
async fn over_tcp(target: SocketAddr, bytes: &[u8]) -> (String, bool) {
    let mut stream = tokio::net::TcpStream::connect(target).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut received = Vec::new();
    let closed = tokio::time::timeout(PING, stream.read_to_end(&mut received))
        .await
        .is_ok();
    (String::from_utf8_lossy(&received).to_string(), closed)
}

/// A request head a 400 can be addressed with: request line, Via, From, To, Call-ID, CSeq.
fn answerable_head(target: SocketAddr, call: &str) -> String {
    format!(
        "OPTIONS sip:ping@{target} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:40001;branch=z9hG4bK{call}\r\n\
         From: <sip:tester@127.0.0.1>;tag=t\r\nTo: <sip:ping@{target}>\r\nCall-ID: {call}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_cannot_be_framed_gets_a_400_naming_why_and_is_closed() {
    let app = common::spawn_app("127.0.84.1-127.0.84.10").await;
    let client = app.account_with_balance("framing@acme.test", 100).await;
    let (row, target) = client.deploy_switch().await;

    // A Content-Length that is not a number.
    let bad_length = format!(
        "{}Content-Length: lots\r\n\r\n",
        answerable_head(target, "bad-length")
    );
    let (answer, closed) = over_tcp(target, bad_length.as_bytes()).await;
    assert!(
        answer.starts_with("SIP/2.0 400 Bad Content-Length\r\n"),
        "{answer}"
    );
    assert!(answer.contains("Call-ID: bad-length\r\n"), "{answer}");
    assert!(closed, "the connection is closed after the 400");

    // A body larger than a stream message may be.
    let huge_body = format!(
        "{}Content-Length: 300000\r\n\r\n",
        answerable_head(target, "huge-body")
    );
    let (answer, closed) = over_tcp(target, huge_body.as_bytes()).await;
    assert!(
        answer.starts_with("SIP/2.0 400 Message Too Large\r\n"),
        "{answer}"
    );
    assert!(closed);

    // A head that never ends: one byte over the limit, with no blank line.
    let mut long_head = answerable_head(target, "long-head").into_bytes();
    while long_head.len() <= sip_engine::transport::MAX_HEAD {
        long_head.extend_from_slice(b"X-Padding: 0123456789012345678901234567890123456789\r\n");
    }
    long_head.truncate(sip_engine::transport::MAX_HEAD + 1);
    let (answer, closed) = over_tcp(target, &long_head).await;
    assert!(
        answer.starts_with("SIP/2.0 400 Message Too Large\r\n"),
        "{answer}"
    );
    assert!(answer.contains("Call-ID: long-head\r\n"), "{answer}");
    assert!(closed);

    // A message that frames (though it is noise) keeps its connection: the next request on
    // it is answered.
    let mut stream = tokio::net::TcpStream::connect(target).await.unwrap();
    stream
        .write_all(b"\x00\x01\x02 not sip\r\n\r\n")
        .await
        .unwrap();
    let options = format!(
        "{}Content-Length: 0\r\n\r\n",
        answerable_head(target, "after-noise")
    );
    stream.write_all(options.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let len = tokio::time::timeout(PING, stream.read(&mut buf))
        .await
        .expect("an answer on the same connection")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..len]);
    assert!(answer.starts_with("SIP/2.0 200 OK\r\n"), "{answer}");

    options_ping(target, ProbeTransport::Tcp, PING)
        .await
        .expect("the listener keeps serving");
    let stats = app.server.state.engine.stats(row.id).expect("node runs");
    assert!(stats.bad_requests >= 3, "{stats:?}");
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
