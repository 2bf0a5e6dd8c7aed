//! SIP over secure WebSocket (RFC 7118), as a WebRTC client speaks it, on the TLS port of a
//! node with a certificate: a client that does not ask for the `sip` subprotocol is turned
//! away; one that does registers with digest authentication (its Contact host a made-up
//! `.invalid` name, as browsers write it), is called from a UDP phone (the INVITE comes down
//! its WebSocket, and the BYE after it), and calls the UDP phone in turn. Loopback only;
//! every wait is bounded.

mod phone;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sip_engine::{
    Engine, KeepAliveSettings, MemoryDirectory, MemoryLocationStore, NodeRole, NodeSpec, Secret,
    TlsSpec,
};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const NODE_IP: &str = "127.0.101.1";
const PORT: u16 = 15092;
const TLS_PORT: u16 = 15093;
const NAME: &str = "sip.acme.test";
const PASSWORD: &str = "correct-horse";
const WAIT: Duration = Duration::from_secs(5);
/// The host a browser's SIP stack invents for its Contact and Via.
const INVALID: &str = "df7jal23ls0d.invalid";

type Browser = WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// Opens a secure WebSocket to the node, asking for `subprotocol` when given.
async fn connect(
    trusted: CertificateDer<'static>,
    subprotocol: Option<&str>,
) -> Result<(Browser, SocketAddr), tokio_tungstenite::tungstenite::Error> {
    let mut roots = RootCertStore::empty();
    roots.add(trusted).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect((NODE_IP, TLS_PORT)).await?;
    let local = tcp.local_addr()?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(NAME).unwrap(), tcp)
        .await?;
    let mut request = format!("wss://{NAME}:{TLS_PORT}/").into_client_request()?;
    if let Some(protocol) = subprotocol {
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    }
    let (socket, response) =
        tokio::time::timeout(WAIT, tokio_tungstenite::client_async(request, tls))
            .await
            .expect("the handshake ends in time")?;
    assert_eq!(
        response.headers().get("Sec-WebSocket-Protocol").unwrap(),
        "sip"
    );
    Ok((socket, local))
}

async fn send(browser: &mut Browser, text: String) {
    browser.send(Message::text(text)).await.unwrap();
}

/// The next SIP message on the WebSocket, as text.
async fn next(browser: &mut Browser) -> String {
    loop {
        let message = tokio::time::timeout(WAIT, browser.next())
            .await
            .expect("a message in time")
            .expect("the connection is open")
            .unwrap();
        match message {
            Message::Text(text) => return text.to_string(),
            Message::Binary(bytes) => return String::from_utf8_lossy(&bytes).into_owned(),
            _ => continue,
        }
    }
}

fn register(cseq: u32, authorization: &str) -> String {
    format!(
        "REGISTER sip:{NODE_IP} SIP/2.0\r\n\
         Via: SIP/2.0/WSS {INVALID};branch=z9hG4bKwsreg{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:w@{NODE_IP}>;tag=wsreg\r\n\
         To: <sip:w@{NODE_IP}>\r\n\
         Call-ID: ws-register\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:w@{INVALID};transport=ws>;expires=600\r\n\
         {authorization}Content-Length: 0\r\n\r\n"
    )
}

/// The browser's answer to `request`, with its `.invalid` Contact.
fn answer(request: &str, status: &str) -> String {
    let mut copied = String::new();
    for line in request.split("\r\n") {
        if line.starts_with("To:") && !line.contains(";tag=") {
            copied.push_str(&format!("{line};tag=browser\r\n"));
        } else if ["To:", "Via:", "Record-Route:", "From:", "Call-ID:", "CSeq:"]
            .iter()
            .any(|name| line.starts_with(name))
        {
            copied.push_str(&format!("{line}\r\n"));
        }
    }
    format!(
        "SIP/2.0 {status}\r\n{copied}Contact: <sip:w@{INVALID};transport=ws>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// A request of the UDP phone inside the dialog whose 200 is `ok`: to the remote Contact,
/// along the Record-Route set.
fn in_dialog(method: &str, cseq: u32, phone: SocketAddr, ok: &str, call_id: &str) -> String {
    let target = phone::headers(ok, "Contact")[0]
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_string();
    let route = phone::headers(ok, "Record-Route").join(", ");
    let (from, to) = (phone::headers(ok, "From")[0], phone::headers(ok, "To")[0]);
    format!(
        "{method} {target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {phone};branch=z9hG4bK{method}{cseq}{call_id};rport\r\n\
         Route: {route}\r\n\
         Max-Forwards: 70\r\n\
         From: {from}\r\n\
         To: {to}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

#[tokio::test]
async fn a_webrtc_client_registers_over_secure_websocket_and_calls_both_ways() {
    let directory = Arc::new(MemoryDirectory::new());
    directory.insert("a", None, Secret::Password(PASSWORD.into()));
    directory.insert("w", None, Secret::Password(PASSWORD.into()));
    let engine = Engine::new("test")
        .with_directory(directory, Arc::new(MemoryLocationStore::new()))
        .with_keepalive(KeepAliveSettings {
            interval: Duration::from_secs(3600),
            max_missed: 3,
        });
    engine
        .start(NodeSpec {
            id: 89,
            ip: NODE_IP.parse().unwrap(),
            udp_port: PORT,
            tcp_port: PORT,
            role: NodeRole::Switch,
        })
        .await
        .expect("node starts");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![NAME.into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    engine
        .serve_tls(
            89,
            Some(TlsSpec {
                port: TLS_PORT,
                chain_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            }),
        )
        .await
        .expect("TLS serves");
    let trusted = cert.der().clone();
    let node = SocketAddr::new(NODE_IP.parse().unwrap(), PORT);

    // A WebSocket client that does not speak SIP is refused at the upgrade.
    let refused = connect(trusted.clone(), None).await;
    assert!(
        matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 400),
        "{refused:?}"
    );

    let (mut browser, browser_addr) = connect(trusted, Some("sip")).await.expect("upgraded");
    send(&mut browser, register(1, "")).await;
    let challenge = next(&mut browser).await;
    assert!(challenge.starts_with("SIP/2.0 401 "), "{challenge}");
    let auth = phone::authorization("w", PASSWORD, NODE_IP, &challenge);
    send(&mut browser, register(2, &auth)).await;
    let registered = next(&mut browser).await;
    assert!(registered.starts_with("SIP/2.0 200 "), "{registered}");

    // A UDP phone (a carrier's caller, from outside the domain) calls the browser's user.
    let phone_a = UdpSocket::bind("127.0.101.2:0").await.unwrap();
    let a = phone_a.local_addr().unwrap();
    phone::sign_in(&phone_a, "a", PASSWORD, NODE_IP, node, WAIT).await;
    let invite = format!(
        "INVITE sip:w@{NODE_IP} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {a};branch=z9hG4bKtows;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+15550100@carrier.test>;tag=caller\r\n\
         To: <sip:w@{NODE_IP}>\r\n\
         Call-ID: to-browser\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:+15550100@{a}>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    phone_a.send_to(invite.as_bytes(), node).await.unwrap();
    let (trying, _) = phone::receive(&phone_a, WAIT).await;
    assert!(trying.starts_with("SIP/2.0 100 "), "{trying}");
    let offered = next(&mut browser).await;
    assert!(
        offered.starts_with(&format!("INVITE sip:w@{INVALID};transport=")),
        "the INVITE comes down the WebSocket, to the registered Contact: {offered}"
    );
    send(&mut browser, answer(&offered, "200 OK")).await;
    let (ok, _) = phone::receive(&phone_a, WAIT).await;
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
    assert!(
        phone::headers(&ok, "Contact")[0].contains(&browser_addr.to_string()),
        "the browser's Contact names its connection: {ok}"
    );
    phone_a
        .send_to(in_dialog("BYE", 2, a, &ok, "to-browser").as_bytes(), node)
        .await
        .unwrap();
    let bye = next(&mut browser).await;
    assert!(
        bye.starts_with("BYE "),
        "the BYE follows the route down the WebSocket: {bye}"
    );
    send(&mut browser, answer(&bye, "200 OK")).await;
    let (bye_ok, _) = phone::receive(&phone_a, WAIT).await;
    assert!(
        bye_ok.starts_with("SIP/2.0 200 ") && bye_ok.contains("CSeq: 2 BYE"),
        "{bye_ok}"
    );

    // The browser calls `a`: challenged on the WebSocket as a user of the domain, then
    // proxied, with the answer coming back on its connection.
    let call = |cseq: u32, credentials: &str| {
        format!(
            "INVITE sip:a@{NODE_IP} SIP/2.0\r\n\
             Via: SIP/2.0/WSS {INVALID};branch=z9hG4bKfromws{cseq}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:w@{NODE_IP}>;tag=browser\r\n\
             To: <sip:a@{NODE_IP}>\r\n\
             Call-ID: from-browser\r\n\
             CSeq: {cseq} INVITE\r\n\
             Contact: <sip:w@{INVALID};transport=ws;ob>\r\n\
             {credentials}Content-Length: 0\r\n\r\n"
        )
    };
    send(&mut browser, call(1, "")).await;
    let challenge = next(&mut browser).await;
    assert!(challenge.starts_with("SIP/2.0 407 "), "{challenge}");
    let to = phone::headers(&challenge, "To")[0].to_string();
    send(
        &mut browser,
        format!(
            "ACK sip:a@{NODE_IP} SIP/2.0\r\nVia: SIP/2.0/WSS {INVALID};branch=z9hG4bKfromws1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:w@{NODE_IP}>;tag=browser\r\nTo: {to}\r\n\
             Call-ID: from-browser\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        ),
    )
    .await;
    let credentials =
        phone::proxy_authorization("w", PASSWORD, &format!("sip:a@{NODE_IP}"), &challenge);
    send(&mut browser, call(2, &credentials)).await;
    let trying = next(&mut browser).await;
    assert!(trying.starts_with("SIP/2.0 100 "), "{trying}");
    let (ringing_a, _) = phone::receive(&phone_a, WAIT).await;
    assert!(
        ringing_a.starts_with(&format!("INVITE sip:a@{a}")),
        "{ringing_a}"
    );
    assert!(
        phone::headers(&ringing_a, "Contact")[0].contains(&browser_addr.to_string()),
        "the browser's Contact names its connection: {ringing_a}"
    );
    phone_a
        .send_to(phone::respond(&ringing_a, "200 OK", a).as_bytes(), node)
        .await
        .unwrap();
    let answered = next(&mut browser).await;
    assert!(
        answered.starts_with("SIP/2.0 200 ") && answered.contains("Call-ID: from-browser"),
        "{answered}"
    );

    engine.stop_all().await;
}
