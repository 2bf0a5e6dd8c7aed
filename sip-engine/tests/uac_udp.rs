//! UAC Auth over real loopback UDP: a node configured to register upstream sends REGISTER
//! from its own address to a carrier's registrar (a socket of this test), answers the MD5
//! challenge with the configured credentials (checked here with the engine's own digest
//! code), shows Registered, refreshes before the granted lifetime ends, and shows Failed
//! when the carrier refuses the credentials. Every wait is bounded.

use std::net::SocketAddr;
use std::time::Duration;

use sip_engine::digest::{ha1, Algorithm, Credentials};
use sip_engine::{Engine, NodeConfig, NodeRole, NodeSpec, UacRegistration, UacStatus};
use tokio::net::UdpSocket;

const NODE_IP: &str = "127.0.89.1";
const WAIT: Duration = Duration::from_secs(5);

/// The next REGISTER the carrier gets, and where from.
async fn next_register(carrier: &UdpSocket) -> (String, SocketAddr) {
    let mut buf = vec![0u8; 8192];
    let (len, from) = tokio::time::timeout(WAIT, carrier.recv_from(&mut buf))
        .await
        .expect("a REGISTER in time")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..len]).to_string();
    assert!(text.starts_with("REGISTER sip:"), "{text}");
    (text, from)
}

/// The carrier's answer to `request`: its Via, From, To, Call-ID and CSeq copied.
fn answer(request: &str, status: &str, extra: &str) -> String {
    let copied: String = request
        .split("\r\n")
        .filter(|l| {
            ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
                .iter()
                .any(|h| l.starts_with(h))
        })
        .map(|l| format!("{l}\r\n"))
        .collect();
    format!("SIP/2.0 {status}\r\n{copied}{extra}Content-Length: 0\r\n\r\n")
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message
        .split("\r\n")
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

async fn status_becomes(engine: &Engine, wanted: impl Fn(&UacStatus) -> bool) -> UacStatus {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = engine.uac_status(1).expect("the node runs");
        if wanted(&status) || tokio::time::Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_node_registers_upstream_with_digest_and_refreshes() {
    let carrier = UdpSocket::bind("127.0.89.2:0").await.unwrap();
    let registrar = carrier.local_addr().unwrap();
    let engine = Engine::new("test");
    engine
        .start(NodeSpec {
            id: 1,
            ip: NODE_IP.parse().unwrap(),
            udp_port: 15090,
            tcp_port: 15090,
            role: NodeRole::Switch,
        })
        .await
        .expect("node starts");
    assert_eq!(engine.uac_status(1), Some(UacStatus::Off));
    let config = |password: &str| NodeConfig {
        uac_registration: Some(UacRegistration {
            registrar,
            username: "trunk-7".into(),
            password: password.into(),
        }),
        ..NodeConfig::default()
    };
    assert!(engine.configure(1, config("carrier secret")));

    for round in 0..2 {
        let (first, from) = next_register(&carrier).await;
        assert_eq!(
            from,
            format!("{NODE_IP}:15090").parse().unwrap(),
            "from the node's socket"
        );
        assert!(header(&first, "Authorization").is_none(), "{first}");
        let challenge = format!(
            "WWW-Authenticate: Digest realm=\"carrier.test\", nonce=\"n{round}\", qop=\"auth\", algorithm=MD5\r\n"
        );
        carrier
            .send_to(
                answer(&first, "401 Unauthorized", &challenge).as_bytes(),
                from,
            )
            .await
            .unwrap();
        let (second, _) = next_register(&carrier).await;
        let credentials =
            Credentials::parse(header(&second, "Authorization").expect("credentials")).unwrap();
        let key = ha1(Algorithm::Md5, "trunk-7", "carrier.test", "carrier secret");
        assert_eq!(credentials.username, "trunk-7");
        assert_eq!(credentials.nonce, format!("n{round}"));
        assert_eq!(
            credentials.response,
            credentials.expected_response(&key, "REGISTER")
        );
        // A lifetime of 2 s: the node must be back within it.
        carrier
            .send_to(answer(&second, "200 OK", "Expires: 2\r\n").as_bytes(), from)
            .await
            .unwrap();
        let status = status_becomes(&engine, |s| matches!(s, UacStatus::Registered { .. })).await;
        assert!(matches!(status, UacStatus::Registered { .. }), "{status:?}");
    }

    // Wrong credentials: challenged again, the node gives up and says so.
    assert!(engine.configure(1, config("wrong")));
    loop {
        let (request, from) = next_register(&carrier).await;
        let challenge =
            "WWW-Authenticate: Digest realm=\"carrier.test\", nonce=\"again\", algorithm=MD5\r\n";
        carrier
            .send_to(
                answer(&request, "401 Unauthorized", challenge).as_bytes(),
                from,
            )
            .await
            .unwrap();
        if header(&request, "Authorization").is_some() {
            break;
        }
    }
    let status = status_becomes(&engine, |s| matches!(s, UacStatus::Failed(_))).await;
    assert_eq!(
        status,
        UacStatus::Failed("the registrar refused the credentials".into())
    );

    engine.configure(1, NodeConfig::default());
    assert_eq!(
        status_becomes(&engine, |s| *s == UacStatus::Off).await,
        UacStatus::Off
    );
    engine.stop_all().await;
}
