//! `dispatcher-node`: one sipfleet Dispatcher balancing round-robin over the given switches,
//! for `bench/dispatcher.sh`, which drives it and Kamailio's dispatcher with the same SIPp
//! load.
//!
//! It runs the engine as a deployed Dispatcher runs it: stateful forwarding with
//! Record-Route, failover inside the caller's transaction, OPTIONS probes to every switch at
//! the console's default (every 5 s, out after 2 misses, back after 2 answers). It has no
//! registrar (AnyReg off: a REGISTER would be balanced like a call) and no console behind it.
//!
//! Usage: `dispatcher-node <ip> <port> <switch ip:port>...`. It prints `ready` once every
//! switch has answered a probe, then runs until killed.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use sip_engine::{Balancing, DispatchConfig, Engine, NodeConfig, NodeRole, NodeSpec, SwitchTarget};

/// The allocator the console's binary runs its nodes with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long the switches may take to answer their first probes.
const STARTUP: Duration = Duration::from_secs(15);

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ip, port, switches @ ..] = args.as_slice() else {
        eprintln!("usage: dispatcher-node <ip> <port> <switch ip:port>...");
        std::process::exit(2);
    };
    let ip: IpAddr = ip.parse().expect("an IP address");
    let port: u16 = port.parse().expect("a port");
    let switches: Vec<SwitchTarget> = switches
        .iter()
        .zip(1..)
        .map(|(addr, id)| SwitchTarget {
            id,
            addr: addr.parse::<SocketAddr>().expect("a switch's ip:port"),
            weight: 1,
        })
        .collect();
    if switches.is_empty() {
        eprintln!("dispatcher-node: at least one switch");
        std::process::exit(2);
    }

    let engine = Engine::new("bench");
    let id = 1000;
    engine
        .start(NodeSpec {
            id,
            ip,
            udp_port: port,
            tcp_port: port,
            role: NodeRole::Dispatcher,
        })
        .await
        .expect("the dispatcher starts");
    let config = NodeConfig {
        cluster: Some(1),
        cluster_peers: switches.iter().map(|s| s.addr.ip()).collect(),
        dispatch: Some(DispatchConfig {
            algorithm: Balancing::RoundRobin,
            switches,
            ..DispatchConfig::default()
        }),
        ..NodeConfig::default()
    };
    assert!(
        engine.configure(id, config),
        "the dispatcher takes its config"
    );

    let started = Instant::now();
    loop {
        let status = engine.dispatch_status(id).unwrap_or_default();
        if !status.is_empty() && status.iter().all(|s| s.active && s.latency_us.is_some()) {
            break;
        }
        if started.elapsed() > STARTUP {
            eprintln!("the switches did not answer their probes: {status:?}");
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut out = std::io::stdout();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    std::future::pending::<()>().await;
}
