//! sipfleet's benchmarks (run with `bash bench/run.sh`, which also measures the wasm bundle).
//!
//! - Server-side render of the Servers page for an account with 1,000 and with 10,000
//!   servers: the whole request through the real router (session lookup, the store's
//!   filtered and paged query, render), body read to the end; the first page, and a
//!   filtered page further in. With `BENCH_KEEP_HTML=<dir>`, the last page of each view
//!   is written there, to see what its bytes are.
//! - SIP OPTIONS round trip to a node on loopback, as the control plane's probe measures it.
//! - Live update of one row: from an action on the node to the browser's event stream
//!   carrying the row's new status.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use app::model::ServerKind;
use app::ssr::auth::{hash_password, new_session_token};
use app::ssr::settings::{Settings, ZoneSettings};
use app::ssr::store::{Audit, NewServer};
use axum::body::Body;
use axum::http::Request;
use leptos::prelude::LeptosOptions;
use sip_engine::{options_ping, Engine, NodeRole, NodeSpec, ProbeTransport};
use tower::ServiceExt;

const FLEETS: [usize; 2] = [1_000, 10_000];
const RENDERS: usize = 200;
const PINGS: usize = 2_000;

#[tokio::main]
async fn main() {
    for servers in FLEETS {
        render_servers_page(servers).await;
    }
    options_round_trip().await;
    live_row_update().await;
}

async fn render_servers_page(servers: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = Settings {
        data_dir: dir.path().into(),
        trial_days: 7.0,
        schedule_seconds: 30,
        resize_activation_minutes: 15,
        keepalive_seconds: 30,
        drain_seconds: 60,
        trace: app::ssr::settings::TraceSettings {
            us: "127.0.0.1:0".parse().unwrap(),
            eu: "127.0.0.1:0".parse().unwrap(),
        },
        zones: vec![ZoneSettings {
            name: "bench".into(),
            label: "Bench".into(),
            pool: "10.0.0.1-10.0.255.254".into(),
        }],
    };
    let options = LeptosOptions::builder().output_name("sipfleet").build();
    let state = server::prepare(options, settings).await.expect("store");
    state
        .store
        .sync_zones(&state.settings.zones)
        .await
        .expect("zones");
    let hash = hash_password("bench password 123".into())
        .await
        .expect("hash");
    let (account, user) = state
        .store
        .create_account("Bench Co", "bench@bench.test", &hash, false, |_, _| None)
        .await
        .expect("account");
    let (token, token_hash) = new_session_token();
    state
        .store
        .create_session(&token_hash, user, app::ssr::now() + 3600)
        .await
        .expect("session");
    for i in 0..servers {
        let ip = format!("10.0.{}.{}", i / 250, i % 250 + 1);
        let alias = format!("switch-{i}");
        state
            .store
            .insert_server(
                &NewServer {
                    account_id: account,
                    alias: &alias,
                    zone: "bench",
                    kind: if i % 5 == 0 {
                        ServerKind::Dispatcher
                    } else {
                        ServerKind::Switch
                    },
                    cluster_id: None,
                    ip: &ip,
                    channels: 100,
                    cps: 10,
                    expires_at: app::ssr::now() + 86_400,
                },
                |id| Audit::by_platform(account, "server.deploy", format!("server {id}"), "bench"),
            )
            .await
            .expect("insert");
    }
    let router = server::router(state);
    let total = app::listing::thousands(servers as u64);
    // The first page of the whole list, and the third page of the Dispatchers (a fifth of
    // the fleet) sorted by alias.
    let views = [
        ("/servers", "switch-0<", format!("{total} servers")),
        (
            "/servers?type=dispatcher&sort=alias&page=3",
            "switch-",
            format!(
                "{} of {total} servers",
                app::listing::thousands(servers as u64 / 5)
            ),
        ),
    ];
    for (path, row, count) in views {
        let request = || {
            Request::get(path)
                .header("cookie", format!("sipfleet_session={token}"))
                .body(Body::empty())
                .expect("request")
        };
        let mut bytes = 0;
        let mut last = axum::body::Bytes::new();
        let mut times = Vec::with_capacity(RENDERS);
        for i in 0..RENDERS + 20 {
            let started = Instant::now();
            let response = router.clone().oneshot(request()).await.expect("response");
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body");
            let elapsed = started.elapsed();
            if i >= 20 {
                times.push(elapsed);
            }
            bytes = body.len();
            last = body.clone();
            let html = String::from_utf8_lossy(&body);
            assert!(html.contains(row), "{path}: the page shows its rows");
            assert!(
                html.contains(&count),
                "{path}: the page shows its count ({count})"
            );
        }
        if let Some(dir) = std::env::var_os("BENCH_KEEP_HTML") {
            // The last page rendered, to look at what the bytes are.
            let name = format!("servers-{servers}-{}.html", path.len());
            std::fs::write(std::path::Path::new(&dir).join(name), &last).expect("keep html");
        }
        report(
            &format!(
                "Servers page SSR, {total} servers, {path} ({:.1} KB of HTML)",
                bytes as f64 / 1024.0
            ),
            &mut times,
        );
    }
}

async fn options_round_trip() {
    let engine = Engine::new("bench");
    let ip = "127.0.99.1".parse().expect("ip");
    let port = 15060;
    engine
        .start(NodeSpec {
            id: 1,
            ip,
            udp_port: port,
            tcp_port: port,
            role: NodeRole::Switch,
        })
        .await
        .expect("node starts");
    let target = SocketAddr::new(ip, port);
    let mut times = Vec::with_capacity(PINGS);
    for _ in 0..PINGS {
        times.push(
            options_ping(target, ProbeTransport::Udp, Duration::from_secs(2))
                .await
                .expect("200 OK"),
        );
    }
    report("SIP OPTIONS round trip over UDP on loopback", &mut times);
    engine.stop_all().await;
}

fn report(what: &str, times: &mut [Duration]) {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize];
    println!(
        "{what}: median {:.3} ms, p90 {:.3} ms, p99 {:.3} ms over {} runs",
        at(0.5).as_secs_f64() * 1e3,
        at(0.9).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        times.len()
    );
}

const LIVE_ROUNDS: usize = 40;

/// Stops and starts a server over and over through the real HTTP API while a second
/// connection listens to `/live/servers`, timing each change until its event arrives.
async fn live_row_update() {
    use futures::StreamExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = Settings {
        data_dir: dir.path().into(),
        trial_days: 7.0,
        schedule_seconds: 30,
        resize_activation_minutes: 15,
        keepalive_seconds: 30,
        drain_seconds: 60,
        trace: app::ssr::settings::TraceSettings {
            us: "127.0.0.1:0".parse().unwrap(),
            eu: "127.0.0.1:0".parse().unwrap(),
        },
        zones: vec![ZoneSettings {
            name: "bench".into(),
            label: "Bench".into(),
            pool: "127.0.98.1-127.0.98.10".into(),
        }],
    };
    let options = LeptosOptions::builder().output_name("sipfleet").build();
    let state = server::prepare(options, settings).await.expect("store");
    let running = server::Server::start(state.clone(), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("server");
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let call = |endpoint: &str, form: Vec<(&str, String)>| {
        http.post(format!("{base}/api/{endpoint}"))
            .header("Accept", "application/json")
            .form(&form)
            .send()
    };
    call(
        "sign_up",
        vec![
            ("company", "Bench Co".into()),
            ("email", "live@bench.test".into()),
            ("password", "bench password 123".into()),
        ],
    )
    .await
    .expect("sign up");
    call(
        "save_company_details",
        vec![
            ("company", "Bench Co".into()),
            ("address", "1 Bench Road".into()),
            ("country", "GB".into()),
        ],
    )
    .await
    .expect("details");
    call("accept_terms", vec![]).await.expect("terms");
    let account = state
        .store
        .account_of_email("live@bench.test")
        .await
        .expect("store")
        .expect("account");
    state
        .store
        .credit(account, app::model::Usd::dollars(100), |balance| {
            Audit::by_platform(
                account,
                "account.credit",
                "bench",
                format!("balance {balance}"),
            )
        })
        .await
        .expect("credit");
    let deployed: serde_json::Value = call(
        "deploy_server",
        vec![("zone", "bench".into()), ("kind", "switch".into())],
    )
    .await
    .expect("deploy")
    .json()
    .await
    .expect("row");
    let id = deployed["id"].as_i64().expect("id").to_string();

    let mut events = http
        .get(format!("{base}/live/servers"))
        .send()
        .await
        .expect("events")
        .bytes_stream();
    let mut times = Vec::with_capacity(LIVE_ROUNDS);
    for round in 0..LIVE_ROUNDS {
        let (action, status) = if round % 2 == 0 {
            ("stop", "Stopped")
        } else {
            ("start", "Running")
        };
        let wanted = format!("\"status\":\"{status}\"");
        let started = Instant::now();
        call(
            "run_server_action",
            vec![("id", id.clone()), ("action", action.into())],
        )
        .await
        .expect("action");
        let mut seen = String::new();
        while !seen.contains(&wanted) {
            let chunk = tokio::time::timeout(Duration::from_secs(5), events.next())
                .await
                .expect("event within 5 s")
                .expect("stream open")
                .expect("bytes");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        times.push(started.elapsed());
    }
    report(
        "Live update of one row (action → event stream), incl. the action itself",
        &mut times,
    );
    running.state.engine.stop_all().await;
}
