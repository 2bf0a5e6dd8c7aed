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
}
