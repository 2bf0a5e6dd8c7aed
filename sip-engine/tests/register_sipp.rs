//! REGISTER against a node started through [`Engine`], driven by real SIPp (Debian's
//! `sip-tester`): a phone with the right password is challenged and then registered; one
//! with a wrong password is challenged again and again, and never gets 200.
//!
//! Every SIPp run is a single call (`-m 1`) under a global `-timeout`, and the test also
//! kills it if it outlives a bound of its own.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sip_engine::digest::{Algorithm, Authenticator};
use sip_engine::{
    Engine, LocationStore, MemoryDirectory, MemoryLocationStore, NodeRole, NodeSpec, Registrar,
    Secret,
};

mod sipp;

use sipp::Sipp;

const USER: &str = "alice";
const PASSWORD: &str = "correct-horse";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_registers_with_the_right_password_and_never_with_a_wrong_one() {
    // The test command installs SIPp; without it this test must fail, not pass unseen.
    sipp::require();
    let ip: IpAddr = "127.0.70.201".parse().unwrap();
    let port = 5060;
    let directory = Arc::new(MemoryDirectory::new());
    directory.insert(USER, None, Secret::Password(PASSWORD.into()));
    let store = Arc::new(MemoryLocationStore::new());
    // SIPp 3.6 answers only the first challenge and knows only MD5: a node left at its
    // default digest algorithms (MD5, then SHA-256) lets it register, whatever order the
    // engine's registrar would offer on its own.
    let auth = Arc::new(Authenticator::with_random_secret(Duration::from_secs(300)));
    let registrar = Registrar::new(directory, store.clone(), auth)
        .with_algorithms(&[Algorithm::Sha256, Algorithm::Md5]);
    let engine = Engine::new("test").with_registrar(registrar);
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
    let aor = format!("sip:{USER}@{ip}");

    let (ok, output) = Sipp::new("register_wrong_password.xml", "127.0.0.1", 1)
        .to(target)
        .user(USER, "wrong")
        .run()
        .await;
    assert!(ok, "a wrong password must be challenged again:\n{output}");
    assert!(store.lookup(&aor, SystemTime::now()).unwrap().is_empty());

    let (ok, output) = Sipp::new("register.xml", "127.0.0.1", 1)
        .to(target)
        .user(USER, PASSWORD)
        .run()
        .await;
    assert!(ok, "the right password must get 200:\n{output}");
    let bindings = store.lookup(&aor, SystemTime::now()).unwrap();
    assert_eq!(bindings.len(), 1, "{bindings:?}");
    assert_eq!(
        bindings[0].received.ip(),
        "127.0.0.1".parse::<IpAddr>().unwrap()
    );
    assert!(bindings[0].expires_in(SystemTime::now()) > 290);

    engine.stop_all().await;
}
