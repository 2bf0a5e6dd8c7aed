//! Time-driven work: expiry and renewal against the balance, and resizes that wait for their
//! activation time (or reboot at once from 1001 channels).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use app::error::AppError;
use app::model::{ServerRow, ServerStatus};
use app::ssr::schedule::run_once;
use sip_engine::{options_ping, ProbeTransport};

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
        .credit(account, app::model::Usd::dollars(20))
        .await
        .unwrap();
    run_once(state, later + 32 * 86_400).await.unwrap();
    let back: ServerRow = client
        .call("get_server", &[("id", &row.id.to_string())])
        .await
        .unwrap();
    assert_eq!(back.status, ServerStatus::Running);
    assert!(
        !common::invite(target, "exp2")
            .await
            .starts_with("SIP/2.0 503"),
        "calls are no longer refused"
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
async fn a_resize_waits_for_its_time_and_1001_channels_reboot_only_when_confirmed() {
    let app = common::spawn_app("127.0.79.1-127.0.79.10").await;
    let client = app.account_with_balance("resize@acme.test", 100).await;
    let row: ServerRow = client
        .call(
            "deploy_server",
            &[("zone", "test-zone"), ("kind", "switch")],
        )
        .await
        .unwrap();
    let id = row.id.to_string();

    let pending: ServerRow = client
        .call("resize_capacity", &[("id", &id), ("channels", "250")])
        .await
        .unwrap();
    assert_eq!(pending.channels, 100, "not yet");
    let (channels, at) = pending.pending_resize.clone().expect("pending");
    assert_eq!(channels, 250);
    assert!(at.ends_with("UTC"));
    run_once(&app.server.state, app::ssr::now() + 60)
        .await
        .unwrap();
    assert_eq!(
        client
            .call::<ServerRow>("get_server", &[("id", &id)])
            .await
            .unwrap()
            .channels,
        100,
        "15 minutes not passed"
    );
    run_once(&app.server.state, app::ssr::now() + 16 * 60)
        .await
        .unwrap();
    let active: ServerRow = client.call("get_server", &[("id", &id)]).await.unwrap();
    assert_eq!((active.channels, active.pending_resize), (250, None));

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
    assert_eq!(
        client
            .call::<ServerRow>("get_server", &[("id", &id)])
            .await
            .unwrap()
            .channels,
        250,
        "unchanged"
    );
    let rebooted: ServerRow = client
        .call(
            "resize_capacity",
            &[("id", &id), ("channels", "2000"), ("confirm_reboot", "on")],
        )
        .await
        .unwrap();
    assert_eq!(
        (rebooted.channels, rebooted.status),
        (2000, ServerStatus::Running)
    );
    let bad = client
        .call::<ServerRow>("resize_capacity", &[("id", &id), ("channels", "0")])
        .await
        .unwrap_err();
    assert!(bad.for_field("channels").is_some());
}
