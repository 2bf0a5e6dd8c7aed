//! Balancing: a Dispatcher sends each new request to a switch of its cluster.
//!
//! The decision is a [`Route::Serial`] over every Active switch: the first is the one the
//! algorithm chose, the others the failover order, tried within the caller's one
//! transaction when a switch times out or answers 408 or 500–503. An Inactive switch (its
//! probes unanswered, see [`crate::health`]) is never in the list; with none left the
//! caller gets 503 with `Retry-After`.
//!
//! The algorithms ([`Balancing`]):
//! - round-robin: a counter shared by every request; the list turns one place a request.
//! - weighted: smooth weighted round-robin (as nginx does it): each switch's running score
//!   grows by its weight every request, the highest is chosen and loses the total weight.
//!   A 3:1 pair gets exactly 3 of every 4 calls, interleaved rather than in bursts.
//! - least channels: fewest calls in progress sent by this Dispatcher (counted by
//!   [`Switches`] from the calls it sent and the node's dialog events); ties go round-robin.
//! - hash over Call-ID or over the user: rendezvous (highest-random-weight) hashing. Each
//!   switch scores `hash(key, switch id)` and the highest wins, so removing a switch moves
//!   only the keys it held, spread evenly over the others (a modulo hash would move most
//!   keys; a "next one" failover would pile them all on one neighbour). The hash is the
//!   64-bit FNV-1a of the key mixed with the id by a murmur3-style finaliser: fixed, so
//!   every Dispatcher of a cluster, whatever its build, sends a key to the same switch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rsip::headers::UntypedHeader;
use rsip::{Header, Method, Request};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Inquiry, Route, Router, Target};
use crate::config::{Balancing, DispatchConfig, NodeConfig, SwitchTarget};
use crate::digest::Credentials;
use crate::health::Switches;
use crate::message::{call_id, uri_of};

/// What a caller refused for want of a switch is told when no configuration says more:
/// a few seconds, about when a switch that comes back is taken in again.
const RETRY_AFTER_DEFAULT: u32 = 10;

/// Balances new requests over the switches of the node's current configuration.
#[derive(Debug)]
pub struct DispatchRouter {
    /// The node's configuration: its `dispatch` part says which switches and how. Read
    /// on every request (a short read lock), so a change applies from the next one.
    config: watch::Receiver<NodeConfig>,
    /// Their health, and what was sent to each.
    switches: Arc<Switches>,
    /// Round-robin's turn (and least channels' tie-break).
    turn: AtomicU64,
    /// Smooth weighted round-robin's running score of each Active switch.
    scores: Mutex<HashMap<i64, i64>>,
}

impl DispatchRouter {
    /// Balances over the switches `config` names, as healthy as `switches` says.
    pub fn new(config: watch::Receiver<NodeConfig>, switches: Arc<Switches>) -> Self {
        DispatchRouter {
            config,
            switches,
            turn: AtomicU64::new(0),
            scores: Mutex::default(),
        }
    }

    /// The order in which `active` (indices into `dispatch.switches`, with their calls in
    /// progress) are tried for `request`: the chosen one first.
    fn order(
        &self,
        dispatch: &DispatchConfig,
        active: &[(usize, u32)],
        request: &Request,
    ) -> Vec<usize> {
        let switches = &dispatch.switches;
        match dispatch.algorithm {
            Balancing::RoundRobin => {
                let turn = self.next_turn(active.len());
                rotated(active, turn).map(|(index, _)| index).collect()
            }
            Balancing::Weighted => self.weighted(switches, active),
            Balancing::LeastChannels => {
                let turn = self.next_turn(active.len());
                let mut order: Vec<(u32, usize, usize)> = rotated(active, turn)
                    .enumerate()
                    .map(|(place, (index, channels))| (channels, place, index))
                    .collect();
                order.sort_unstable();
                order.into_iter().map(|(_, _, index)| index).collect()
            }
            Balancing::HashCallId => {
                let key = call_id(&request.headers).unwrap_or_default();
                rendezvous(switches, active, key)
            }
            Balancing::HashUser => match user_of(request) {
                Some(user) => rendezvous(switches, active, &user),
                None => rendezvous(
                    switches,
                    active,
                    call_id(&request.headers).unwrap_or_default(),
                ),
            },
        }
    }

    /// Takes the next turn, as a place among `len` switches.
    fn next_turn(&self, len: usize) -> usize {
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        (turn % len.max(1) as u64) as usize
    }

    /// Smooth weighted round-robin over the weighted switches of `active`; those of weight
    /// 0 come last, for failover only.
    fn weighted(&self, switches: &[SwitchTarget], active: &[(usize, u32)]) -> Vec<usize> {
        let mut scores = self.scores.lock().unwrap_or_else(|p| p.into_inner());
        // A switch that went Inactive starts again from nothing when it is back, rather
        // than with a burst of what it was owed.
        scores.retain(|id, _| active.iter().any(|(i, _)| switches[*i].id == *id));
        let weighted: Vec<usize> = active
            .iter()
            .map(|(index, _)| *index)
            .filter(|index| switches[*index].weight > 0)
            .collect();
        let total: i64 = weighted
            .iter()
            .map(|index| i64::from(switches[*index].weight))
            .sum();
        let mut ranked: Vec<(i64, usize)> = weighted
            .iter()
            .enumerate()
            .map(|(place, index)| {
                let target = &switches[*index];
                let score = scores.entry(target.id).or_insert(0);
                *score += i64::from(target.weight);
                (*score, place)
            })
            .collect();
        // Highest score first; ties in the list's order.
        ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        if let Some((_, place)) = ranked.first() {
            if let Some(score) = scores.get_mut(&switches[weighted[*place]].id) {
                *score -= total;
            }
        }
        let mut order: Vec<usize> = ranked.iter().map(|(_, place)| weighted[*place]).collect();
        order.extend(
            active
                .iter()
                .map(|(index, _)| *index)
                .filter(|index| switches[*index].weight == 0),
        );
        order
    }
}

impl Router for DispatchRouter {
    /// Every new request goes to the switches, in the algorithm's order; an OPTIONS
    /// without a user (a ping of the Dispatcher itself) is the node's own. An INVITE is
    /// counted as a call sent to the chosen switch.
    fn route(&self, inquiry: &Inquiry<'_>) -> Route {
        let request = inquiry.request;
        match request.method {
            Method::Ack | Method::Cancel => return Route::Local,
            Method::Options if request.uri.user().is_none_or(str::is_empty) => return Route::Local,
            _ => {}
        }
        let config = self.config.borrow();
        let Some(dispatch) = &config.dispatch else {
            return Route::unavailable("No Switch Configured", RETRY_AFTER_DEFAULT);
        };
        let active = self.switches.active(&dispatch.switches);
        if active.is_empty() {
            return Route::unavailable("No Switch Available", retry_after(dispatch));
        }
        let order = self.order(dispatch, &active, request);
        if let (Method::Invite, Some(call), Some(first)) =
            (request.method, call_id(&request.headers), order.first())
        {
            self.switches
                .call_sent(&dispatch.switches[*first], call, Instant::now());
        }
        Route::Serial(
            order
                .into_iter()
                .map(|index| Target::direct(None, dispatch.switches[index].addr))
                .collect(),
        )
    }
}

/// How long a caller refused for want of a switch should wait: until a switch back
/// from the dead could have answered enough probes to be Active again.
fn retry_after(dispatch: &DispatchConfig) -> u32 {
    let wait = dispatch.probe_interval * dispatch.probe_successes.max(1);
    u32::try_from(wait.as_secs()).unwrap_or(u32::MAX).max(1)
}

/// `active` starting at place `turn`, wrapping around.
fn rotated(active: &[(usize, u32)], turn: usize) -> impl Iterator<Item = (usize, u32)> + '_ {
    let turn = turn.min(active.len());
    active[turn..].iter().chain(&active[..turn]).copied()
}

/// `active` by rendezvous score for `key`, highest first.
fn rendezvous(switches: &[SwitchTarget], active: &[(usize, u32)], key: &str) -> Vec<usize> {
    let key = fnv1a(key.as_bytes());
    let mut scored: Vec<(u64, usize)> = active
        .iter()
        .map(|(index, _)| (score(key, switches[*index].id), *index))
        .collect();
    scored.sort_unstable_by(|a, b| b.cmp(a));
    scored.into_iter().map(|(_, index)| index).collect()
}

/// The user a request is balanced by under [`Balancing::HashUser`]: the username of its
/// credentials when it carries some (the account that pays, whatever From says), else the
/// user part of its From URI.
fn user_of(request: &Request) -> Option<String> {
    let mut from = None;
    for header in request.headers.iter() {
        match header {
            Header::Authorization(value) => {
                if let Ok(credentials) = Credentials::parse(value.value()) {
                    return Some(credentials.username);
                }
            }
            Header::ProxyAuthorization(value) => {
                if let Ok(credentials) = Credentials::parse(value.value()) {
                    return Some(credentials.username);
                }
            }
            Header::From(value) => from = Some(value.value()),
            _ => {}
        }
    }
    let uri = uri_of(from?)?;
    let rest = uri.split_once(':')?.1;
    let (user, _) = rest.split_once('@')?;
    let user = user.split(';').next().unwrap_or(user);
    (!user.is_empty()).then(|| user.to_string())
}

/// The rendezvous score of switch `id` for a key hashed to `key`.
fn score(key: u64, id: i64) -> u64 {
    mix(key ^ mix(id as u64))
}

/// 64-bit FNV-1a: a fixed, seedless hash of the key's bytes.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// A 64-bit finaliser (murmur3's): every input bit moves about half the output bits, so
/// scores of one key for different switches behave as independent draws.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::time::{Duration, SystemTime};

    use rsip::{SipMessage, StatusCode};

    use super::*;
    use crate::message::parse;

    fn switch(id: i64, weight: u32) -> SwitchTarget {
        SwitchTarget {
            id,
            addr: SocketAddr::from(([127, 0, 91, id as u8], 5060)),
            weight,
        }
    }

    fn config(algorithm: Balancing, switches: Vec<SwitchTarget>) -> NodeConfig {
        NodeConfig {
            dispatch: Some(DispatchConfig {
                algorithm,
                switches,
                ..DispatchConfig::default()
            }),
            ..NodeConfig::default()
        }
    }

    struct Fixture {
        router: DispatchRouter,
        switches: Arc<Switches>,
        config: watch::Sender<NodeConfig>,
    }

    fn fixture(config: NodeConfig) -> Fixture {
        let sender = watch::Sender::new(config);
        let switches = Arc::new(Switches::new());
        Fixture {
            router: DispatchRouter::new(sender.subscribe(), switches.clone()),
            switches,
            config: sender,
        }
    }

    fn request(method: &str, uri: &str, call_id: &str, extra: &str) -> Request {
        let text = format!(
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.91.100:5060;branch=z9hG4bK{call_id};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:alice@127.0.91.1>;tag=a\r\n\
             To: <sip:bob@127.0.91.1>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 {method}\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        );
        match parse(text.as_bytes()) {
            Ok(SipMessage::Request(request)) => request,
            other => panic!("{other:?}"),
        }
    }

    fn invite(call_id: &str) -> Request {
        request("INVITE", "sip:bob@127.0.91.1", call_id, "")
    }

    fn route(f: &Fixture, request: &Request) -> Route {
        f.router.route(&Inquiry {
            request,
            source: "127.0.91.100:5060".parse().unwrap(),
            peers: &[],
            now: SystemTime::now(),
        })
    }

    /// The switches a request is tried on, in order.
    fn order(f: &Fixture, request: &Request) -> Vec<SocketAddr> {
        match route(f, request) {
            Route::Serial(targets) => {
                assert!(targets.iter().all(|t| t.uri.is_none()), "Request-URI kept");
                targets.into_iter().map(|t| t.addr).collect()
            }
            other => panic!("{other:?}"),
        }
    }

    /// How many of `n` calls each switch gets first.
    fn tally(f: &Fixture, n: usize) -> HashMap<SocketAddr, usize> {
        let mut counts = HashMap::new();
        for i in 0..n {
            let first = order(f, &invite(&format!("call-{i}")))[0];
            *counts.entry(first).or_insert(0) += 1;
        }
        counts
    }

    /// Takes `target` out as its probes would: two rounds unanswered.
    fn kill(f: &Fixture, target: &SwitchTarget) {
        let dispatch = DispatchConfig {
            switches: vec![*target],
            ..DispatchConfig::default()
        };
        let local = "127.0.91.200:5060".parse().unwrap();
        let mut now = Instant::now();
        for _ in 0..2 {
            f.switches.probe_round(&dispatch, local, now);
            now += dispatch.probe_interval;
            f.switches.expire(&dispatch, now);
        }
    }

    #[tokio::test]
    async fn round_robin_sends_1000_requests_over_two_switches_500_and_500() {
        let (a, b) = (switch(1, 1), switch(2, 1));
        let f = fixture(config(Balancing::RoundRobin, vec![a, b]));
        let counts = tally(&f, 1000);
        assert_eq!(counts[&a.addr], 500);
        assert_eq!(counts[&b.addr], 500);
        // The other switch is the failover.
        let tried = order(&f, &invite("x"));
        assert_eq!(tried.len(), 2);
        assert_ne!(tried[0], tried[1]);
    }

    #[tokio::test]
    async fn weighted_3_to_1_lands_exactly_750_and_250_interleaved() {
        let (a, b) = (switch(1, 3), switch(2, 1));
        let f = fixture(config(Balancing::Weighted, vec![a, b]));
        let firsts: Vec<SocketAddr> = (0..4)
            .map(|i| order(&f, &invite(&i.to_string()))[0])
            .collect();
        assert_eq!(
            firsts,
            [a.addr, a.addr, b.addr, a.addr],
            "smooth: no burst of three"
        );
        let counts = tally(&f, 996);
        assert_eq!(counts[&a.addr] + 3, 750);
        assert_eq!(counts[&b.addr] + 1, 250);
    }

    #[tokio::test]
    async fn a_switch_of_weight_0_is_only_a_last_resort() {
        let (a, b) = (switch(1, 1), switch(2, 0));
        let f = fixture(config(Balancing::Weighted, vec![a, b]));
        for i in 0..10 {
            assert_eq!(order(&f, &invite(&i.to_string())), [a.addr, b.addr]);
        }
    }

    #[tokio::test]
    async fn rendezvous_hashing_moves_only_a_removed_switch_s_keys_and_spreads_them_evenly() {
        let four: Vec<SwitchTarget> = (1..=4).map(|id| switch(id, 1)).collect();
        let f = fixture(config(Balancing::HashCallId, four.clone()));
        let keys: Vec<String> = (0..40_000)
            .map(|i| format!("{i:08x}@caller.example"))
            .collect();
        let before: Vec<SocketAddr> = keys.iter().map(|k| order(&f, &invite(k))[0]).collect();
        let dead = four[2];
        f.config.send_replace(config(
            Balancing::HashCallId,
            vec![four[0], four[1], four[3]],
        ));
        let mut moved_to: HashMap<SocketAddr, usize> = HashMap::new();
        for (key, was) in keys.iter().zip(&before) {
            let now = order(&f, &invite(key))[0];
            if *was == dead.addr {
                *moved_to.entry(now).or_insert(0) += 1;
            } else {
                assert_eq!(now, *was, "{key} kept its switch");
            }
        }
        let shares: Vec<usize> = moved_to.values().copied().collect();
        assert_eq!(shares.len(), 3, "{moved_to:?}");
        let (max, min) = (*shares.iter().max().unwrap(), *shares.iter().min().unwrap());
        assert!(max as f64 / min as f64 <= 1.3, "{moved_to:?}");
        // The same when the switch is not removed but Inactive.
        f.config
            .send_replace(config(Balancing::HashCallId, four.clone()));
        kill(&f, &dead);
        for (key, was) in keys.iter().zip(&before).take(2_000) {
            let now = order(&f, &invite(key))[0];
            assert_ne!(now, dead.addr);
            if *was != dead.addr {
                assert_eq!(now, *was);
            }
        }
    }

    #[tokio::test]
    async fn hashing_by_user_reads_the_auth_username_before_the_from_user() {
        let switches: Vec<SwitchTarget> = (1..=4).map(|id| switch(id, 1)).collect();
        let f = fixture(config(Balancing::HashUser, switches));
        let alice = request("REGISTER", "sip:127.0.91.1", "r1", "");
        let first = order(&f, &alice);
        for i in 0..20 {
            assert_eq!(
                order(
                    &f,
                    &request("REGISTER", "sip:127.0.91.1", &format!("r{i}"), "")
                ),
                first
            );
        }
        let credentials = "Authorization: Digest username=\"carol\", realm=\"127.0.91.1\", nonce=\"n\", uri=\"sip:127.0.91.1\", response=\"00\"\r\n";
        let as_carol = request("REGISTER", "sip:127.0.91.1", "r1", credentials);
        let carol: Vec<String> = (0..20).map(|i| format!("{i}")).collect();
        let carol_first = order(&f, &as_carol);
        for call in carol {
            let again = request(
                "INVITE",
                "sip:bob@127.0.91.1",
                &call,
                &credentials.replace("Authorization", "Proxy-Authorization"),
            );
            assert_eq!(order(&f, &again), carol_first);
        }
    }

    #[tokio::test]
    async fn least_channels_picks_the_switch_with_fewest_calls_in_progress() {
        let (a, b) = (switch(1, 1), switch(2, 1));
        let f = fixture(config(Balancing::LeastChannels, vec![a, b]));
        let first = order(&f, &invite("one"))[0];
        let second = order(&f, &invite("two"))[0];
        assert_ne!(first, second, "one call each");
        let third = order(&f, &invite("three"))[0];
        // "two" ends: its switch has fewer calls now.
        use crate::dialog::{DialogEvent, DialogObserver};
        f.switches.on_dialog(&DialogEvent::Failed {
            call_id: if third == first { "two" } else { "one" },
            code: 486,
        });
        let freed = if third == first { second } else { first };
        assert_eq!(order(&f, &invite("four"))[0], freed);
    }

    #[tokio::test]
    async fn an_inactive_switch_is_never_chosen() {
        let (a, b) = (switch(1, 1), switch(2, 1));
        for algorithm in Balancing::ALL {
            let f = fixture(config(algorithm, vec![a, b]));
            kill(&f, &a);
            for i in 0..50 {
                assert_eq!(
                    order(&f, &invite(&format!("c{i}"))),
                    [b.addr],
                    "{algorithm}"
                );
            }
        }
    }

    #[tokio::test]
    async fn with_no_switch_left_the_caller_gets_503_with_retry_after() {
        let a = switch(1, 1);
        let f = fixture(config(Balancing::RoundRobin, vec![a]));
        kill(&f, &a);
        assert_eq!(
            route(&f, &invite("c")),
            Route::Refuse {
                status: StatusCode::ServiceUnavailable,
                reason: "No Switch Available",
                retry_after: Some(10),
            }
        );
        let unconfigured = fixture(NodeConfig::default());
        assert!(matches!(
            route(&unconfigured, &invite("c")),
            Route::Refuse {
                status: StatusCode::ServiceUnavailable,
                retry_after: Some(_),
                ..
            }
        ));
    }

    #[tokio::test]
    async fn an_options_ping_of_the_dispatcher_is_its_own_and_one_for_a_user_is_balanced() {
        let f = fixture(config(Balancing::RoundRobin, vec![switch(1, 1)]));
        let ping = request("OPTIONS", "sip:127.0.91.1", "p", "");
        assert_eq!(route(&f, &ping), Route::Local);
        let to_user = request("OPTIONS", "sip:bob@127.0.91.1", "p", "");
        assert!(matches!(route(&f, &to_user), Route::Serial(_)));
        let message = request("MESSAGE", "sip:bob@127.0.91.1", "m", "");
        assert!(matches!(route(&f, &message), Route::Serial(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn calls_sent_are_counted_per_switch_over_a_sliding_minute() {
        let (a, b) = (switch(1, 3), switch(2, 1));
        let f = fixture(config(Balancing::Weighted, vec![a, b]));
        tally(&f, 40);
        // A REGISTER is no call.
        order(&f, &request("REGISTER", "sip:127.0.91.1", "r", ""));
        let status = f.switches.status(&[a, b], Instant::now());
        assert_eq!(status[0].sent_last_minute, 30);
        assert_eq!(status[1].sent_last_minute, 10);
        assert!((status[0].share - 0.75).abs() < 1e-6);
        tokio::time::advance(Duration::from_secs(61)).await;
        let status = f.switches.status(&[a, b], Instant::now());
        assert_eq!(status[0].sent_last_minute, 0);
        assert_eq!(status[0].share, 0.0);
    }

    #[test]
    fn the_algorithms_have_stable_names() {
        for algorithm in Balancing::ALL {
            assert_eq!(Balancing::parse(algorithm.as_str()), Some(algorithm));
        }
        assert_eq!(Balancing::parse("hash-user"), Some(Balancing::HashUser));
        assert_eq!(Balancing::parse("random"), None);
        assert_eq!(Balancing::default(), Balancing::RoundRobin);
    }

    #[test]
    fn the_hash_is_fixed_across_builds() {
        // Two Dispatchers of one cluster must agree on where a key goes.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(score(fnv1a(b"call"), 7), score(fnv1a(b"call"), 7));
    }
}
