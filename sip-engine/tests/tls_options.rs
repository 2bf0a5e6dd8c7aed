//! SIP over TLS: a node given a certificate answers OPTIONS on its TLS port to a client that
//! trusts that certificate; a key that does not fit is refused before anything listens, and
//! taking TLS away closes the port. Loopback only; every wait is bounded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sip_engine::{Engine, NodeRole, NodeSpec, StartError, TlsSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

const NODE_IP: &str = "127.0.88.1";
const WAIT: Duration = Duration::from_secs(5);

fn certificate(name: &str) -> (String, String, CertificateDer<'static>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec![name.into()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().clone())
}

/// Sends one OPTIONS over TLS to `target` (as `name`), trusting only `trusted`; returns the
/// answer's status line.
async fn options_over_tls(
    target: SocketAddr,
    name: &'static str,
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
        .connect(ServerName::try_from(name).unwrap(), tcp)
        .await?;
    let request = format!(
        "OPTIONS sip:{name} SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch=z9hG4bKtls1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{name}>;tag=t\r\nTo: <sip:{name}>\r\n\
         Call-ID: tls-options-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
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

#[tokio::test]
async fn a_node_with_a_certificate_answers_options_over_tls() {
    let engine = Engine::new("test");
    engine
        .start(NodeSpec {
            id: 1,
            ip: NODE_IP.parse().unwrap(),
            udp_port: 15088,
            tcp_port: 15088,
            role: NodeRole::Switch,
        })
        .await
        .expect("node starts");
    let target: SocketAddr = format!("{NODE_IP}:15089").parse().unwrap();
    let (chain, key, der) = certificate("sip.acme.test");

    // A key of another certificate: refused, nothing listens.
    let (_, other_key, _) = certificate("sip.acme.test");
    let refused = engine
        .serve_tls(
            1,
            Some(TlsSpec {
                port: 15089,
                chain_pem: chain.clone(),
                key_pem: other_key,
            }),
        )
        .await;
    assert!(matches!(refused, Err(StartError::Tls(_))), "{refused:?}");
    assert!(TcpStream::connect(target).await.is_err());

    engine
        .serve_tls(
            1,
            Some(TlsSpec {
                port: 15089,
                chain_pem: chain,
                key_pem: key,
            }),
        )
        .await
        .expect("TLS serves");
    assert_eq!(engine.tls_port(1), Some(15089));
    assert_eq!(
        options_over_tls(target, "sip.acme.test", der.clone())
            .await
            .expect("a TLS answer"),
        "SIP/2.0 200 OK"
    );
    // A client that trusts something else does not get through the handshake.
    let (_, _, stranger) = certificate("sip.acme.test");
    assert!(options_over_tls(target, "sip.acme.test", stranger)
        .await
        .is_err());

    engine.serve_tls(1, None).await.unwrap();
    assert_eq!(engine.tls_port(1), None);
    assert!(TcpStream::connect(target).await.is_err());
    engine.stop_all().await;
}

/// TLS Internals: the control listener presents a certificate the control plane's own
/// authority issued, on a port picked for it; a probe that trusts that authority gets its
/// 200 there, one that trusts anything else does not get through, and closing it frees the
/// port.
#[tokio::test]
async fn the_control_listener_answers_probes_that_trust_the_control_planes_authority() {
    let engine = Engine::new("test");
    engine
        .start(NodeSpec {
            id: 2,
            ip: "127.0.88.2".parse().unwrap(),
            udp_port: 15088,
            tcp_port: 15088,
            role: NodeRole::Switch,
        })
        .await
        .expect("node starts");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let node_key = rcgen::KeyPair::generate().unwrap();
    let node_cert = rcgen::CertificateParams::new(vec!["node-2.internal".into()])
        .unwrap()
        .signed_by(&node_key, &ca)
        .unwrap();
    engine
        .serve_control(
            2,
            Some(TlsSpec {
                port: 0,
                chain_pem: node_cert.pem(),
                key_pem: node_key.serialize_pem(),
            }),
        )
        .await
        .expect("control listener");
    let port = engine.control_port(2).expect("a control port");
    let target: SocketAddr = format!("127.0.88.2:{port}").parse().unwrap();
    let client = |trusted: CertificateDer<'static>| {
        let mut roots = RootCertStore::empty();
        roots.add(trusted).unwrap();
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    };
    let rtt =
        sip_engine::options_ping_tls(target, "node-2.internal", client(ca.der().clone()), WAIT)
            .await
            .expect("the probe is answered over TLS");
    assert!(rtt < WAIT);
    let (_, _, stranger) = certificate("node-2.internal");
    assert!(
        sip_engine::options_ping_tls(target, "node-2.internal", client(stranger), WAIT)
            .await
            .is_err()
    );
    engine.serve_control(2, None).await.unwrap();
    assert_eq!(engine.control_port(2), None);
    assert!(TcpStream::connect(target).await.is_err());
    engine.stop_all().await;
}
