//! A Dispatcher's view of its switches: which are alive, how fast they answer, and what it
//! sent each.
//!
//! Every `probe_interval` the Dispatcher sends each switch an OPTIONS from its own socket
//! (the address the switches' Restrict Direct lets in). A probe unanswered within
//! [`PROBE_TIMEOUT`] is a miss; after `probe_failures` misses in a row an Active switch
//! becomes Inactive, and after `probe_successes` answers in a row an Inactive one is Active
//! again. Any final answer counts, a 503 too: a switch at its limits is alive, and the
//! calls it refuses fail over to another switch inside their own transaction. A switch the
//! Dispatcher has not probed yet is Active, so a new switch takes calls at once. Probes
//! go out once, without retransmission: a lost datagram is one miss, which the thresholds
//! absorb. Probes alone judge health: a switch that lets a call's INVITE go unanswered
//! loses that call to the next switch (the forwarder's serial search) but is not marked
//! down for it, so one lost datagram in a call cannot take a switch out of every call.
//!
//! As the keep-alives do, replies are matched without per-probe lookups: the Call-ID
//! carries the node's random tag, the switch and the probe's number, so a reply names the
//! switch it comes from; the only state is each switch's one outstanding probe.
//!
//! [`Switches`] is sans-I/O (it plans probes, reads replies, counts traffic); [`run`]
//! drives it on a timer. It also counts what the Dispatcher sends each switch: calls in
//! the last minute, and calls in progress (for the least-channels algorithm), kept up to
//! date as a [`DialogObserver`] of the node.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rsip::headers::UntypedHeader;
use rsip::{Header, Response};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{DispatchConfig, NodeConfig, SwitchTarget};
use crate::dialog::{DialogEvent, DialogObserver};
use crate::forward::rewrite::names;
use crate::message::uri_of;
use crate::transport::{Outbound, Outlet};

/// How long a probe may go unanswered before it is a miss: short, so a stopped switch is
/// out within `probe_interval × probe_failures` plus this second (a switch answers an
/// OPTIONS from its transport thread, in well under a millisecond on a LAN); never longer
/// than the interval itself.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Starts every probe's Call-ID; what follows is `<node tag>-<switch id>-<probe number>`,
/// both numbers in hex.
const CALL_ID_PREFIX: &str = "dp-";

/// The weight of a new round trip in the latency average (an exponential moving average):
/// a fifth, so one slow answer moves it little and a lasting change shows within a few
/// probes.
const LATENCY_WEIGHT: f64 = 0.2;

/// How long a call counts as in progress on a switch when the Dispatcher never saw it end
/// (a BYE that took another path, a lost one): longer than any ordinary call.
const STALE_CALL: Duration = Duration::from_secs(6 * 3600);

/// A switch as the console shows it on its Dispatcher's page.
#[derive(Debug, Clone, PartialEq)]
pub struct SwitchStatus {
    /// The control plane's id of the switch server.
    pub id: i64,
    /// Where the Dispatcher sends to it (and probes it).
    pub addr: SocketAddr,
    /// Whether it takes new requests (false: Inactive, probes unanswered).
    pub active: bool,
    /// The probes' round trip, a moving average; `None` before the first answer.
    pub latency_us: Option<u32>,
    /// Calls (initial INVITEs) the Dispatcher sent it in the last minute, counted on the
    /// switch it chose first.
    pub sent_last_minute: u64,
    /// Its part of the calls the Dispatcher sent in the last minute, 0 to 1 (0 when none
    /// were sent).
    pub share: f32,
}

/// Calls sent in each of the last 60 seconds: a sliding minute, one bucket per second,
/// each stamped with the second it counts so a stale one reads as empty.
#[derive(Debug, Clone)]
struct Minute {
    buckets: [(u64, u64); 60],
}

impl Default for Minute {
    fn default() -> Self {
        Minute {
            buckets: [(u64::MAX, 0); 60],
        }
    }
}

impl Minute {
    fn record(&mut self, second: u64) {
        let bucket = &mut self.buckets[(second % 60) as usize];
        if bucket.0 != second {
            *bucket = (second, 0);
        }
        bucket.1 += 1;
    }

    fn total(&self, second: u64) -> u64 {
        self.buckets
            .iter()
            .filter(|(at, _)| *at <= second && second - *at < 60)
            .map(|(_, count)| count)
            .sum()
    }
}

/// One probe sent and not yet answered.
#[derive(Debug, Clone, Copy)]
struct Outstanding {
    number: u64,
    sent: Instant,
}

/// What the Dispatcher knows of one switch.
#[derive(Debug)]
struct Health {
    addr: SocketAddr,
    active: bool,
    /// Probes missed, and answered, in a row.
    misses: u32,
    answers: u32,
    latency_us: Option<f64>,
    probe: Option<Outstanding>,
    /// The number of the last probe sent.
    probes: u64,
    sent: Minute,
    /// Calls in progress that the Dispatcher sent here.
    channels: u32,
}

impl Health {
    fn new(addr: SocketAddr) -> Self {
        Health {
            addr,
            active: true,
            misses: 0,
            answers: 0,
            latency_us: None,
            probe: None,
            probes: 0,
            sent: Minute::default(),
            channels: 0,
        }
    }
}

/// A call in progress, on the switch it was sent to.
#[derive(Debug)]
struct Call {
    switch: i64,
    answered: bool,
    since: Instant,
}

#[derive(Debug)]
struct Table {
    switches: HashMap<i64, Health>,
    calls: HashMap<Box<str>, Call>,
    failures: u32,
    successes: u32,
}

impl Table {
    /// The entry of `target`, new (Active) when the switch is new or moved to another
    /// address.
    fn entry(&mut self, target: &SwitchTarget) -> &mut Health {
        let health = self
            .switches
            .entry(target.id)
            .or_insert_with(|| Health::new(target.addr));
        if health.addr != target.addr {
            *health = Health::new(target.addr);
        }
        health
    }

    fn miss(&mut self, id: i64) {
        let failures = self.failures.max(1);
        if let Some(health) = self.switches.get_mut(&id) {
            health.probe = None;
            health.answers = 0;
            health.misses = health.misses.saturating_add(1);
            if health.active && health.misses >= failures {
                health.active = false;
                tracing::info!(switch = id, addr = %health.addr, "switch inactive: probes unanswered");
            }
        }
    }

    fn release(&mut self, call_id: &str) {
        if let Some(call) = self.calls.remove(call_id) {
            if let Some(health) = self.switches.get_mut(&call.switch) {
                health.channels = health.channels.saturating_sub(1);
            }
        }
    }
}

/// A Dispatcher's switches: their health (from probes) and the traffic sent to each.
/// Shared by the node (which hands it probe replies and dialog events), its router
/// (which asks who is Active and records what it sent) and the prober task ([`run`]).
/// A std `Mutex`, never held across an `.await`: every operation is a few map updates.
#[derive(Debug)]
pub struct Switches {
    /// Random per node: a reply whose Call-ID lacks it answers no probe of ours.
    tag: String,
    /// Seconds of the sliding minute count from here (tokio's clock, so a paused test
    /// clock drives them).
    origin: Instant,
    table: Mutex<Table>,
}

impl Default for Switches {
    fn default() -> Self {
        Switches::new()
    }
}

impl Switches {
    /// No switch known yet: each is Active until its probes say otherwise.
    pub fn new() -> Self {
        let defaults = DispatchConfig::default();
        Switches {
            tag: format!("{:08x}", rand::random::<u32>()),
            origin: Instant::now(),
            table: Mutex::new(Table {
                switches: HashMap::new(),
                calls: HashMap::new(),
                failures: defaults.probe_failures,
                successes: defaults.probe_successes,
            }),
        }
    }

    /// Follows a new configuration: its switches are kept (a new one, or one at a new
    /// address, starts Active), the others forgotten, and its thresholds apply from the
    /// next probe.
    pub fn sync(&self, config: &DispatchConfig) {
        let mut table = self.lock();
        table.failures = config.probe_failures;
        table.successes = config.probe_successes;
        table
            .switches
            .retain(|id, _| config.switches.iter().any(|s| s.id == *id));
        for target in &config.switches {
            table.entry(target);
        }
    }

    /// Which of `switches` take new requests, with the calls each has in progress: the
    /// index into `switches` and the count, in the list's order. A switch never probed is
    /// Active.
    pub fn active(&self, switches: &[SwitchTarget]) -> Vec<(usize, u32)> {
        let table = self.lock();
        switches
            .iter()
            .enumerate()
            .filter_map(|(index, target)| match table.switches.get(&target.id) {
                Some(health) if health.addr == target.addr => {
                    health.active.then_some((index, health.channels))
                }
                _ => Some((index, 0)),
            })
            .collect()
    }

    /// Records a call (an initial INVITE, `call_id`) sent to `target` at `now`: it counts in
    /// the switch's last minute, and in its calls in progress until the call fails or
    /// ends.
    pub fn call_sent(&self, target: &SwitchTarget, call_id: &str, now: Instant) {
        let second = self.second(now);
        let mut table = self.lock();
        // The same call again (a new INVITE after a 407) is not a second call in progress.
        table.release(call_id);
        let health = table.entry(target);
        health.sent.record(second);
        health.channels += 1;
        table.calls.insert(
            call_id.into(),
            Call {
                switch: target.id,
                answered: false,
                since: now,
            },
        );
    }

    /// Each switch of `switches` as the console shows it, in the list's order.
    pub fn status(&self, switches: &[SwitchTarget], now: Instant) -> Vec<SwitchStatus> {
        let second = self.second(now);
        let table = self.lock();
        let figures: Vec<(bool, Option<u32>, u64)> = switches
            .iter()
            .map(|target| match table.switches.get(&target.id) {
                Some(health) if health.addr == target.addr => (
                    health.active,
                    health
                        .latency_us
                        .map(|us| us.round().min(f64::from(u32::MAX)) as u32),
                    health.sent.total(second),
                ),
                _ => (true, None, 0),
            })
            .collect();
        let total: u64 = figures.iter().map(|f| f.2).sum();
        switches
            .iter()
            .zip(figures)
            .map(|(target, (active, latency_us, sent))| SwitchStatus {
                id: target.id,
                addr: target.addr,
                active,
                latency_us,
                sent_last_minute: sent,
                share: if total == 0 {
                    0.0
                } else {
                    (sent as f64 / total as f64) as f32
                },
            })
            .collect()
    }

    /// The probes to send at `now` from `local`: one to each switch of `config` that has
    /// none outstanding. Probes past [`PROBE_TIMEOUT`] are judged missed first.
    pub fn probe_round(
        &self,
        config: &DispatchConfig,
        local: SocketAddr,
        now: Instant,
    ) -> Vec<Outbound> {
        self.expire(config, now);
        let mut table = self.lock();
        let mut out = Vec::with_capacity(config.switches.len());
        for target in &config.switches {
            let health = table.entry(target);
            if health.probe.is_some() {
                continue;
            }
            health.probes += 1;
            health.probe = Some(Outstanding {
                number: health.probes,
                sent: now,
            });
            out.push(Outbound {
                bytes: self.options(target, health.probes, local),
                target: target.addr,
            });
        }
        out
    }

    /// Judges every probe sent before `now` minus the timeout a miss; also forgets calls
    /// that have counted as in progress for longer than any call lasts.
    pub fn expire(&self, config: &DispatchConfig, now: Instant) {
        let timeout = timeout(config);
        let mut table = self.lock();
        let missed: Vec<i64> = table
            .switches
            .iter()
            .filter(|(_, h)| h.probe.is_some_and(|p| now >= p.sent + timeout))
            .map(|(id, _)| *id)
            .collect();
        for id in missed {
            table.miss(id);
        }
        let stale: Vec<Box<str>> = table
            .calls
            .iter()
            .filter(|(_, call)| now.saturating_duration_since(call.since) > STALE_CALL)
            .map(|(id, _)| id.clone())
            .collect();
        for call_id in stale {
            table.release(&call_id);
        }
    }

    /// When the next outstanding probe times out under `config`.
    pub fn next_deadline(&self, config: &DispatchConfig) -> Option<Instant> {
        let timeout = timeout(config);
        self.lock()
            .switches
            .values()
            .filter_map(|h| h.probe.map(|p| p.sent + timeout))
            .min()
    }

    /// Reads a response that matched no client transaction: true when it answers one of
    /// this node's probes (then it is consumed here).
    pub fn on_response(&self, response: &Response, now: Instant) -> bool {
        let Some(call_id) = response.headers.iter().find_map(|h| match h {
            Header::CallId(id) => Some(id.value()),
            _ => None,
        }) else {
            return false;
        };
        self.on_answer(call_id, response.status_code.code(), now)
    }

    /// As [`on_response`](Self::on_response), from the Call-ID and status code alone. A
    /// final answer to the switch's outstanding probe counts (a late answer to a probe
    /// already judged missed does not).
    pub fn on_answer(&self, call_id: &str, code: u16, now: Instant) -> bool {
        let Some(rest) = call_id
            .trim()
            .strip_prefix(CALL_ID_PREFIX)
            .and_then(|rest| rest.strip_prefix(self.tag.as_str()))
            .and_then(|rest| rest.strip_prefix('-'))
        else {
            return false;
        };
        if code < 200 {
            return true;
        }
        let Some((id, number)) = rest.split_once('-') else {
            return true;
        };
        let (Ok(id), Ok(number)) = (u64::from_str_radix(id, 16), u64::from_str_radix(number, 16))
        else {
            return true;
        };
        let id = id as i64;
        let mut table = self.lock();
        let successes = table.successes.max(1);
        let Some(health) = table.switches.get_mut(&id) else {
            return true;
        };
        let Some(probe) = health.probe.filter(|p| p.number == number) else {
            return true;
        };
        health.probe = None;
        let rtt = now.saturating_duration_since(probe.sent).as_micros() as f64;
        health.latency_us = Some(match health.latency_us {
            Some(average) => average + LATENCY_WEIGHT * (rtt - average),
            None => rtt,
        });
        health.misses = 0;
        health.answers = health.answers.saturating_add(1);
        if !health.active && health.answers >= successes {
            health.active = true;
            tracing::info!(switch = id, addr = %health.addr, "switch active: probes answered");
        }
        true
    }

    /// The OPTIONS probe number `number` to `target`, from `local`.
    fn options(&self, target: &SwitchTarget, number: u64, local: SocketAddr) -> Vec<u8> {
        format!(
            "OPTIONS sip:{addr} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch:016x};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:dispatcher@{local}>;tag={tag:08x}\r\n\
             To: <sip:{addr}>\r\n\
             Call-ID: {CALL_ID_PREFIX}{node}-{id:x}-{number:x}\r\n\
             CSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n",
            addr = target.addr,
            branch = rand::random::<u64>(),
            tag = rand::random::<u32>(),
            node = self.tag,
            id = target.id as u64,
        )
        .into_bytes()
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // Every update leaves the table consistent, so a poisoned lock is still usable.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl DialogObserver for Switches {
    /// A call stops counting on its switch when it fails or ends. The 2xx names the switch
    /// that took it (its Record-Route): after a failover, the call counts there.
    fn on_dialog(&self, event: &DialogEvent<'_>) {
        match event {
            DialogEvent::Failed { call_id, .. } => {
                let mut table = self.lock();
                // A failed re-INVITE does not end an answered call.
                if table.calls.get(*call_id).is_some_and(|call| !call.answered) {
                    table.release(call_id);
                }
            }
            DialogEvent::Ended { call_id } => self.lock().release(call_id),
            DialogEvent::Confirmed {
                call_id, callee, ..
            } => {
                let mut table = self.lock();
                let Some(call) = table.calls.get_mut(*call_id) else {
                    return;
                };
                call.answered = true;
                let from = call.switch;
                // The nearest Record-Route towards the callee is the switch's own.
                let nearest = callee
                    .as_ref()
                    .and_then(|(end, _)| end.routes.first())
                    .and_then(|entry| uri_of(entry));
                let took = nearest.and_then(|uri| {
                    table
                        .switches
                        .iter()
                        .find_map(|(id, health)| names(health.addr, uri).then_some(*id))
                });
                if let Some(to) = took.filter(|to| *to != from) {
                    if let Some(call) = table.calls.get_mut(*call_id) {
                        call.switch = to;
                    }
                    if let Some(health) = table.switches.get_mut(&from) {
                        health.channels = health.channels.saturating_sub(1);
                    }
                    if let Some(health) = table.switches.get_mut(&to) {
                        health.channels += 1;
                    }
                }
            }
            DialogEvent::Invited { .. }
            | DialogEvent::Early { .. }
            | DialogEvent::InDialog { .. } => {}
        }
    }
}

/// How long a probe under `config` waits for its answer.
fn timeout(config: &DispatchConfig) -> Duration {
    PROBE_TIMEOUT.min(config.probe_interval)
}

/// Shortest probe interval honoured: anything shorter is a misconfiguration that would
/// flood the switches.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Probes the switches of the node's `config` until `shutdown` is cancelled, sending
/// through `out` from the node's own socket (`local`, written in the probes' Via, so the
/// answers come back to the node, which hands them to `switches`). A configuration pushed
/// meanwhile takes effect at once: new switches are probed, removed ones forgotten. A node
/// without a dispatch configuration probes nothing.
pub async fn run(
    switches: Arc<Switches>,
    mut config: watch::Receiver<NodeConfig>,
    local: SocketAddr,
    out: impl Outlet,
    shutdown: CancellationToken,
) {
    let mut next_round = Instant::now();
    loop {
        let dispatch = config.borrow_and_update().dispatch.clone();
        let wake = match &dispatch {
            Some(dispatch) => {
                switches.sync(dispatch);
                let now = Instant::now();
                if now >= next_round {
                    for probe in switches.probe_round(dispatch, local, now) {
                        if !out.send(probe) {
                            // The socket is gone: the node is stopping.
                            return;
                        }
                    }
                    next_round = now + dispatch.probe_interval.max(MIN_INTERVAL);
                } else {
                    switches.expire(dispatch, now);
                }
                Some(
                    switches
                        .next_deadline(dispatch)
                        .map_or(next_round, |at| at.min(next_round)),
                )
            }
            None => {
                switches.sync(&DispatchConfig::default());
                None
            }
        };
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = sleep => {}
            changed = config.changed() => {
                if changed.is_err() {
                    return;
                }
                // A new interval counts from now, not from the last round.
                if let Some(dispatch) = &config.borrow().dispatch {
                    next_round = next_round.min(Instant::now() + dispatch.probe_interval);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::parse;
    use rsip::SipMessage;

    fn target(id: i64) -> SwitchTarget {
        SwitchTarget {
            id,
            addr: SocketAddr::from(([127, 0, 92, id as u8], 5060)),
            weight: 1,
        }
    }

    fn local() -> SocketAddr {
        "127.0.92.100:5060".parse().unwrap()
    }

    fn config(switches: Vec<SwitchTarget>) -> DispatchConfig {
        DispatchConfig {
            switches,
            ..DispatchConfig::default()
        }
    }

    /// The Call-ID of a probe.
    fn call_id_of(probe: &Outbound) -> String {
        match parse(&probe.bytes) {
            Ok(SipMessage::Request(request)) => crate::message::call_id(&request.headers)
                .unwrap()
                .to_string(),
            other => panic!("{other:?}"),
        }
    }

    fn active(switches: &Switches, config: &DispatchConfig) -> Vec<bool> {
        switches
            .status(&config.switches, Instant::now())
            .iter()
            .map(|s| s.active)
            .collect()
    }

    /// One probe round at `now`, answered (with `code`) by the switches `answering`;
    /// returns the time of the next round.
    fn round(
        switches: &Switches,
        config: &DispatchConfig,
        now: Instant,
        answering: &[i64],
        code: u16,
    ) -> Instant {
        let probes = switches.probe_round(config, local(), now);
        assert_eq!(probes.len(), config.switches.len(), "one probe each");
        for probe in &probes {
            let from = config
                .switches
                .iter()
                .find(|s| s.addr == probe.target)
                .unwrap();
            if answering.contains(&from.id) {
                let rtt = Duration::from_millis(from.id as u64);
                assert!(switches.on_answer(&call_id_of(probe), code, now + rtt));
            }
        }
        now + config.probe_interval
    }

    #[tokio::test(start_paused = true)]
    async fn two_misses_make_a_switch_inactive_and_two_answers_bring_it_back() {
        let switches = Switches::new();
        let config = config(vec![target(1), target(2)]);
        switches.sync(&config);
        assert_eq!(
            active(&switches, &config),
            [true, true],
            "new switches start Active"
        );
        let mut now = Instant::now();
        now = round(&switches, &config, now, &[1, 2], 200);
        now = round(&switches, &config, now, &[1], 200);
        switches.expire(&config, now);
        assert_eq!(
            active(&switches, &config),
            [true, true],
            "one miss is forgiven"
        );
        now = round(&switches, &config, now, &[1], 200);
        switches.expire(&config, now);
        assert_eq!(active(&switches, &config), [true, false], "two are not");
        assert_eq!(switches.active(&config.switches), [(0, 0)]);
        now = round(&switches, &config, now, &[1, 2], 200);
        assert_eq!(
            active(&switches, &config),
            [true, false],
            "one answer is not enough"
        );
        now = round(&switches, &config, now, &[1, 2], 200);
        assert_eq!(active(&switches, &config), [true, true]);
        // A miss in between starts the count again.
        now = round(&switches, &config, now, &[1], 200);
        now = round(&switches, &config, now, &[1, 2], 200);
        now = round(&switches, &config, now, &[1], 200);
        switches.expire(&config, now);
        assert_eq!(active(&switches, &config), [true, true]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_is_missed_after_its_timeout_not_at_the_next_round() {
        let switches = Switches::new();
        let config = config(vec![target(1)]);
        let sent = Instant::now();
        switches.probe_round(&config, local(), sent);
        assert_eq!(switches.next_deadline(&config), Some(sent + PROBE_TIMEOUT));
        switches.expire(&config, sent + PROBE_TIMEOUT / 2);
        assert!(
            switches.probe_round(&config, local(), sent).is_empty(),
            "still waiting"
        );
        switches.expire(&config, sent + PROBE_TIMEOUT);
        assert_eq!(switches.next_deadline(&config), None);
        assert_eq!(
            switches
                .probe_round(&config, local(), sent + PROBE_TIMEOUT)
                .len(),
            1
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_503_to_a_probe_is_an_answer_and_latency_is_a_moving_average() {
        let switches = Switches::new();
        let config = config(vec![target(4)]);
        let mut now = Instant::now();
        for _ in 0..3 {
            now = round(&switches, &config, now, &[], 200);
        }
        switches.expire(&config, now);
        assert_eq!(active(&switches, &config), [false]);
        for _ in 0..2 {
            now = round(&switches, &config, now, &[4], 503);
        }
        let status = switches.status(&config.switches, now);
        assert!(status[0].active, "a full switch is alive");
        assert_eq!(status[0].latency_us, Some(4_000));
        // A slower answer moves the average a fifth of the way.
        let probe = switches.probe_round(&config, local(), now).remove(0);
        assert!(switches.on_answer(&call_id_of(&probe), 200, now + Duration::from_millis(9)));
        assert_eq!(
            switches.status(&config.switches, now)[0].latency_us,
            Some(5_000)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_or_foreign_answer_changes_nothing() {
        let switches = Switches::new();
        let config = config(vec![target(1)]);
        let now = Instant::now();
        let probe = switches.probe_round(&config, local(), now).remove(0);
        switches.expire(&config, now + PROBE_TIMEOUT);
        assert!(switches.on_answer(&call_id_of(&probe), 200, now + PROBE_TIMEOUT * 2));
        assert_eq!(switches.status(&config.switches, now)[0].latency_us, None);
        assert!(!switches.on_answer("ka-1234-5-6-7", 200, now));
        assert!(!switches.on_answer("dp-otherTag-1-1", 200, now));
        let forged = call_id_of(&probe).replace("-1-", "-9-");
        assert!(switches.on_answer(&forged, 200, now), "ours, for no switch");
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_counts_in_progress_until_it_fails_or_ends_and_moves_with_a_failover() {
        let (a, b) = (target(1), target(2));
        let switches = Switches::new();
        switches.sync(&config(vec![a, b]));
        let now = Instant::now();
        switches.call_sent(&a, "c1", now);
        switches.call_sent(&a, "c2", now);
        switches.call_sent(&a, "c2", now);
        assert_eq!(
            switches.active(&[a, b]),
            [(0, 2), (1, 0)],
            "a call again is one call"
        );
        switches.on_dialog(&DialogEvent::Failed {
            call_id: "c1",
            code: 486,
        });
        // c2 failed over to b, whose Record-Route is in the 2xx.
        let callee = crate::dialog::End {
            party: "<sip:bob@x>;tag=b".into(),
            contact: "sip:bob@198.51.100.1".into(),
            routes: vec![format!("<sip:{};lr>", b.addr)],
            cseq: None,
        };
        switches.on_dialog(&DialogEvent::Confirmed {
            call_id: "c2",
            callee: Some((callee, Vec::new())),
            offer: b"",
            answer: b"",
        });
        assert_eq!(switches.active(&[a, b]), [(0, 0), (1, 1)]);
        switches.on_dialog(&DialogEvent::Failed {
            call_id: "c2",
            code: 491,
        });
        assert_eq!(
            switches.active(&[a, b]),
            [(0, 0), (1, 1)],
            "a failed re-INVITE"
        );
        switches.on_dialog(&DialogEvent::Ended { call_id: "c2" });
        assert_eq!(switches.active(&[a, b]), [(0, 0), (1, 0)]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_prober_sends_each_switch_an_options_every_interval_from_the_node_s_address() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let switches = Arc::new(Switches::new());
        let node_config = watch::Sender::new(NodeConfig {
            dispatch: Some(config(vec![target(1), target(2)])),
            ..NodeConfig::default()
        });
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            switches.clone(),
            node_config.subscribe(),
            local(),
            tx,
            shutdown.clone(),
        ));
        let first = [rx.recv().await.unwrap(), rx.recv().await.unwrap()];
        let started = Instant::now();
        let text = String::from_utf8(first[0].bytes.clone()).unwrap();
        assert!(
            text.starts_with("OPTIONS sip:127.0.92.1:5060 SIP/2.0\r\n"),
            "{text}"
        );
        assert!(text.contains(&format!("Via: SIP/2.0/UDP {};", local())));
        for probe in &first {
            switches.on_answer(&call_id_of(probe), 200, Instant::now());
        }
        let next = rx.recv().await.unwrap();
        assert_eq!(Instant::now() - started, Duration::from_secs(5));
        assert_eq!(next.target, target(1).addr);
        shutdown.cancel();
        task.await.unwrap();
    }
}
