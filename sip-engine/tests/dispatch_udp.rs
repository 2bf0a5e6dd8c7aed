//! A Dispatcher started with [`Engine`] in front of two switches, over real loopback UDP
//! sockets: the switches are plain sockets that answer the Dispatcher's OPTIONS probes
//! (while told to) and hand every other request to the test. A call goes to a switch with
//! the Dispatcher's Record-Route and fails over to the other switch on a 503; a REGISTER
//! gets a Path instead; a switch that stops answering probes is taken out. Under AnyReg the
//! Dispatcher registers phones itself (no switch sees the REGISTER), and the switches
//! still reach them through it.
//!
//! Every wait is bounded by a timeout.

mod phone;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sip_engine::{
    Balancing, DispatchConfig, Engine, LocationStore, MemoryDirectory, MemoryLocationStore,
    NodeConfig, NodeRole, NodeSpec, Secret, SwitchTarget,
};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

const DISPATCHER_IP: &str = "127.0.93.1";
const WAIT: Duration = Duration::from_secs(5);

/// A switch as the Dispatcher sees it: a socket that answers probes while `answering`,
/// and passes every other request on to the test.
struct Switch {
    socket: Arc<UdpSocket>,
    addr: SocketAddr,
    answering: Arc<AtomicBool>,
    requests: mpsc::UnboundedReceiver<String>,
}

impl Switch {
    async fn start(ip: &str) -> Switch {
        let socket = Arc::new(UdpSocket::bind(format!("{ip}:0")).await.unwrap());
        let addr = socket.local_addr().unwrap();
        let answering = Arc::new(AtomicBool::new(true));
        let (tx, requests) = mpsc::unbounded_channel();
        let (reader, on) = (socket.clone(), answering.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_535];
            while let Ok((len, from)) = reader.recv_from(&mut buf).await {
                let text = String::from_utf8_lossy(&buf[..len]).into_owned();
                if text.starts_with("OPTIONS ") {
                    if on.load(Ordering::Relaxed) {
                        let ok = phone::respond(&text, "200 OK", addr);
                        let _ = reader.send_to(ok.as_bytes(), from).await;
                    }
                } else if !text.starts_with("SIP/2.0 ") && tx.send(text).is_err() {
                    return;
                }
            }
        });
        Switch {
            socket,
            addr,
            answering,
            requests,
        }
    }

    /// The next request other than a probe (or an ACK, which needs no answer).
    async fn next(&mut self) -> String {
        loop {
            let request = tokio::time::timeout(WAIT, self.requests.recv())
                .await
                .expect("a request within the wait")
                .expect("the switch runs");
            if !request.starts_with("ACK ") {
                return request;
            }
        }
    }

    async fn answer(&self, request: &str, status: &str, dispatcher: SocketAddr) {
        let response = phone::respond(request, status, self.addr);
        self.socket
            .send_to(response.as_bytes(), dispatcher)
            .await
            .unwrap();
    }
}

async fn dispatcher(engine: &Engine, id: i64, port: u16) -> SocketAddr {
    engine
        .start(NodeSpec {
            id,
            ip: DISPATCHER_IP.parse().unwrap(),
            udp_port: port,
            tcp_port: port,
            role: NodeRole::Dispatcher,
        })
        .await
        .expect("the dispatcher starts");
    SocketAddr::new(DISPATCHER_IP.parse().unwrap(), port)
}

fn balancing(switches: &[&Switch], probe_interval: Duration) -> NodeConfig {
    NodeConfig {
        dispatch: Some(DispatchConfig {
            algorithm: Balancing::RoundRobin,
            switches: switches
                .iter()
                .enumerate()
                .map(|(i, s)| SwitchTarget {
                    id: i as i64 + 1,
                    addr: s.addr,
                    weight: 1,
                })
                .collect(),
            probe_interval,
            ..DispatchConfig::default()
        }),
        ..NodeConfig::default()
    }
}

fn request(method: &str, uri: &str, caller: SocketAddr, call_id: &str) -> String {
    format!(
        "{method} {uri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {caller};branch=z9hG4bK{call_id};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@{DISPATCHER_IP}>;tag=caller\r\n\
         To: <sip:bob@{DISPATCHER_IP}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:alice@{caller}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

async fn receive(socket: &UdpSocket) -> String {
    phone::receive(socket, WAIT).await.0
}

#[tokio::test]
async fn a_dispatcher_sends_a_call_to_a_switch_record_routed_and_fails_over_on_503() {
    // alice is a user of the engine's: a Switch would challenge her call (407); the
    // Dispatcher leaves that to its switches.
    let directory = Arc::new(MemoryDirectory::new());
    directory.insert("alice", None, Secret::Password("pw".into()));
    let engine =
        Engine::new("test").with_directory(directory, Arc::new(MemoryLocationStore::new()));
    let mut a = Switch::start("127.0.93.2").await;
    let mut b = Switch::start("127.0.93.3").await;
    let node = dispatcher(&engine, 93, 15093).await;
    engine.configure(93, balancing(&[&a, &b], Duration::from_secs(3600)));
    let caller = UdpSocket::bind("127.0.93.4:0").await.unwrap();
    let me = caller.local_addr().unwrap();

    let invite = request(
        "INVITE",
        &format!("sip:bob@{DISPATCHER_IP}"),
        me,
        "dispatch-call",
    );
    caller.send_to(invite.as_bytes(), node).await.unwrap();
    let trying = receive(&caller).await;
    assert!(trying.starts_with("SIP/2.0 100 "), "{trying}");
    // No 407 from the Dispatcher: it leaves authentication to the switches.
    let at_a = a.next().await;
    assert!(
        at_a.starts_with(&format!("INVITE sip:bob@{DISPATCHER_IP} ")),
        "{at_a}"
    );
    assert_eq!(
        phone::headers(&at_a, "Record-Route"),
        [format!("<sip:{node};lr>").as_str()]
    );
    assert!(phone::headers(&at_a, "Via")[0].contains(&node.to_string()));
    a.answer(&at_a, "503 Server at max cps / channels", node)
        .await;

    let at_b = b.next().await;
    assert!(at_b.starts_with("INVITE "), "{at_b}");
    assert_eq!(
        phone::headers(&at_b, "Record-Route"),
        [format!("<sip:{node};lr>").as_str()]
    );
    b.answer(&at_b, "200 OK", node).await;
    let ok = receive(&caller).await;
    assert!(
        ok.starts_with("SIP/2.0 200 "),
        "the caller never sees the 503: {ok}"
    );
    assert_eq!(
        phone::headers(&ok, "Record-Route"),
        [format!("<sip:{node};lr>").as_str()]
    );
    let status = engine.dispatch_status(93).expect("a dispatcher");
    assert_eq!(status.iter().map(|s| s.sent_last_minute).sum::<u64>(), 1);
    assert_eq!(engine.call_figures(93).unwrap().channels_in_use, 1);
    engine.stop(93).await;
}

#[tokio::test]
async fn a_switch_silent_to_an_invite_is_given_up_for_the_next_within_the_call() {
    let engine = Engine::new("test");
    let mut a = Switch::start("127.0.93.15").await;
    let mut b = Switch::start("127.0.93.16").await;
    let node = dispatcher(&engine, 92, 15092).await;
    engine.configure(92, balancing(&[&a, &b], Duration::from_secs(3600)));
    let caller = UdpSocket::bind("127.0.93.17:0").await.unwrap();
    let me = caller.local_addr().unwrap();
    let invite = request(
        "INVITE",
        &format!("sip:bob@{DISPATCHER_IP}"),
        me,
        "silent-switch",
    );
    caller.send_to(invite.as_bytes(), node).await.unwrap();
    assert!(receive(&caller).await.starts_with("SIP/2.0 100 "));
    let sent = tokio::time::Instant::now();
    let at_a = a.next().await;
    assert!(at_a.starts_with("INVITE "), "{at_a}");
    // a says nothing at all (not even 100 Trying): b gets the INVITE after the patience.
    let at_b = b.next().await;
    assert!(at_b.starts_with("INVITE "), "{at_b}");
    assert!(sent.elapsed() >= sip_engine::node::SWITCH_PATIENCE_INVITE);
    // The silent branch is cancelled (after the INVITE's own retransmissions).
    loop {
        let next = a.next().await;
        if next.starts_with("CANCEL ") {
            break;
        }
        assert!(next.starts_with("INVITE "), "{next}");
    }
    b.answer(&at_b, "200 OK", node).await;
    let ok = receive(&caller).await;
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
    engine.stop(92).await;
}

#[tokio::test]
async fn a_register_through_the_dispatcher_carries_a_path_and_no_record_route() {
    let engine = Engine::new("test");
    let mut a = Switch::start("127.0.93.5").await;
    let node = dispatcher(&engine, 94, 15094).await;
    engine.configure(94, balancing(&[&a], Duration::from_secs(3600)));
    let phone = UdpSocket::bind("127.0.93.6:0").await.unwrap();
    let me = phone.local_addr().unwrap();
    let register = phone::register("carol", DISPATCHER_IP, me, 1, "");
    phone.send_to(register.as_bytes(), node).await.unwrap();
    let at_a = a.next().await;
    assert!(
        at_a.starts_with(&format!("REGISTER sip:{DISPATCHER_IP} ")),
        "{at_a}"
    );
    // The Path names the Dispatcher, and the address the phone's NAT showed it.
    assert_eq!(
        phone::headers(&at_a, "Path"),
        [format!("<sip:{node};lr;nat={}~{}>", me.ip(), me.port()).as_str()]
    );
    assert!(phone::headers(&at_a, "Record-Route").is_empty());
    a.answer(&at_a, "401 Unauthorized", node).await;
    let answer = receive(&phone).await;
    assert!(answer.starts_with("SIP/2.0 401 "), "{answer}");
    // The Dispatcher's own ping is its own.
    let ping = request("OPTIONS", &format!("sip:{DISPATCHER_IP}"), me, "ping");
    phone.send_to(ping.as_bytes(), node).await.unwrap();
    let pong = receive(&phone).await;
    assert!(pong.starts_with("SIP/2.0 200 "), "{pong}");
    assert!(
        pong.contains("REGISTER"),
        "Allow lists what it passes on: {pong}"
    );
    engine.stop(94).await;
}

/// Polls the dispatcher's status until `done` says so (bounded by [`WAIT`]).
async fn until(engine: &Engine, id: i64, done: impl Fn(&[sip_engine::SwitchStatus]) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = engine.dispatch_status(id).unwrap();
        if done(&status) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_switch_that_stops_answering_probes_is_taken_out_and_back_in() {
    let engine = Engine::new("test");
    let mut a = Switch::start("127.0.93.7").await;
    let b = Switch::start("127.0.93.8").await;
    let node = dispatcher(&engine, 95, 15095).await;
    engine.configure(95, balancing(&[&a, &b], Duration::from_millis(100)));
    until(&engine, 95, |s| {
        s.iter().all(|s| s.active && s.latency_us.is_some())
    })
    .await;
    b.answering.store(false, Ordering::Relaxed);
    until(&engine, 95, |s| s[0].active && !s[1].active).await;
    let caller = UdpSocket::bind("127.0.93.9:0").await.unwrap();
    let me = caller.local_addr().unwrap();
    for i in 0..4 {
        let message = request(
            "MESSAGE",
            &format!("sip:bob@{DISPATCHER_IP}"),
            me,
            &format!("m{i}"),
        );
        caller.send_to(message.as_bytes(), node).await.unwrap();
        let at_a = a.next().await;
        assert!(at_a.starts_with("MESSAGE "), "{at_a}");
        a.answer(&at_a, "200 OK", node).await;
        assert!(receive(&caller).await.starts_with("SIP/2.0 200 "));
    }
    b.answering.store(true, Ordering::Relaxed);
    until(&engine, 95, |s| s.iter().all(|s| s.active)).await;
    engine.stop(95).await;
}

#[tokio::test]
async fn a_phone_registered_through_the_dispatcher_is_called_through_it_from_a_switch() {
    const PASSWORD: &str = "correct-horse";
    let directory = Arc::new(MemoryDirectory::new());
    directory.insert("carol", None, Secret::Password(PASSWORD.into()));
    let engine = Engine::new("test")
        .with_directory(directory, Arc::new(MemoryLocationStore::new()))
        .with_keepalive(sip_engine::KeepAliveSettings {
            interval: Duration::from_secs(3600),
            max_missed: 3,
        });
    let switch_ip = "127.0.93.10";
    engine
        .start(NodeSpec {
            id: 97,
            ip: switch_ip.parse().unwrap(),
            udp_port: 15097,
            tcp_port: 15097,
            role: NodeRole::Switch,
        })
        .await
        .expect("the switch starts");
    let switch = SocketAddr::new(switch_ip.parse().unwrap(), 15097);
    // The switch finds users registered under the Dispatcher's name: a cluster member's.
    engine.configure(
        97,
        NodeConfig {
            cluster_peers: vec![DISPATCHER_IP.parse().unwrap()],
            ..NodeConfig::default()
        },
    );
    let node = dispatcher(&engine, 96, 15096).await;
    engine.configure(
        96,
        NodeConfig {
            dispatch: Some(DispatchConfig {
                switches: vec![SwitchTarget {
                    id: 97,
                    addr: switch,
                    weight: 1,
                }],
                probe_interval: Duration::from_secs(3600),
                ..DispatchConfig::default()
            }),
            ..NodeConfig::default()
        },
    );
    let phone = UdpSocket::bind("127.0.93.11:0").await.unwrap();
    phone::sign_in(&phone, "carol", PASSWORD, DISPATCHER_IP, node, WAIT).await;

    let caller = UdpSocket::bind("127.0.93.12:0").await.unwrap();
    let me = caller.local_addr().unwrap();
    let invite = format!(
        "INVITE sip:carol@{DISPATCHER_IP} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bKpathcall;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:dave@198.51.100.9>;tag=caller\r\n\
         To: <sip:carol@{DISPATCHER_IP}>\r\n\
         Call-ID: path-call\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:dave@{me}>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    caller.send_to(invite.as_bytes(), switch).await.unwrap();
    assert!(receive(&caller).await.starts_with("SIP/2.0 100 "));
    let (at_phone, from) = phone::receive(&phone, WAIT).await;
    assert_eq!(
        from, node,
        "the INVITE reaches the phone from the Dispatcher"
    );
    assert!(at_phone.starts_with("INVITE sip:carol@"), "{at_phone}");
    assert_eq!(
        phone::headers(&at_phone, "Record-Route"),
        [
            format!("<sip:{node};lr>").as_str(),
            format!("<sip:{switch};lr>").as_str()
        ]
    );
    let ok = phone::respond(&at_phone, "200 OK", phone.local_addr().unwrap());
    phone.send_to(ok.as_bytes(), node).await.unwrap();
    let answered = receive(&caller).await;
    assert!(answered.starts_with("SIP/2.0 200 "), "{answered}");
    engine.stop(96).await;
    engine.stop(97).await;
}

#[tokio::test]
async fn a_phone_registered_through_the_dispatcher_gets_its_keep_alives_from_the_dispatcher() {
    const PASSWORD: &str = "correct-horse";
    let directory = Arc::new(MemoryDirectory::new());
    directory.insert("erin", None, Secret::Password(PASSWORD.into()));
    let engine = Engine::new("test")
        .with_directory(directory, Arc::new(MemoryLocationStore::new()))
        .with_keepalive(sip_engine::KeepAliveSettings {
            interval: Duration::from_millis(200),
            max_missed: 100,
        });
    let switch_ip = "127.0.93.13";
    engine
        .start(NodeSpec {
            id: 99,
            ip: switch_ip.parse().unwrap(),
            udp_port: 15099,
            tcp_port: 15099,
            role: NodeRole::Switch,
        })
        .await
        .expect("the switch starts");
    let node = dispatcher(&engine, 98, 15098).await;
    engine.configure(
        98,
        NodeConfig {
            dispatch: Some(DispatchConfig {
                switches: vec![SwitchTarget {
                    id: 99,
                    addr: SocketAddr::new(switch_ip.parse().unwrap(), 15099),
                    weight: 1,
                }],
                probe_interval: Duration::from_secs(3600),
                ..DispatchConfig::default()
            }),
            ..NodeConfig::default()
        },
    );
    let phone = UdpSocket::bind("127.0.93.14:0").await.unwrap();
    phone::sign_in(&phone, "erin", PASSWORD, DISPATCHER_IP, node, WAIT).await;
    let mut buf = vec![0u8; 65_535];
    for _ in 0..3 {
        let (len, from) = tokio::time::timeout(WAIT, phone.recv_from(&mut buf))
            .await
            .expect("a keep-alive in time")
            .unwrap();
        let ping = String::from_utf8_lossy(&buf[..len]);
        assert!(ping.starts_with("OPTIONS sip:erin@"), "{ping}");
        assert!(ping.contains("Call-ID: ka-"), "{ping}");
        assert_eq!(from, node, "one sender, where the phone's NAT mapping is");
    }
    engine.stop(98).await;
    engine.stop(99).await;
}

/// A Dispatcher at `port` with AnyReg as `any_reg`, balancing over the switch `switch` (id
/// `switch_id`), in `engine`.
async fn any_reg_dispatcher(
    engine: &Engine,
    id: i64,
    port: u16,
    switch: SocketAddr,
    any_reg: bool,
) -> SocketAddr {
    let node = dispatcher(engine, id, port).await;
    engine.configure(
        id,
        NodeConfig {
            dispatch: Some(DispatchConfig {
                switches: vec![SwitchTarget {
                    id: id + 1,
                    addr: switch,
                    weight: 1,
                }],
                probe_interval: Duration::from_secs(3600),
                any_reg,
                ..DispatchConfig::default()
            }),
            ..NodeConfig::default()
        },
    );
    node
}

/// An engine that knows `user` (with `password`), its bindings in the returned store, its
/// keep-alives every `keepalive`.
fn engine_with(
    user: &str,
    password: &str,
    keepalive: Duration,
) -> (Engine, Arc<MemoryLocationStore>) {
    let directory = Arc::new(MemoryDirectory::new());
    directory.insert(user, None, Secret::Password(password.into()));
    let store = Arc::new(MemoryLocationStore::new());
    let engine = Engine::new("test")
        .with_directory(directory, store.clone())
        .with_keepalive(sip_engine::KeepAliveSettings {
            interval: keepalive,
            max_missed: 100,
        });
    (engine, store)
}

/// A Switch node of `engine` at `ip`:`port` that finds users registered at the Dispatcher
/// (a cluster peer).
async fn switch_node(engine: &Engine, id: i64, ip: &str, port: u16) -> SocketAddr {
    engine
        .start(NodeSpec {
            id,
            ip: ip.parse().unwrap(),
            udp_port: port,
            tcp_port: port,
            role: NodeRole::Switch,
        })
        .await
        .expect("the switch starts");
    engine.configure(
        id,
        NodeConfig {
            cluster_peers: vec![DISPATCHER_IP.parse().unwrap()],
            ..NodeConfig::default()
        },
    );
    SocketAddr::new(ip.parse().unwrap(), port)
}

#[tokio::test]
async fn with_any_reg_the_dispatcher_answers_a_register_itself_and_no_switch_sees_it() {
    const PASSWORD: &str = "correct-horse";
    let (engine, store) = engine_with("frank", PASSWORD, Duration::from_secs(3600));
    let mut a = Switch::start("127.0.93.20").await;
    let node = any_reg_dispatcher(&engine, 191, 15191, a.addr, true).await;
    let phone = UdpSocket::bind("127.0.93.21:0").await.unwrap();
    let me = phone.local_addr().unwrap();

    let register = phone::register("frank", DISPATCHER_IP, me, 1, "");
    phone.send_to(register.as_bytes(), node).await.unwrap();
    let (challenge, from) = phone::receive(&phone, WAIT).await;
    assert!(challenge.starts_with("SIP/2.0 401 "), "{challenge}");
    assert_eq!(from, node, "the Dispatcher challenges");
    let auth = phone::authorization("frank", PASSWORD, DISPATCHER_IP, &challenge);
    let register = phone::register("frank", DISPATCHER_IP, me, 2, &auth);
    phone.send_to(register.as_bytes(), node).await.unwrap();
    let (ok, from) = phone::receive(&phone, WAIT).await;
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
    assert_eq!(from, node);
    assert!(
        phone::headers(&ok, "Path").is_empty(),
        "its own Path entry is not echoed: {ok}"
    );
    // Bound under the Dispatcher's domain, along a Path naming it and the phone's NAT
    // address: the form of the Path it adds to a REGISTER it balances.
    held_by_the_dispatcher(&store, "frank", me, node);

    // A call from the phone is not challenged by the Dispatcher (its switches do that):
    // it is the first thing the switch ever receives, so neither REGISTER reached it.
    let caller = UdpSocket::bind("127.0.93.22:0").await.unwrap();
    let invite = request(
        "INVITE",
        &format!("sip:bob@{DISPATCHER_IP}"),
        caller.local_addr().unwrap(),
        "any-reg-fence",
    );
    caller.send_to(invite.as_bytes(), node).await.unwrap();
    assert!(receive(&caller).await.starts_with("SIP/2.0 100 "));
    let first = a.next().await;
    assert!(first.starts_with("INVITE "), "no REGISTER before: {first}");
    a.answer(&first, "486 Busy Here", node).await;
    assert!(receive(&caller).await.starts_with("SIP/2.0 486 "));
    engine.stop(191).await;
}

#[tokio::test]
async fn without_any_reg_a_dispatcher_that_knows_the_users_still_balances_registers_to_a_switch() {
    let (engine, store) = engine_with("grace", "pw", Duration::from_secs(3600));
    let mut a = Switch::start("127.0.93.23").await;
    let node = any_reg_dispatcher(&engine, 193, 15193, a.addr, false).await;
    let phone = UdpSocket::bind("127.0.93.24:0").await.unwrap();
    let me = phone.local_addr().unwrap();
    let register = phone::register("grace", DISPATCHER_IP, me, 1, "");
    phone.send_to(register.as_bytes(), node).await.unwrap();
    let at_a = a.next().await;
    assert!(at_a.starts_with("REGISTER "), "{at_a}");
    assert_eq!(
        phone::headers(&at_a, "Path"),
        [format!("<sip:{node};lr;nat={}~{}>", me.ip(), me.port()).as_str()]
    );
    a.answer(&at_a, "401 Unauthorized", node).await;
    let (answer, from) = phone::receive(&phone, WAIT).await;
    assert!(answer.starts_with("SIP/2.0 401 "), "{answer}");
    assert_eq!(from, node);
    assert!(store
        .lookup(
            &format!("sip:grace@{DISPATCHER_IP}"),
            std::time::SystemTime::now()
        )
        .unwrap()
        .is_empty());
    engine.stop(193).await;
}

/// Asserts that `user`'s one binding was written by the Dispatcher itself (AnyReg): the
/// REGISTER came to the registrar straight from `phone`, not relayed by a switch's
/// Dispatcher, and its Path names the Dispatcher at `node` with the phone's address.
fn held_by_the_dispatcher(
    store: &MemoryLocationStore,
    user: &str,
    phone: SocketAddr,
    node: SocketAddr,
) {
    let bindings = store
        .lookup(
            &format!("sip:{user}@{DISPATCHER_IP}"),
            std::time::SystemTime::now(),
        )
        .unwrap();
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].received, phone, "no switch took the REGISTER");
    assert_eq!(
        bindings[0].path,
        [format!(
            "<sip:{node};lr;nat={}~{}>",
            phone.ip(),
            phone.port()
        )]
    );
}

#[tokio::test]
async fn with_any_reg_a_switch_calls_a_phone_registered_at_the_dispatcher_through_it() {
    const PASSWORD: &str = "correct-horse";
    let (engine, store) = engine_with("heidi", PASSWORD, Duration::from_secs(3600));
    let switch = switch_node(&engine, 196, "127.0.93.25", 15196).await;
    let node = any_reg_dispatcher(&engine, 195, 15195, switch, true).await;
    let phone = UdpSocket::bind("127.0.93.26:0").await.unwrap();
    phone::sign_in(&phone, "heidi", PASSWORD, DISPATCHER_IP, node, WAIT).await;
    held_by_the_dispatcher(&store, "heidi", phone.local_addr().unwrap(), node);

    let caller = UdpSocket::bind("127.0.93.27:0").await.unwrap();
    let me = caller.local_addr().unwrap();
    let invite = format!(
        "INVITE sip:heidi@{DISPATCHER_IP} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bKanyregcall;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:dave@198.51.100.9>;tag=caller\r\n\
         To: <sip:heidi@{DISPATCHER_IP}>\r\n\
         Call-ID: any-reg-call\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:dave@{me}>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    caller.send_to(invite.as_bytes(), switch).await.unwrap();
    assert!(receive(&caller).await.starts_with("SIP/2.0 100 "));
    let (at_phone, from) = phone::receive(&phone, WAIT).await;
    assert_eq!(
        from, node,
        "the INVITE reaches the phone from the Dispatcher"
    );
    assert!(at_phone.starts_with("INVITE sip:heidi@"), "{at_phone}");
    assert_eq!(
        phone::headers(&at_phone, "Record-Route"),
        [
            format!("<sip:{node};lr>").as_str(),
            format!("<sip:{switch};lr>").as_str()
        ]
    );
    let ok = phone::respond(&at_phone, "200 OK", phone.local_addr().unwrap());
    phone.send_to(ok.as_bytes(), node).await.unwrap();
    let answered = receive(&caller).await;
    assert!(answered.starts_with("SIP/2.0 200 "), "{answered}");
    engine.stop(195).await;
    engine.stop(196).await;
}

#[tokio::test]
async fn with_any_reg_a_phone_registered_at_the_dispatcher_gets_its_keep_alives_from_it_alone() {
    const PASSWORD: &str = "correct-horse";
    let (engine, store) = engine_with("ivan", PASSWORD, Duration::from_millis(200));
    let switch = switch_node(&engine, 198, "127.0.93.28", 15198).await;
    let node = any_reg_dispatcher(&engine, 197, 15197, switch, true).await;
    let phone = UdpSocket::bind("127.0.93.29:0").await.unwrap();
    phone::sign_in(&phone, "ivan", PASSWORD, DISPATCHER_IP, node, WAIT).await;
    held_by_the_dispatcher(&store, "ivan", phone.local_addr().unwrap(), node);
    let mut buf = vec![0u8; 65_535];
    for _ in 0..5 {
        let (len, from) = tokio::time::timeout(WAIT, phone.recv_from(&mut buf))
            .await
            .expect("a keep-alive in time")
            .unwrap();
        let ping = String::from_utf8_lossy(&buf[..len]);
        assert!(ping.starts_with("OPTIONS sip:ivan@"), "{ping}");
        assert!(ping.contains("Call-ID: ka-"), "{ping}");
        assert_eq!(from, node, "one sender, where the phone's NAT mapping is");
    }
    engine.stop(197).await;
    engine.stop(198).await;
}
