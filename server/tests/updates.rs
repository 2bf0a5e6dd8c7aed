//! Node releases and server updates: a release the operator publishes is pending on every
//! running server until it is updated; *Run Server Update* restarts the node on it (with its
//! new keep-alive interval); Auto Upgrade applies it by itself only while the node carries
//! no calls.

mod common;

use std::time::Duration;

use app::error::AppError;
use app::model::{NodeReleaseView, ServerRow, ServerStatus};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_release_is_pending_until_the_server_is_updated() {
    let app = common::spawn_app("127.0.93.1-127.0.93.10").await;
    let client = app.account_with_balance("updates@acme.test", 100).await;
    let (manual, _) = client.deploy_switch().await;
    let (auto, _) = client.deploy_switch().await;
    assert!(!manual.pending_update);

    // Auto Upgrade on for the second server.
    client
        .save_config(auto.id, &[("auto_upgrade", "on")])
        .await
        .expect("Auto Upgrade saved");

    // Nothing is pending: updating is refused and changes nothing.
    assert!(matches!(
        client
            .call::<ServerRow>(
                "run_server_action",
                &[("id", &manual.id.to_string()), ("action", "update")]
            )
            .await,
        Err(AppError::Refused(_))
    ));

    let operator = app.operator("operator password 1").await;
    // Only the operator publishes, and only a sensible interval.
    assert_eq!(
        client
            .call::<NodeReleaseView>("publish_node_release", &[("keepalive_seconds", "20")])
            .await,
        Err(AppError::NotFound)
    );
    assert!(matches!(
        operator
            .call::<NodeReleaseView>("publish_node_release", &[("keepalive_seconds", "2")])
            .await,
        Err(AppError::Field { .. })
    ));
    let engine = &app.server.state.engine;
    let before = engine.release();
    let published: NodeReleaseView = operator
        .call("publish_node_release", &[("keepalive_seconds", "20")])
        .await
        .unwrap();
    assert_eq!(published.revision, before.revision + 1);
    assert!(client.server_row(manual.id).await.pending_update);
    assert_eq!(
        engine.node_release(manual.id).map(|r| r.revision),
        Some(before.revision),
        "a running node keeps its release until updated"
    );

    let updated: ServerRow = client
        .call(
            "run_server_action",
            &[("id", &manual.id.to_string()), ("action", "update")],
        )
        .await
        .expect("update");
    assert_eq!(updated.status, ServerStatus::Running);
    assert!(!updated.pending_update);
    let runs = engine.node_release(manual.id).expect("the node runs");
    assert_eq!(runs.revision, published.revision);
    assert_eq!(runs.keepalive.interval, Duration::from_secs(20));

    // Auto Upgrade: the scheduled pass updates the idle server, not the one without it.
    let (other, _) = client.deploy_switch().await;
    let _: NodeReleaseView = operator
        .call("publish_node_release", &[("keepalive_seconds", "25")])
        .await
        .unwrap();
    app::ssr::schedule::run_once(&app.server.state, app::ssr::now())
        .await
        .unwrap();
    assert!(!client.server_row(auto.id).await.pending_update);
    assert_eq!(
        engine.node_release(auto.id).map(|r| r.keepalive.interval),
        Some(Duration::from_secs(25))
    );
    assert!(client.server_row(other.id).await.pending_update);
}
