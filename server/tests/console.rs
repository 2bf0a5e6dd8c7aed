//! Console features acting on real nodes and refusing what they must, with nothing changed
//! after a refusal.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use app::error::AppError;
use app::model::{AccountRow, ClusterRow, ServerRow, ServerStatus};
use common::calls::{answer, answered_call, next_within};
use common::phone::register_from;
use sip_engine::{options_ping, ProbeTransport};
use tokio::net::UdpSocket;

async fn audit_actions(app: &common::TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM audit_log ORDER BY id")
        .fetch_all(app.server.state.store.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_silences_the_node_and_start_brings_it_back() {
    let app = common::spawn_app("127.0.66.1-127.0.66.20").await;
    let client = app.account_with_balance("actions@acme.test", 100).await;
    let row: ServerRow = client
        .call(
            "deploy_server",
            &[("zone", "test-zone"), ("kind", "switch")],
        )
        .await
        .unwrap();
    let target: SocketAddr = format!("{}:5060", row.ip).parse().unwrap();
    let id = row.id.to_string();

    let stopped: ServerRow = client
        .call("run_server_action", &[("id", &id), ("action", "stop")])
        .await
        .unwrap();
    assert_eq!(stopped.status, ServerStatus::Stopped);
    assert!(
        options_ping(target, ProbeTransport::Udp, Duration::from_millis(700))
            .await
            .is_err()
    );

    let started: ServerRow = client
        .call("run_server_action", &[("id", &id), ("action", "start")])
        .await
        .unwrap();
    assert_eq!(started.status, ServerStatus::Running);
    options_ping(target, ProbeTransport::Udp, Duration::from_secs(3))
        .await
        .expect("answers again");

    let log = audit_actions(&app).await;
    for action in ["server.deploy", "server.stop", "server.start"] {
        assert!(
            log.iter().any(|a| a == action),
            "{action} missing from {log:?}"
        );
    }
}

/// The BYE the node sends `socket` for `call` (within 10 s: an OS Cycle drains for 5 s
/// first), answered with 200 as a phone would.
async fn bye_for(socket: &UdpSocket, node: SocketAddr, call: &str, reason: &str) {
    let (bye, _) = next_within(socket, Duration::from_secs(10)).await;
    assert!(bye.starts_with("BYE "), "{bye}");
    assert!(bye.contains(&format!("Call-ID: {call}\r\n")), "{bye}");
    assert!(
        bye.contains(&format!("Reason: Q.850;cause=41;text=\"{reason}\"")),
        "{bye}"
    );
    socket
        .send_to(answer(&bye, "200 OK").as_bytes(), node)
        .await
        .unwrap();
}

/// Nothing but noise reaches `socket` for 700 ms: in particular no BYE.
async fn no_bye(socket: &UdpSocket) {
    let mut buf = vec![0u8; 8192];
    while let Ok(Ok((len, _))) =
        tokio::time::timeout(Duration::from_millis(700), socket.recv_from(&mut buf)).await
    {
        let text = String::from_utf8_lossy(&buf[..len]);
        assert!(!text.starts_with("BYE "), "no goodbyes: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_action_treats_live_calls_its_own_way_keeps_the_configuration_and_is_audited() {
    let app = common::spawn_app("127.0.73.1-127.0.73.10").await;
    let client = app.account_with_balance("each-action@acme.test", 100).await;
    let (row, _) = client.deploy_switch().await;
    let id = row.id.to_string();
    let state = &app.server.state;
    let account = state
        .store
        .account_of_email("each-action@acme.test")
        .await
        .unwrap()
        .unwrap();
    // The carrier's registrar for UAC Auth: a socket that takes the REGISTERs.
    let registrar = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let registrar_at = registrar.local_addr().unwrap().to_string();
    client
        .save_config(
            row.id,
            &[
                ("udp_port", "5070"),
                ("tcp_port", "5071"),
                ("fqdn", "sip.acme.test"),
                ("interconnect", "on"),
                ("disable_uac_ping", "on"),
                ("tcp_sip_trace", "on"),
                ("uac_auth_username", "trunk-7"),
                ("uac_auth_password", "trunk secret"),
                ("uac_auth_registrar", &registrar_at),
            ],
        )
        .await
        .expect("configuration saved");
    let stored = state
        .store
        .server_config(account, row.id)
        .await
        .unwrap()
        .unwrap();
    let running = state.engine.config(row.id).expect("the node runs");
    assert!(running.uac_registration.is_some() && running.interconnect);
    let node: SocketAddr = format!("{}:5070", row.ip).parse().unwrap();

    client.sip_user("bob", "bob secret 12", "disabled").await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(
        register_from(&phone, node, "bob", "bob secret 12", "reg-each").await,
        "SIP/2.0 200 OK"
    );
    let carrier = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let action = |name: &'static str| {
        let client = client.clone();
        let id = id.clone();
        tokio::spawn(async move {
            client
                .call::<ServerRow>("run_server_action", &[("id", &id), ("action", name)])
                .await
        })
    };

    // Restart and Install end the call with a BYE to both ends, each with its own reason.
    for (name, reason) in [
        ("restart", "Server restart"),
        ("install", "Server reinstall"),
    ] {
        let call = format!("call-{name}");
        answered_call(&carrier, &phone, node, &call).await;
        let acting = action(name);
        bye_for(&phone, node, &call, reason).await;
        bye_for(&carrier, node, &call, reason).await;
        let after = acting.await.unwrap().expect(name);
        assert_eq!(
            (after.status, after.channels_in_use),
            (ServerStatus::Running, 0),
            "{name}"
        );
    }

    // OS Cycle lets the call go on while the node refuses new ones; the call still up when
    // the drain time (5 s here) is over gets its BYE then.
    answered_call(&carrier, &phone, node, "call-os-cycle").await;
    let started = std::time::Instant::now();
    let cycling = action("os_cycle");
    let server_id = row.id;
    common::eventually("the node drains", || async move {
        state.engine.config(server_id).and_then(|c| c.refusing)
            == Some("draining before an OS Cycle".to_string())
    })
    .await;
    assert_eq!(
        client.server_row(row.id).await.status,
        ServerStatus::Rebooting
    );
    assert_eq!(
        state.engine.call_figures(row.id).unwrap().channels_in_use,
        1,
        "the call goes on while the node drains"
    );
    bye_for(&phone, node, "call-os-cycle", "Server restart").await;
    bye_for(&carrier, node, "call-os-cycle", "Server restart").await;
    assert!(
        started.elapsed() >= Duration::from_millis(4900),
        "the BYE waited for the drain time: {:?}",
        started.elapsed()
    );
    let after = cycling.await.unwrap().expect("OS Cycle");
    assert_eq!(
        (after.status, after.channels_in_use),
        (ServerStatus::Running, 0)
    );

    // Power Cycle: the call drops without a word to either end.
    answered_call(&carrier, &phone, node, "call-power").await;
    let after = action("power_cycle").await.unwrap().expect("Power Cycle");
    assert_eq!(
        (after.status, after.channels_in_use),
        (ServerStatus::Running, 0)
    );
    no_bye(&phone).await;
    no_bye(&carrier).await;

    // After all four (Install included) the server has the configuration it was given,
    // and its node runs it: the moved ports answer, UAC Auth and the flags are in force.
    assert_eq!(
        state
            .store
            .server_config(account, row.id)
            .await
            .unwrap()
            .unwrap(),
        stored
    );
    let now_running = state.engine.config(row.id).expect("the node runs");
    assert_eq!(now_running, running);
    let spec = state.engine.spec(row.id).unwrap();
    assert_eq!((spec.udp_port, spec.tcp_port), (5070, 5071));
    options_ping(node, ProbeTransport::Udp, Duration::from_secs(3))
        .await
        .expect("UDP on the configured port");
    options_ping(
        format!("{}:5071", row.ip).parse().unwrap(),
        ProbeTransport::Tcp,
        Duration::from_secs(3),
    )
    .await
    .expect("TCP on the configured port");
    // The registration survives too: it lives in the store.
    let bound = state
        .locations
        .in_domain(&row.ip, std::time::SystemTime::now());
    assert!(
        bound.iter().any(|(aor, _)| aor.starts_with("sip:bob@")),
        "{bound:?}"
    );

    let log: Vec<(String, String)> =
        sqlx::query_as("SELECT action, subject FROM audit_log ORDER BY id")
            .fetch_all(state.store.pool())
            .await
            .unwrap();
    for action in [
        "server.restart",
        "server.install",
        "server.os_cycle",
        "server.power_cycle",
    ] {
        assert!(
            log.iter()
                .any(|(a, subject)| a == action && *subject == format!("server {id}")),
            "{action} missing from {log:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_accounts_server_and_cluster_cannot_be_touched() {
    let app = common::spawn_app("127.0.67.1-127.0.67.20").await;
    let a = app.account_with_balance("a@alpha.test", 100).await;
    let a_cluster: i64 = a
        .call("create_cluster", &[("name", "Alpha core")])
        .await
        .unwrap();
    let a_server: ServerRow = a
        .call(
            "deploy_server",
            &[
                ("zone", "test-zone"),
                ("kind", "switch"),
                ("cluster", &a_cluster.to_string()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(a_server.cluster.as_deref(), Some("Alpha core"));

    let b = app.account_with_balance("b@bravo.test", 100).await;
    let id = a_server.id.to_string();
    assert_eq!(
        b.call::<ServerRow>("run_server_action", &[("id", &id), ("action", "stop")])
            .await,
        Err(AppError::NotFound)
    );
    let target: SocketAddr = format!("{}:5060", a_server.ip).parse().unwrap();
    options_ping(target, ProbeTransport::Udp, Duration::from_secs(3))
        .await
        .expect("A's node untouched");

    let cluster = a_cluster.to_string();
    assert_eq!(
        b.call::<()>("rename_cluster", &[("id", &cluster), ("name", "Mine now")])
            .await,
        Err(AppError::NotFound)
    );
    assert_eq!(
        b.call::<()>("delete_cluster", &[("id", &cluster)]).await,
        Err(AppError::NotFound)
    );
    let refused = b
        .call::<ServerRow>(
            "deploy_server",
            &[
                ("zone", "test-zone"),
                ("kind", "switch"),
                ("cluster", &cluster),
            ],
        )
        .await;
    assert!(
        matches!(refused, Err(AppError::Field { ref field, .. }) if field == "cluster"),
        "{refused:?}"
    );
    assert!(b
        .call::<Vec<ServerRow>>("list_servers", &[])
        .await
        .unwrap()
        .is_empty());

    // A provider is not the operator: the operator's functions do not exist for it.
    assert_eq!(
        b.call::<Vec<AccountRow>>("list_accounts", &[]).await,
        Err(AppError::NotFound)
    );
    assert_eq!(
        b.call::<()>("credit_account", &[("account_id", "1"), ("amount", "1000")])
            .await,
        Err(AppError::NotFound)
    );
    assert_eq!(
        b.call::<()>("debit_account", &[("account_id", "1"), ("amount", "1")])
            .await,
        Err(AppError::NotFound)
    );
    assert_eq!(
        b.call::<()>(
            "add_rtp_server",
            &[
                ("ip", "127.0.90.1"),
                ("aliases", "x"),
                ("zone", "test-zone")
            ]
        )
        .await,
        Err(AppError::NotFound)
    );

    let clusters: Vec<ClusterRow> = a.call("list_clusters", &[]).await.unwrap();
    assert_eq!(clusters.len(), 1);
    assert_eq!(
        (
            clusters[0].name.as_str(),
            clusters[0].members,
            clusters[0].channels
        ),
        ("Alpha core", 1, 100)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_servers_is_not_deleted_and_names_are_unique() {
    let app = common::spawn_app("127.0.68.1-127.0.68.20").await;
    let client = app.account_with_balance("clusters@acme.test", 100).await;
    let id: i64 = client
        .call("create_cluster", &[("name", "Core")])
        .await
        .unwrap();
    let duplicate = client
        .call::<i64>("create_cluster", &[("name", "Core")])
        .await;
    assert!(
        matches!(duplicate, Err(AppError::Field { ref field, .. }) if field == "name"),
        "{duplicate:?}"
    );
    let bad = client
        .call::<i64>("create_cluster", &[("name", "a;b")])
        .await;
    assert!(matches!(bad, Err(AppError::Field { .. })), "{bad:?}");

    client
        .call::<ServerRow>(
            "deploy_server",
            &[
                ("zone", "test-zone"),
                ("kind", "switch"),
                ("cluster", &id.to_string()),
            ],
        )
        .await
        .unwrap();
    let refused = client
        .call::<()>("delete_cluster", &[("id", &id.to_string())])
        .await;
    assert!(matches!(refused, Err(AppError::Refused(_))), "{refused:?}");
    let clusters: Vec<ClusterRow> = client.call("list_clusters", &[]).await.unwrap();
    assert_eq!(
        clusters
            .iter()
            .map(|c| (c.name.as_str(), c.members))
            .collect::<Vec<_>>(),
        vec![("Core", 1)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_waits_for_the_checklist_and_names_what_is_open() {
    let app = common::spawn_app("127.0.69.1-127.0.69.20").await;
    let client = app.client();
    client
        .call::<()>(
            "sign_up",
            &[
                ("company", "Acme"),
                ("email", "new@acme.test"),
                ("password", "a long enough password"),
            ],
        )
        .await
        .unwrap();
    let account = app
        .server
        .state
        .store
        .account_of_email("new@acme.test")
        .await
        .unwrap()
        .unwrap();
    app.server
        .state
        .store
        .credit(
            account,
            app::model::Usd::dollars(500),
            common::top_up(account),
        )
        .await
        .unwrap();
    match client
        .call::<ServerRow>(
            "deploy_server",
            &[("zone", "test-zone"), ("kind", "switch")],
        )
        .await
    {
        Err(AppError::Refused(message)) => {
            assert!(message.contains("company details"), "{message}");
            assert!(
                message.contains("accepting the terms of service"),
                "{message}"
            );
            assert!(!message.contains("top-up"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let bad = client
        .call::<()>(
            "save_company_details",
            &[("company", "Acme"), ("address", "x"), ("country", "GB")],
        )
        .await;
    assert!(bad.unwrap_err().for_field("address").is_some());
    assert!(client
        .call::<Vec<ServerRow>>("list_servers", &[])
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_credits_accounts_and_it_is_audited() {
    let app = common::spawn_app("127.0.71.1-127.0.71.10").await;
    app.account_with_balance("customer@acme.test", 0).await;
    let operator = app.operator("operator password 1").await;
    let accounts: Vec<AccountRow> = operator.call("list_accounts", &[]).await.unwrap();
    let customer = accounts
        .iter()
        .find(|a| a.email == "customer@acme.test")
        .expect("listed");
    let id = customer.id.to_string();
    let bad = operator
        .call::<()>("credit_account", &[("account_id", &id), ("amount", "-5")])
        .await;
    assert!(bad.unwrap_err().for_field("amount").is_some());
    operator
        .call::<()>(
            "credit_account",
            &[("account_id", &id), ("amount", "42.50")],
        )
        .await
        .unwrap();
    let accounts: Vec<AccountRow> = operator.call("list_accounts", &[]).await.unwrap();
    let customer = accounts
        .iter()
        .find(|a| a.email == "customer@acme.test")
        .unwrap();
    assert_eq!(customer.balance.to_string(), "$42.50");

    // A debit never takes the balance below zero: refused with the balance in the message,
    // nothing taken.
    let refused = operator
        .call::<()>("debit_account", &[("account_id", &id), ("amount", "50")])
        .await
        .unwrap_err();
    assert_eq!(
        refused.for_field("amount"),
        Some("The balance is $42.50: a debit cannot take it below zero.".to_string())
    );
    let balance = |accounts: Vec<AccountRow>| {
        accounts
            .into_iter()
            .find(|a| a.email == "customer@acme.test")
            .unwrap()
            .balance
            .to_string()
    };
    assert_eq!(
        balance(operator.call("list_accounts", &[]).await.unwrap()),
        "$42.50"
    );
    operator
        .call::<()>("debit_account", &[("account_id", &id), ("amount", "40")])
        .await
        .unwrap();
    assert_eq!(
        balance(operator.call("list_accounts", &[]).await.unwrap()),
        "$2.50"
    );
    let actions = audit_actions(&app).await;
    assert!(
        actions.iter().any(|a| a == "account.credit")
            && actions.iter().any(|a| a == "account.debit"),
        "{actions:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_reaches_a_live_page_within_a_second() {
    use futures::StreamExt;
    let app = common::spawn_app("127.0.72.1-127.0.72.10").await;
    let client = app.account_with_balance("live@acme.test", 100).await;
    let row: ServerRow = client
        .call(
            "deploy_server",
            &[("zone", "test-zone"), ("kind", "switch")],
        )
        .await
        .unwrap();
    assert!(
        row.health.is_some_and(|h| h.sip_us.is_some()),
        "deploy measures the node: {row:?}"
    );

    let stranger = reqwest::get(format!("{}/live/servers", app.base))
        .await
        .unwrap();
    assert_eq!(stranger.status(), reqwest::StatusCode::UNAUTHORIZED);

    let events = client.get("/live/servers").await;
    assert_eq!(events.status(), reqwest::StatusCode::OK);
    let mut body = events.bytes_stream();
    let started = std::time::Instant::now();
    let stopped: ServerRow = client
        .call(
            "run_server_action",
            &[("id", &row.id.to_string()), ("action", "stop")],
        )
        .await
        .unwrap();
    assert_eq!(stopped.status, ServerStatus::Stopped);
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while !seen.contains("\"status\":\"Stopped\"") {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("the change arrives within a second")
            .expect("stream open")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event: page"), "{seen}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_checked_scoped_and_never_sent_back_with_their_key() {
    use app::api::certificates::{AttachedCertificate, CertificateRow};
    let app = common::spawn_app("127.0.77.1-127.0.77.10").await;
    let a = app.account_with_balance("certs@alpha.test", 100).await;
    let server: ServerRow = a
        .call(
            "deploy_server",
            &[("zone", "test-zone"), ("kind", "switch")],
        )
        .await
        .unwrap();
    let chain = include_str!("../../end2end/fixtures/sip.example.com.crt");
    let key = include_str!("../../end2end/fixtures/sip.example.com.key");
    let other = include_str!("../../end2end/fixtures/other.key");

    let refused = a
        .call::<i64>("upload_certificate", &[("chain", chain), ("key", other)])
        .await
        .unwrap_err();
    assert!(refused.for_field("key").is_some(), "{refused:?}");
    assert!(a
        .call::<Vec<CertificateRow>>("list_certificates", &[])
        .await
        .unwrap()
        .is_empty());

    let id: i64 = a
        .call("upload_certificate", &[("chain", chain), ("key", key)])
        .await
        .unwrap();
    let listed = a.get("/certificates").await.text().await.unwrap();
    assert!(
        listed.contains("sip.example.com") && !listed.contains("PRIVATE KEY"),
        "the page never carries the key"
    );
    let (sid, cid) = (server.id.to_string(), id.to_string());
    a.call::<()>(
        "attach_certificate",
        &[
            ("server_id", &sid),
            ("certificate_id", &cid),
            ("usage", "server"),
        ],
    )
    .await
    .unwrap();
    let attached: Vec<AttachedCertificate> = a
        .call("server_certificates", &[("server_id", &sid)])
        .await
        .unwrap();
    assert_eq!(
        attached
            .iter()
            .map(|c| c.usage.as_str())
            .collect::<Vec<_>>(),
        vec!["server"]
    );

    let b = app.account_with_balance("certs@bravo.test", 0).await;
    assert_eq!(
        b.call::<()>(
            "attach_certificate",
            &[
                ("server_id", &sid),
                ("certificate_id", &cid),
                ("usage", "client")
            ]
        )
        .await,
        Err(AppError::NotFound)
    );
    assert_eq!(
        b.call::<()>("delete_certificate", &[("id", &cid)]).await,
        Err(AppError::NotFound)
    );
    assert!(b
        .call::<Vec<CertificateRow>>("list_certificates", &[])
        .await
        .unwrap()
        .is_empty());
    let attached: Vec<AttachedCertificate> = a
        .call("server_certificates", &[("server_id", &sid)])
        .await
        .unwrap();
    assert_eq!(attached.len(), 1, "B changed nothing");
    a.call::<()>(
        "detach_certificate",
        &[("server_id", &sid), ("certificate_id", &cid)],
    )
    .await
    .unwrap();
    assert!(a
        .call::<Vec<AttachedCertificate>>("server_certificates", &[("server_id", &sid)])
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_is_refused_for_a_failover_target_and_a_clusters_only_dispatcher_and_otherwise_takes_everything_but_the_audit_trail(
) {
    let app = common::spawn_app("127.0.70.1-127.0.70.10").await;
    let client = app.account_with_balance("delete@acme.test", 200).await;
    let state = &app.server.state;
    let cluster: i64 = client
        .call("create_cluster", &[("name", "Core")])
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
                    &[("zone", "test-zone"), ("kind", kind), ("cluster", &cluster)],
                )
                .await
                .expect("deploy")
        }
    };
    let dispatcher = deploy("dispatcher").await;
    let s1 = deploy("switch").await;
    let s2 = deploy("switch").await;
    client
        .save_config(
            s1.id,
            &[
                ("failover_enabled", "on"),
                ("failover_target", &s2.id.to_string()),
            ],
        )
        .await
        .expect("failover saved");
    let delete = |id: i64| {
        let client = client.clone();
        async move {
            client
                .call::<()>("delete_server", &[("id", &id.to_string())])
                .await
        }
    };
    let listed = || {
        let client = client.clone();
        async move {
            client
                .call::<Vec<ServerRow>>("list_servers", &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };

    // Refusals say why and leave everything as it was.
    match delete(s2.id).await {
        Err(AppError::Refused(why)) => {
            assert!(
                why.contains("Capacity Failover") && why.contains(&s1.alias),
                "{why}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    match delete(dispatcher.id).await {
        Err(AppError::Refused(why)) => {
            assert!(
                why.contains("only Dispatcher") && why.contains("Core"),
                "{why}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let stranger = app.account_with_balance("stranger@bravo.test", 0).await;
    assert_eq!(
        stranger
            .call::<()>("delete_server", &[("id", &s1.id.to_string())])
            .await,
        Err(AppError::NotFound)
    );
    assert_eq!(listed().await, vec![dispatcher.id, s1.id, s2.id]);
    for server in [&dispatcher, &s1, &s2] {
        let at: SocketAddr = format!("{}:5060", server.ip).parse().unwrap();
        options_ping(at, ProbeTransport::Udp, Duration::from_secs(3))
            .await
            .expect("still answers");
    }

    // S1 carries a call and has bob registered: deleting it ends the call with a BYE to
    // both ends and removes the registration, the node and the row.
    let node: SocketAddr = format!("{}:5060", s1.ip).parse().unwrap();
    client.sip_user("bob", "bob secret 12", "disabled").await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(
        register_from(&phone, node, "bob", "bob secret 12", "reg-delete").await,
        "SIP/2.0 200 OK"
    );
    let carrier = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    answered_call(&carrier, &phone, node, "call-delete").await;
    let deleting = {
        let delete = delete(s1.id);
        tokio::spawn(delete)
    };
    bye_for(&phone, node, "call-delete", "Server deleted").await;
    bye_for(&carrier, node, "call-delete", "Server deleted").await;
    deleting.await.unwrap().expect("deleted");

    assert_eq!(listed().await, vec![dispatcher.id, s2.id]);
    assert_eq!(
        client
            .call::<ServerRow>("get_server", &[("id", &s1.id.to_string())])
            .await,
        Err(AppError::NotFound)
    );
    assert!(!state.engine.is_running(s1.id));
    assert!(
        options_ping(node, ProbeTransport::Udp, Duration::from_millis(600))
            .await
            .is_err(),
        "the node is gone"
    );
    let saved: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM registrations WHERE aor LIKE ?")
        .bind(format!("%@{}", s1.ip))
        .fetch_one(state.store.pool())
        .await
        .unwrap();
    assert_eq!(saved, 0, "no saved registration is left");
    assert!(state
        .locations
        .in_domain(&s1.ip, std::time::SystemTime::now())
        .is_empty());
    // Nothing is billed for it any more; the cluster's other members no longer count it.
    let due = state.store.servers_due(i64::MAX).await.unwrap();
    assert!(due.iter().all(|s| s.id != s1.id));
    let peers = state.engine.config(s2.id).unwrap().cluster_peers;
    assert_eq!(
        peers,
        vec![dispatcher.ip.parse::<std::net::IpAddr>().unwrap()]
    );
    // The audit trail keeps its history and records the deletion.
    let trail: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log WHERE subject = ? ORDER BY id")
            .bind(format!("server {}", s1.id))
            .fetch_all(state.store.pool())
            .await
            .unwrap();
    assert_eq!(
        trail,
        vec!["server.deploy", "server.config", "server.delete"],
        "{trail:?}"
    );
    // Its address is free: the next deploy gets it.
    let again = client.deploy_switch().await.0;
    assert_eq!(again.ip, s1.ip);

    // With no Switch left behind it, the Dispatcher can go too.
    delete(s2.id)
        .await
        .expect("S2 is no failover target any more");
    delete(again.id).await.expect("unclustered");
    delete(dispatcher.id)
        .await
        .expect("no Switch is left in Core");
    assert!(listed().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_list_is_filtered_sorted_and_paged_by_the_store_and_lives_per_view() {
    use app::listing::Paged;
    use futures::StreamExt;
    let app = common::spawn_app("127.0.105.1-127.0.105.60").await;
    let other = app.account_with_balance("other-fleet@acme.test", 100).await;
    let theirs: ServerRow = other
        .call(
            "deploy_server",
            &[("zone", "test-zone"), ("kind", "switch")],
        )
        .await
        .unwrap();
    // 52 servers: two Dispatchers, then Switches.
    let client = app.account_with_balance("fleet@acme.test", 1100).await;
    for i in 0..52 {
        let kind = if i < 2 { "dispatcher" } else { "switch" };
        let _: ServerRow = client
            .call("deploy_server", &[("zone", "test-zone"), ("kind", kind)])
            .await
            .unwrap();
    }
    // The zone's pool has 60 addresses; 53 are taken, by both accounts.
    let zones: Vec<app::model::ZoneInfo> = client.call("list_zones", &[]).await.unwrap();
    assert_eq!(zones.len(), 1);
    assert_eq!(zones[0].free_addresses, 60 - 53);
    let page = |form: &'static [(&'static str, &'static str)]| {
        let client = &client;
        async move {
            client
                .call::<Paged<ServerRow>>("server_page", form)
                .await
                .unwrap()
        }
    };
    let ip = |row: &ServerRow| row.ip.parse::<std::net::Ipv4Addr>().unwrap();

    let first = page(&[]).await;
    assert_eq!(
        (first.rows.len(), first.matched, first.total, first.page),
        (50, 52, 52, 1)
    );
    assert!(
        first.rows.windows(2).all(|w| ip(&w[0]) < ip(&w[1])),
        "by address"
    );
    assert!(
        first.rows.iter().all(|r| r.id != theirs.id),
        "only the caller's servers"
    );
    let second = page(&[("query[page]", "2")]).await;
    assert_eq!((second.rows.len(), second.page), (2, 2));
    assert!(ip(&first.rows[49]) < ip(&second.rows[0]));
    assert_eq!(
        page(&[("query[page]", "9")]).await.page,
        2,
        "past the last: the last"
    );

    let dispatchers = page(&[("query[kind]", "dispatcher")]).await;
    assert_eq!(
        (
            dispatchers.rows.len(),
            dispatchers.matched,
            dispatchers.total
        ),
        (2, 2, 52)
    );
    assert_eq!(
        dispatchers.count_text("server", "servers"),
        "2 of 52 servers"
    );
    let by_alias = page(&[("query[sort]", "Alias")]).await;
    assert!(by_alias.rows.windows(2).all(|w| w[0].alias <= w[1].alias));
    let stopped = page(&[("query[status]", "stopped")]).await;
    assert_eq!(stopped.matched, 0);
    let unknown = page(&[("query[zone]", "<script>")]).await;
    assert_eq!(
        (unknown.rows.len(), unknown.matched, unknown.page),
        (0, 0, 1)
    );
    let searched = page(&[("query[search]", "127.0.105.1")]).await;
    assert!(searched.matched >= 1);
    assert!(searched.rows.iter().all(|r| r.ip.contains("127.0.105.1")));

    // The live view of the first page: its rows at once, then only what it shows.
    let events = client.get("/live/servers").await;
    assert_eq!(events.status(), reqwest::StatusCode::OK);
    let mut body = events.bytes_stream();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    macro_rules! read_more {
        () => {
            seen.push_str(&String::from_utf8_lossy(
                &tokio::time::timeout_at(deadline, body.next())
                    .await
                    .expect("an event within the time")
                    .expect("stream open")
                    .unwrap(),
            ))
        };
    }
    while !seen.contains("\n\n") {
        read_more!();
    }
    assert!(seen.starts_with("event: page"), "{seen}");
    assert!(seen.contains(&format!("\"ip\":\"{}\"", first.rows[0].ip)));
    assert!(!seen.contains(&format!("\"ip\":\"{}\"", second.rows[0].ip)));

    // A server on the second page stops: the first page's stream carries nothing of it;
    // one on the first page stops: it arrives.
    for row in [&second.rows[0], &first.rows[3]] {
        let done: ServerRow = client
            .call(
                "run_server_action",
                &[("id", &row.id.to_string()), ("action", "stop")],
            )
            .await
            .unwrap();
        assert_eq!(done.status, ServerStatus::Stopped);
    }
    let shown_stopped = format!("\"ip\":\"{}\"", first.rows[3].ip);
    while !seen
        .split("event: page")
        .any(|event| event.contains(&shown_stopped) && event.contains("\"status\":\"Stopped\""))
    {
        read_more!();
    }
    assert!(
        !seen.contains(&format!("\"ip\":\"{}\"", second.rows[0].ip)),
        "another page's server is never sent: {seen}"
    );
    let stopped = page(&[("query[status]", "stopped")]).await;
    assert_eq!(stopped.matched, 2);
}
