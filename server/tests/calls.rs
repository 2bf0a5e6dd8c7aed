//! The channels and CPS the console shows are what the node enforces: a server deployed
//! with one channel carries one call and refuses the next with 503, the list shows the call
//! in use; a cluster's full member hands the call to its failover member; OS Cycle refuses
//! new calls while its active call finishes; Restart ends calls with a BYE to both ends,
//! Power Cycle without one.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use app::model::{ServerRow, ServerStatus};
use common::calls::{answer, answered_call, call_from, invite, next, status_line};
use common::phone::register_from;
use sip_engine::CallLimits;
use tokio::net::UdpSocket;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_carries_the_channels_it_shows_and_refuses_the_next_call() {
    let app = common::spawn_app("127.0.91.1-127.0.91.10").await;
    let client = app.account_with_balance("calls@acme.test", 100).await;
    let server: ServerRow = client
        .call(
            "deploy_server",
            &[
                ("zone", "test-zone"),
                ("kind", "switch"),
                ("channels", "1"),
                ("cps", "5"),
            ],
        )
        .await
        .expect("deploy");
    let node: SocketAddr = format!("{}:5060", server.ip).parse().unwrap();
    let engine = &app.server.state.engine;
    assert_eq!(
        engine.config(server.id).and_then(|c| c.limits),
        Some(CallLimits {
            channels: 1,
            cps: 5
        })
    );

    client.sip_user("bob", "bob secret 12", "disabled").await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(
        register_from(&phone, node, "bob", "bob secret 12", "reg-bob").await,
        "SIP/2.0 200 OK"
    );
    let carrier = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let carrier_addr = carrier.local_addr().unwrap();

    carrier
        .send_to(invite(carrier_addr, node, "bob", "call-1").as_bytes(), node)
        .await
        .unwrap();
    let (ringing_invite, _) = next(&phone).await;
    assert!(ringing_invite.starts_with("INVITE "), "{ringing_invite}");
    phone
        .send_to(answer(&ringing_invite, "180 Ringing").as_bytes(), node)
        .await
        .unwrap();
    assert_eq!(status_line(&next(&carrier).await.0), "SIP/2.0 180 Ringing");
    let shown = client.server_row(server.id).await;
    assert_eq!((shown.channels_in_use, shown.channels), (1, 1));
    assert_eq!((shown.cps_now, shown.cps), (1, 5));

    carrier
        .send_to(invite(carrier_addr, node, "bob", "call-2").as_bytes(), node)
        .await
        .unwrap();
    let (refusal, _) = next(&carrier).await;
    assert_eq!(
        status_line(&refusal),
        "SIP/2.0 503 Server at max cps / channels"
    );

    // OS Cycle: the node refuses new calls while call-1 goes on, and restarts once it ends.
    let cycle = {
        let client = client.clone();
        let id = server.id.to_string();
        tokio::spawn(async move {
            client
                .call::<ServerRow>("run_server_action", &[("id", &id), ("action", "os_cycle")])
                .await
        })
    };
    let server_id = server.id;
    common::eventually("the node drains", || async move {
        engine
            .config(server_id)
            .is_some_and(|c| c.refusing.is_some())
    })
    .await;
    assert_eq!(
        client.server_row(server.id).await.status,
        ServerStatus::Rebooting
    );
    carrier
        .send_to(invite(carrier_addr, node, "bob", "call-3").as_bytes(), node)
        .await
        .unwrap();
    // Not the capacity refusal above: the drain says why in its own reason phrase.
    let (draining, _) = next(&carrier).await;
    assert_eq!(
        status_line(&draining),
        "SIP/2.0 503 draining before an OS Cycle"
    );
    assert!(draining.contains("Retry-After: "), "{draining}");
    assert!(!cycle.is_finished(), "the drain waits for the active call");
    let started = std::time::Instant::now();
    phone
        .send_to(answer(&ringing_invite, "486 Busy Here").as_bytes(), node)
        .await
        .unwrap();
    let after = cycle.await.unwrap().expect("OS Cycle");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the restart follows the end of the last call, not the 5 s drain limit"
    );
    assert_eq!(after.status, ServerStatus::Running);
    assert_eq!(after.channels_in_use, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cluster_member_hands_the_call_to_its_failover_member() {
    let app = common::spawn_app("127.0.92.1-127.0.92.10").await;
    let client = app.account_with_balance("failover@acme.test", 100).await;
    let cluster: i64 = client
        .call("create_cluster", &[("name", "Core")])
        .await
        .unwrap();
    let cluster = cluster.to_string();
    let deploy = |channels: &'static str| {
        let client = client.clone();
        let cluster = cluster.clone();
        async move {
            client
                .call::<ServerRow>(
                    "deploy_server",
                    &[
                        ("zone", "test-zone"),
                        ("kind", "switch"),
                        ("cluster", &cluster),
                        ("channels", channels),
                        ("cps", "10"),
                    ],
                )
                .await
                .expect("deploy")
        }
    };
    let (a, b) = (deploy("1").await, deploy("2").await);
    let node_a: SocketAddr = format!("{}:5060", a.ip).parse().unwrap();
    let node_b: SocketAddr = format!("{}:5060", b.ip).parse().unwrap();

    // A fails over to B.
    let target = b.id.to_string();
    client
        .save_config(
            a.id,
            &[("failover_enabled", "on"), ("failover_target", &target)],
        )
        .await
        .expect("failover saved");
    let engine = &app.server.state.engine;
    let runs = engine.config(a.id).expect("A runs");
    assert_eq!(runs.failover, Some(node_b));
    assert_eq!(runs.cluster_peers, vec![node_b.ip()]);

    client.sip_user("bob", "bob secret 12", "disabled").await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(
        register_from(&phone, node_a, "bob", "bob secret 12", "reg-bob").await,
        "SIP/2.0 200 OK"
    );
    let carrier = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let carrier_addr = carrier.local_addr().unwrap();
    for (call, carried_by) in [("f-1", node_a), ("f-2", node_b)] {
        carrier
            .send_to(invite(carrier_addr, node_a, "bob", call).as_bytes(), node_a)
            .await
            .unwrap();
        let (request, from) = next(&phone).await;
        assert!(request.contains(&format!("Call-ID: {call}")), "{request}");
        assert_eq!(from, carried_by, "{call}");
        phone
            .send_to(answer(&request, "180 Ringing").as_bytes(), from)
            .await
            .unwrap();
        assert_eq!(status_line(&next(&carrier).await.0), "SIP/2.0 180 Ringing");
    }
    assert_eq!(client.server_row(a.id).await.channels_in_use, 1);
    assert_eq!(client.server_row(b.id).await.channels_in_use, 1);
    // Both of the cluster's channels (B's limit) are taken: the next call is refused.
    carrier
        .send_to(
            invite(carrier_addr, node_a, "bob", "f-3").as_bytes(),
            node_a,
        )
        .await
        .unwrap();
    assert_eq!(
        status_line(&next(&carrier).await.0),
        "SIP/2.0 503 Server at max cps / channels"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interconnect_decides_whether_the_accounts_other_servers_may_hand_over_calls() {
    let app = common::spawn_app("127.0.94.1-127.0.94.10").await;
    let client = app
        .account_with_balance("interconnect@acme.test", 100)
        .await;
    let (a, _) = client.deploy_switch().await;
    let (b, node_b) = client.deploy_switch().await;
    client.sip_user("bob", "bob secret 12", "disabled").await;
    // A call handed over by server A comes from A's address.
    let from_a = UdpSocket::bind((a.ip.as_str(), 0)).await.unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(
        call_from(&from_a, node_b, "ic-1").await,
        "SIP/2.0 403 Interconnect Disabled"
    );
    // Anyone else reaches routing (bob is not registered: 480).
    assert_eq!(
        call_from(&stranger, node_b, "ic-2").await,
        "SIP/2.0 480 Temporarily Unavailable"
    );

    client
        .save_config(b.id, &[("interconnect", "on")])
        .await
        .expect("Interconnect saved");
    assert_eq!(
        call_from(&from_a, node_b, "ic-3").await,
        "SIP/2.0 480 Temporarily Unavailable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unclustered_servers_reach_each_others_users_only_when_both_share_locations() {
    let app = common::spawn_app("127.0.96.1-127.0.96.10").await;
    let client = app.account_with_balance("sharing@acme.test", 100).await;
    let (a, node_a) = client.deploy_switch().await;
    let (b, node_b) = client.deploy_switch().await;
    client.sip_user("bob", "bob secret 12", "disabled").await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(
        register_from(&phone, node_a, "bob", "bob secret 12", "reg-bob").await,
        "SIP/2.0 200 OK"
    );
    let carrier = UdpSocket::bind("127.0.0.1:0").await.unwrap();

    // bob is registered at A: B does not know him.
    assert_eq!(
        call_from(&carrier, node_b, "share-1").await,
        "SIP/2.0 480 Temporarily Unavailable"
    );
    // Sharing takes both sides: B alone is not enough.
    client
        .save_config(b.id, &[("uac_location_sharing", "on")])
        .await
        .expect("B shares");
    assert_eq!(
        call_from(&carrier, node_b, "share-2").await,
        "SIP/2.0 480 Temporarily Unavailable"
    );
    client
        .save_config(a.id, &[("uac_location_sharing", "on")])
        .await
        .expect("A shares");
    let carrier_addr = carrier.local_addr().unwrap();
    carrier
        .send_to(
            invite(carrier_addr, node_b, "bob", "share-3").as_bytes(),
            node_b,
        )
        .await
        .unwrap();
    let (request, from) = next(&phone).await;
    assert!(request.contains("Call-ID: share-3"), "{request}");
    assert_eq!(from, node_b, "B rings bob, registered at A");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_ends_calls_with_a_bye_to_both_ends_and_power_cycle_without_a_word() {
    let app = common::spawn_app("127.0.99.1-127.0.99.10").await;
    let client = app.account_with_balance("goodbye@acme.test", 100).await;
    let server: ServerRow = client
        .call(
            "deploy_server",
            &[("zone", "test-zone"), ("kind", "switch")],
        )
        .await
        .expect("deploy");
    let node: SocketAddr = format!("{}:5060", server.ip).parse().unwrap();
    client.sip_user("bob", "bob secret 12", "disabled").await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(
        register_from(&phone, node, "bob", "bob secret 12", "reg-bob-bye").await,
        "SIP/2.0 200 OK"
    );
    let carrier = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let id = server.id.to_string();
    let action = |name: &'static str| {
        let client = client.clone();
        let id = id.clone();
        tokio::spawn(async move {
            client
                .call::<ServerRow>("run_server_action", &[("id", &id), ("action", name)])
                .await
        })
    };

    answered_call(&carrier, &phone, node, "call-restart").await;
    assert_eq!(client.server_row(server.id).await.channels_in_use, 1);
    let restart = action("restart");
    let (to_phone, _) = next(&phone).await;
    let (to_carrier, _) = next(&carrier).await;
    for (bye, socket) in [(&to_phone, &phone), (&to_carrier, &carrier)] {
        assert!(bye.starts_with("BYE "), "{bye}");
        assert!(bye.contains("Call-ID: call-restart\r\n"), "{bye}");
        assert!(
            bye.contains("Reason: Q.850;cause=41;text=\"Server restart\""),
            "{bye}"
        );
        socket
            .send_to(answer(bye, "200 OK").as_bytes(), node)
            .await
            .unwrap();
    }
    assert!(
        to_phone.contains("From: <sip:carrier@192.0.2.1>;tag=c\r\n"),
        "{to_phone}"
    );
    assert!(
        to_carrier.contains("To: <sip:carrier@192.0.2.1>;tag=c\r\n"),
        "{to_carrier}"
    );
    let after = restart.await.unwrap().expect("Restart");
    assert_eq!(
        (after.status, after.channels_in_use),
        (ServerStatus::Running, 0)
    );

    // Power Cycle: the node goes down with the call up, and neither end hears of it.
    answered_call(&carrier, &phone, node, "call-power").await;
    let cycle = action("power_cycle");
    let after = cycle.await.unwrap().expect("Power Cycle");
    assert_eq!(
        (after.status, after.channels_in_use),
        (ServerStatus::Running, 0)
    );
    for socket in [&phone, &carrier] {
        let mut buf = vec![0u8; 8192];
        while let Ok(Ok((len, _))) =
            tokio::time::timeout(Duration::from_millis(700), socket.recv_from(&mut buf)).await
        {
            let text = String::from_utf8_lossy(&buf[..len]);
            assert!(!text.starts_with("BYE "), "no goodbyes: {text}");
        }
    }
}
