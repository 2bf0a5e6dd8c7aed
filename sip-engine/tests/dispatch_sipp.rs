//! The Dispatcher's acceptance (issue "Dispatcher servers that really balance") with real
//! SIPp (Debian's `sip-tester`) as callers and callee, and real engine nodes as the cluster:
//! one [`Engine`] runs a Dispatcher and two or four Switches, each on an address of its own,
//! configured as the control plane configures a cluster (the switches name their cluster
//! and its other members, the Dispatcher among them; the Dispatcher balances over the
//! switches).
//!
//! - round-robin: 1,000 zero-length calls land 500 ± 10 on each of two switches;
//! - weighted 3:1: 1,000 calls land 750 ± 30 and 250 ± 30;
//! - hash over Call-ID with four switches, one stopped: the calls of the three live ones
//!   keep their switch, and the dead one's share spreads with max/min ≤ 1.3;
//! - a switch stopped during a 20 CPS load: it is Inactive within `probe_interval ×
//!   probe_failures + 1 s`, the calls that reached it before then complete through the
//!   other switch (failover inside their transaction), no call fails; started again, it is
//!   Active within `probe_interval × probe_successes + 1 s` and takes calls again. The
//!   switch is stopped with no call in progress on it (the caller's SIPp holds its new
//!   calls for that moment, through its control socket, and goes on at once): a call
//!   whose dialog the switch already holds dies with it whatever the Dispatcher does (its
//!   200, ACK and BYE are record-routed through that switch), so "no call fails" is
//!   asserted of the calls that reach a dead switch, which is what failover can save.
//!
//! # The parties
//! - The callee is a SIPp UAS (`dispatch_uas.xml`) registered as `bob` THROUGH the
//!   Dispatcher: its REGISTER reaches a switch with the Dispatcher's Path, so whichever
//!   switch carries a call reaches it through the Dispatcher. It answers every call and
//!   logs (SIPp's `-trace_logs`) each call's Call-ID and the switch whose Record-Route the
//!   INVITE carries: the switch-side count of who carried which call. The Dispatcher's own
//!   count is [`Engine::dispatch_status`] (`sent_last_minute`: calls sent to the switch it
//!   chose first).
//! - The caller is a SIPp UAC (`dispatch_uac.xml`) calling `bob` at a bounded rate; its
//!   ACK and BYE go to the 200's Contact along the recorded route set, as every phone
//!   sends them. Its From is SIPp's own address, a domain no node serves, so no switch
//!   challenges it: a caller claiming a user of a node's domain would get a 407 and send
//!   its INVITE again, and under round-robin that second INVITE is a second turn of the
//!   Dispatcher (the calls would land wherever the retries fall, not one a switch a call).
//!
//! # The dialog's remote target
//! A node points the Contact of an initial request and of a 1xx/2xx at the address the
//! message came from only when it came straight from the phone (`forward::rewrite`): through
//! Dispatcher → switch → Dispatcher the caller gets the callee's own (NAT-fixed) Contact,
//! not a proxy's, and its BYE reaches the callee.
//! [`a_call_through_the_dispatcher_is_hung_up_at_the_callee_s_contact`] holds that.
//!
//! Each SIPp run is bounded by SIPp's `-timeout` and by the test's own bound; every wait
//! on the engine polls with a deadline. The tests take turns (one lock), so that the load of
//! one does not skew the timings of another on a small machine. Addresses: the Dispatchers,
//! callers and callees on 127.0.110.0/24, the switches on 127.0.111.0/24 (the callee's
//! scenario recognises the switch's Record-Route entry by that), used by no other test.

mod sipp;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sip_engine::digest::{Algorithm, Authenticator};
use sip_engine::{
    Balancing, DispatchConfig, Engine, KeepAliveMode, KeepAliveSettings, MemoryDirectory,
    MemoryLocationStore, NodeConfig, NodeRole, NodeSpec, Registrar, Secret, SwitchStatus,
    SwitchTarget,
};
use sipp::Sipp;
use tokio::time::Instant;

const CALLEE: &str = "bob";
const PASSWORD: &str = "correct-horse";
const SIP_PORT: u16 = 5060;
const CALLER_PORT: u16 = 5070;
const CALLEE_PORT: u16 = 5080;

/// The tests of this file take turns: each is a load of its own.
static LOAD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One test's cluster: a Dispatcher and its switches in one engine. Test `t` has the
/// Dispatcher at 127.0.110.(10t), its caller at .(10t+1), its callee at .(10t+2), and
/// switch `i` (from 1) at 127.0.111.(10t+i); ids follow the same pattern from 1100.
struct Cluster {
    engine: Engine,
    test: u8,
    dispatcher: SocketAddr,
    switches: Vec<Switch>,
    /// Where the callee's SIPp logs the switch of each call.
    log: PathBuf,
}

struct Switch {
    spec: NodeSpec,
    config: NodeConfig,
}

impl Switch {
    fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.spec.ip, self.spec.udp_port)
    }
}

fn ip(net: u8, host: u8) -> IpAddr {
    IpAddr::from([127, 0, net, host])
}

impl Cluster {
    /// Starts the Dispatcher of test `test` balancing by `algorithm` over switches of
    /// `weights` (one switch each), probed every `probe_interval`, out after 2 misses,
    /// back after 2 answers.
    async fn start(
        test: u8,
        algorithm: Balancing,
        weights: &[u32],
        probe_interval: Duration,
    ) -> Cluster {
        sipp::require();
        let directory = Arc::new(MemoryDirectory::new());
        directory.insert(CALLEE, None, Secret::Password(PASSWORD.into()));
        // No keep-alive may reach the callee's scenario, which expects calls only.
        directory.set_keepalive_mode(CALLEE, None, KeepAliveMode::Disabled);
        let store = Arc::new(MemoryLocationStore::new());
        let auth = Arc::new(Authenticator::with_random_secret(Duration::from_secs(300)));
        // SIPp 3.6 answers only the first challenge and knows only MD5.
        let registrar = Registrar::new(directory, store, auth)
            .with_algorithms(&[Algorithm::Md5, Algorithm::Sha256]);
        let engine = Engine::new("test")
            .with_registrar(registrar)
            .with_keepalive(KeepAliveSettings {
                interval: Duration::from_secs(3600),
                max_missed: 3,
            });
        let cluster_id = i64::from(test);
        let base = 1100 + 10 * i64::from(test);
        let dispatcher_ip = ip(110, 10 * test);
        let switch_ips: Vec<IpAddr> = (1..=weights.len() as u8)
            .map(|i| ip(111, 10 * test + i))
            .collect();
        let mut switches = Vec::new();
        for (i, switch_ip) in switch_ips.iter().enumerate() {
            let spec = NodeSpec {
                id: base + 1 + i as i64,
                ip: *switch_ip,
                udp_port: SIP_PORT,
                tcp_port: SIP_PORT,
                role: NodeRole::Switch,
            };
            let config = NodeConfig {
                cluster: Some(cluster_id),
                cluster_peers: std::iter::once(dispatcher_ip)
                    .chain(switch_ips.iter().copied().filter(|ip| ip != switch_ip))
                    .collect(),
                ..NodeConfig::default()
            };
            engine.start(spec.clone()).await.expect("a switch starts");
            assert!(engine.configure(spec.id, config.clone()));
            switches.push(Switch { spec, config });
        }
        engine
            .start(NodeSpec {
                id: base,
                ip: dispatcher_ip,
                udp_port: SIP_PORT,
                tcp_port: SIP_PORT,
                role: NodeRole::Dispatcher,
            })
            .await
            .expect("the dispatcher starts");
        let targets = switches
            .iter()
            .zip(weights)
            .map(|(switch, weight)| SwitchTarget {
                id: switch.spec.id,
                addr: switch.addr(),
                weight: *weight,
            })
            .collect();
        assert!(engine.configure(
            base,
            NodeConfig {
                cluster: Some(cluster_id),
                cluster_peers: switch_ips.clone(),
                dispatch: Some(DispatchConfig {
                    algorithm,
                    switches: targets,
                    probe_interval,
                    probe_failures: 2,
                    probe_successes: 2,
                    any_reg: false,
                }),
                ..NodeConfig::default()
            }
        ));
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("dispatch_sipp-{test}-{}.log", std::process::id()));
        let cluster = Cluster {
            engine,
            test,
            dispatcher: SocketAddr::new(dispatcher_ip, SIP_PORT),
            switches,
            log,
        };
        // Every switch answers its probes before any call.
        cluster
            .until(
                "every switch Active and probed",
                Duration::from_secs(5),
                |s| s.iter().all(|s| s.active && s.latency_us.is_some()),
            )
            .await;
        cluster.register_callee().await;
        cluster
    }

    fn dispatcher_id(&self) -> i64 {
        1100 + 10 * i64::from(self.test)
    }

    fn caller(&self) -> SocketAddr {
        SocketAddr::new(ip(110, 10 * self.test + 1), CALLER_PORT)
    }

    /// The caller's SIPp control socket (see [`sipp::press`]).
    fn caller_control(&self) -> SocketAddr {
        SocketAddr::new(ip(110, 10 * self.test + 1), CALLER_PORT + 1)
    }

    fn callee(&self) -> SocketAddr {
        SocketAddr::new(ip(110, 10 * self.test + 2), CALLEE_PORT)
    }

    /// The callee registers through the Dispatcher, from the port it answers calls on.
    async fn register_callee(&self) {
        let callee = self.callee();
        let (ok, output) = Sipp::new("register.xml", &callee.ip().to_string(), 1)
            .port(callee.port())
            .to(self.dispatcher)
            .user(CALLEE, PASSWORD)
            .run()
            .await;
        assert!(ok, "{CALLEE} registers through the Dispatcher:\n{output}");
    }

    fn status(&self) -> Vec<SwitchStatus> {
        self.engine
            .dispatch_status(self.dispatcher_id())
            .expect("the dispatcher runs")
    }

    /// Polls the Dispatcher's view of its switches until `done` holds; fails after `within`.
    /// Returns how long it took.
    async fn until(
        &self,
        what: &str,
        within: Duration,
        done: impl Fn(&[SwitchStatus]) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let status = self.status();
            if done(&status) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "{what}: not within {within:?}: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Calls sent to each switch in the Dispatcher's last minute, in the switches' order.
    fn sent(&self) -> Vec<u64> {
        self.status().iter().map(|s| s.sent_last_minute).collect()
    }

    /// Starts `calls` calls from the caller at `cps` a second to the callee, which answers
    /// them all; `call_ids` fixes their Call-IDs (SIPp's `-cid_str`).
    async fn load(&self, calls: u32, cps: u32, call_ids: Option<&str>) -> Load {
        let _ = std::fs::remove_file(&self.log);
        // Generous: twice the nominal time, and room for a failover's patience.
        let timeout = Duration::from_secs(u64::from(2 * calls / cps) + 15);
        let callee = self.callee();
        let mut answering = Sipp::new("dispatch_uas.xml", &callee.ip().to_string(), calls)
            .port(callee.port())
            .service(CALLEE)
            .log_to(&self.log)
            .timeout(timeout);
        if std::env::var_os("DISPATCH_SIPP_TRACE").is_some() {
            answering = answering.trace_messages(&self.log.with_extension("callee.msg"));
        }
        let answering = answering.spawn();
        sipp::listening(callee).await;
        let caller = self.caller();
        let mut calling = Sipp::new("dispatch_uac.xml", &caller.ip().to_string(), calls)
            .tolerate_unexpected()
            .port(caller.port())
            .control(self.caller_control())
            .to(self.dispatcher)
            .service(CALLEE)
            .rate(cps, 1000)
            .timeout(timeout);
        if std::env::var_os("DISPATCH_SIPP_TRACE").is_some() {
            calling = calling.trace_messages(&self.log.with_extension("caller.msg"));
        }
        if let Some(format) = call_ids {
            calling = calling.call_ids(format);
        }
        Load {
            calling: calling.spawn(),
            answering,
            calls,
        }
    }

    /// Which switch (its index) carried each call, by Call-ID, from the callee's log.
    fn carried(&self) -> HashMap<String, usize> {
        let text = std::fs::read_to_string(&self.log).expect("the callee's log");
        self.parse_carried(&text, true)
    }

    /// As [`carried`](Self::carried), while the callee still writes its log (a line may be
    /// half written; the log may not be there yet).
    fn carried_so_far(&self) -> HashMap<String, usize> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        self.parse_carried(&text, false)
    }

    fn parse_carried(&self, text: &str, complete: bool) -> HashMap<String, usize> {
        let mut carried = HashMap::new();
        for line in text.lines() {
            let Some((call_id, addr)) = line.trim().split_once(' ') else {
                continue;
            };
            let addr: SocketAddr = match addr.trim().parse() {
                Ok(addr) => addr,
                Err(_) if !complete => continue,
                Err(error) => panic!("{line:?} names no switch: {error}"),
            };
            let index = self
                .switches
                .iter()
                .position(|s| s.addr() == addr)
                .unwrap_or_else(|| panic!("{addr} is no switch of this cluster"));
            let earlier = carried.insert(call_id.to_string(), index);
            assert!(earlier.is_none(), "{call_id} reached the callee twice");
        }
        carried
    }

    /// How many calls each switch carried, in the switches' order.
    fn carried_per_switch(&self, carried: &HashMap<String, usize>) -> Vec<u64> {
        let mut counts = vec![0; self.switches.len()];
        for index in carried.values() {
            counts[*index] += 1;
        }
        counts
    }

    /// Stops switch `index` at once (its sockets closed: silence, as a switch that dies).
    async fn stop(&self, index: usize) {
        self.engine.stop(self.switches[index].spec.id).await;
    }

    /// Waits (at most 5 s) until no call is under way on the Dispatcher or any switch and
    /// none has been sent for [`SETTLED`]: long enough, on loopback, for the last call's
    /// final messages to have been relayed everywhere.
    async fn until_no_call_under_way(&self) {
        const SETTLED: Duration = Duration::from_millis(400);
        let deadline = Instant::now() + Duration::from_secs(5);
        let busy = || {
            std::iter::once(self.dispatcher_id())
                .chain(self.switches.iter().map(|s| s.spec.id))
                .any(|id| {
                    self.engine
                        .call_figures(id)
                        .is_some_and(|figures| figures.channels_in_use > 0)
                })
        };
        let mut quiet_since: Option<(Instant, Vec<u64>)> = None;
        loop {
            let sent = self.sent();
            quiet_since = match quiet_since {
                Some((since, before)) if before == sent && !busy() => {
                    if since.elapsed() >= SETTLED {
                        return;
                    }
                    Some((since, before))
                }
                _ if busy() => None,
                _ => Some((Instant::now(), sent)),
            };
            assert!(Instant::now() < deadline, "the calls under way never end");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Starts switch `index` again with its configuration.
    async fn restart(&self, index: usize) {
        let switch = &self.switches[index];
        self.engine
            .start(switch.spec.clone())
            .await
            .expect("the switch starts again");
        assert!(self.engine.configure(switch.spec.id, switch.config.clone()));
    }

    async fn finish(self) {
        let _ = std::fs::remove_file(&self.log);
        self.engine.stop_all().await;
    }
}

/// A load under way: a caller and the callee.
struct Load {
    calling: sipp::Running,
    answering: sipp::Running,
    calls: u32,
}

/// What SIPp counted of a finished load, with its output.
#[derive(Debug)]
struct Counted {
    successful: u64,
    failed: u64,
}

impl Load {
    /// Waits for both ends; fails the test unless every call succeeded at both. (With
    /// `DISPATCH_SIPP_TRACE` set, both ends trace every message beside the callee's log.)
    async fn finish(self) -> Counted {
        let (caller_ok, caller_output) = self.calling.finish().await;
        let (callee_ok, callee_output) = self.answering.finish().await;
        let caller_output = format!("{caller_output}\n--- the callee ---\n{callee_output}");
        let caller = counted(&caller_output);
        let callee = counted(&callee_output);
        assert!(
            caller_ok && caller.successful == u64::from(self.calls) && caller.failed == 0,
            "the caller's calls all succeed ({caller:?}):\n{caller_output}"
        );
        assert!(
            callee_ok && callee.successful == u64::from(self.calls) && callee.failed == 0,
            "the callee's calls all succeed ({callee:?}):\n{callee_output}"
        );
        caller
    }
}

/// One call through the Dispatcher placed as every phone places it: the ACK and BYE go to
/// the 200's Contact (SIPp's `[next_url]`) along the recorded route set, and reach the
/// callee (a Contact pointed at the switch it passed would end them there, with 405).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_through_the_dispatcher_is_hung_up_at_the_callee_s_contact() {
    let _turn = LOAD.lock().await;
    let cluster = Cluster::start(5, Balancing::RoundRobin, &[1, 1], Duration::from_secs(1)).await;
    let callee = cluster.callee();
    let answering = Sipp::new("dispatch_uas.xml", &callee.ip().to_string(), 1)
        .port(callee.port())
        .service(CALLEE)
        .log_to(&cluster.log)
        .spawn();
    sipp::listening(callee).await;
    let caller = cluster.caller();
    let (caller_ok, caller_output) = Sipp::new("dispatch_uac.xml", &caller.ip().to_string(), 1)
        .tolerate_unexpected()
        .port(caller.port())
        .to(cluster.dispatcher)
        .service(CALLEE)
        .run()
        .await;
    let (callee_ok, callee_output) = answering.finish().await;
    assert!(
        caller_ok,
        "the call is answered and hung up:\n{caller_output}"
    );
    assert!(callee_ok, "the callee gets ACK and BYE:\n{callee_output}");
    cluster.finish().await;
}

/// The cumulative "Successful call" and "Failed call" counts of SIPp's final screen.
fn counted(output: &str) -> Counted {
    let last = |label: &str| -> u64 {
        output
            .lines()
            .rfind(|line| line.contains(label))
            .and_then(|line| {
                line.split(|c: char| c == '|' || c.is_whitespace())
                    .filter_map(|field| field.parse::<u64>().ok())
                    .next_back()
            })
            .unwrap_or_else(|| panic!("no {label:?} in SIPp's output:\n{output}"))
    };
    Counted {
        successful: last("Successful call"),
        failed: last("Failed call"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_lands_1000_calls_500_and_500_on_two_switches() {
    let _turn = LOAD.lock().await;
    let cluster = Cluster::start(1, Balancing::RoundRobin, &[1, 1], Duration::from_secs(1)).await;
    let started = Instant::now();
    let counted = cluster.load(1000, 200, None).await.finish().await;
    let took = started.elapsed();
    let sent = cluster.sent();
    let carried = cluster.carried_per_switch(&cluster.carried());
    println!("round-robin: {counted:?} in {took:?}; sent {sent:?}, carried {carried:?}");
    for (switch, (sent, carried)) in sent.iter().zip(&carried).enumerate() {
        assert!(sent.abs_diff(500) <= 10, "switch {switch} was sent {sent}");
        assert!(
            carried.abs_diff(500) <= 10,
            "switch {switch} carried {carried}"
        );
    }
    assert_eq!(carried.iter().sum::<u64>(), 1000);
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_3_to_1_lands_1000_calls_750_and_250() {
    let _turn = LOAD.lock().await;
    let cluster = Cluster::start(2, Balancing::Weighted, &[3, 1], Duration::from_secs(1)).await;
    let started = Instant::now();
    let counted = cluster.load(1000, 200, None).await.finish().await;
    let took = started.elapsed();
    let sent = cluster.sent();
    let carried = cluster.carried_per_switch(&cluster.carried());
    println!("weighted 3:1: {counted:?} in {took:?}; sent {sent:?}, carried {carried:?}");
    for (switch, expected) in [750, 250].into_iter().enumerate() {
        assert!(
            sent[switch].abs_diff(expected) <= 30,
            "switch {switch} was sent {}",
            sent[switch]
        );
        assert!(
            carried[switch].abs_diff(expected) <= 30,
            "switch {switch} carried {}",
            carried[switch]
        );
    }
    assert_eq!(carried.iter().sum::<u64>(), 1000);
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_over_call_id_keeps_the_live_switches_calls_and_spreads_a_dead_one_s_evenly() {
    const CALLS: u32 = 2000;
    // The same Call-IDs in both runs (SIPp's call number), so each run places the same keys.
    const CALL_IDS: &str = "hash-%u@dispatch.test";
    let _turn = LOAD.lock().await;
    let probe_interval = Duration::from_millis(200);
    let cluster = Cluster::start(3, Balancing::HashCallId, &[1, 1, 1, 1], probe_interval).await;

    cluster
        .load(CALLS, 250, Some(CALL_IDS))
        .await
        .finish()
        .await;
    let before = cluster.carried();
    assert_eq!(before.len(), CALLS as usize);
    let shares = cluster.carried_per_switch(&before);
    assert_eq!(
        cluster.sent(),
        shares,
        "each call carried where it was sent"
    );
    println!("four switches: calls carried {shares:?}");
    for share in &shares {
        assert!(
            (300..=700).contains(share),
            "a rough quarter each: {shares:?}"
        );
    }

    let dead = 1;
    cluster.stop(dead).await;
    let bound = probe_interval * 2 + Duration::from_secs(1);
    let took = cluster
        .until("the stopped switch Inactive", bound, |s| !s[dead].active)
        .await;
    println!("the stopped switch was Inactive after {took:?}");

    let sent_before = cluster.sent();
    cluster
        .load(CALLS, 250, Some(CALL_IDS))
        .await
        .finish()
        .await;
    let after = cluster.carried();
    assert_eq!(after.len(), CALLS as usize);
    let sent: Vec<u64> = cluster
        .sent()
        .iter()
        .zip(&sent_before)
        .map(|(now, then)| now - then)
        .collect();
    assert_eq!(sent[dead], 0, "nothing sent to an Inactive switch");

    let mut moved = vec![0u64; cluster.switches.len()];
    for (call_id, was) in &before {
        let now = after[call_id];
        if *was == dead {
            moved[now] += 1;
        } else {
            assert_eq!(now, *was, "{call_id} keeps its live switch");
        }
    }
    let spread: Vec<u64> = moved
        .iter()
        .enumerate()
        .filter(|(index, _)| *index != dead)
        .map(|(_, count)| *count)
        .collect();
    let (max, min) = (*spread.iter().max().unwrap(), *spread.iter().min().unwrap());
    let ratio = max as f64 / min.max(1) as f64;
    println!(
        "the dead switch's {} calls moved as {spread:?}: max/min {ratio:.3}",
        shares[dead]
    );
    assert_eq!(spread.iter().sum::<u64>(), shares[dead]);
    assert!(ratio <= 1.3, "max/min {ratio:.3}: {spread:?}");
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_stopped_under_20_cps_fails_no_call_and_takes_calls_again_when_started() {
    const CALLS: u32 = 200;
    let _turn = LOAD.lock().await;
    // Long enough that the load (a call every 50 ms) always reaches the dead switch before
    // its probes take it out: those calls are the failover this test is about.
    let probe_interval = Duration::from_millis(500);
    let cluster = Cluster::start(4, Balancing::RoundRobin, &[1, 1], probe_interval).await;
    let victim = 1;
    let load = cluster
        .load(CALLS, 20, Some("failover-%u@dispatch.test"))
        .await;

    // A few seconds into the load, the switch dies between two of its calls: one in
    // progress on it would die with it (see the module's docs). The caller holds its new
    // calls while the ones under way end everywhere (their BYE's 200 included: a 200
    // dropped by the dead switch would fail its call), the switch stops, and the load
    // goes on at once.
    cluster
        .until("60 calls sent", Duration::from_secs(20), |s| {
            s.iter().map(|s| s.sent_last_minute).sum::<u64>() >= 60
        })
        .await;
    sipp::press(cluster.caller_control(), "p");
    cluster.until_no_call_under_way().await;
    let sent_at_stop = cluster.sent();
    cluster.stop(victim).await;
    sipp::press(cluster.caller_control(), "p");
    let out_bound = probe_interval * 2 + Duration::from_secs(1);
    let out_after = cluster
        .until("the stopped switch Inactive", out_bound, |s| {
            !s[victim].active
        })
        .await;
    // Calls the Dispatcher sent the dead switch before it knew: each waited out the
    // Dispatcher's patience and went to the other switch.
    let sent_out = cluster.sent();
    let sent_while_dead = sent_out[victim] - sent_at_stop[victim];
    // Those calls reach the callee through the other switch once the Dispatcher's patience
    // with the dead one runs out. Started again before that, the switch would take them
    // itself (the Dispatcher's INVITE retransmissions reach it): it stays down until every
    // call sent so far (the caller numbers them in order) has reached the callee.
    let sent_so_far = sent_out.iter().sum::<u64>();
    let bound = sip_engine::node::SWITCH_PATIENCE_INVITE + Duration::from_secs(3);
    let start = Instant::now();
    loop {
        let carried = cluster.carried_so_far();
        if (1..=sent_so_far).all(|n| carried.contains_key(&format!("failover-{n}@dispatch.test"))) {
            break;
        }
        assert!(
            start.elapsed() < bound,
            "the calls sent to the dead switch reach the callee within {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let failed_over_after = start.elapsed() + out_after;

    cluster.restart(victim).await;
    let back_bound = probe_interval * 2 + Duration::from_secs(1);
    let back_after = cluster
        .until("the restarted switch Active", back_bound, |s| {
            s[victim].active
        })
        .await;
    let sent_at_return = cluster.sent();

    let counted = load.finish().await;
    let sent = cluster.sent();
    let carried = cluster.carried_per_switch(&cluster.carried());
    println!(
        "failover: {counted:?}; Inactive {out_after:?} after the stop, {sent_while_dead} calls \
         sent to it meanwhile, all carried {failed_over_after:?} after the stop; Active {back_after:?} after the start; sent {sent:?}, \
         carried {carried:?}, sent to it after its return {}",
        sent[victim] - sent_at_return[victim]
    );
    assert!(
        sent_while_dead >= 1,
        "the load reached the dead switch before it was out"
    );
    // Every call the Dispatcher sent to the dead switch was carried by the other one.
    assert_eq!(carried[victim], sent[victim] - sent_while_dead);
    assert_eq!(carried[1 - victim], sent[1 - victim] + sent_while_dead);
    assert_eq!(carried.iter().sum::<u64>(), u64::from(CALLS));
    assert!(
        sent[victim] - sent_at_return[victim] >= 10,
        "back in, it takes its turn again: {sent:?} (at its return {sent_at_return:?})"
    );
    cluster.finish().await;
}
