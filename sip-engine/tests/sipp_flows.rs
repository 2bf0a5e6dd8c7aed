//! A registrar's whole life with real phones: SIPp (Debian's `sip-tester`) against nodes
//! started through [`Engine`] on loopback.
//!
//! - a phone registers, re-registers with a second contact, then removes both (`*`);
//! - two users register and one calls the other through the node, answering the node's 407
//!   with her credentials; the callee, behind NAT, gets the call at the address its
//!   REGISTER came from, and the dialog's ACK and BYE too;
//! - a user registered from two phones gets a call on both: one answers, the node cancels
//!   the other;
//! - a registered SIPp answers the node's OPTIONS keep-alives, which gives its binding a
//!   latency, then stops answering and is marked offline after K misses.
//!
//! The scenarios live in `tests/sipp/`. Every SIPp run has its own `-timeout` and a bound of
//! the test's; every wait on the store is bounded too. Each test uses loopback addresses of
//! its own, so they can run in parallel.

mod sipp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sip_engine::digest::{Algorithm, Authenticator};
use sip_engine::{
    Binding, Engine, KeepAliveMode, KeepAliveSettings, LocationStore, MemoryDirectory,
    MemoryLocationStore, NodeRole, NodeSpec, Registrar, Secret,
};
use sipp::Sipp;

const PASSWORD: &str = "correct-horse";

/// Keep-alives too rare to reach a call scenario: SIPp fails on a request it does not expect.
const NO_PINGS: KeepAliveSettings = KeepAliveSettings {
    interval: Duration::from_secs(300),
    max_missed: 3,
};

/// A node at `ip:5060` whose directory knows `users` (all with [`PASSWORD`]), keeping their
/// bindings in the returned store. SIPp 3.6 answers only the first challenge and knows only
/// MD5, so MD5 is offered first.
async fn node(
    id: i64,
    ip: &str,
    users: &[(&str, KeepAliveMode)],
    keepalive: KeepAliveSettings,
) -> (Engine, Arc<MemoryLocationStore>, SocketAddr) {
    sipp::require();
    let directory = Arc::new(MemoryDirectory::new());
    for (user, mode) in users {
        directory.insert(user, None, Secret::Password(PASSWORD.into()));
        directory.set_keepalive_mode(user, None, *mode);
    }
    let store = Arc::new(MemoryLocationStore::new());
    let auth = Arc::new(Authenticator::with_random_secret(Duration::from_secs(300)));
    let registrar = Registrar::new(directory, store.clone(), auth)
        .with_algorithms(&[Algorithm::Md5, Algorithm::Sha256]);
    let engine = Engine::new("test")
        .with_registrar(registrar)
        .with_keepalive(keepalive);
    let ip = ip.parse().unwrap();
    engine
        .start(NodeSpec {
            id,
            ip,
            udp_port: 5060,
            tcp_port: 5060,
            role: NodeRole::Switch,
        })
        .await
        .expect("node starts");
    (engine, store, SocketAddr::new(ip, 5060))
}

fn bindings(store: &MemoryLocationStore, user: &str, node: SocketAddr) -> Vec<Binding> {
    store
        .lookup(&format!("sip:{user}@{}", node.ip()), SystemTime::now())
        .unwrap()
}

/// Polls the store until `test` holds for `user`'s bindings; fails after five seconds.
async fn wait_for(
    store: &MemoryLocationStore,
    user: &str,
    node: SocketAddr,
    what: &str,
    test: impl Fn(&[Binding]) -> bool,
) -> Vec<Binding> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now = bindings(store, user, node);
        if test(&now) {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}; bindings: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_registers_re_registers_with_a_second_contact_and_un_registers() {
    let (engine, store, node) = node(
        202,
        "127.0.70.202",
        &[("alice", KeepAliveMode::Disabled)],
        NO_PINGS,
    )
    .await;

    let (ok, output) = Sipp::new("reregister.xml", "127.0.71.2", 1)
        .to(node)
        .user("alice", PASSWORD)
        .run()
        .await;
    assert!(ok, "register, re-register, un-register:\n{output}");
    assert!(
        bindings(&store, "alice", node).is_empty(),
        "Contact: * with Expires 0 removes every binding"
    );
    engine.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_registered_users_call_through_the_node_and_the_callee_behind_nat_gets_the_call() {
    let (engine, store, node) = node(
        203,
        "127.0.70.203",
        &[
            ("alice", KeepAliveMode::Disabled),
            ("bob", KeepAliveMode::Disabled),
        ],
        NO_PINGS,
    )
    .await;
    let callee: SocketAddr = "127.0.72.2:15092".parse().unwrap();
    let caller: SocketAddr = "127.0.72.3:15093".parse().unwrap();

    // bob registers from `callee` with a Contact naming a private address.
    let (ok, output) = Sipp::new("register_behind_nat.xml", "127.0.72.2", 1)
        .port(callee.port())
        .to(node)
        .user("bob", PASSWORD)
        .run()
        .await;
    assert!(ok, "bob registers:\n{output}");
    let bob = bindings(&store, "bob", node);
    assert_eq!(bob.len(), 1, "{bob:?}");
    assert_eq!(bob[0].contact, "sip:bob@192.0.2.10:5062");
    assert_eq!(bob[0].received, callee);

    let (ok, output) = Sipp::new("register.xml", "127.0.72.3", 1)
        .port(caller.port())
        .to(node)
        .user("alice", PASSWORD)
        .run()
        .await;
    assert!(ok, "alice registers:\n{output}");
    assert_eq!(bindings(&store, "alice", node).len(), 1);

    // bob answers where the node saw his REGISTER come from; alice calls him there.
    let answering = Sipp::new("call_uas.xml", "127.0.72.2", 1)
        .port(callee.port())
        .service("bob")
        .spawn();
    sipp::listening(callee).await;
    let (caller_ok, caller_output) = Sipp::new("call_uac.xml", "127.0.72.3", 1)
        .port(caller.port())
        .to(node)
        .service("bob")
        .credentials("alice", PASSWORD)
        .run()
        .await;
    let (callee_ok, callee_output) = answering.finish().await;
    assert!(
        callee_ok,
        "bob gets INVITE, ACK and BYE at {callee}:\n{callee_output}"
    );
    assert!(
        caller_ok,
        "alice's call is answered and hung up:\n{caller_output}"
    );
    engine.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alives_reach_a_registered_sipp_its_answers_give_latency_and_silence_makes_it_offline()
{
    let settings = KeepAliveSettings {
        interval: Duration::from_millis(400),
        max_missed: 3,
    };
    let (engine, store, node) = node(
        204,
        "127.0.70.204",
        &[("carol", KeepAliveMode::Options)],
        settings,
    )
    .await;
    let phone: SocketAddr = "127.0.73.2:15094".parse().unwrap();

    let (ok, output) = Sipp::new("register.xml", "127.0.73.2", 1)
        .port(phone.port())
        .to(node)
        .user("carol", PASSWORD)
        .run()
        .await;
    assert!(ok, "carol registers:\n{output}");
    let registered = bindings(&store, "carol", node);
    assert_eq!(registered.len(), 1);
    assert_eq!(registered[0].latency, None, "no keep-alive answered yet");

    // The same port now answers three keep-alives.
    let (ok, output) = Sipp::new("keepalive_answer.xml", "127.0.73.2", 3)
        .port(phone.port())
        .run()
        .await;
    assert!(ok, "SIPp gets and answers three OPTIONS:\n{output}");
    let answered = wait_for(&store, "carol", node, "an answered keep-alive", |b| {
        b.len() == 1 && b[0].latency.is_some()
    })
    .await;
    assert!(answered[0].online);
    assert!(answered[0].last_keepalive.is_some());
    assert!(
        answered[0].latency.unwrap() < Duration::from_millis(400),
        "{answered:?}"
    );

    // Then it keeps getting them and stops answering: offline after three misses, still
    // registered (this user's mode is OPTIONS without timeout).
    let (ok, output) = Sipp::new("keepalive_silent.xml", "127.0.73.2", 4)
        .port(phone.port())
        .run()
        .await;
    assert!(ok, "SIPp gets four more OPTIONS:\n{output}");
    let silent = wait_for(&store, "carol", node, "offline after 3 misses", |b| {
        b.len() == 1 && !b[0].online
    })
    .await;
    assert!(silent[0].missed_keepalives >= 3, "{silent:?}");
    engine.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_on_two_phones_rings_on_both_and_the_one_that_does_not_answer_is_cancelled() {
    let (engine, store, node) = node(
        205,
        "127.0.70.205",
        &[
            ("alice", KeepAliveMode::Disabled),
            ("bob", KeepAliveMode::Disabled),
        ],
        NO_PINGS,
    )
    .await;
    let desk: SocketAddr = "127.0.74.2:15095".parse().unwrap();
    let softphone: SocketAddr = "127.0.74.3:15096".parse().unwrap();
    let caller: SocketAddr = "127.0.74.4:15097".parse().unwrap();
    for (phone, user) in [(desk, "bob"), (softphone, "bob"), (caller, "alice")] {
        let (ok, output) = Sipp::new("register.xml", &phone.ip().to_string(), 1)
            .port(phone.port())
            .to(node)
            .user(user, PASSWORD)
            .run()
            .await;
        assert!(ok, "{user} registers from {phone}:\n{output}");
    }
    assert_eq!(bindings(&store, "bob", node).len(), 2);

    let ringing = Sipp::new("call_uas_cancelled.xml", "127.0.74.2", 1)
        .port(desk.port())
        .service("bob")
        .spawn();
    let answering = Sipp::new("call_uas_answer.xml", "127.0.74.3", 1)
        .port(softphone.port())
        .service("bob")
        .spawn();
    sipp::listening(desk).await;
    sipp::listening(softphone).await;
    let (caller_ok, caller_output) = Sipp::new("call_uac.xml", "127.0.74.4", 1)
        .port(caller.port())
        .to(node)
        .service("bob")
        .credentials("alice", PASSWORD)
        .run()
        .await;
    let (answered, answered_output) = answering.finish().await;
    let (cancelled, cancelled_output) = ringing.finish().await;
    assert!(caller_ok, "alice's call is answered:\n{caller_output}");
    assert!(
        answered,
        "the softphone answers, gets ACK and BYE:\n{answered_output}"
    );
    assert!(
        cancelled,
        "the desk phone rings, then gets CANCEL and acknowledges its 487:\n{cancelled_output}"
    );
    engine.stop_all().await;
}
