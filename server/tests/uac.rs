//! UAC Auth from the console: with a username, password and registrar saved, the server's
//! node registers to the carrier (a socket of this test that challenges and checks the
//! digest) and the page says so; a registrar that is not `IP:port` is a field error and
//! changes nothing.

mod common;

use std::time::Duration;

use app::model::ServerConfigView;
use md5::{Digest, Md5};
use tokio::net::UdpSocket;

fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The value of `name="…"` (or unquoted) in a header value.
fn param(value: &str, name: &str) -> String {
    let at = value.find(&format!("{name}=")).expect(name) + name.len() + 1;
    let rest = &value[at..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next().unwrap_or_default().to_string(),
        None => rest
            .split([',', ' '])
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_registers_upstream_with_its_uac_auth_credentials() {
    let app = common::spawn_app("127.0.97.1-127.0.97.10").await;
    let client = app.account_with_balance("uac@acme.test", 100).await;
    let (server, _) = client.deploy_switch().await;
    let carrier = UdpSocket::bind("127.0.97.200:0").await.unwrap();
    let registrar = carrier.local_addr().unwrap().to_string();

    let refused = client
        .save_config(server.id, &[("uac_auth_registrar", "carrier.example")])
        .await
        .unwrap_err();
    assert!(
        refused.for_field("uac_auth_registrar").is_some(),
        "{refused:?}"
    );
    let view: ServerConfigView = client
        .call("get_server_config", &[("id", &server.id.to_string())])
        .await
        .unwrap();
    assert_eq!(view.config.uac_auth_registrar, None, "nothing stored");

    client
        .save_config(
            server.id,
            &[
                ("uac_auth_username", "trunk-7"),
                ("uac_auth_password", "carrier secret"),
                ("uac_auth_registrar", &registrar),
            ],
        )
        .await
        .expect("UAC Auth saved");

    // The carrier challenges, then checks the digest before it says 200.
    let mut buf = vec![0u8; 8192];
    let mut receive = async || {
        let (len, from) = tokio::time::timeout(Duration::from_secs(5), carrier.recv_from(&mut buf))
            .await
            .expect("a REGISTER")
            .unwrap();
        (String::from_utf8_lossy(&buf[..len]).to_string(), from)
    };
    let (first, from) = receive().await;
    assert!(
        first.starts_with(&format!("REGISTER sip:{registrar} SIP/2.0")),
        "{first}"
    );
    assert_eq!(
        from.ip().to_string(),
        server.ip,
        "from the server's own address"
    );
    let challenge =
        "WWW-Authenticate: Digest realm=\"carrier.test\", nonce=\"abc\", algorithm=MD5\r\n";
    carrier
        .send_to(
            answer(&first, "401 Unauthorized", challenge).as_bytes(),
            from,
        )
        .await
        .unwrap();
    let (second, from) = receive().await;
    let credentials = second
        .split("\r\n")
        .find_map(|l| l.strip_prefix("Authorization:"))
        .expect("credentials")
        .to_string();
    let ha1 = md5_hex("trunk-7:carrier.test:carrier secret");
    let ha2 = md5_hex(&format!("REGISTER:{}", param(&credentials, "uri")));
    assert_eq!(
        param(&credentials, "response"),
        md5_hex(&format!("{ha1}:abc:{ha2}"))
    );
    carrier
        .send_to(
            answer(&second, "200 OK", "Expires: 300\r\n").as_bytes(),
            from,
        )
        .await
        .unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let view: ServerConfigView = client
            .call("get_server_config", &[("id", &server.id.to_string())])
            .await
            .unwrap();
        if view.uac_status.contains("registered upstream until") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            view.uac_status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
