//! SIP trace, data zone and TCP SIP Trace: a deployed server's node ships every message to
//! its data zone's collector (US by default, over UDP); saving EU and TCP SIP Trace sends
//! the next messages to the EU collector over TCP, and the page shows the trace of the zone
//! the server is in. Another account gets "not found".

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use app::error::AppError;
use app::model::{DataZone, TraceView};
use tokio::net::UdpSocket;

const WAIT: Duration = Duration::from_secs(5);

/// One OPTIONS to `node`, answered; its Call-ID is `call_id`.
async fn options(node: SocketAddr, call_id: &str) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = socket.local_addr().unwrap();
    let request = format!(
        "OPTIONS sip:{node} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{call_id}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@test>;tag=t\r\nTo: <sip:{node}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    socket.send_to(request.as_bytes(), node).await.unwrap();
    let mut buf = vec![0u8; 4096];
    tokio::time::timeout(WAIT, socket.recv_from(&mut buf))
        .await
        .expect("answered")
        .unwrap();
}

/// The trace once it holds a message with `call_id` (both ways), within [`WAIT`].
async fn trace_with(client: &common::Client, id: i64, call_id: &str) -> TraceView {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let trace: TraceView = client
            .call("server_trace", &[("id", &id.to_string())])
            .await
            .expect("the trace");
        let seen = trace
            .messages
            .iter()
            .filter(|m| m.text.contains(&format!("Call-ID: {call_id}")))
            .count();
        if seen >= 2 || tokio::time::Instant::now() > deadline {
            return trace;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servers_trace_goes_to_its_data_zones_collector_over_udp_or_tcp() {
    let app = common::spawn_app("127.0.103.1-127.0.103.10").await;
    let client = app.account_with_balance("trace@acme.test", 100).await;
    let (server, node) = client.deploy_switch().await;
    let collectors = &app.server.state.traces;
    let us = collectors.zone(DataZone::Us).unwrap().addr.to_string();
    let eu = collectors.zone(DataZone::Eu).unwrap().addr.to_string();

    options(node, "trace-us-udp").await;
    let trace = trace_with(&client, server.id, "trace-us-udp").await;
    assert_eq!(
        (trace.zone.as_str(), trace.collector.as_str()),
        ("US", us.as_str())
    );
    let ours: Vec<_> = trace
        .messages
        .iter()
        .filter(|m| m.text.contains("Call-ID: trace-us-udp"))
        .collect();
    assert_eq!(ours.len(), 2, "the request and its answer");
    // Newest first: the node's 200, then the OPTIONS it answered.
    assert!(ours[0].first_line.starts_with("SIP/2.0 200"));
    assert_eq!(ours[0].from, node.to_string());
    assert!(ours[1].first_line.starts_with("OPTIONS sip:"));
    assert_eq!(ours[1].to, node.to_string());
    assert!(ours.iter().all(|m| m.shipped_over == "UDP"));

    let saved = client
        .save_config(server.id, &[("data_zone", "eu"), ("tcp_sip_trace", "on")])
        .await
        .expect("saved");
    assert!(saved.config.tcp_sip_trace);
    options(node, "trace-eu-tcp").await;
    let trace = trace_with(&client, server.id, "trace-eu-tcp").await;
    assert_eq!(
        (trace.zone.as_str(), trace.collector.as_str()),
        ("EU", eu.as_str())
    );
    assert_eq!(trace.shipped_over, "TCP");
    let ours: Vec<_> = trace
        .messages
        .iter()
        .filter(|m| m.text.contains("Call-ID: trace-eu-tcp"))
        .collect();
    assert_eq!(ours.len(), 2);
    assert!(ours.iter().all(|m| m.shipped_over == "TCP"));
    // The EU collector never got what the server sent while it was in the US zone, and
    // the US one gets nothing from it now.
    assert!(!trace
        .messages
        .iter()
        .any(|m| m.text.contains("trace-us-udp")));
    let agent = u32::try_from(server.id).unwrap();
    let us_kept = collectors.zone(DataZone::Us).unwrap().messages(agent);
    assert!(us_kept
        .iter()
        .any(|k| k.message.payload.windows(12).any(|w| w == b"trace-us-udp")));
    assert!(!us_kept
        .iter()
        .any(|k| k.message.payload.windows(12).any(|w| w == b"trace-eu-tcp")));

    // Another account's server: not found, nothing of it shown.
    let stranger = app.account_with_balance("stranger@acme.test", 100).await;
    let refused = stranger
        .call::<TraceView>("server_trace", &[("id", &server.id.to_string())])
        .await;
    assert!(matches!(refused, Err(AppError::NotFound)), "{refused:?}");
}
