//! `registrar-node`: one sipfleet SIP node serving REGISTER with digest authentication, for
//! `bench/registrar.sh`, which drives it and Kamailio with the same SIPp load.
//!
//! It runs the engine as a deployed Switch runs it (registrar, transactions, keep-alives at
//! the default 30 s OPTIONS), with two differences the benchmark needs: users come from an
//! in-memory directory (`bench00001`… with one password) rather than the console's store,
//! and bindings stay in the in-memory location store (Kamailio's usrloc in `db_mode` 0 is
//! the same), without the console's write-behind copy to SQLite.
//!
//! Usage: `registrar-node <ip> <port> <users> <password>`. Once serving it prints `ready`,
//! then every second a line `heap=<bytes> bindings=<n>`: the bytes the process has
//! allocated and not freed (counted by the global allocator below), and the bindings in
//! the location store (lapsed ones included until swept). It runs until killed.
//!
//! `registrar-node ping <ip:port> <count>` is the other side: it sends `count` OPTIONS
//! pings, one after the other, and prints the round trip's median and 90th percentile in
//! microseconds (`median_us=… p90_us=…`), so that two builds of the node can be timed by the
//! same client in one run.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sip_engine::digest::{Algorithm, Authenticator};
use sip_engine::{
    Engine, MemoryDirectory, MemoryLocationStore, NodeRole, NodeSpec, Registrar, Secret,
};

/// The system allocator, keeping count of the bytes currently allocated.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to `System` unchanged; only the count is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let grown = unsafe { System.realloc(ptr, layout, new_size) };
        if !grown.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        grown
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [command, target, count] = args.as_slice() {
        if command == "ping" {
            ping(target, count).await;
            return;
        }
    }
    let [ip, port, users, password] = args.as_slice() else {
        eprintln!("usage: registrar-node <ip> <port> <users> <password>");
        std::process::exit(2);
    };
    let ip: IpAddr = ip.parse().expect("an IP address");
    let port: u16 = port.parse().expect("a port");
    let users: usize = users.parse().expect("a user count");

    let directory = Arc::new(MemoryDirectory::new());
    for n in 1..=users {
        directory.insert(
            &format!("bench{n:05}"),
            None,
            Secret::Password(password.clone()),
        );
    }
    let store = Arc::new(MemoryLocationStore::new());
    // SIPp 3.6 answers only the first challenge and knows only MD5: MD5 is offered first.
    let auth = Arc::new(Authenticator::with_random_secret(Duration::from_secs(300)));
    let registrar = Registrar::new(directory, store.clone(), auth)
        .with_algorithms(&[Algorithm::Md5, Algorithm::Sha256]);
    let engine = Engine::new("bench").with_registrar(registrar);
    engine
        .start(NodeSpec {
            id: 1,
            ip,
            udp_port: port,
            tcp_port: port,
            role: NodeRole::Switch,
        })
        .await
        .expect("the node starts");

    let mut out = std::io::stdout();
    let _ = writeln!(out, "ready");
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        // Read before counting: the count itself allocates.
        let heap = LIVE.load(Ordering::Relaxed);
        let bindings = store.len();
        let _ = writeln!(out, "heap={heap} bindings={bindings}");
        let _ = out.flush();
    }
}

/// Times `count` OPTIONS round trips to `target`, one at a time.
async fn ping(target: &str, count: &str) {
    let target: std::net::SocketAddr = target.parse().expect("an ip:port");
    let count: usize = count.parse().expect("a count");
    let mut rtts = Vec::with_capacity(count);
    for _ in 0..count {
        match sip_engine::options_ping(
            target,
            sip_engine::ProbeTransport::Udp,
            Duration::from_secs(2),
        )
        .await
        {
            Ok(rtt) => rtts.push(rtt),
            Err(error) => eprintln!("ping failed: {error}"),
        }
    }
    rtts.sort();
    let at = |q: f64| {
        rtts.get(((rtts.len() as f64 - 1.0) * q).round() as usize)
            .map_or(0, |d| d.as_micros())
    };
    println!(
        "median_us={} p90_us={} answered={}",
        at(0.5),
        at(0.9),
        rtts.len()
    );
}
