//! Running Debian's SIPp (`sip-tester`) from the engine's tests, with the scenarios of this
//! folder.
//!
//! Every run is bounded twice: SIPp's own global `-timeout` (it fails the run), and a bound
//! of the test's own after which the process is killed and the test fails. A load run
//! ([`Sipp::rate`]) sets both longer with [`Sipp::timeout`].

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// SIPp's own time limit for a run, unless [`Sipp::timeout`] says otherwise.
const SIPP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long past SIPp's own limit the test waits before it kills SIPp and fails.
const GRACE: Duration = Duration::from_secs(10);

/// Fails the test (rather than passing unseen) when SIPp is missing: the test command
/// installs it.
pub fn require() {
    let found = std::process::Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(found, "sipp is not installed (Debian package sip-tester)");
}

/// One SIPp invocation: a scenario file of this folder and its arguments.
pub struct Sipp {
    args: Vec<String>,
    /// SIPp's `-timeout`; the test's own bound is this plus [`GRACE`].
    timeout: Duration,
}

impl Sipp {
    /// A run of `scenario` over UDP from `local_ip` (SIPp picks the port), stopping after
    /// `calls` calls (for a server scenario, each incoming transaction is a call).
    pub fn new(scenario: &str, local_ip: &str, calls: u32) -> Self {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/sipp")
            .join(scenario);
        let args = [
            "-sf",
            &path.to_string_lossy(),
            "-i",
            local_ip,
            "-t",
            "u1",
            "-m",
            &calls.to_string(),
            "-timeout_error",
            "-nostdin",
            "-buff_size",
            "4194304",
        ]
        .map(String::from)
        .to_vec();
        Sipp {
            args,
            timeout: SIPP_TIMEOUT,
        }
    }

    /// SIPp's own time limit for the whole run (10 s unless set); the test kills it
    /// [`GRACE`] later.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `-r calls -rp 1000 -l limit`: a client scenario starts `calls_per_second` calls a
    /// second, with at most `limit` in progress at once (SIPp's default limit follows the
    /// scenario's pauses, which is next to nothing for a zero-length call).
    pub fn rate(mut self, calls_per_second: u32, limit: u32) -> Self {
        self.args.extend([
            "-r".to_string(),
            calls_per_second.to_string(),
            "-rp".to_string(),
            "1000".to_string(),
            "-l".to_string(),
            limit.to_string(),
        ]);
        self
    }

    /// `-cid_str format`: the Call-IDs of a client scenario's calls (`%u`, the call number,
    /// makes them the same from one run to the next).
    pub fn call_ids(mut self, format: &str) -> Self {
        self.args.extend(["-cid_str", format].map(String::from));
        self
    }

    /// `-key name value`: the scenario's `[name]` reads `value`.
    pub fn key(mut self, name: &str, value: &str) -> Self {
        self.args.extend(["-key", name, value].map(String::from));
        self
    }

    /// `-trace_msg -message_file path`: every message sent and received, for a look at a
    /// failing run.
    pub fn trace_messages(mut self, path: &std::path::Path) -> Self {
        self.args.extend([
            "-trace_msg".to_string(),
            "-message_file".to_string(),
            path.to_string_lossy().into_owned(),
        ]);
        self
    }

    /// `-trace_logs -log_file path`: the scenario's `<log>` actions write to `path`.
    pub fn log_to(mut self, path: &std::path::Path) -> Self {
        self.args.extend([
            "-trace_logs".to_string(),
            "-log_file".to_string(),
            path.to_string_lossy().into_owned(),
        ]);
        self
    }

    /// Binds SIPp to this local port.
    pub fn port(mut self, port: u16) -> Self {
        self.args.extend(["-p".to_string(), port.to_string()]);
        self
    }

    /// Calls `target` (a client scenario); without it the scenario waits for requests.
    pub fn to(mut self, target: std::net::SocketAddr) -> Self {
        self.args.insert(0, target.to_string());
        self
    }

    /// `-s user -au user -ap password`: the service (user) and its digest credentials.
    pub fn user(mut self, user: &str, password: &str) -> Self {
        self.args
            .extend(["-s", user, "-au", user, "-ap", password].map(String::from));
        self
    }

    /// `-au user -ap password`: the credentials that answer digest challenges.
    pub fn credentials(mut self, user: &str, password: &str) -> Self {
        self.args
            .extend(["-au", user, "-ap", password].map(String::from));
        self
    }

    /// `-ci ip -cp port`: SIPp's remote control socket at `control`, where [`press`] sends
    /// it keys.
    pub fn control(mut self, control: std::net::SocketAddr) -> Self {
        self.args.extend([
            "-ci".to_string(),
            control.ip().to_string(),
            "-cp".to_string(),
            control.port().to_string(),
        ]);
        self
    }

    /// `-s user`: the user a client scenario calls.
    pub fn service(mut self, user: &str) -> Self {
        self.args.extend(["-s", user].map(String::from));
        self
    }

    /// `-default_behaviors all,-abortunexp`: a message the scenario does not expect is
    /// discarded instead of aborting the call (with a BYE SIPp builds from the INVITE,
    /// outside the dialog).
    pub fn tolerate_unexpected(mut self) -> Self {
        self.args
            .extend(["-default_behaviors", "all,-abortunexp"].map(String::from));
        self
    }

    pub fn spawn(self) -> Running {
        let timeout = format!("{}ms", self.timeout.as_millis());
        let child = Command::new("sipp")
            .args(&self.args)
            .args(["-timeout", &timeout])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("sipp starts");
        Running {
            child,
            bound: self.timeout + GRACE,
        }
    }

    /// Runs to the end: whether SIPp reports success, and what it printed.
    pub async fn run(self) -> (bool, String) {
        self.spawn().finish().await
    }
}

/// Waits until something listens on UDP `addr` (a SIPp just spawned binds within
/// milliseconds; a request sent before would only be retransmitted). Reads the kernel's
/// socket table rather than trying to bind, which could take the port from SIPp.
pub async fn listening(addr: std::net::SocketAddr) {
    let std::net::IpAddr::V4(ip) = addr.ip() else {
        panic!("IPv4 only: {addr}");
    };
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(ip.octets()),
        addr.port()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let table = std::fs::read_to_string("/proc/net/udp").expect("the UDP socket table");
        if table
            .lines()
            .any(|line| line.split_whitespace().nth(1) == Some(local.as_str()))
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing listens on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Presses `key` on the SIPp whose control socket is at `control` (see [`Sipp::control`]):
/// `p` pauses its new calls (the calls under way go on) and, pressed again, resumes them.
pub fn press(control: std::net::SocketAddr, key: &str) {
    let socket = std::net::UdpSocket::bind((control.ip(), 0)).expect("a socket for SIPp's keys");
    socket
        .send_to(key.as_bytes(), control)
        .expect("SIPp's control socket takes the key");
}

/// A SIPp process under way (killed if dropped).
pub struct Running {
    child: Child,
    /// How long the test waits for it.
    bound: Duration,
}

impl Running {
    pub async fn finish(self) -> (bool, String) {
        // Reads the pipes while waiting, so that SIPp never blocks on a full one; a run past
        // the bound drops the child, which kills it.
        match tokio::time::timeout(self.bound, self.child.wait_with_output()).await {
            Ok(output) => {
                let output = output.expect("sipp runs");
                let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&output.stderr));
                (output.status.success(), text)
            }
            Err(_) => panic!("sipp outlived its own -timeout"),
        }
    }
}
