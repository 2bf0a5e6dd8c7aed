//! WebRTC/TLS: a server serves SIP over TLS, with its attached Server certificate, once an
//! FQDN is set, and stops when the certificate is detached.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use app::model::ServerConfigView;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

const NAME: &str = "sip.acme.test";
const WAIT: Duration = Duration::from_secs(5);

/// One OPTIONS over TLS to `target` as [`NAME`], trusting only `trusted`: the status line.
async fn options_over_tls(
    target: SocketAddr,
    trusted: CertificateDer<'static>,
) -> std::io::Result<String> {
    let mut roots = RootCertStore::empty();
    roots.add(trusted).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::time::timeout(WAIT, TcpStream::connect(target)).await??;
    let local = tcp.local_addr()?;
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(NAME).unwrap(), tcp)
        .await?;
    let request = format!(
        "OPTIONS sip:{NAME} SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch=z9hG4bKconsole\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{NAME}>;tag=t\r\nTo: <sip:{NAME}>\r\n\
         Call-ID: console-tls-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await?;
    let mut buf = vec![0u8; 4096];
    let len = tokio::time::timeout(WAIT, tls.read(&mut buf)).await??;
    Ok(String::from_utf8_lossy(&buf[..len])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_an_fqdn_and_a_server_certificate_answers_over_tls() {
    let app = common::spawn_app("127.0.95.1-127.0.95.10").await;
    let client = app.account_with_balance("tls@acme.test", 100).await;
    let (server, _) = client.deploy_switch().await;
    let target: SocketAddr = format!("{}:5061", server.ip).parse().unwrap();

    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![NAME.into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let certificate: i64 = client
        .call(
            "upload_certificate",
            &[
                ("chain", cert.pem().as_str()),
                ("key", key.serialize_pem().as_str()),
            ],
        )
        .await
        .expect("upload");
    let (sid, cid) = (server.id.to_string(), certificate.to_string());
    client
        .call::<()>(
            "attach_certificate",
            &[
                ("server_id", &sid),
                ("certificate_id", &cid),
                ("usage", "server"),
            ],
        )
        .await
        .expect("attach");
    // No FQDN yet: no TLS.
    assert!(TcpStream::connect(target).await.is_err());

    let view = client
        .save_config(server.id, &[("fqdn", NAME)])
        .await
        .expect("FQDN saved");
    assert_eq!(view.tls_serving, Some(5061));
    assert_eq!(view.websocket_refused, None, "7443 is served too");
    assert_eq!(
        options_over_tls(target, cert.der().clone()).await.unwrap(),
        "SIP/2.0 200 OK"
    );

    client
        .call::<()>(
            "detach_certificate",
            &[("server_id", &sid), ("certificate_id", &cid)],
        )
        .await
        .expect("detach");
    assert!(TcpStream::connect(target).await.is_err());
    let view: ServerConfigView = client
        .call("get_server_config", &[("id", &sid)])
        .await
        .unwrap();
    assert_eq!(view.tls_serving, None);

    // Another process holds 7443 on the server's address: TLS is served on 5061 all the
    // same, and the page learns why browsers cannot reach secure WebSocket.
    let squatter = tokio::net::TcpListener::bind((target.ip(), 7443))
        .await
        .unwrap();
    let attach = [
        ("server_id", sid.as_str()),
        ("certificate_id", cid.as_str()),
        ("usage", "server"),
    ];
    client
        .call::<()>("attach_certificate", &attach)
        .await
        .expect("attach again");
    let view: ServerConfigView = client
        .call("get_server_config", &[("id", &sid)])
        .await
        .unwrap();
    assert_eq!(view.tls_serving, Some(5061));
    assert!(
        view.websocket_refused
            .as_deref()
            .is_some_and(|why| why.contains("in use")),
        "{view:?}"
    );
    assert_eq!(
        options_over_tls(target, cert.der().clone()).await.unwrap(),
        "SIP/2.0 200 OK"
    );
    drop(squatter);
}

/// TLS Internals: with the flag saved, the node gets a control port with a certificate from
/// the control plane's authority, and the control plane's health probe reaches it there over
/// TLS (the node's own trace shows the probe's OPTIONS coming over TLS); a client that does
/// not trust that authority is refused; turning the flag off closes the port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_internals_moves_the_health_probe_to_tls_with_the_control_planes_authority() {
    let app = common::spawn_app("127.0.104.1-127.0.104.10").await;
    let client = app.account_with_balance("internals@acme.test", 100).await;
    let (server, _) = client.deploy_switch().await;
    let view = client
        .save_config(server.id, &[("tls_internals", "on")])
        .await
        .expect("saved");
    let port = view.control_port.expect("a control port");
    let target: SocketAddr = format!("{}:{port}", server.ip).parse().unwrap();
    // The monitor's next round (every 3 s) probes over TLS: before anything else has
    // spoken TLS to the node, an OPTIONS over TLS in its trace is the monitor's.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let trace: app::model::TraceView = client
            .call("server_trace", &[("id", &server.id.to_string())])
            .await
            .expect("trace");
        if trace
            .messages
            .iter()
            .any(|m| m.first_line.starts_with("OPTIONS ") && m.text.contains("Via: SIP/2.0/TLS "))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no probe over TLS in the trace"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let state = &app.server.state;
    let name = app::ssr::internal_tls::node_name(server.id);
    sip_engine::options_ping_tls(target, &name, state.authority.client(), WAIT)
        .await
        .expect("the control plane's own client gets through");
    let stranger = {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.clone()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        cert.der().clone()
    };
    assert!(options_over_tls(target, stranger).await.is_err());

    let mut fields = common::config_form(&view, &[]);
    fields.retain(|(name, _)| name != "tls_internals");
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let view: ServerConfigView = client
        .call("save_server_config", &pairs)
        .await
        .expect("saved without the flag");
    assert!(!view.config.tls_internals);
    assert_eq!(view.control_port, None);
    assert!(TcpStream::connect(target).await.is_err());
}
