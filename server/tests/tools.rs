//! The network tools of the detail page: ping and trace route really run from the server's
//! node (its address is the source) and stream their output; bad values are refused by
//! field; another account's server is not found; each run is audited.

mod common;

/// The events of a finished stream: (event name, data).
async fn events(response: reqwest::Response) -> Vec<(String, String)> {
    let body = tokio::time::timeout(std::time::Duration::from_secs(30), response.text())
        .await
        .expect("the run ends within its bounds")
        .unwrap();
    body.split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = Some(value.trim().to_string());
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push(value.strip_prefix(' ').unwrap_or(value).to_string());
                }
            }
            Some((name?, data.join("\n")))
        })
        .collect()
}

fn lines(events: &[(String, String)]) -> Vec<&str> {
    events
        .iter()
        .filter(|(name, _)| name == "line")
        .map(|(_, data)| data.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_trace_route_run_from_the_node_and_stream_their_output() {
    let app = common::spawn_app("127.0.44.1-127.0.44.10").await;
    let client = app.account_with_balance("tools@acme.test", 100).await;
    let (server, _) = client.deploy_switch().await;
    let path = |query: &str| format!("/live/servers/{}/tools?{query}", server.id);

    let ping = events(
        client
            .get(&path("tool=ping&target=127.0.0.1&count=2"))
            .await,
    )
    .await;
    let output = lines(&ping);
    assert_eq!(
        output[0],
        format!("PING 127.0.0.1 from {}: 2 echo requests", server.ip)
    );
    assert!(
        output[1].contains("bytes from 127.0.0.1: icmp_seq=0 time="),
        "{output:?}"
    );
    assert!(output[2].contains("icmp_seq=1"), "{output:?}");
    assert!(
        output[3].starts_with("2 sent, 2 received, 0% loss, rtt min/avg/max = "),
        "{output:?}"
    );
    assert_eq!(ping.last().map(|(name, _)| name.as_str()), Some("done"));

    // A host nobody answers for (TEST-NET-1 has no route here): no answers, no hang.
    let silent = events(
        client
            .get(&path("tool=ping&target=192.0.2.1&count=1"))
            .await,
    )
    .await;
    let output = lines(&silent);
    assert!(
        output.contains(&"no answer from 192.0.2.1 for icmp_seq=0 within 1 s"),
        "{output:?}"
    );
    assert_eq!(output.last(), Some(&"1 sent, 0 received, 100% loss"));

    let trace = events(
        client
            .get(&path("tool=traceroute&target=127.0.0.1&count=5"))
            .await,
    )
    .await;
    let output = lines(&trace);
    assert_eq!(
        output[0],
        format!(
            "trace route to 127.0.0.1 from {}, 5 hops at most",
            server.ip
        )
    );
    assert!(output[1].starts_with(" 1  127.0.0.1  "), "{output:?}");
    assert_eq!(output[2], "reached 127.0.0.1 in 1 hop");

    // Bad values come back as one refusal naming the field.
    for (query, field) in [
        ("tool=ping&target=example.com", "target"),
        ("tool=ping&target=127.0.0.1&count=50", "count"),
        ("tool=nmap&target=127.0.0.1", "tool"),
    ] {
        let refused = events(client.get(&path(query)).await).await;
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0].0, "refused");
        let body: serde_json::Value = serde_json::from_str(&refused[0].1).unwrap();
        assert_eq!(body["field"], field, "{query}: {body}");
    }

    // Another account cannot run tools from this server; nobody can without a session.
    let other = app.account_with_balance("other-tools@acme.test", 0).await;
    assert_eq!(
        other
            .get(&path("tool=ping&target=127.0.0.1"))
            .await
            .status(),
        reqwest::StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.client()
            .get(&path("tool=ping&target=127.0.0.1"))
            .await
            .status(),
        reqwest::StatusCode::UNAUTHORIZED
    );

    // A stopped node runs nothing.
    client
        .call::<app::model::ServerRow>(
            "run_server_action",
            &[("id", &server.id.to_string()), ("action", "stop")],
        )
        .await
        .unwrap();
    let stopped = events(client.get(&path("tool=ping&target=127.0.0.1")).await).await;
    assert_eq!(stopped[0].0, "refused");
    assert!(stopped[0].1.contains("not running"), "{stopped:?}");

    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log WHERE action LIKE 'server.tool.%'")
            .fetch_all(app.server.state.store.pool())
            .await
            .unwrap();
    assert_eq!(
        actions.iter().filter(|a| *a == "server.tool.ping").count(),
        2
    );
    assert!(actions.contains(&"server.tool.traceroute".to_string()));
}
