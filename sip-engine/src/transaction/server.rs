//! Server transactions (RFC 3261 §17.2): one per request received, living on after the
//! final response so that a retransmitted request is answered from memory instead of being
//! processed twice.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Key, Outbound, Timers};
use crate::transport::Transport;

/// Most server transactions kept at once. A UDP non-INVITE transaction lives 64·T1 after its
/// answer, so a flood of distinct requests could grow the table without bound; past this
/// many, new requests are answered statelessly, which is what a node did before it had
/// transactions.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Longest an INVITE transaction waits for its final response before it is dropped.
const INVITE_GUARD: std::time::Duration = std::time::Duration::from_secs(200);

/// What the layer makes of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A new transaction exists; the caller decides the answer and reports it with
    /// [`ServerTransactions::respond`].
    New,
    /// A retransmission (or an ACK for a non-2xx final response) absorbed by its transaction:
    /// send this, the last response, again, if there is one. Never passed up.
    Retransmission(Option<Outbound>),
    /// An ACK that matches no transaction: it acknowledges a 2xx and belongs to the dialog
    /// layer (RFC 3261 §17.2.3).
    Unmatched,
    /// The table is full: handle the request without a transaction.
    Untracked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Non-INVITE request received, nothing sent yet.
    Trying,
    /// A provisional response was sent.
    Proceeding,
    /// A final response was sent; waiting for retransmissions (and, for INVITE, the ACK).
    Completed,
    /// INVITE answered with 2xx (RFC 6026): absorb retransmitted INVITEs until Timer L.
    Accepted,
    /// INVITE's non-2xx response was acknowledged: absorb ACK retransmissions until Timer I.
    Confirmed,
}

#[derive(Debug)]
struct Entry {
    /// The transaction's key, shared with the map and every timer of the heap: a
    /// transaction schedules two or three timers, and a copy of its key (three strings)
    /// for each one showed in profiles.
    id: Arc<Key>,
    invite: bool,
    reliable: bool,
    state: State,
    last_response: Option<Outbound>,
    /// To tag of our response: an RFC 2543 ACK must carry it to match.
    to_tag: Option<String>,
    /// Timer G: next retransmission of the final response, and the interval after it.
    retransmit_at: Option<Instant>,
    interval: std::time::Duration,
    /// Timers H, I, J, L: when the transaction ends.
    expire_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<Arc<Key>, Entry>,
    /// Due times of the timers. An entry may be stale (its timer was moved or cancelled):
    /// popping it then does nothing, which is cheaper than removing from a heap.
    due: BinaryHeap<Reverse<(Instant, Arc<Key>)>>,
}

impl Table {
    /// Schedules a timer; true when it is the earliest (see [`super::schedule`]).
    fn schedule(&mut self, at: Instant, key: &Arc<Key>) -> bool {
        super::schedule(&mut self.due, at, key.clone())
    }
}

/// The server transactions of one node. A std `Mutex`, never held across an `.await`: every
/// operation is a few map updates.
#[derive(Debug)]
pub struct ServerTransactions {
    timers: Timers,
    capacity: usize,
    table: Mutex<Table>,
    changed: Notify,
}

impl ServerTransactions {
    pub fn new(timers: Timers) -> Self {
        Self::with_capacity(timers, DEFAULT_CAPACITY)
    }

    pub fn with_capacity(timers: Timers, capacity: usize) -> Self {
        ServerTransactions {
            timers,
            capacity,
            table: Mutex::default(),
            changed: Notify::new(),
        }
    }

    /// Matches a request against the table (RFC 3261 §17.2.3). `is_ack` and `to_tag` (the
    /// request's To tag) decide ACK handling: an ACK moves an INVITE transaction that sent a
    /// non-2xx answer from Completed to Confirmed.
    pub fn receive(
        &self,
        key: &Key,
        is_ack: bool,
        to_tag: Option<&str>,
        transport: Transport,
        now: Instant,
    ) -> Received {
        let mut table = self.lock();
        let t4 = self.timers.t4;
        if let Some(entry) = table.entries.get_mut(key) {
            if !is_ack {
                let resend = match entry.state {
                    // Still deciding: the answer goes out when it is ready.
                    State::Trying => None,
                    _ => entry.last_response.clone(),
                };
                return Received::Retransmission(resend);
            }
            let legacy_tag_ok = match key {
                Key::Legacy { .. } => entry.to_tag.as_deref() == to_tag,
                Key::Branch { .. } => true,
            };
            if !entry.invite || !legacy_tag_ok {
                return Received::Unmatched;
            }
            return match entry.state {
                State::Completed => {
                    entry.state = State::Confirmed;
                    entry.retransmit_at = None;
                    // Timer I: absorb ACK retransmissions for T4 (none come over a stream).
                    let expire = if entry.reliable { now } else { now + t4 };
                    entry.expire_at = Some(expire);
                    let id = entry.id.clone();
                    if table.schedule(expire, &id) {
                        self.changed.notify_one();
                    }
                    Received::Retransmission(None)
                }
                State::Confirmed => Received::Retransmission(None),
                // An ACK for a 2xx is end-to-end: not this transaction's.
                _ => Received::Unmatched,
            };
        }
        if is_ack {
            return Received::Unmatched;
        }
        if table.entries.len() >= self.capacity {
            return Received::Untracked;
        }
        let invite = matches!(key, Key::Branch { method, .. } | Key::Legacy { method, .. } if method == "INVITE");
        // A transaction whose answer never comes must not live forever. An INVITE may wait
        // for a callee as long as a proxy's Timer C (over 3 minutes, RFC 3261 §16.6).
        let expire = now
            + if invite {
                INVITE_GUARD
            } else {
                self.timers.transaction_timeout()
            };
        let id = Arc::new(key.clone());
        table.entries.insert(
            id.clone(),
            Entry {
                id: id.clone(),
                invite,
                reliable: transport.is_reliable(),
                // An INVITE transaction starts in Proceeding (RFC 3261 §17.2.1); with no
                // provisional stored yet a retransmission gets nothing, as in Trying.
                state: if invite {
                    State::Proceeding
                } else {
                    State::Trying
                },
                last_response: None,
                to_tag: None,
                retransmit_at: None,
                interval: self.timers.t1,
                expire_at: Some(expire),
            },
        );
        if table.schedule(expire, &id) {
            self.changed.notify_one();
        }
        Received::New
    }

    /// Records the response sent for `key` (`status` is its code) and starts the timers
    /// that follow it. Unknown keys (requests answered statelessly) are ignored.
    pub fn respond(
        &self,
        key: &Key,
        status: u16,
        response: Outbound,
        to_tag: Option<&str>,
        now: Instant,
    ) {
        let timers = self.timers;
        let mut table = self.lock();
        let Some(entry) = table.entries.get_mut(key) else {
            return;
        };
        if matches!(
            entry.state,
            State::Completed | State::Confirmed | State::Accepted
        ) {
            // A final response was sent already; a second one would be a TU bug.
            return;
        }
        entry.last_response = Some(response);
        entry.to_tag = to_tag.map(str::to_string);
        let id = entry.id.clone();
        // At most two timers start here (G and H); no list allocated for them.
        let mut schedule: [Option<Instant>; 2] = [None, None];
        let mut push = |at: Instant| {
            if let Some(slot) = schedule.iter_mut().find(|slot| slot.is_none()) {
                *slot = Some(at);
            }
        };
        if status < 200 {
            entry.state = State::Proceeding;
        } else if entry.invite && status < 300 {
            // RFC 6026 Accepted: retransmitted INVITEs are answered with the 2xx again
            // until Timer L; the ACK to a 2xx is the dialog's, not ours.
            entry.state = State::Accepted;
            let expire = now + timers.transaction_timeout();
            entry.expire_at = Some(expire);
            push(expire);
        } else if entry.invite {
            entry.state = State::Completed;
            // Timer H bounds the wait for the ACK on every transport; Timer G retransmits
            // over UDP only.
            let expire = now + timers.transaction_timeout();
            entry.expire_at = Some(expire);
            push(expire);
            if !entry.reliable {
                entry.interval = timers.t1;
                let at = now + timers.t1;
                entry.retransmit_at = Some(at);
                push(at);
            }
        } else {
            entry.state = State::Completed;
            // Timer J: keep answering retransmissions for 64·T1 over UDP, none on a stream.
            if entry.reliable {
                table.entries.remove(key);
                return;
            }
            let expire = now + timers.transaction_timeout();
            entry.expire_at = Some(expire);
            push(expire);
        }
        let mut earliest = false;
        for at in schedule.into_iter().flatten() {
            earliest |= table.schedule(at, &id);
        }
        if earliest {
            self.changed.notify_one();
        }
    }

    /// Fires the timers due at `now`.
    pub fn poll(&self, now: Instant) -> Vec<Outbound> {
        let t2 = self.timers.t2;
        let mut out = Vec::new();
        let mut table = self.lock();
        while let Some(Reverse((at, _))) = table.due.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, key))) = table.due.pop() else {
                break;
            };
            let Some(entry) = table.entries.get_mut(&key) else {
                continue;
            };
            if entry.expire_at.is_some_and(|at| at <= now) {
                if entry.state == State::Completed && entry.invite {
                    tracing::debug!(?key, "no ACK for a final response (Timer H)");
                }
                table.entries.remove(&key);
                continue;
            }
            if entry.retransmit_at.is_some_and(|at| at <= now) {
                if let Some(response) = &entry.last_response {
                    out.push(response.clone());
                }
                entry.interval = (entry.interval * 2).min(t2);
                let next = now + entry.interval;
                entry.retransmit_at = Some(next);
                table.schedule(next, &key);
            }
        }
        // A burst leaves the table's allocation at its peak; give it back once the table is
        // mostly empty (a UDP REGISTER's transaction lives 32 s, so a burst of them is large).
        if table.entries.capacity() > 4096 && table.entries.len() < table.entries.capacity() / 4 {
            let keep = table.entries.len() * 2;
            table.entries.shrink_to(keep);
        }
        if table.due.capacity() > 4096 && table.due.len() < table.due.capacity() / 4 {
            let keep = table.due.len() * 2;
            table.due.shrink_to(keep);
        }
        out
    }

    /// Drops the transaction of `key`: its request is answered statelessly after all (a
    /// digest challenge, which a retransmitted request may just as well get afresh).
    pub fn forget(&self, key: &Key) {
        self.lock().entries.remove(key);
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.lock().due.peek().map(|Reverse((at, _))| *at)
    }

    /// How many transactions exist (for tests and statistics).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) async fn changed(&self) {
        self.changed.notified().await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // Every update leaves the table consistent, so a poisoned lock is still usable.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key(method: &str) -> Key {
        Key::Branch {
            branch: "z9hG4bKtest".into(),
            sent_by: "10.0.0.1:5060".into(),
            method: method.into(),
        }
    }

    fn out(text: &str) -> Outbound {
        Outbound {
            bytes: text.as_bytes().to_vec(),
            target: "10.0.0.1:5060".parse().unwrap(),
        }
    }

    /// Advances the paused clock from timer to timer until `until`, collecting when (since
    /// `start`) each retransmission went out.
    async fn run_timers(
        layer: &ServerTransactions,
        start: Instant,
        until: Duration,
    ) -> Vec<Duration> {
        let mut sent = Vec::new();
        while let Some(at) = layer.next_deadline() {
            if at > start + until {
                break;
            }
            tokio::time::advance(at.saturating_duration_since(Instant::now())).await;
            for _ in layer.poll(Instant::now()) {
                sent.push(Instant::now() - start);
            }
        }
        sent
    }

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_final_response_to_invite_is_retransmitted_at_t1_doubling_capped_at_t2_until_timer_h(
    ) {
        let layer = ServerTransactions::new(Timers::default());
        let start = Instant::now();
        let k = key("INVITE");
        assert_eq!(
            layer.receive(&k, false, None, Transport::Udp, start),
            Received::New
        );
        layer.respond(&k, 486, out("486"), Some("t"), start);
        let sent = run_timers(&layer, start, Duration::from_secs(40)).await;
        // G: 0.5, 1.5, 3.5, 7.5 then every 4 s (T2) until H at 32 s.
        let expected = ms(&[
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
        ]);
        assert_eq!(sent, expected);
        assert!(layer.is_empty(), "Timer H ends the transaction");
    }

    #[tokio::test(start_paused = true)]
    async fn an_ack_stops_the_retransmission_of_a_final_response() {
        let layer = ServerTransactions::new(Timers::default());
        let start = Instant::now();
        let k = key("INVITE");
        layer.receive(&k, false, None, Transport::Udp, start);
        layer.respond(&k, 486, out("486"), Some("t"), start);
        let sent = run_timers(&layer, start, Duration::from_millis(1600)).await;
        assert_eq!(sent, ms(&[500, 1500]));
        let ack = layer.receive(&k, true, Some("t"), Transport::Udp, Instant::now());
        assert_eq!(ack, Received::Retransmission(None));
        let sent = run_timers(&layer, start, Duration::from_secs(60)).await;
        assert!(sent.is_empty(), "{sent:?}");
        assert!(layer.is_empty(), "Timer I ends the transaction");
    }

    #[tokio::test(start_paused = true)]
    async fn a_duplicate_invite_is_absorbed_and_gets_the_last_response_again() {
        let layer = ServerTransactions::new(Timers::default());
        let now = Instant::now();
        let k = key("INVITE");
        layer.receive(&k, false, None, Transport::Udp, now);
        assert_eq!(
            layer.receive(&k, false, None, Transport::Udp, now),
            Received::Retransmission(None)
        );
        layer.respond(&k, 100, out("100"), None, now);
        assert_eq!(
            layer.receive(&k, false, None, Transport::Udp, now),
            Received::Retransmission(Some(out("100")))
        );
        layer.respond(&k, 603, out("603"), Some("t"), now);
        assert_eq!(
            layer.receive(&k, false, None, Transport::Udp, now),
            Received::Retransmission(Some(out("603")))
        );
        assert_eq!(layer.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn over_tcp_nothing_is_retransmitted_but_timer_h_still_waits_for_the_ack() {
        let layer = ServerTransactions::new(Timers::default());
        let start = Instant::now();
        let k = key("INVITE");
        layer.receive(&k, false, None, Transport::Tcp, start);
        layer.respond(&k, 486, out("486"), Some("t"), start);
        let sent = run_timers(&layer, start, Duration::from_secs(60)).await;
        assert!(sent.is_empty());
        assert!(layer.is_empty());

        let k = key("REGISTER");
        layer.receive(&k, false, None, Transport::Tcp, Instant::now());
        layer.respond(&k, 200, out("200"), Some("t"), Instant::now());
        assert!(layer.is_empty(), "Timer J is zero on a stream");
    }

    #[tokio::test(start_paused = true)]
    async fn a_non_invite_transaction_answers_retransmissions_until_timer_j() {
        let layer = ServerTransactions::new(Timers::default());
        let start = Instant::now();
        let k = key("REGISTER");
        layer.receive(&k, false, None, Transport::Udp, start);
        layer.respond(&k, 200, out("200"), Some("t"), start);
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(layer.poll(Instant::now()).is_empty());
        assert_eq!(
            layer.receive(&k, false, None, Transport::Udp, Instant::now()),
            Received::Retransmission(Some(out("200")))
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        layer.poll(Instant::now());
        assert!(layer.is_empty());
        assert_eq!(
            layer.receive(&k, false, None, Transport::Udp, Instant::now()),
            Received::New
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_ack_for_a_2xx_or_without_a_transaction_is_not_absorbed() {
        let layer = ServerTransactions::new(Timers::default());
        let now = Instant::now();
        let k = key("INVITE");
        assert_eq!(
            layer.receive(&k, true, Some("t"), Transport::Udp, now),
            Received::Unmatched
        );
        layer.receive(&k, false, None, Transport::Udp, now);
        layer.respond(&k, 200, out("200"), Some("t"), now);
        assert_eq!(
            layer.receive(&k, true, Some("t"), Transport::Udp, now),
            Received::Unmatched
        );
    }

    #[test]
    fn a_full_table_hands_new_requests_back_untracked() {
        let layer = ServerTransactions::with_capacity(Timers::default(), 1);
        let now = Instant::now();
        assert_eq!(
            layer.receive(&key("INVITE"), false, None, Transport::Udp, now),
            Received::New
        );
        assert_eq!(
            layer.receive(&key("OPTIONS"), false, None, Transport::Udp, now),
            Received::Untracked
        );
    }
}
