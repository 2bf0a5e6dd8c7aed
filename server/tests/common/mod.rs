//! Starting a real sipfleet (fresh store, its own address pool) and calling its server
//! functions over HTTP as the browser does.
#![allow(dead_code)]

pub mod phone;

use app::error::AppError;
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
        trial_days: 7,
        resize_activation_minutes: 15,
        keepalive_seconds: 1,
        drain_seconds: 5,
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
                .credit(account, app::model::Usd::dollars(dollars))
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
