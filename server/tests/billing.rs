//! Time-driven work: expiry and renewal against the balance, and resizes that wait for their
//! activation time (or reboot at once from 1001 channels).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use app::error::AppError;
use app::model::{ServerRow, ServerStatus};
use app::ssr::schedule::run_once;
use common::calls::{answer, answered_call, call_from, next};
use common::phone::register_from;
use sip_engine::{options_ping, ProbeTransport};
use tokio::net::UdpSocket;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpaid_server_expires_refuses_calls_with_503_and_a_top_up_renews_it() {
    let app = common::spawn_app("127.0.78.1-127.0.78.10").await;
    let client = app.account_with_balance("billing@acme.test", 20).await;
    let row: ServerRow = client
        .call(
            "deploy_server",
            &[("zone", "test-zone"), ("kind", "switch")],
        )
        .await
        .unwrap();
    let target: SocketAddr = format!("{}:5060", row.ip).parse().unwrap();
    let state = &app.server.state;
    let later = app::ssr::now() + 8 * 86_400; // past the 7-day trial
                                              // bob exists but has not registered: a call admitted and routed gets 480.
    client.sip_user("bob", "bob secret 12", "disabled").await;

    // The first period is paid from the $20 balance.
    run_once(state, later).await.unwrap();
    let renewed: ServerRow = client
        .call("get_server", &[("id", &row.id.to_string())])
        .await
        .unwrap();
    assert_eq!(renewed.status, ServerStatus::Running);
    assert!(
        renewed.expires > row.expires,
        "{} > {}",
        renewed.expires,
        row.expires
    );
    let account = state
        .store
        .account_of_email("billing@acme.test")
        .await
        .unwrap()
        .unwrap();

    // The next one finds the balance empty.
    run_once(state, later + 31 * 86_400).await.unwrap();
    let expired: ServerRow = client
        .call("get_server", &[("id", &row.id.to_string())])
        .await
        .unwrap();
    assert_eq!(expired.status, ServerStatus::Expired);
    assert!(
        common::invite(target, "exp1")
            .await
            .starts_with("SIP/2.0 503"),
        "expired nodes refuse calls"
    );
    options_ping(target, ProbeTransport::Udp, Duration::from_secs(3))
        .await
        .expect("still answers pings");
    assert_eq!(
        client
            .call::<ServerRow>(
                "run_server_action",
                &[("id", &row.id.to_string()), ("action", "start")]
            )
            .await,
        Err(AppError::Refused(
            "This server has expired: top up your balance to renew it before starting it again."
                .into()
        ))
    );

    state
        .store
        .credit(
            account,
            app::model::Usd::dollars(20),
            common::top_up(account),
        )
        .await
        .unwrap();
    run_once(state, later + 32 * 86_400).await.unwrap();
    let back: ServerRow = client
        .call("get_server", &[("id", &row.id.to_string())])
        .await
        .unwrap();
    assert_eq!(back.status, ServerStatus::Running);
    // Admitted and routed again: bob is not registered, so the call gets 480, not 503.
    assert_eq!(
        common::invite(target, "exp2").await,
        "SIP/2.0 480 Temporarily Unavailable"
    );
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log WHERE action LIKE 'server.%'")
            .fetch_all(state.store.pool())
            .await
            .unwrap();
    assert!(
        actions.contains(&"server.expire".to_string())
            && actions.contains(&"server.renew".to_string()),
        "{actions:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_that_expires_is_renewed_as_stopped_with_no_node_behind_it() {
    let app = common::spawn_app("127.0.81.1-127.0.81.10").await;
    let client = app.account_with_balance("stopped@acme.test", 20).await;
    let (row, target) = client.deploy_switch().await;
    client.sip_user("bob", "bob secret 12", "disabled").await;
    let id = row.id.to_string();
    let state = &app.server.state;
    let account = state
        .store
        .account_of_email("stopped@acme.test")
        .await
        .unwrap()
        .unwrap();
    state
        .store
        .debit(account, app::model::Usd::dollars(20), |balance| {
            app::ssr::store::Audit::by_platform(
                account,
                "account.debit",
                "test",
                format!("balance {balance}"),
            )
        })
        .await
        .unwrap()
        .expect("the balance covered the debit");
    let stopped: ServerRow = client
        .call("run_server_action", &[("id", &id), ("action", "stop")])
        .await
        .unwrap();
    assert_eq!(stopped.status, ServerStatus::Stopped);

    let later = app::ssr::now() + 8 * 86_400; // past the 7-day trial
    run_once(state, later).await.unwrap();
    assert_eq!(
        client.server_row(row.id).await.status,
        ServerStatus::Expired
    );
    // A restart of the console does not start it either: it was stopped.
    assert_eq!(app::ssr::fleet::restore_nodes(state).await.unwrap(), 0);
    assert!(!state.engine.is_running(row.id));

    state
        .store
        .credit(
            account,
            app::model::Usd::dollars(20),
            common::top_up(account),
        )
        .await
        .unwrap();
    run_once(state, later + 86_400).await.unwrap();
    let renewed = client.server_row(row.id).await;
    assert_eq!(renewed.status, ServerStatus::Stopped, "what it was before");
    assert!(renewed.expires > row.expires);
    assert_eq!(state.store.balance(account).await.unwrap().0, 0, "renewed");
    assert!(!state.engine.is_running(row.id));
    assert!(
        options_ping(target, ProbeTransport::Udp, Duration::from_millis(600))
            .await
            .is_err(),
        "no node answers"
    );

    // It starts like any stopped server, and takes calls.
    let started: ServerRow = client
        .call("run_server_action", &[("id", &id), ("action", "start")])
        .await
        .unwrap();
    assert_eq!(started.status, ServerStatus::Running);
    assert_eq!(
        common::invite(target, "after-renewal").await,
        "SIP/2.0 480 Temporarily Unavailable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resize_is_enforced_by_the_node_once_active_and_1001_channels_reboot_only_when_confirmed()
{
    let app = common::spawn_app("127.0.79.1-127.0.79.10").await;
    let client = app.account_with_balance("resize@acme.test", 100).await;
    let row: ServerRow = client
        .call(
            "deploy_server",
            &[("zone", "test-zone"), ("kind", "switch"), ("channels", "1")],
        )
        .await
        .unwrap();
    let id = row.id.to_string();
    let node: SocketAddr = format!("{}:5060", row.ip).parse().unwrap();
    let engine = &app.server.state.engine;
    let channels_enforced = || {
        engine
            .config(row.id)
            .and_then(|c| c.limits)
            .map(|l| l.channels)
    };
    client.sip_user("bob", "bob secret 12", "disabled").await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(
        register_from(&phone, node, "bob", "bob secret 12", "reg-resize").await,
        "SIP/2.0 200 OK"
    );
    let carrier = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    answered_call(&carrier, &phone, node, "call-1").await;

    let pending: ServerRow = client
        .call("resize_capacity", &[("id", &id), ("channels", "2")])
        .await
        .unwrap();
    assert_eq!(pending.channels, 1, "not yet");
    let (channels, at) = pending.pending_resize.clone().expect("pending");
    assert_eq!(channels, 2);
    assert!(at.ends_with("UTC"));
    run_once(&app.server.state, app::ssr::now() + 60)
        .await
        .unwrap();
    assert_eq!(
        client.server_row(row.id).await.channels,
        1,
        "15 minutes not passed"
    );
    assert_eq!(channels_enforced(), Some(1));
    // From a socket of its own: the refusal is retransmitted until acknowledged.
    let early = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(
        call_from(&early, node, "call-2-early").await,
        "SIP/2.0 503 Server at max cps / channels",
        "the old limit holds until the resize is active"
    );

    run_once(&app.server.state, app::ssr::now() + 16 * 60)
        .await
        .unwrap();
    let active = client.server_row(row.id).await;
    assert_eq!((active.channels, active.pending_resize), (2, None));
    assert_eq!(channels_enforced(), Some(2));
    // A second call, over the old limit of one, connects.
    answered_call(&carrier, &phone, node, "call-2").await;
    assert_eq!(client.server_row(row.id).await.channels_in_use, 2);

    let refused = client
        .call::<ServerRow>("resize_capacity", &[("id", &id), ("channels", "2000")])
        .await
        .unwrap_err();
    assert!(
        refused
            .for_field("channels")
            .is_some_and(|m| m.contains("drop all its calls")),
        "{refused:?}"
    );
    assert_eq!(client.server_row(row.id).await.channels, 2, "unchanged");
    assert_eq!(engine.call_figures(row.id).unwrap().channels_in_use, 2);

    // Confirmed, 2000 channels reboot the node at once: both calls end with a BYE.
    let rebooting = {
        let client = client.clone();
        let id = id.clone();
        tokio::spawn(async move {
            client
                .call::<ServerRow>(
                    "resize_capacity",
                    &[("id", &id), ("channels", "2000"), ("confirm_reboot", "on")],
                )
                .await
        })
    };
    let mut ended = Vec::new();
    for socket in [&phone, &carrier, &phone, &carrier] {
        let (bye, _) = next(socket).await;
        assert!(bye.starts_with("BYE "), "{bye}");
        assert!(bye.contains("text=\"Server resize\""), "{bye}");
        socket
            .send_to(answer(&bye, "200 OK").as_bytes(), node)
            .await
            .unwrap();
        let call = bye
            .lines()
            .find_map(|l| l.strip_prefix("Call-ID: "))
            .unwrap()
            .to_string();
        ended.push(call);
    }
    ended.sort();
    assert_eq!(ended, vec!["call-1", "call-1", "call-2", "call-2"]);
    let rebooted = rebooting.await.unwrap().unwrap();
    assert_eq!(
        (rebooted.channels, rebooted.status, rebooted.channels_in_use),
        (2000, ServerStatus::Running, 0)
    );
    assert_eq!(channels_enforced(), Some(2000));
    let bad = client
        .call::<ServerRow>("resize_capacity", &[("id", &id), ("channels", "0")])
        .await
        .unwrap_err();
    assert!(bad.for_field("channels").is_some());
    assert_eq!(client.server_row(row.id).await.channels, 2000, "unchanged");
}
