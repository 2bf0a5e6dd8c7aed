//! Phones register to a deployed server with the SIP users of its account (digest auth),
//! and the console shows the registration.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use app::api::sip_users::RegistrationRow;
use app::error::AppError;
use app::listing::Paged;
use app::model::ServerRow;
use common::phone::{register, register_from};
use tokio::net::UdpSocket;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_registers_with_its_accounts_user_and_the_console_shows_it() {
    let app = common::spawn_app("127.0.80.1-127.0.80.10").await;
    let a = app.account_with_balance("voip@alpha.test", 100).await;
    let (server, target) = a.deploy_switch().await;
    let sid = server.id.to_string();

    // Nobody is known yet: challenged again, as a wrong password is; never a 200.
    assert!(register(target, "alice", "alice secret 1", "reg-0")
        .await
        .starts_with("SIP/2.0 401"));

    a.call::<i64>(
        "create_sip_user",
        &[("username", "alice"), ("password", "alice secret 1")],
    )
    .await
    .unwrap();
    assert_eq!(
        register(target, "alice", "alice secret 1", "reg-1").await,
        "SIP/2.0 200 OK"
    );
    assert!(register(target, "alice", "wrong password", "reg-2")
        .await
        .starts_with("SIP/2.0 401"));

    let page: Paged<RegistrationRow> = a
        .call("list_registrations", &[("server_id", &sid)])
        .await
        .unwrap();
    assert_eq!((page.matched, page.total, page.page), (1, 1, 1));
    // Searched by AOR or contact, any case.
    for (search, matched) in [("ALICE", 1), ("nobody", 0)] {
        let found: Paged<RegistrationRow> = a
            .call(
                "list_registrations",
                &[("server_id", &sid), ("query[search]", search)],
            )
            .await
            .unwrap();
        assert_eq!(
            (found.rows.len() as u64, found.matched, found.total),
            (matched, matched, 1),
            "{search}"
        );
    }
    let rows = page.rows;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].aor, format!("sip:alice@{}", server.ip));
    assert!(rows[0].received.starts_with("127.0.0.1:"), "{rows:?}");
    assert_eq!(rows[0].transport, "UDP");
    assert!(rows[0].expires_in > 290 && rows[0].expires_in <= 300);

    // Another account's user does not register on A's server, and B cannot read A's view.
    let b = app.account_with_balance("voip@bravo.test", 0).await;
    b.call::<i64>(
        "create_sip_user",
        &[("username", "bob"), ("password", "bob secret 12")],
    )
    .await
    .unwrap();
    assert!(register(target, "bob", "bob secret 12", "reg-3")
        .await
        .starts_with("SIP/2.0 401"));
    assert_eq!(
        b.call::<Paged<RegistrationRow>>("list_registrations", &[("server_id", &sid)])
            .await,
        Err(AppError::NotFound)
    );

    // A reset password takes effect at once; a deleted user no longer registers.
    let users: Paged<app::api::sip_users::SipUserRow> =
        a.call("list_sip_users", &[]).await.unwrap();
    // The page searches: a name that holds "lic" is found, one that does not is not.
    let found: Paged<app::api::sip_users::SipUserRow> = a
        .call("list_sip_users", &[("query[search]", "LIC")])
        .await
        .unwrap();
    assert_eq!((found.rows.len(), found.matched, found.total), (1, 1, 1));
    let none: Paged<app::api::sip_users::SipUserRow> = a
        .call("list_sip_users", &[("query[search]", "bob")])
        .await
        .unwrap();
    assert_eq!(
        (none.rows.len(), none.matched, none.total),
        (0, 0, 1),
        "B's bob is not A's"
    );
    let users = users.rows;
    let alice = users[0].id.to_string();
    a.call::<()>(
        "reset_sip_password",
        &[("id", &alice), ("password", "alice secret 2")],
    )
    .await
    .unwrap();
    assert!(register(target, "alice", "alice secret 1", "reg-4")
        .await
        .starts_with("SIP/2.0 401"));
    assert_eq!(
        register(target, "alice", "alice secret 2", "reg-5").await,
        "SIP/2.0 200 OK"
    );
    a.call::<()>("delete_sip_user", &[("id", &alice)])
        .await
        .unwrap();
    assert!(register(target, "alice", "alice secret 2", "reg-6")
        .await
        .starts_with("SIP/2.0 401"));
    let dup = a
        .call::<i64>(
            "create_sip_user",
            &[("username", "carol"), ("password", "short")],
        )
        .await
        .unwrap_err();
    assert!(dup.for_field("password").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_phone_gets_keep_alives_and_its_answers_show_as_latency() {
    let app = common::spawn_app("127.0.82.1-127.0.82.10").await; // keep-alives every second
    let a = app.account_with_balance("nat@alpha.test", 100).await;
    let (server, target) = a.deploy_switch().await;
    a.sip_user("nat", "nat secret 1", "options").await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(
        register_from(&phone, target, "nat", "nat secret 1", "ka-1").await,
        "SIP/2.0 200 OK"
    );

    // The node pings the phone from its own SIP port; the phone answers like a phone.
    let mut buf = vec![0u8; 8192];
    let (len, from) = tokio::time::timeout(Duration::from_secs(5), phone.recv_from(&mut buf))
        .await
        .expect("a keep-alive")
        .unwrap();
    let ping = String::from_utf8_lossy(&buf[..len]).to_string();
    assert!(ping.starts_with("OPTIONS "), "{ping}");
    assert_eq!(from, target);
    let copy = |name: &str| {
        ping.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    let answer = format!(
        "SIP/2.0 200 OK\r\n{}\r\n{}\r\n{};tag=phone\r\n{}\r\n{}\r\nContent-Length: 0\r\n\r\n",
        copy("Via:"),
        copy("From:"),
        copy("To:"),
        copy("Call-ID:"),
        copy("CSeq:")
    );
    phone.send_to(answer.as_bytes(), from).await.unwrap();

    let sid = server.id.to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let rows = a
            .call::<Paged<RegistrationRow>>("list_registrations", &[("server_id", &sid)])
            .await
            .unwrap()
            .rows;
        if rows
            .first()
            .is_some_and(|r| r.latency_ms.is_some() && r.online)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "latency never recorded: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_survive_a_restart_of_the_whole_process() {
    let app = common::spawn_app("127.0.83.1-127.0.83.10").await;
    let a = app.account_with_balance("restart@alpha.test", 100).await;
    let (server, target) = a.deploy_switch().await;
    a.call::<i64>(
        "create_sip_user",
        &[("username", "dora"), ("password", "dora secret 1")],
    )
    .await
    .unwrap();
    assert_eq!(
        register(target, "dora", "dora secret 1", "rs-1").await,
        "SIP/2.0 200 OK"
    );

    // Written behind: wait (bounded) until the store has it.
    let state = &app.server.state;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM registrations")
        .fetch_one(state.store.pool())
        .await
        .unwrap()
        == 0
    {
        assert!(tokio::time::Instant::now() < deadline, "never saved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The process goes away; a new one opens the same store.
    state.engine.stop_all().await;
    let again = server::prepare(state.leptos_options.clone(), (*state.settings).clone())
        .await
        .unwrap();
    let restored = again
        .locations
        .in_domain(&server.ip, std::time::SystemTime::now());
    assert_eq!(restored.len(), 1, "{restored:?}");
    assert_eq!(restored[0].0, format!("sip:dora@{}", server.ip));
    assert!(restored[0].1.expires_at > std::time::SystemTime::now() + Duration::from_secs(250));
    // And the new process answers for it: a refresh from the same phone is in order.
    let second = server::Server::start(again, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        register(target, "dora", "dora secret 1", "rs-2").await,
        "SIP/2.0 200 OK"
    );
    second.state.engine.stop_all().await;
}

/// Waits for one datagram on `socket` and returns it as text with its source.
async fn receive(socket: &UdpSocket) -> (String, SocketAddr) {
    let mut buf = vec![0u8; 8192];
    let (len, from) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .expect("a message")
        .unwrap();
    (String::from_utf8_lossy(&buf[..len]).to_string(), from)
}

/// Receives until a message whose first line starts with `start` (keep-alives and
/// provisional responses are skipped).
async fn receive_until(socket: &UdpSocket, start: &str) -> (String, SocketAddr) {
    for _ in 0..20 {
        let (text, from) = receive(socket).await;
        if text.starts_with(start) {
            return (text, from);
        }
    }
    panic!("no message starting with {start}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_reaches_a_registered_phone_even_after_its_server_restarted() {
    let app = common::spawn_app("127.0.85.1-127.0.85.10").await;
    let a = app.account_with_balance("calls@alpha.test", 100).await;
    let (server, target) = a.deploy_switch().await;
    a.sip_user("bob", "bob secret 12", "disabled").await;
    let bob = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(
        register_from(&bob, target, "bob", "bob secret 12", "call-reg").await,
        "SIP/2.0 200 OK"
    );

    // The server restarts between the REGISTER and the INVITE.
    let restarted: ServerRow = a
        .call(
            "run_server_action",
            &[("id", &server.id.to_string()), ("action", "restart")],
        )
        .await
        .unwrap();
    assert_eq!(restarted.status, app::model::ServerStatus::Running);

    let alice = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = alice.local_addr().unwrap();
    let host = server.ip.clone();
    let invite = format!(
        "INVITE sip:bob@{host} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKcall1;rport\r\nMax-Forwards: 70\r\n\
         From: <sip:alice@{local}>;tag=alice1\r\nTo: <sip:bob@{host}>\r\nCall-ID: call-after-restart\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:alice@{local}>\r\nContent-Length: 0\r\n\r\n"
    );
    alice.send_to(invite.as_bytes(), target).await.unwrap();
    let (trying, _) = receive(&alice).await;
    assert!(trying.starts_with("SIP/2.0 100"), "{trying}");

    // Bob gets it from the server, which stays on the route.
    let (incoming, from) = receive_until(&bob, "INVITE ").await;
    assert_eq!(from, target);
    assert!(
        incoming.contains(&format!("Record-Route: <sip:{host}:5060;lr>")),
        "{incoming}"
    );
    let line = |name: &str| {
        incoming
            .lines()
            .filter(|l| l.starts_with(name))
            .collect::<Vec<_>>()
            .join("\r\n")
    };
    let ringing =
        format!(
        "SIP/2.0 180 Ringing\r\n{}\r\n{}\r\n{};tag=bob1\r\n{}\r\n{}\r\nContent-Length: 0\r\n\r\n",
        line("Via:"), line("From:"), line("To:"), line("Call-ID:"), line("CSeq:")
    );
    bob.send_to(ringing.as_bytes(), from).await.unwrap();
    let (ringing_at_alice, _) = receive_until(&alice, "SIP/2.0 180").await;
    assert!(ringing_at_alice.contains("Call-ID: call-after-restart"));
}
