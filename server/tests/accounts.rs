//! Sign-up, sign-in, and the walls between accounts.

mod common;

use app::error::AppError;
use app::model::{Me, ServerRow, ServerStatus};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_b_gets_nothing_of_account_a() {
    let app = common::spawn_app("127.0.62.1-127.0.62.20").await;
    let a = app.account_with_balance("a@alpha.test", 100).await;
    let a_server: ServerRow = a
        .call(
            "deploy_server",
            &[("zone", "test-zone"), ("kind", "switch")],
        )
        .await
        .unwrap();
    assert_eq!(a_server.status, ServerStatus::Running);

    let b = app.account_with_balance("b@bravo.test", 0).await;
    let listed: Vec<ServerRow> = b.call("list_servers", &[]).await.unwrap();
    assert!(listed.is_empty(), "B sees A's servers: {listed:?}");
    let id = a_server.id.to_string();
    assert_eq!(
        b.call::<ServerRow>("get_server", &[("id", &id)]).await,
        Err(AppError::NotFound)
    );
    assert_eq!(
        b.call::<ServerRow>("get_server", &[("id", "999999")]).await,
        Err(AppError::NotFound)
    );

    // A still sees its own, and someone signed out sees nothing at all.
    let own: ServerRow = a.call("get_server", &[("id", &id)]).await.unwrap();
    assert_eq!(own.ip, a_server.ip);
    let stranger = app.client();
    assert_eq!(
        stranger.call::<Vec<ServerRow>>("list_servers", &[]).await,
        Err(AppError::NotSignedIn)
    );
    assert_eq!(
        stranger
            .call::<ServerRow>("get_server", &[("id", &id)])
            .await,
        Err(AppError::NotSignedIn)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_is_refused_with_the_missing_amount_and_nothing_is_stored() {
    let app = common::spawn_app("127.0.63.1-127.0.63.20").await;
    let client = app.account_with_balance("short@acme.test", 30).await;
    let first: ServerRow = client
        .call(
            "deploy_server",
            &[("zone", "test-zone"), ("kind", "switch")],
        )
        .await
        .unwrap();
    assert_eq!(first.status, ServerStatus::Running);
    // One server exists: the next needs $40 and the account has $30.
    let refused = client
        .call::<ServerRow>(
            "deploy_server",
            &[("zone", "test-zone"), ("kind", "switch")],
        )
        .await;
    match refused {
        Err(AppError::Refused(message)) => {
            assert!(message.contains("$40.00"), "{message}");
            assert!(message.contains("Top up $10.00"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let bad_kind = client
        .call::<ServerRow>(
            "deploy_server",
            &[("zone", "test-zone"), ("kind", "router")],
        )
        .await;
    assert!(
        matches!(bad_kind, Err(AppError::Field { ref field, .. }) if field == "kind"),
        "{bad_kind:?}"
    );
    let listed: Vec<ServerRow> = client.call("list_servers", &[]).await.unwrap();
    assert_eq!(listed.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_checks_the_password_and_locks_out_after_five_failures() {
    let app = common::spawn_app("127.0.64.1-127.0.64.20").await;
    app.account_with_balance("ops@lock.test", 0).await;
    let client = app.client();
    let good = [
        ("email", "ops@lock.test"),
        ("password", "a long enough password"),
    ];
    let bad = [("email", "ops@lock.test"), ("password", "not the password")];
    assert!(matches!(
        client.call::<()>("sign_in", &bad).await,
        Err(AppError::Field { .. })
    ));
    assert_eq!(client.call::<Option<Me>>("current_me", &[]).await, Ok(None));
    client
        .call::<()>("sign_in", &good)
        .await
        .expect("right password signs in");
    let me: Option<Me> = client.call("current_me", &[]).await.unwrap();
    assert_eq!(me.map(|m| m.email), Some("ops@lock.test".to_string()));

    let other = app.client();
    for _ in 0..5 {
        assert!(other.call::<()>("sign_in", &bad).await.is_err());
    }
    assert_eq!(
        other.call::<()>("sign_in", &good).await,
        Err(AppError::RateLimited)
    );

    // Signing out ends the session server-side.
    client.call::<()>("sign_out", &[]).await.unwrap();
    assert_eq!(client.call::<Option<Me>>("current_me", &[]).await, Ok(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_refuses_bad_values_field_by_field_and_duplicate_emails() {
    let app = common::spawn_app("127.0.65.1-127.0.65.20").await;
    let client = app.client();
    let err = client
        .call::<()>(
            "sign_up",
            &[
                ("company", "Acme"),
                ("email", "not-an-email"),
                ("password", "a long enough password"),
            ],
        )
        .await
        .unwrap_err();
    assert!(err.for_field("email").is_some(), "{err:?}");
    let err = client
        .call::<()>(
            "sign_up",
            &[
                ("company", "Acme"),
                ("email", "x@acme.test"),
                ("password", "short"),
            ],
        )
        .await
        .unwrap_err();
    assert!(err.for_field("password").is_some(), "{err:?}");
    app.account_with_balance("dup@acme.test", 0).await;
    let err = app
        .client()
        .call::<()>(
            "sign_up",
            &[
                ("company", "Acme"),
                ("email", "DUP@acme.test"),
                ("password", "a long enough password"),
            ],
        )
        .await
        .unwrap_err();
    assert!(err.for_field("email").is_some(), "{err:?}");
    assert_eq!(
        app.server
            .state
            .store
            .account_of_email("x@acme.test")
            .await
            .unwrap(),
        None
    );
}
