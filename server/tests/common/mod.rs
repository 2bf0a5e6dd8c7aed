//! Starting a real sipfleet (fresh store, its own address pool) and calling its server
//! functions over HTTP as the browser does.
#![allow(dead_code)]

pub mod calls;
pub mod phone;

use app::error::AppError;
use app::model::ServerConfigView;
use app::ssr::settings::{Settings, ZoneSettings};
use leptos::prelude::LeptosOptions;
use serde::de::DeserializeOwned;
use server::{prepare, Server};

pub struct TestApp {
    pub server: Server,
    pub base: String,
    _dir: tempfile::TempDir,
}

/// Starts the whole server on port 0 with an empty store and one zone whose pool is `pool`
/// (each test file uses its own slice of 127.0.0.0/8, so tests never share addresses).
pub async fn spawn_app(pool: &str) -> TestApp {
    // Server-side errors (logged, never sent to the client) show up in a failing test's output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = Settings {
        data_dir: dir.path().into(),
        trial_days: 7.0,
        schedule_seconds: 30,
        resize_activation_minutes: 15,
        keepalive_seconds: 1,
        drain_seconds: 5,
        trace: app::ssr::settings::TraceSettings {
            us: "127.0.0.1:0".parse().unwrap(),
            eu: "127.0.0.1:0".parse().unwrap(),
        },
        zones: vec![ZoneSettings {
            name: "test-zone".into(),
            label: "Test zone".into(),
            pool: pool.into(),
        }],
    };
    let options = LeptosOptions::builder().output_name("sipfleet").build();
    let state = prepare(options, settings).await.expect("store opens");
    let server = Server::start(state, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("server starts");
    let base = format!("http://{}", server.addr);
    TestApp {
        server,
        base,
        _dir: dir,
    }
}

/// A browser-like client: keeps its session cookie, posts forms to server functions.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl TestApp {
    pub fn client(&self) -> Client {
        Client {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: self.base.clone(),
        }
    }

    /// Signs up a new account, completes its Getting Started checklist and credits it, as
    /// the operator would (no credit when `dollars` is 0).
    pub async fn account_with_balance(&self, email: &str, dollars: i64) -> Client {
        let client = self.client();
        client
            .call::<()>(
                "sign_up",
                &[
                    ("company", "Acme Telecom"),
                    ("email", email),
                    ("password", "a long enough password"),
                ],
            )
            .await
            .expect("sign up");
        client
            .call::<()>(
                "save_company_details",
                &[
                    ("company", "Acme Telecom"),
                    ("address", "1 Dock Road, London"),
                    ("country", "gb"),
                ],
            )
            .await
            .expect("company details");
        client.call::<()>("accept_terms", &[]).await.expect("terms");
        if dollars > 0 {
            let account = self
                .server
                .state
                .store
                .account_of_email(email)
                .await
                .unwrap()
                .unwrap();
            self.server
                .state
                .store
                .credit(account, app::model::Usd::dollars(dollars), top_up(account))
                .await
                .unwrap();
        }
        client
    }
}

impl Client {
    /// Deploys a Switch in the test zone and returns it with its SIP address (port 5060).
    pub async fn deploy_switch(&self) -> (app::model::ServerRow, std::net::SocketAddr) {
        let row: app::model::ServerRow = self
            .call(
                "deploy_server",
                &[("zone", "test-zone"), ("kind", "switch")],
            )
            .await
            .expect("deploy");
        let target = format!("{}:5060", row.ip).parse().expect("address");
        (row, target)
    }

    /// Creates a SIP user of this client's account.
    pub async fn sip_user(&self, username: &str, password: &str, keepalive: &str) -> i64 {
        self.call(
            "create_sip_user",
            &[
                ("username", username),
                ("password", password),
                ("keepalive", keepalive),
            ],
        )
        .await
        .expect("SIP user")
    }
    /// A plain GET with this client's session.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request reaches the server")
    }

    /// Calls `/api/<endpoint>` with a url-encoded form, as an `ActionForm` does.
    pub async fn call<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        form: &[(&str, &str)],
    ) -> Result<T, AppError> {
        let response = self
            .http
            .post(format!("{}/api/{endpoint}", self.base))
            .header("Accept", "application/json")
            .form(form)
            .send()
            .await
            .expect("request reaches the server");
        let ok = response.status().is_success() || response.status().is_redirection();
        let body = response.bytes().await.expect("body");
        if ok {
            Ok(serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("{endpoint}: {e}: {}", String::from_utf8_lossy(&body))))
        } else {
            Err(serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("{endpoint}: {e}: {}", String::from_utf8_lossy(&body))))
        }
    }
}

/// The audit row of a test's top-up, as the operator's credit would write one.
pub fn top_up(
    account: app::ssr::store::AccountId,
) -> impl FnOnce(app::model::Usd) -> app::ssr::store::Audit {
    move |balance| {
        app::ssr::store::Audit::by_platform(
            account,
            "account.credit",
            format!("account {account}"),
            format!("test top-up; balance {balance}"),
        )
    }
}

/// Sends one INVITE from loopback and returns the status line of the answer.
pub async fn invite(target: std::net::SocketAddr, branch: &str) -> String {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = socket.local_addr().unwrap();
    let request = format!(
        "INVITE sip:bob@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\nFrom: <sip:alice@{local}>;tag=a\r\nTo: <sip:bob@{target}>\r\nCall-ID: {branch}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    socket.send_to(request.as_bytes(), target).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (len, _) = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        socket.recv_from(&mut buf),
    )
    .await
    .unwrap()
    .unwrap();
    String::from_utf8_lossy(&buf[..len])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The form as the page posts it, from a view, with `changes` applied.
pub fn config_form(view: &ServerConfigView, changes: &[(&str, &str)]) -> Vec<(String, String)> {
    let c = &view.config;
    let mut fields: Vec<(String, String)> = vec![
        ("id".into(), view.server_id.to_string()),
        (
            "cluster".into(),
            c.cluster_id.map(|i| i.to_string()).unwrap_or_default(),
        ),
        ("data_zone".into(), c.data_zone.as_str().into()),
        (
            "digest_algorithms".into(),
            c.digest_algorithms.as_str().into(),
        ),
        ("udp_port".into(), c.udp_port.to_string()),
        ("tcp_port".into(), c.tcp_port.to_string()),
        ("tls_port".into(), c.tls_port.to_string()),
        (
            "failover_target".into(),
            c.failover_target_id
                .map(|i| i.to_string())
                .unwrap_or_default(),
        ),
    ];
    // A Dispatcher's page has its balancing; a Switch's, its weight.
    match view.kind {
        app::model::ServerKind::Dispatcher => {
            let d = &c.dispatching;
            fields.extend([
                ("balancing".into(), d.balancing.as_str().into()),
                ("probe_interval".into(), d.probe_interval.to_string()),
                ("probe_failures".into(), d.probe_failures.to_string()),
                ("probe_successes".into(), d.probe_successes.to_string()),
            ]);
            if d.any_reg {
                fields.push(("any_reg".into(), "on".into()));
            }
        }
        app::model::ServerKind::Switch => fields.push(("weight".into(), c.weight.to_string())),
    }
    for (name, value) in [
        ("uac_auth_username", &c.uac_auth_username),
        ("uac_auth_registrar", &c.uac_auth_registrar),
        ("fqdn", &c.fqdn),
    ] {
        if let Some(value) = value {
            fields.push((name.into(), value.clone()));
        }
    }
    for (flag, on) in [
        ("interconnect", c.interconnect),
        ("auto_upgrade", c.auto_upgrade),
        ("disable_uac_ping", c.disable_uac_ping),
        ("uac_location_sharing", c.uac_location_sharing),
        ("tls_internals", c.tls_internals),
        ("restrict_direct", c.restrict_direct),
        ("tcp_sip_trace", c.tcp_sip_trace),
        ("failover_enabled", c.failover_enabled),
    ] {
        if on {
            fields.push((flag.into(), "on".into()));
        }
    }
    for (name, value) in changes {
        fields.retain(|(n, _)| n != name);
        fields.push((name.to_string(), value.to_string()));
    }
    fields
}

impl TestApp {
    /// The operator (created with `password` on first use), signed in.
    pub async fn operator(&self, password: &str) -> Client {
        server::ensure_operator(&self.server.state.store, Some(password.into()))
            .await
            .expect("operator");
        let operator = self.client();
        operator
            .call::<()>(
                "sign_in",
                &[("email", server::OPERATOR_EMAIL), ("password", password)],
            )
            .await
            .expect("the operator signs in");
        operator
    }
}

impl Client {
    /// One of this client's servers as the list shows it.
    pub async fn server_row(&self, id: i64) -> app::model::ServerRow {
        self.call("get_server", &[("id", &id.to_string())])
            .await
            .expect("the server")
    }

    /// Saves server `id`'s configuration as its page would: the stored one, with `changes`.
    pub async fn save_config(
        &self,
        id: i64,
        changes: &[(&str, &str)],
    ) -> Result<ServerConfigView, AppError> {
        let view: ServerConfigView = self
            .call("get_server_config", &[("id", &id.to_string())])
            .await?;
        let fields = config_form(&view, changes);
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        self.call("save_server_config", &pairs).await
    }
}

/// Waits until `check` holds, polling every 20 ms, and fails the test naming `what` when it
/// does not within 5 seconds.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
