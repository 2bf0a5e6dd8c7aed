//! A Dispatcher deployed from the console balances its cluster: its node is given the
//! cluster's Switch servers with the algorithm and probe settings saved on its page, calls
//! through it reach a phone registered through it, spread as the algorithm says; a stopped
//! switch goes Inactive within the probe bounds and calls keep connecting through the
//! other; Restrict Direct refuses a call sent straight to a switch and connects one that
//! comes through the Dispatcher; AnyReg keeps registrations at the Dispatcher; a cluster's
//! CPS budget holds for calls that come through the Dispatcher.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use app::model::{ServerRow, SwitchHealth};
use common::calls::{answer, invite, next, status_line};
use common::phone::register_from;
use common::{eventually, Client, TestApp};
use sip_engine::Balancing;
use tokio::net::UdpSocket;

/// A Dispatcher and two Switches in one cluster, and bob registered through the
/// Dispatcher from `phone`; every server has room for 100 calls a second, so no test's
/// calls meet the limit unless it asks for it.
struct Cluster {
    dispatcher: ServerRow,
    switches: [ServerRow; 2],
    edge: SocketAddr,
}

async fn cluster(app: &TestApp, client: &Client, phone: &UdpSocket) -> Cluster {
    cluster_of_cps(app, client, phone, "100").await
}

/// As [`cluster`], each server deployed with `cps` calls per second (a cluster shares one
/// budget: its largest member's).
async fn cluster_of_cps(
    app: &TestApp,
    client: &Client,
    phone: &UdpSocket,
    cps: &'static str,
) -> Cluster {
    let cluster: i64 = client
        .call("create_cluster", &[("name", "Edge")])
        .await
        .unwrap();
    let cluster = cluster.to_string();
    let deploy = |kind: &'static str| {
        let client = client.clone();
        let cluster = cluster.clone();
        async move {
            client
                .call::<ServerRow>(
                    "deploy_server",
                    &[
                        ("zone", "test-zone"),
                        ("kind", kind),
                        ("cluster", &cluster),
                        ("cps", cps),
                    ],
                )
                .await
                .expect("deploy")
        }
    };
    let switches = [deploy("switch").await, deploy("switch").await];
    let dispatcher = deploy("dispatcher").await;
    let edge: SocketAddr = format!("{}:5060", dispatcher.ip).parse().unwrap();
    // The Dispatcher's node runs with the cluster's switches, round-robin by default.
    let runs = app
        .server
        .state
        .engine
        .config(dispatcher.id)
        .and_then(|c| c.dispatch)
        .expect("the Dispatcher balances");
    assert_eq!(runs.algorithm, Balancing::RoundRobin);
    let addrs: Vec<String> = runs.switches.iter().map(|s| s.addr.to_string()).collect();
    assert_eq!(
        addrs,
        switches
            .iter()
            .map(|s| format!("{}:5060", s.ip))
            .collect::<Vec<_>>()
    );
    client.sip_user("bob", "bob secret 12", "disabled").await;
    assert_eq!(
        register_from(phone, edge, "bob", "bob secret 12", "reg-edge").await,
        "SIP/2.0 200 OK"
    );
    Cluster {
        dispatcher,
        switches,
        edge,
    }
}

/// Calls bob through `edge` from `caller`; the phone answers 486, so the call ends at
/// once. Returns where the phone's INVITE came from.
async fn busy_call(
    caller: &UdpSocket,
    phone: &UdpSocket,
    edge: SocketAddr,
    call: &str,
) -> SocketAddr {
    busy_call_to("bob", caller, phone, edge, call).await
}

/// As [`busy_call`], to `user`.
async fn busy_call_to(
    user: &str,
    caller: &UdpSocket,
    phone: &UdpSocket,
    edge: SocketAddr,
    call: &str,
) -> SocketAddr {
    let from = caller.local_addr().unwrap();
    caller
        .send_to(invite(from, edge, user, call).as_bytes(), edge)
        .await
        .unwrap();
    let (request, sender) = next(phone).await;
    assert!(request.starts_with("INVITE "), "{request}");
    assert!(
        request.contains(&format!("Call-ID: {call}\r\n")),
        "{request}"
    );
    phone
        .send_to(answer(&request, "486 Busy Here").as_bytes(), sender)
        .await
        .unwrap();
    loop {
        let (response, _) = next(caller).await;
        if response.contains(&format!("Call-ID: {call}\r\n")) {
            assert_eq!(status_line(&response), "SIP/2.0 486 Busy Here");
            return sender;
        }
    }
}

async fn switch_view(client: &Client, dispatcher: i64) -> Vec<SwitchHealth> {
    client
        .call("dispatcher_switches", &[("id", &dispatcher.to_string())])
        .await
        .expect("the Dispatcher's switches")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_spreads_calls_over_its_switches_as_its_page_says() {
    let app = common::spawn_app("127.0.95.1-127.0.95.10").await;
    let client = app.account_with_balance("edge@acme.test", 100).await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let c = cluster(&app, &client, &phone).await;
    let caller = UdpSocket::bind("127.0.0.1:0").await.unwrap();

    // Round-robin: every call reaches the phone from the Dispatcher (its NAT binding), and
    // the two switches carry half each.
    for i in 0..20 {
        assert_eq!(
            busy_call(&caller, &phone, c.edge, &format!("rr-{i}")).await,
            c.edge
        );
    }
    let seen = switch_view(&client, c.dispatcher.id).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    for switch in &seen {
        assert_eq!(switch.active, Some(true), "{seen:?}");
        assert_eq!(switch.sent_last_minute, 10, "{seen:?}");
    }

    // Weighted 3:1, saved on the pages: 12 more calls land 9 and 3.
    let (a, b) = (&c.switches[0], &c.switches[1]);
    client
        .save_config(a.id, &[("weight", "3")])
        .await
        .expect("weight saved");
    client
        .save_config(c.dispatcher.id, &[("balancing", "weighted")])
        .await
        .expect("algorithm saved");
    let runs = app.server.state.engine.config(c.dispatcher.id).unwrap();
    let dispatch = runs.dispatch.unwrap();
    assert_eq!(dispatch.algorithm, Balancing::Weighted);
    assert_eq!(
        dispatch
            .switches
            .iter()
            .map(|s| s.weight)
            .collect::<Vec<_>>(),
        vec![3, 1]
    );
    for i in 0..12 {
        busy_call(&caller, &phone, c.edge, &format!("w-{i}")).await;
    }
    let seen = switch_view(&client, c.dispatcher.id).await;
    let calls = |id: i64| seen.iter().find(|s| s.id == id).unwrap().sent_last_minute;
    assert_eq!((calls(a.id), calls(b.id)), (10 + 9, 10 + 3), "{seen:?}");

    // A bad value is refused next to its field and changes nothing.
    let refused = client
        .save_config(c.dispatcher.id, &[("probe_interval", "0")])
        .await
        .expect_err("a zero interval is refused");
    assert_eq!(
        refused.for_field("probe_interval").as_deref(),
        Some("Enter a whole number from 1 to 300.")
    );
    assert_eq!(
        app.server
            .state
            .engine
            .config(c.dispatcher.id)
            .and_then(|c| c.dispatch)
            .map(|d| d.probe_interval),
        Some(Duration::from_secs(5))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_switch_goes_inactive_within_the_probe_bounds_and_calls_still_connect() {
    let app = common::spawn_app("127.0.96.1-127.0.96.10").await;
    let client = app.account_with_balance("probes@acme.test", 100).await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let c = cluster(&app, &client, &phone).await;
    client
        .save_config(
            c.dispatcher.id,
            &[
                ("probe_interval", "1"),
                ("probe_failures", "2"),
                ("probe_successes", "2"),
            ],
        )
        .await
        .expect("probe settings saved");
    let stopped = &c.switches[0];
    let id = stopped.id.to_string();
    client
        .call::<ServerRow>("run_server_action", &[("id", &id), ("action", "stop")])
        .await
        .expect("stop");
    // Inactive within probe_interval × probe_failures + 1 s.
    let started = tokio::time::Instant::now();
    let state_of =
        |seen: &[SwitchHealth], id: i64| seen.iter().find(|s| s.id == id).and_then(|s| s.active);
    loop {
        let seen = switch_view(&client, c.dispatcher.id).await;
        if state_of(&seen, stopped.id) == Some(false) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "still active: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every call connects, through the other switch.
    let caller = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..6 {
        busy_call(&caller, &phone, c.edge, &format!("after-stop-{i}")).await;
    }
    // The Clusters page's picture draws it down.
    let pictures: Vec<app::model::ClusterPicture> =
        client.call("cluster_pictures", &[]).await.unwrap();
    let drawn = pictures[0]
        .switches
        .iter()
        .find(|n| n.id == stopped.id)
        .unwrap();
    assert_eq!(drawn.shade, app::model::Shade::Down, "{drawn:?}");

    client
        .call::<ServerRow>("run_server_action", &[("id", &id), ("action", "start")])
        .await
        .expect("start");
    eventually("the started switch is Active again", || async {
        state_of(&switch_view(&client, c.dispatcher.id).await, stopped.id) == Some(true)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restrict_direct_refuses_a_call_straight_to_a_switch_and_connects_one_through_the_edge() {
    let app = common::spawn_app("127.0.97.1-127.0.97.10").await;
    let client = app.account_with_balance("direct@acme.test", 100).await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let c = cluster(&app, &client, &phone).await;
    for switch in &c.switches {
        client
            .save_config(switch.id, &[("restrict_direct", "on")])
            .await
            .expect("Restrict Direct saved");
    }
    let caller = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let from = caller.local_addr().unwrap();
    let switch: SocketAddr = format!("{}:5060", c.switches[0].ip).parse().unwrap();
    caller
        .send_to(invite(from, switch, "bob", "direct-1").as_bytes(), switch)
        .await
        .unwrap();
    let (refused, _) = next(&caller).await;
    assert!(
        status_line(&refused).starts_with("SIP/2.0 403"),
        "{refused}"
    );
    assert_eq!(busy_call(&caller, &phone, c.edge, "edge-1").await, c.edge);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_any_reg_the_dispatcher_holds_registrations_and_calls_reach_those_phones_through_it() {
    let app = common::spawn_app("127.0.98.1-127.0.98.10").await;
    let client = app.account_with_balance("anyreg@acme.test", 100).await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let c = cluster(&app, &client, &phone).await;
    client
        .save_config(c.dispatcher.id, &[("any_reg", "on")])
        .await
        .expect("AnyReg saved");
    assert!(app
        .server
        .state
        .engine
        .config(c.dispatcher.id)
        .and_then(|c| c.dispatch)
        .is_some_and(|d| d.any_reg));
    client.sip_user("carol", "carol secret 1", "disabled").await;
    let carol = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(
        register_from(&carol, c.edge, "carol", "carol secret 1", "reg-carol").await,
        "SIP/2.0 200 OK"
    );
    // The Dispatcher holds carol's registration; no switch does.
    let held = |id: i64| {
        let client = client.clone();
        async move {
            client
                .call::<app::listing::Paged<app::api::sip_users::RegistrationRow>>(
                    "list_registrations",
                    &[("server_id", &id.to_string()), ("query[search]", "carol")],
                )
                .await
                .expect("registrations")
                .rows
                .len()
        }
    };
    assert_eq!(held(c.dispatcher.id).await, 1);
    for switch in &c.switches {
        assert_eq!(held(switch.id).await, 0);
    }
    // A call through the Dispatcher reaches carol's phone from the Dispatcher.
    let caller = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..2 {
        let sender = busy_call_to("carol", &caller, &carol, c.edge, &format!("any-{i}")).await;
        assert_eq!(sender, c.edge);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_of_cps_10_offered_30_calls_a_second_through_its_dispatcher_takes_10_a_second() {
    const OFFERED: u32 = 30;
    const SECONDS: u32 = 10;
    let app = common::spawn_app("127.0.99.1-127.0.99.10").await;
    let client = app.account_with_balance("cps@acme.test", 100).await;
    let phone = std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let c = cluster_of_cps(&app, &client, &phone, "10").await;
    // bob's phone turns every call down at once: an admitted call is a 486.
    let answering = {
        let phone = phone.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            while let Ok((len, from)) = phone.recv_from(&mut buf).await {
                let request = String::from_utf8_lossy(&buf[..len]).to_string();
                if request.starts_with("INVITE ") {
                    let busy = answer(&request, "486 Busy Here");
                    let _ = phone.send_to(busy.as_bytes(), from).await;
                }
            }
        })
    };
    // The caller offers 30 calls a second for 10 seconds, paced by the clock (a load, not
    // a wait), and reads every final answer.
    let caller = std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let total = OFFERED * SECONDS;
    let reading = {
        let caller = caller.clone();
        tokio::spawn(async move {
            let (mut accepted, mut refused) = (0u32, 0u32);
            let mut seen = std::collections::HashSet::new();
            let mut buf = vec![0u8; 8192];
            let deadline = tokio::time::Instant::now() + Duration::from_secs(SECONDS as u64 + 10);
            while accepted + refused < total {
                let Ok(Ok((len, _))) =
                    tokio::time::timeout_at(deadline, caller.recv_from(&mut buf)).await
                else {
                    break;
                };
                let text = String::from_utf8_lossy(&buf[..len]).to_string();
                let call = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Call-ID: "))
                    .unwrap_or_default()
                    .to_string();
                let status = status_line(&text).to_string();
                if status.starts_with("SIP/2.0 1") || !seen.insert(call) {
                    continue;
                }
                if status == "SIP/2.0 486 Busy Here" {
                    accepted += 1;
                } else if status.starts_with("SIP/2.0 503") {
                    refused += 1;
                } else {
                    panic!("unexpected answer: {text}");
                }
            }
            (accepted, refused)
        })
    };
    let from = caller.local_addr().unwrap();
    let start = tokio::time::Instant::now();
    for i in 0..total {
        let at = start + Duration::from_secs_f64(f64::from(i) / f64::from(OFFERED));
        tokio::time::sleep_until(at).await;
        caller
            .send_to(
                invite(from, c.edge, "bob", &format!("cps-{i}")).as_bytes(),
                c.edge,
            )
            .await
            .unwrap();
    }
    let (accepted, refused) = reading.await.unwrap();
    answering.abort();
    eprintln!("offered {total} calls in {SECONDS} s: {accepted} taken, {refused} refused");
    assert_eq!(accepted + refused, total, "every call got a final answer");
    // 10 ± 1 a second over the 10 seconds (the budget's one-second windows need not line
    // up with the first call).
    assert!(
        (90..=110).contains(&accepted),
        "{accepted} of {total} calls taken in {SECONDS} s, {refused} refused"
    );
}
