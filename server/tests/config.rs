//! Server Config: what the page saves is what the node runs, ports really move, and every
//! refusal leaves both the store and the node as they were.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use app::error::AppError;
use app::model::{ServerConfigView, ServerRow};
use sip_engine::{options_ping, ProbeTransport};

const PING: Duration = Duration::from_secs(3);

use common::config_form as form;

async fn save(
    client: &common::Client,
    fields: Vec<(String, String)>,
) -> Result<ServerConfigView, AppError> {
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    client.call("save_server_config", &pairs).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_configuration_is_what_the_node_runs_and_ports_really_move() {
    let app = common::spawn_app("127.0.74.1-127.0.74.10").await;
    let client = app.account_with_balance("config@acme.test", 100).await;
    let row: ServerRow = client
        .call(
            "deploy_server",
            &[("zone", "test-zone"), ("kind", "switch")],
        )
        .await
        .unwrap();
    let id = row.id.to_string();
    let before: ServerConfigView = client
        .call("get_server_config", &[("id", &id)])
        .await
        .unwrap();
    assert_eq!(before.node_version, Some(before.config.version));

    let after = save(
        &client,
        form(
            &before,
            &[
                ("udp_port", "5070"),
                ("tcp_port", "5071"),
                ("interconnect", "on"),
                ("disable_uac_ping", "on"),
                ("data_zone", "eu"),
                ("fqdn", "SIP.Example.com"),
                ("digest_algorithms", "sha256"),
            ],
        ),
    )
    .await
    .unwrap();
    assert_eq!(after.config.version, before.config.version + 1);
    assert_eq!(after.node_version, Some(after.config.version));

    let running = app.server.state.engine.config(row.id).expect("node runs");
    assert_eq!(running.version, after.config.version);
    assert!(running.interconnect && running.disable_uac_ping);
    assert_eq!(running.data_zone, "eu");
    assert_eq!(running.fqdn.as_deref(), Some("sip.example.com"));
    assert_eq!(running.digest, sip_engine::DigestAlgorithms::Sha256Only);
    assert_eq!(
        before.config.digest_algorithms,
        app::model::DigestChoice::Md5ThenSha256,
        "MD5 first unless the provider chooses otherwise"
    );
    assert_eq!(
        after.config.digest_algorithms,
        app::model::DigestChoice::Sha256Only
    );
    let spec = app.server.state.engine.spec(row.id).unwrap();
    assert_eq!((spec.udp_port, spec.tcp_port), (5070, 5071));

    let ip = row.ip.clone();
    let at = |port: u16| -> SocketAddr { format!("{ip}:{port}").parse().unwrap() };
    options_ping(at(5070), ProbeTransport::Udp, PING)
        .await
        .expect("UDP on the new port");
    options_ping(at(5071), ProbeTransport::Tcp, PING)
        .await
        .expect("TCP on the new port");
    assert!(
        options_ping(at(5060), ProbeTransport::Udp, Duration::from_millis(700))
            .await
            .is_err(),
        "old port closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_is_a_field_error_and_the_old_configuration_keeps_running() {
    let app = common::spawn_app("127.0.75.1-127.0.75.10").await;
    let client = app.account_with_balance("clash@acme.test", 100).await;
    let row: ServerRow = client
        .call(
            "deploy_server",
            &[("zone", "test-zone"), ("kind", "switch")],
        )
        .await
        .unwrap();
    let id = row.id.to_string();
    let before: ServerConfigView = client
        .call("get_server_config", &[("id", &id)])
        .await
        .unwrap();
    let _squatter = tokio::net::UdpSocket::bind(format!("{}:5080", row.ip))
        .await
        .unwrap();

    let refused = save(
        &client,
        form(&before, &[("udp_port", "5080"), ("interconnect", "on")]),
    )
    .await
    .unwrap_err();
    assert!(
        refused
            .for_field("udp_port")
            .is_some_and(|m| m.contains("in use")),
        "{refused:?}"
    );
    let unchanged: ServerConfigView = client
        .call("get_server_config", &[("id", &id)])
        .await
        .unwrap();
    assert_eq!(unchanged, before);
    assert_eq!(app.server.state.engine.spec(row.id).unwrap().udp_port, 5060);
    options_ping(
        format!("{}:5060", row.ip).parse().unwrap(),
        ProbeTransport::Udp,
        PING,
    )
    .await
    .expect("still serving");

    for (field, value) in [
        ("udp_port", "80"),
        ("tls_port", "5060"),
        ("tcp_port", "7443"),
        ("fqdn", "not a domain"),
        ("data_zone", "mars"),
        ("digest_algorithms", "sha1"),
    ] {
        let refused = save(&client, form(&before, &[(field, value)]))
            .await
            .unwrap_err();
        assert!(
            refused.for_field(field).is_some(),
            "{field}={value}: {refused:?}"
        );
    }
    let unchanged: ServerConfigView = client
        .call("get_server_config", &[("id", &id)])
        .await
        .unwrap();
    assert_eq!(unchanged, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_targets_only_the_same_cluster_and_restrict_direct_admits_its_dispatchers() {
    let app = common::spawn_app("127.0.76.1-127.0.76.10").await;
    let client = app.account_with_balance("cluster@acme.test", 200).await;
    let cluster: i64 = client
        .call("create_cluster", &[("name", "Core")])
        .await
        .unwrap();
    let c = cluster.to_string();
    let switch: ServerRow = client
        .call(
            "deploy_server",
            &[("zone", "test-zone"), ("kind", "switch"), ("cluster", &c)],
        )
        .await
        .unwrap();
    let peer: ServerRow = client
        .call(
            "deploy_server",
            &[("zone", "test-zone"), ("kind", "switch"), ("cluster", &c)],
        )
        .await
        .unwrap();
    let dispatcher: ServerRow = client
        .call(
            "deploy_server",
            &[
                ("zone", "test-zone"),
                ("kind", "dispatcher"),
                ("cluster", &c),
            ],
        )
        .await
        .unwrap();
    let outsider: ServerRow = client
        .call(
            "deploy_server",
            &[("zone", "test-zone"), ("kind", "switch")],
        )
        .await
        .unwrap();

    let id = switch.id.to_string();
    let before: ServerConfigView = client
        .call("get_server_config", &[("id", &id)])
        .await
        .unwrap();
    assert_eq!(before.failover_candidates.len(), 2, "{before:?}");
    let refused = save(
        &client,
        form(
            &before,
            &[
                ("failover_enabled", "on"),
                ("failover_target", &outsider.id.to_string()),
            ],
        ),
    )
    .await
    .unwrap_err();
    assert!(
        refused.for_field("failover_target").is_some(),
        "{refused:?}"
    );
    assert_eq!(
        client
            .call::<ServerConfigView>("get_server_config", &[("id", &id)])
            .await
            .unwrap(),
        before
    );

    let after = save(
        &client,
        form(
            &before,
            &[
                ("failover_enabled", "on"),
                ("failover_target", &peer.id.to_string()),
                ("restrict_direct", "on"),
            ],
        ),
    )
    .await
    .unwrap();
    assert_eq!(after.config.failover_target_id, Some(peer.id));
    let running = app.server.state.engine.config(switch.id).unwrap();
    assert!(running.restrict_direct);
    assert_eq!(
        running.allowed_sources,
        vec![dispatcher.ip.parse::<std::net::IpAddr>().unwrap()]
    );

    // A request straight from elsewhere is refused; the control plane's ping still works.
    let target: SocketAddr = format!("{}:5060", switch.ip).parse().unwrap();
    let answer = common::invite(target, "direct1").await;
    assert!(
        answer.starts_with("SIP/2.0 403 Direct Requests Not Allowed"),
        "{answer}"
    );
    options_ping(target, ProbeTransport::Udp, PING)
        .await
        .expect("pings still answered");
}
