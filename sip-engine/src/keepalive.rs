//! NAT keep-alives: what keeps a registered phone reachable behind NAT, and tells when it
//! went away without un-registering.
//!
//! A NAT forgets a UDP mapping after a quiet minute or so; then no call reaches the phone
//! until it registers again. So every running node sends, from its own UDP socket (the
//! mapping is for that 5-tuple), a keep-alive to each registered UDP contact of its domain
//! that registered here directly once per interval: a bare CRLF or a SIP OPTIONS, as the
//! user's [`KeepAliveMode`] says. A contact with a Path naming a Dispatcher (registered
//! through it, or at it under AnyReg) has its mapping with that Dispatcher, which alone
//! pings it. Each contact gets its own random place in the interval, so N contacts cost
//! N/interval sends a second instead of a burst of N.
//!
//! OPTIONS replies are matched without per-ping state, as Kamailio's nathelper does: the
//! Call-ID carries this node's random tag, the send time, the user and the contact, so the
//! reply alone says whose binding it is and what the round trip was. The only state is in
//! the [`LocationStore`]: how many keep-alives a binding left unanswered since its last
//! answer. After [`KeepAliveSettings::max_missed`] of them the binding is marked offline,
//! or removed in [`KeepAliveMode::OptionsWithTimeout`].
//!
//! [`KeepAlive`] is sans-I/O (it plans a round, builds pings, reads replies); [`run`] drives
//! it on a timer and sends each batch of pings from the node's socket itself.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rsip::headers::UntypedHeader;
use rsip::{Header, Response};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::NodeConfig;
use crate::directory::{KeepAliveMode, UserDirectory};
use crate::forward::rewrite::{names, nat_of, over_stream};
use crate::location::{Binding, LocationStore};
use crate::message::uri_of;
use crate::transaction::Outbound;
use crate::transport::{Outlet, Transport};

/// How often keep-alives go out and how many unanswered OPTIONS make a contact offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAliveSettings {
    /// Each contact gets one keep-alive per interval. 30 s by default: below the UDP
    /// timeout of common NATs (often 60 s), so one lost keep-alive does not lose a mapping.
    pub interval: Duration,
    /// Unanswered OPTIONS (each given a whole interval) before a contact is judged gone.
    /// 3 by default: one or two lost datagrams are ordinary on the Internet.
    pub max_missed: u32,
}

impl Default for KeepAliveSettings {
    fn default() -> Self {
        KeepAliveSettings {
            interval: Duration::from_secs(30),
            max_missed: 3,
        }
    }
}

/// Shortest interval honoured: anything shorter is a misconfiguration that would flood.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

impl KeepAliveSettings {
    fn interval(&self) -> Duration {
        self.interval.max(MIN_INTERVAL)
    }

    /// At least one: zero would judge every contact offline before it could answer.
    fn max_missed(&self) -> u32 {
        self.max_missed.max(1)
    }
}

/// Keep-alives due within this much of each other (or an eighth of the interval, when that
/// is shorter: a short interval still spreads its pings) are sent together.
///
/// A wake-up of the sending task costs about as much as building and sending a dozen pings,
/// so pings go out a few times a second rather than each on its own timer; at 10,000
/// contacts per 30 s that is some 80 per batch. A NAT mapping (a minute or so) cannot tell a
/// ping a quarter of a second early from one on time.
const BATCH: Duration = Duration::from_millis(250);

/// The datagram of a CRLF keep-alive.
pub const CRLF_PING: &[u8] = b"\r\n\r\n";

/// Starts every keep-alive Call-ID; what follows is `<node tag>-<sent µs>-<user>-<contact>`,
/// the last two hex-encoded (a contact URI holds characters a Call-ID may not).
const CALL_ID_PREFIX: &str = "ka-";

/// One keep-alive of a round: when it is due and to which binding. Only what sending needs
/// is kept (a round's plan lives for the whole interval, one entry per contact); the
/// binding's unanswered count is read afresh from the store when it fires, since an answer
/// may arrive in between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The round's start plus the contact's own offset into the interval.
    pub at: Instant,
    pub aor: Box<str>,
    pub contact: Box<str>,
    /// Where the phone's REGISTER came from, and where its pings go.
    pub received: SocketAddr,
}

/// One node's keep-alive logic: its domain, where users and bindings come from, and what it
/// needs to recognise its own pings' replies.
#[derive(Debug)]
pub struct KeepAlive {
    directory: Arc<dyn UserDirectory>,
    store: Arc<dyn LocationStore>,
    /// The host of the AORs this node serves (`sip:<user>@<domain>`): the node's IP.
    domain: String,
    settings: KeepAliveSettings,
    /// Random per node: a reply whose Call-ID lacks it is not to one of our pings, and a
    /// sender who never saw a ping cannot forge one.
    tag: String,
    /// Send times travel as microseconds since this instant: monotonic, and tokio's, so a
    /// paused test clock drives latency too.
    origin: Instant,
    /// Keyed hash that gives each contact its place in the interval; random per node so
    /// that no choice of contacts can line them all up.
    spread: RandomState,
    /// A Dispatcher's own address: contacts registered through it are pinged from here.
    edge: Option<SocketAddr>,
}

impl KeepAlive {
    /// Keep-alives for the AORs `sip:<user>@<domain>` bound in `store`, each user's mode
    /// read from `directory`.
    pub fn new(
        directory: Arc<dyn UserDirectory>,
        store: Arc<dyn LocationStore>,
        domain: String,
        settings: KeepAliveSettings,
    ) -> Self {
        KeepAlive {
            directory,
            store,
            domain,
            settings,
            tag: format!("{:08x}", rand::random::<u32>()),
            origin: Instant::now(),
            spread: RandomState::new(),
            edge: None,
        }
    }

    /// The same keep-alives, also for the contacts registered through this node as a
    /// Dispatcher at `local` (their Path's first entry names it): the phone's NAT mapping
    /// is with this node, so the pings go from here, to the address the Path recorded.
    /// One sender per contact: the switch that holds the binding sends none.
    pub fn for_edge(mut self, local: SocketAddr) -> Self {
        self.edge = Some(local);
        self
    }

    pub fn settings(&self) -> KeepAliveSettings {
        self.settings
    }

    /// The keep-alives of the round starting at `round_start`, in the order they are due:
    /// each live UDP binding of the domain once, at its own offset into the interval.
    pub fn plan(&self, round_start: Instant) -> Vec<Due> {
        let interval = self.settings.interval().as_nanos().max(1);
        let mut plan: Vec<Due> = Vec::new();
        let listed = self.store.visit_domain(
            &self.domain,
            SystemTime::now(),
            &mut |aor: &str, binding: &Binding| {
                // Only UDP contacts: a stream keeps its own connection open. (A binding a
                // switch holds through a Dispatcher came over UDP from the Dispatcher; one a
                // Dispatcher holds under AnyReg has the phone's own transport.)
                if binding.transport != Transport::Udp {
                    return;
                }
                // A contact registered through a Dispatcher (a Path) is kept open by that
                // Dispatcher, whose address the phone's NAT knows: a ping from anywhere
                // else would not reach it, and two senders are one too many.
                let received = if binding.path.is_empty() {
                    binding.received
                } else {
                    match self
                        .edge
                        .and_then(|local| edge_target(&binding.path, local))
                    {
                        Some(nat) => nat,
                        None => return,
                    }
                };
                let hash = self.spread.hash_one((aor, &binding.contact));
                // Below `interval`, which is a Duration's nanoseconds: fits a u64.
                let offset = u64::try_from(u128::from(hash) % interval).unwrap_or(0);
                plan.push(Due {
                    at: round_start + Duration::from_nanos(offset),
                    aor: aor.into(),
                    contact: binding.contact.as_str().into(),
                    received,
                });
            },
        );
        if let Err(error) = listed {
            // Skip this round; the next one asks again.
            tracing::warn!(%error, domain = %self.domain, "keep-alives: cannot list bindings");
            return Vec::new();
        }
        // Ties (two contacts hashed to the same nanosecond) in the order of their AOR and
        // contact, whatever order the store lent them in.
        plan.sort_unstable_by(|a, b| (a.at, &a.aor, &a.contact).cmp(&(b.at, &b.aor, &b.contact)));
        // It is kept for a whole interval: no room to spare.
        plan.shrink_to_fit();
        plan
    }

    /// The keep-alive to send for `due` now from `local`, if any: none when the user's mode
    /// is Disabled, the binding is gone, or it was just removed for not answering.
    pub fn fire(&self, due: &Due, local: SocketAddr, now: Instant) -> Option<Outbound> {
        let user = user_of(&due.aor)?;
        let target = due.received;
        let mode = self.directory.keepalive_mode(user, &self.domain);
        let timeout = match mode {
            KeepAliveMode::Disabled => return None,
            KeepAliveMode::Crlf => {
                return Some(Outbound {
                    bytes: CRLF_PING.to_vec(),
                    target,
                })
            }
            KeepAliveMode::Options => false,
            KeepAliveMode::OptionsWithTimeout => true,
        };
        let contact = &*due.contact;
        let max_missed = self.settings.max_missed();
        let unanswered = match self
            .store
            .record_keepalive_sent(&due.aor, contact, max_missed)
        {
            Ok(Some(unanswered)) => unanswered,
            Ok(None) => return None,
            Err(error) => {
                tracing::warn!(%error, aor = %due.aor, "keep-alives: store unavailable");
                return None;
            }
        };
        if unanswered >= max_missed {
            if timeout {
                match self.store.remove(&due.aor, contact) {
                    Ok(_) => {
                        tracing::info!(aor = %due.aor, %contact, "de-registered: keep-alives unanswered")
                    }
                    Err(error) => {
                        tracing::warn!(%error, aor = %due.aor, "keep-alives: cannot remove binding")
                    }
                }
                return None;
            }
            if unanswered == max_missed {
                tracing::info!(aor = %due.aor, %contact, "contact offline: keep-alives unanswered");
            }
        }
        Some(Outbound {
            bytes: self.options(&due.aor, user, contact, local, now),
            target,
        })
    }

    /// Reads a response that matched no client transaction. True when it answers one of
    /// this node's keep-alives (then it is consumed here); its binding's latency and last
    /// answer are recorded when it is a final response.
    pub fn on_response(&self, response: &Response, now: Instant) -> bool {
        let Some(call_id) = response.headers.iter().find_map(|h| match h {
            Header::CallId(id) => Some(id.value().to_string()),
            _ => None,
        }) else {
            return false;
        };
        self.on_answer(&call_id, response.status_code.code(), now)
    }

    /// As [`on_response`](Self::on_response), from a response's Call-ID and status code
    /// alone: what the node's fast path reads off a datagram (see [`answer_of`]) without
    /// parsing the whole response.
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
        let mut parts = rest.split('-');
        let (Some(sent), Some(user), Some(contact), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return true;
        };
        let sent = u64::from_str_radix(sent, 16)
            .ok()
            .and_then(|micros| self.origin.checked_add(Duration::from_micros(micros)));
        let (Some(sent), Some(user), Some(contact)) = (sent, hex_decode(user), hex_decode(contact))
        else {
            return true;
        };
        // Any final answer shows the phone is there; a send time in the future is forged.
        let Some(latency) = now.checked_duration_since(sent) else {
            return true;
        };
        let aor = format!("sip:{user}@{}", self.domain);
        if let Err(error) = self
            .store
            .record_keepalive(&aor, &contact, SystemTime::now(), latency)
        {
            tracing::warn!(%error, %aor, "keep-alives: cannot record an answer");
        }
        true
    }

    /// The OPTIONS ping for one contact, with the Call-ID that lets its reply be matched.
    /// Written into one buffer sized up front: a node builds a few hundred of these a
    /// second, and a `format!` per field showed in its profile.
    fn options(
        &self,
        aor: &str,
        user: &str,
        contact: &str,
        local: SocketAddr,
        now: Instant,
    ) -> Vec<u8> {
        use std::fmt::Write as _;
        let sent = u64::try_from(now.saturating_duration_since(self.origin).as_micros())
            .unwrap_or(u64::MAX);
        let mut out = String::with_capacity(
            320 + 2 * contact.len() + aor.len() + 2 * (user.len() + contact.len()),
        );
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "OPTIONS {contact} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK{:016x};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:keepalive@{local}>;tag={:08x}\r\n\
             To: <{aor}>\r\n\
             Call-ID: {CALL_ID_PREFIX}{}-{sent:x}-",
            rand::random::<u64>(),
            rand::random::<u32>(),
            self.tag,
        );
        push_hex(&mut out, user);
        out.push('-');
        push_hex(&mut out, contact);
        out.push_str("\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
        out.into_bytes()
    }
}

/// Appends `text` hex-encoded in lowercase, as `hex::encode` writes it (and [`hex_decode`]
/// reads it back).
fn push_hex(out: &mut String, text: &str) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(2 * text.len());
    for b in text.bytes() {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// The status code and Call-ID of a datagram that may answer a keep-alive: a response
/// (`SIP/2.0 <code> `) whose Call-ID (long or compact form) starts as keep-alives' do. Reads
/// only the status line and header lines up to the Call-ID, so that the thousands of
/// answers a node gets per interval cost little; anything else is `None`, and goes through
/// the full parser as before.
pub fn answer_of(datagram: &[u8]) -> Option<(u16, &str)> {
    let rest = datagram.strip_prefix(b"SIP/2.0 ")?;
    let code = std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()?;
    if rest.get(3) != Some(&b' ') {
        return None;
    }
    for line in rest.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"call-id") || name.eq_ignore_ascii_case(b"i") {
            let value = std::str::from_utf8(line[colon + 1..].trim_ascii()).ok()?;
            return value.starts_with(CALL_ID_PREFIX).then_some((code, value));
        }
    }
    None
}

/// Where a Dispatcher at `local` pings a contact registered with `path`: the NAT address
/// its own Path entry recorded, when the first entry is its own and the phone came over
/// UDP (a phone on a stream keeps its connection open itself, and the REGISTER that the
/// Dispatcher relayed over UDP made the switch's binding look like a UDP one).
fn edge_target(path: &[String], local: SocketAddr) -> Option<SocketAddr> {
    let uri = uri_of(path.first()?)?;
    if !names(local, uri) || over_stream(uri) {
        return None;
    }
    nat_of(uri)
}

/// The user part of `sip:<user>@<domain>`.
fn user_of(aor: &str) -> Option<&str> {
    let (user, _) = aor.strip_prefix("sip:")?.rsplit_once('@')?;
    (!user.is_empty()).then_some(user)
}

#[cfg(test)]
fn hex_encode(text: &str) -> String {
    hex::encode(text)
}

/// Reverses [`push_hex`]; `None` for anything it could not have produced.
fn hex_decode(text: &str) -> Option<String> {
    String::from_utf8(hex::decode(text).ok()?).ok()
}

/// Sends `keepalive`'s pings until `shutdown` is cancelled: one round per interval, each
/// ping at its binding's place in the round, sent through `out` from the node's own
/// socket (`local`), where the phone's NAT mapping points. *Disable UAC Ping* is read from
/// the node's `config` before every batch, so pushing it stops keep-alives within one
/// batch.
///
/// The pings due within one batch (`BATCH`) are built and sent in a single wake-up of
/// this task, on its own thread: no queue to another task, no timer per contact.
pub async fn run(
    keepalive: Arc<KeepAlive>,
    config: watch::Receiver<NodeConfig>,
    local: SocketAddr,
    out: impl Outlet,
    shutdown: CancellationToken,
) {
    let disabled = || config.borrow().disable_uac_ping;
    let interval = keepalive.settings().interval();
    let batch = BATCH.min(interval / 8);
    let mut round_start = Instant::now();
    loop {
        let plan = if disabled() {
            Vec::new()
        } else {
            keepalive.plan(round_start)
        };
        let mut plan = plan.into_iter().peekable();
        while let Some(first) = plan.peek() {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(first.at) => {}
            }
            if disabled() {
                break;
            }
            // Whatever falls due within the next tick goes out now: one wake-up per tick
            // rather than per contact, and still spread over the interval.
            let now = Instant::now();
            while let Some(due) = plan.next_if(|due| due.at <= now + batch) {
                let Some(ping) = keepalive.fire(&due, local, now) else {
                    continue;
                };
                if !out.send(ping) {
                    // The socket is gone: the node is stopping.
                    return;
                }
            }
        }
        // A round that overran (a slow store) is followed at once, not by a catch-up burst.
        round_start = (round_start + interval).max(Instant::now());
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(round_start) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NodeConfig, NodeRole};
    use crate::digest::Secret;
    use crate::directory::MemoryDirectory;
    use crate::location::{Binding, Change, MemoryLocationStore};
    use crate::node::Node;
    use tokio::sync::mpsc;

    const DOMAIN: &str = "127.0.81.1";

    fn local() -> SocketAddr {
        "127.0.81.1:5060".parse().unwrap()
    }

    struct Fixture {
        directory: Arc<MemoryDirectory>,
        store: Arc<MemoryLocationStore>,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                directory: Arc::new(MemoryDirectory::new()),
                store: Arc::new(MemoryLocationStore::new()),
            }
        }

        /// Registers `user` with one UDP contact whose NAT address is `received`.
        fn register(&self, user: &str, received: SocketAddr, transport: Transport) -> String {
            self.directory
                .insert(user, None, Secret::Password("pw".into()));
            let aor = format!("sip:{user}@{DOMAIN}");
            let binding = Binding {
                contact: format!("sip:{user}@10.0.0.1:5060;transport=udp"),
                expires_at: SystemTime::now() + Duration::from_secs(3600),
                received,
                transport,
                call_id: format!("reg-{user}"),
                cseq: 1,
                user_agent: None,
                last_keepalive: None,
                latency: None,
                missed_keepalives: 0,
                online: true,
                path: Vec::new(),
            };
            self.store
                .apply(&aor, &[Change::Upsert(binding)], SystemTime::now())
                .unwrap();
            aor
        }

        fn keepalive(&self, settings: KeepAliveSettings) -> KeepAlive {
            KeepAlive::new(
                self.directory.clone(),
                self.store.clone(),
                DOMAIN.into(),
                settings,
            )
        }

        fn binding(&self, aor: &str) -> Option<Binding> {
            self.store
                .lookup(aor, SystemTime::now())
                .unwrap()
                .into_iter()
                .next()
        }

        /// Registers `user` as [`Fixture::register`] does, its binding reached along `path`.
        fn register_along(
            &self,
            user: &str,
            received: SocketAddr,
            transport: Transport,
            path: String,
        ) -> String {
            let aor = self.register(user, received, transport);
            let mut binding = self.binding(&aor).unwrap();
            binding.path = vec![path];
            binding.cseq += 1;
            self.store
                .apply(&aor, &[Change::Upsert(binding)], SystemTime::now())
                .unwrap();
            aor
        }

        /// The keep-alives a Dispatcher at `edge` plans now, by AOR.
        fn edge_plan(&self, edge: SocketAddr) -> Vec<Due> {
            self.keepalive(KeepAliveSettings::default())
                .for_edge(edge)
                .plan(Instant::now())
        }
    }

    fn phone(n: u16) -> SocketAddr {
        SocketAddr::from(([198, 51, 100, 7], 40_000 + n))
    }

    /// A phone's answer to `ping`: the identifying headers copied, as RFC 3261 §8.2.6 says.
    fn answer(ping: &[u8], status: &str) -> Response {
        let text = String::from_utf8(ping.to_vec()).unwrap();
        let copied: String = text
            .split("\r\n")
            .filter(|line| {
                ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
                    .iter()
                    .any(|name| line.starts_with(name))
            })
            .map(|line| format!("{line}\r\n"))
            .collect();
        let reply = format!("SIP/2.0 {status}\r\n{copied}Content-Length: 0\r\n\r\n");
        match crate::message::parse(reply.as_bytes()) {
            Ok(rsip::SipMessage::Response(response)) => response,
            other => panic!("{other:?}"),
        }
    }

    /// Lets spawned tasks run everything that is due on the paused clock.
    async fn settle() {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    /// Moves the paused clock on by `total` in small steps, letting the driver act at each,
    /// as real time would (one big jump would look like a round that overran).
    async fn elapse(total: Duration) {
        let step = Duration::from_millis(250);
        let mut left = total;
        while !left.is_zero() {
            let now = step.min(left);
            tokio::time::advance(now).await;
            settle().await;
            left -= now;
        }
    }

    fn drain(rx: &mut mpsc::Receiver<Outbound>) -> Vec<Outbound> {
        let mut sent = Vec::new();
        while let Ok(out) = rx.try_recv() {
            sent.push(out);
        }
        sent
    }

    /// Keep-alives driven by [`run`] into a channel the test reads, under a node
    /// configuration the test can change.
    fn driven(
        f: &Fixture,
        settings: KeepAliveSettings,
    ) -> (
        watch::Sender<NodeConfig>,
        mpsc::Receiver<Outbound>,
        CancellationToken,
    ) {
        let keepalive = Arc::new(f.keepalive(settings));
        let config = watch::Sender::new(NodeConfig::default());
        let (tx, rx) = mpsc::channel(1024);
        let shutdown = CancellationToken::new();
        tokio::spawn(run(
            keepalive,
            config.subscribe(),
            local(),
            tx,
            shutdown.clone(),
        ));
        (config, rx, shutdown)
    }

    #[tokio::test(start_paused = true)]
    async fn keep_alives_to_many_contacts_are_spread_over_the_interval_not_sent_in_one_burst() {
        let f = Fixture::new();
        for n in 0..40 {
            f.register(&format!("user{n}"), phone(n), Transport::Udp);
        }
        let settings = KeepAliveSettings::default();
        let (_node, mut rx, shutdown) = driven(&f, settings);
        settle().await;
        let tenth = settings.interval / 10;
        let mut per_tenth = Vec::new();
        for _ in 0..10 {
            elapse(tenth).await;
            per_tenth.push(drain(&mut rx).len());
        }
        assert_eq!(per_tenth.iter().sum::<usize>(), 40, "{per_tenth:?}");
        assert!(
            per_tenth.iter().all(|&n| n <= 20),
            "no burst: {per_tenth:?}"
        );
        assert!(
            per_tenth.iter().filter(|&&n| n > 0).count() >= 4,
            "spread: {per_tenth:?}"
        );
        // The next round pings each contact once more, at the same place in the interval.
        elapse(settings.interval).await;
        assert_eq!(drain(&mut rx).len(), 40);
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn an_options_reply_records_the_round_trip_encoded_in_its_call_id() {
        let f = Fixture::new();
        let aor = f.register("alice", phone(1), Transport::Udp);
        let keepalive = f.keepalive(KeepAliveSettings::default());
        let due = keepalive.plan(Instant::now()).remove(0);
        let ping = keepalive.fire(&due, local(), Instant::now()).unwrap();
        assert_eq!(ping.target, phone(1));
        let text = String::from_utf8(ping.bytes.clone()).unwrap();
        assert!(
            text.starts_with("OPTIONS sip:alice@10.0.0.1:5060;transport=udp SIP/2.0\r\n"),
            "{text}"
        );
        assert_eq!(f.binding(&aor).unwrap().missed_keepalives, 1);

        tokio::time::advance(Duration::from_millis(42)).await;
        assert!(keepalive.on_response(&answer(&ping.bytes, "200 OK"), Instant::now()));
        let binding = f.binding(&aor).unwrap();
        assert_eq!(binding.latency, Some(Duration::from_millis(42)));
        assert!(binding.last_keepalive.is_some());
        assert_eq!(binding.missed_keepalives, 0);
        assert!(binding.online);
    }

    #[tokio::test(start_paused = true)]
    async fn a_keep_alive_reply_reaching_the_node_is_consumed_and_not_counted_as_dropped() {
        let f = Fixture::new();
        let aor = f.register("alice", phone(1), Transport::Udp);
        let node = Node::new(NodeRole::Switch, "test")
            .with_keepalive(f.keepalive(KeepAliveSettings::default()));
        let keepalive = node.keepalive().unwrap().clone();
        let due = keepalive.plan(Instant::now()).remove(0);
        let ping = keepalive.fire(&due, local(), Instant::now()).unwrap();
        tokio::time::advance(Duration::from_millis(7)).await;
        let reply = answer(&ping.bytes, "200 OK").to_string();
        assert!(node
            .handle(reply.as_bytes(), phone(1), Transport::Udp)
            .is_none());
        assert_eq!(node.stats().snapshot().dropped, 0);
        assert_eq!(
            f.binding(&aor).unwrap().latency,
            Some(Duration::from_millis(7))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn k_unanswered_options_mark_the_contact_offline_and_an_answer_brings_it_back() {
        let f = Fixture::new();
        let aor = f.register("alice", phone(1), Transport::Udp);
        let keepalive = f.keepalive(KeepAliveSettings::default());
        let mut last = None;
        for round in 0..3 {
            let due = keepalive.plan(Instant::now()).remove(0);
            last = keepalive.fire(&due, local(), Instant::now());
            assert!(last.is_some(), "round {round} pings");
            assert!(f.binding(&aor).unwrap().online, "round {round}");
        }
        // The third ping had its whole interval too: the fourth round finds it unanswered.
        let due = keepalive.plan(Instant::now()).remove(0);
        assert!(
            keepalive.fire(&due, local(), Instant::now()).is_some(),
            "an offline contact is still pinged, so it can come back"
        );
        assert!(!f.binding(&aor).unwrap().online);

        let late = answer(&last.unwrap().bytes, "200 OK");
        assert!(keepalive.on_response(&late, Instant::now()));
        assert!(f.binding(&aor).unwrap().online);
    }

    #[tokio::test(start_paused = true)]
    async fn in_timeout_mode_k_unanswered_options_remove_the_binding() {
        let f = Fixture::new();
        let aor = f.register("alice", phone(1), Transport::Udp);
        f.directory
            .set_keepalive_mode("alice", None, KeepAliveMode::OptionsWithTimeout);
        let settings = KeepAliveSettings {
            interval: Duration::from_secs(10),
            max_missed: 2,
        };
        let (_node, mut rx, shutdown) = driven(&f, settings);
        settle().await;
        elapse(settings.interval * 2).await;
        assert_eq!(drain(&mut rx).len(), 2);
        assert!(f.binding(&aor).is_some());
        elapse(settings.interval).await;
        assert!(drain(&mut rx).is_empty(), "a removed contact gets no ping");
        assert!(f.binding(&aor).is_none(), "de-registered");
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn disable_uac_ping_sends_nothing_until_it_is_lifted() {
        let f = Fixture::new();
        for n in 0..5 {
            f.register(&format!("user{n}"), phone(n), Transport::Udp);
        }
        let settings = KeepAliveSettings::default();
        let (config, mut rx, shutdown) = driven(&f, settings);
        config.send_replace(NodeConfig {
            disable_uac_ping: true,
            ..NodeConfig::default()
        });
        settle().await;
        for _ in 0..3 {
            elapse(settings.interval).await;
        }
        assert!(drain(&mut rx).is_empty());
        config.send_replace(NodeConfig::default());
        elapse(settings.interval * 2).await;
        assert!(!drain(&mut rx).is_empty());
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn crlf_mode_sends_a_bare_crlf_to_the_nat_address_and_counts_no_miss() {
        let f = Fixture::new();
        let aor = f.register("alice", phone(3), Transport::Udp);
        f.directory
            .set_keepalive_mode("alice", None, KeepAliveMode::Crlf);
        let settings = KeepAliveSettings::default();
        let (_node, mut rx, shutdown) = driven(&f, settings);
        settle().await;
        elapse(settings.interval * 5).await;
        let sent = drain(&mut rx);
        assert!(!sent.is_empty());
        for out in sent {
            assert_eq!(out.bytes, CRLF_PING);
            assert_eq!(out.target, phone(3));
        }
        let binding = f.binding(&aor).unwrap();
        assert!(binding.online);
        assert_eq!(binding.missed_keepalives, 0);
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn disabled_users_and_tcp_contacts_get_no_keep_alive() {
        let f = Fixture::new();
        f.register("quiet", phone(1), Transport::Udp);
        f.directory
            .set_keepalive_mode("quiet", None, KeepAliveMode::Disabled);
        f.register("wired", phone(2), Transport::Tcp);
        let keepalive = f.keepalive(KeepAliveSettings::default());
        let plan = keepalive.plan(Instant::now());
        assert_eq!(plan.len(), 1, "the TCP contact is not planned");
        assert!(keepalive.fire(&plan[0], local(), Instant::now()).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn replies_with_foreign_or_garbled_call_ids_are_left_alone() {
        let f = Fixture::new();
        let aor = f.register("alice", phone(1), Transport::Udp);
        let keepalive = f.keepalive(KeepAliveSettings::default());
        let due = keepalive.plan(Instant::now()).remove(0);
        let ping = keepalive.fire(&due, local(), Instant::now()).unwrap();
        let text = String::from_utf8(ping.bytes).unwrap();
        let foreign = text.replace("Call-ID: ka-", "Call-ID: xx-");
        assert!(!keepalive.on_response(&answer(foreign.as_bytes(), "200 OK"), Instant::now()));
        let call_id = text
            .split("\r\n")
            .find_map(|l| l.strip_prefix("Call-ID: "))
            .unwrap()
            .to_string();
        let parts: Vec<&str> = call_id.splitn(5, '-').collect();
        let (tag, sent, user, contact) = (parts[1], parts[2], parts[3], parts[4]);
        for garbled in [
            format!("{call_id}-extra"),
            format!("ka-{tag}-{sent}-{user}-{contact}z"),
            format!("ka-{tag}-{sent}-{user}-abc"),
            format!("ka-{tag}-ffffffffffffffff-{user}-{contact}"),
            format!("ka-{tag}-nothex-{user}-{contact}"),
            format!("ka-{tag}-{sent}"),
        ] {
            let bytes = text.replace(&call_id, &garbled);
            assert!(keepalive.on_response(&answer(bytes.as_bytes(), "200 OK"), Instant::now()));
        }
        assert_eq!(f.binding(&aor).unwrap().latency, None);
        assert_eq!(hex_decode(&hex_encode("sip:ü@x")), Some("sip:ü@x".into()));
        assert_eq!(hex_decode("abc"), None);
        assert_eq!(hex_decode("zz"), None);
    }

    #[test]
    fn a_contact_registered_through_a_dispatcher_gets_no_keep_alive_from_the_switch() {
        let f = Fixture::new();
        let direct = f.register("alice", phone(1), Transport::Udp);
        let through = f.register("bob", phone(2), Transport::Udp);
        let mut binding = f.binding(&through).unwrap();
        binding.path = vec!["<sip:127.0.81.9:5060;lr>".into()];
        binding.cseq += 1;
        f.store
            .apply(&through, &[Change::Upsert(binding)], SystemTime::now())
            .unwrap();
        let plan = f
            .keepalive(KeepAliveSettings::default())
            .plan(Instant::now());
        let aors: Vec<&str> = plan.iter().map(|due| &*due.aor).collect();
        assert_eq!(aors, [direct.as_str()]);
    }

    #[test]
    fn a_dispatcher_pings_the_contacts_registered_through_it_at_their_nat_address() {
        let f = Fixture::new();
        let dispatcher: SocketAddr = "127.0.81.9:5060".parse().unwrap();
        let through_us: Vec<String> = [
            ("bob", dispatcher),
            ("carol", "127.0.81.8:5060".parse().unwrap()),
        ]
        .into_iter()
        .map(|(user, first_hop)| {
            let path = format!("<sip:{first_hop};lr;nat=198.51.100.7~41000>");
            f.register_along(user, dispatcher, Transport::Udp, path)
        })
        .collect();
        let plan = f.edge_plan(dispatcher);
        assert_eq!(
            plan.len(),
            1,
            "carol came through another dispatcher: {plan:?}"
        );
        assert_eq!(&*plan[0].aor, through_us[0].as_str());
        assert_eq!(plan[0].received, "198.51.100.7:41000".parse().unwrap());
    }

    #[test]
    fn a_dispatcher_sends_no_udp_keep_alive_to_a_stream_phone_registered_through_it() {
        // The switch's binding came over UDP from the Dispatcher; only the Path says the
        // phone's own connection was TCP.
        let f = Fixture::new();
        let dispatcher: SocketAddr = "127.0.81.9:5060".parse().unwrap();
        let path = |port: u16, stream: bool| {
            crate::forward::rewrite::path_entry(
                dispatcher,
                SocketAddr::from(([198, 51, 100, 8], port)),
                stream,
            )
        };
        let bob = f.register_along("bob", dispatcher, Transport::Udp, path(40001, false));
        f.register_along("carol", dispatcher, Transport::Udp, path(40002, true));
        let plan = f.edge_plan(dispatcher);
        let aors: Vec<&str> = plan.iter().map(|due| &*due.aor).collect();
        assert_eq!(aors, [bob.as_str()], "carol's phone is on TCP");
    }

    #[test]
    fn a_dispatcher_sends_no_udp_keep_alive_to_a_stream_phone_it_holds_under_any_reg() {
        let f = Fixture::new();
        let dispatcher: SocketAddr = "127.0.81.9:5060".parse().unwrap();
        let path = || format!("<sip:{dispatcher};lr;nat=198.51.100.7~40001>");
        let bob = f.register_along("bob", phone(1), Transport::Udp, path());
        f.register_along("carol", phone(1), Transport::Tcp, path());
        let plan = f.edge_plan(dispatcher);
        let aors: Vec<&str> = plan.iter().map(|due| &*due.aor).collect();
        assert_eq!(aors, [bob.as_str()], "the TCP phone keeps its connection");
    }

    #[test]
    fn answers_to_keep_alives_are_read_without_the_full_parser() {
        let answer = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.81.1:5060;branch=z9hG4bKx\r\n\
            i: ka-tag-1f-616c696365-736970\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            answer_of(answer),
            Some((200, "ka-tag-1f-616c696365-736970"))
        );
        let long = b"SIP/2.0 486 Busy Here\r\nCALL-ID:  ka-x \r\n\r\n";
        assert_eq!(answer_of(long), Some((486, "ka-x")));
        for other in [
            &b"SIP/2.0 200 OK\r\nCall-ID: abc\r\n\r\n"[..],
            b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: ka-x\r\n\r\n",
            b"SIP/2.0 200 OK\r\n\r\nCall-ID: ka-x\r\n",
            b"SIP/2.0 2x0 OK\r\nCall-ID: ka-x\r\n\r\n",
            b"SIP/2.0 200",
            b"",
        ] {
            assert_eq!(answer_of(other), None, "{}", String::from_utf8_lossy(other));
        }
    }
}
