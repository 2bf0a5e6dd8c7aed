//! Call admission: the channel and CPS limits a node enforces, and the calls that hold its
//! channels.
//!
//! A *channel* is held by a call from the moment its INVITE is admitted (ringing counts, as
//! it does on a carrier's trunk) until it fails (a final non-2xx answer, a timeout, a
//! CANCEL's 487) or ends (a BYE from either side). *CPS* counts the calls admitted in the
//! last second, in ten 100 ms slices, so the figure the console shows is the figure the
//! limit is checked against.
//!
//! Limits and counters are separate things: every server has its own limits (the channels
//! and CPS it was deployed or resized with), and checks them against a [`Budget`]'s
//! counters. An unclustered node counts in a budget of its own; the members of a cluster
//! share one ("if you set CPS to 10, clustered servers will allow 10 CPS total"), so a call
//! on any member counts against every member. Each node also keeps its own figures, which
//! the console shows per server.
//!
//! A call whose end the node never sees (a BYE lost on the way) would hold its channel for
//! ever: calls are forgotten after [`MAX_CALL`], as Kamailio's dialog module does after its
//! default timeout.
//!
//! For each call the node also keeps how to reach both of its ends ([`End`]): who they are
//! (From and To, tags included), their Contacts, the Record-Route entries between the node
//! and each, and the last CSeq each has sent. That is what it takes for the node to end a
//! call itself, with a BYE to each side, when it is restarted or stopped
//! ([`Calls::take_dialogs`]); Kamailio's dialog module keeps the same to end dialogs from
//! its management interface.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::dialog::{Dialog, DialogEvent, DialogObserver, End};

/// How long an established call may hold a channel without the node seeing its BYE: 12 h,
/// the default dialog timeout of Kamailio's dialog module.
pub const MAX_CALL: Duration = Duration::from_secs(12 * 3600);

/// The width of one slice of the CPS window.
const SLICE: Duration = Duration::from_millis(100);
/// Slices in the window: one second.
const SLICES: usize = 10;

/// What a server may carry at once. Unlimited when a node has none (a node started without
/// a configuration from the control plane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// Calls in progress at once.
    pub channels: u32,
    /// New calls per second.
    pub cps: u32,
}

/// Why a call was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Channels,
    Cps,
}

impl Full {
    /// Seconds a caller should wait before trying again (`Retry-After`): a second frees a
    /// CPS slot; a channel frees when some call ends, which takes longer.
    pub fn retry_after(self) -> u32 {
        match self {
            Full::Cps => 1,
            Full::Channels => 10,
        }
    }
}

/// What a node carries now, as the console shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallFigures {
    pub channels_in_use: u32,
    /// Calls admitted in the last second.
    pub cps_now: u32,
}

/// Calls admitted in a sliding one-second window.
#[derive(Debug)]
struct Window {
    origin: Instant,
    /// Per slice: which 100 ms period since `origin` it counts, and how many calls.
    slices: [(u64, u32); SLICES],
}

impl Window {
    fn new(origin: Instant) -> Self {
        Window {
            origin,
            slices: [(u64::MAX, 0); SLICES],
        }
    }

    fn period(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.origin);
        (elapsed.as_millis() / SLICE.as_millis()) as u64
    }

    fn count(&self, now: Instant) -> u32 {
        let current = self.period(now);
        self.slices
            .iter()
            .filter(|(period, _)| *period <= current && current - period < SLICES as u64)
            .map(|(_, calls)| calls)
            .sum()
    }

    fn add(&mut self, now: Instant) {
        let current = self.period(now);
        let slice = &mut self.slices[(current % SLICES as u64) as usize];
        if slice.0 != current {
            *slice = (current, 0);
        }
        slice.1 += 1;
    }
}

#[derive(Debug)]
struct Counters {
    active: u32,
    window: Window,
}

/// Counters of calls in progress and calls per second, shared by whoever holds the `Arc`:
/// one node, or every member of a cluster.
#[derive(Debug)]
pub struct Budget {
    /// A std `Mutex`: checked and updated in one step per call, never across an `.await`.
    counters: Mutex<Counters>,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            counters: Mutex::new(Counters {
                active: 0,
                window: Window::new(Instant::now()),
            }),
        }
    }
}

impl Budget {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        // Every update is a counter step: a poisoned lock still holds consistent figures.
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a new call if `limits` leave room for it, in one step (two members of a
    /// cluster cannot both take the last channel).
    fn take_within(&self, limits: Option<CallLimits>, now: Instant) -> Result<(), Full> {
        let mut counters = self.lock();
        if let Some(limits) = limits {
            if counters.active >= limits.channels {
                return Err(Full::Channels);
            }
            if counters.window.count(now) >= limits.cps {
                return Err(Full::Cps);
            }
        }
        counters.active += 1;
        counters.window.add(now);
        Ok(())
    }

    fn release(&self) {
        let mut counters = self.lock();
        counters.active = counters.active.saturating_sub(1);
    }

    pub fn figures(&self, now: Instant) -> CallFigures {
        let counters = self.lock();
        CallFigures {
            channels_in_use: counters.active,
            cps_now: counters.window.count(now),
        }
    }
}

#[derive(Debug)]
struct Call {
    /// The cluster budget the call was counted in (a node may change clusters while its
    /// calls go on: each is released where it was counted).
    shared: Option<Arc<Budget>>,
    answered: bool,
    since: Instant,
    /// The caller, from the INVITE as the node forwarded it (its routes come with the 2xx).
    caller: Option<End>,
    /// The callee, from the first 2xx.
    callee: Option<End>,
}

/// One node's calls, by Call-ID, and the budgets they count in.
#[derive(Debug, Default)]
pub struct Calls {
    own: Budget,
    shared: RwLock<Option<Arc<Budget>>>,
    table: Mutex<HashMap<String, Call>>,
    /// When [`sweep`](Self::sweep) last looked for stale calls.
    swept: Mutex<Option<Instant>>,
}

/// How often [`Calls::sweep`] looks for calls older than [`MAX_CALL`].
const SWEEP_EVERY: Duration = Duration::from_secs(60);

impl Calls {
    /// Counts calls from now on in `shared` (a cluster's budget) as well as the node's own;
    /// `None` when the node leaves its cluster.
    pub fn share(&self, shared: Option<Arc<Budget>>) {
        *self.shared.write().unwrap_or_else(|p| p.into_inner()) = shared;
    }

    /// Admits the call `call_id` under `limits`, checked against the cluster's counters when
    /// the node is clustered, else its own. A call admitted already (the same Call-ID
    /// again) is not counted twice.
    pub fn admit(
        &self,
        call_id: &str,
        limits: Option<CallLimits>,
        now: Instant,
    ) -> Result<(), Full> {
        let mut table = self.lock();
        if table.contains_key(call_id) {
            return Ok(());
        }
        let shared = self
            .shared
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match &shared {
            Some(cluster) => {
                cluster.take_within(limits, now)?;
                self.own.take_within(None, now)?;
            }
            None => self.own.take_within(limits, now)?,
        }
        table.insert(
            call_id.to_string(),
            Call {
                shared,
                answered: false,
                since: now,
                caller: None,
                callee: None,
            },
        );
        Ok(())
    }

    /// The caller of an admitted call, as its INVITE leaves the node.
    pub fn invited(&self, call_id: &str, caller: End) {
        if let Some(call) = self.lock().get_mut(call_id) {
            call.caller.get_or_insert(caller);
        }
    }

    /// Whether `call_id` is a call the node admitted whose callee is not known yet: its
    /// first 2xx is worth reading for [`answered`](Self::answered) (retransmitted 2xx and
    /// other branches' are not).
    pub fn awaits_callee(&self, call_id: &str) -> bool {
        self.lock()
            .get(call_id)
            .is_some_and(|call| call.callee.is_none())
    }

    /// The call was answered (2xx): it holds its channel until a BYE. The first 2xx names
    /// the callee and the routes towards the caller (`caller_routes`).
    pub fn answered(&self, call_id: &str, answer: Option<(End, Vec<String>)>) {
        if let Some(call) = self.lock().get_mut(call_id) {
            call.answered = true;
            if let (None, Some((callee, caller_routes))) = (&call.callee, answer) {
                call.callee = Some(callee);
                if let Some(caller) = &mut call.caller {
                    caller.routes = caller_routes;
                }
            }
        }
    }

    /// A request inside an answered call, from the end whose tag is `from_tag`: the node
    /// remembers its CSeq, so a BYE it sends on that end's behalf counts on from there.
    pub fn in_dialog(&self, call_id: &str, from_tag: &str, cseq: u32) {
        let mut table = self.lock();
        let Some(call) = table.get_mut(call_id) else {
            return;
        };
        for end in [&mut call.caller, &mut call.callee].into_iter().flatten() {
            if end.sent(from_tag) {
                end.cseq = Some(end.cseq.map_or(cseq, |seen| seen.max(cseq)));
            }
        }
    }

    /// Removes every answered call whose ends are known, freeing its channel, and returns
    /// them: the node is about to end them with a BYE to each side.
    pub fn take_dialogs(&self) -> Vec<Dialog> {
        let mut table = self.lock();
        let ending: Vec<String> = table
            .iter()
            .filter(|(_, call)| call.answered && call.caller.is_some() && call.callee.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        let mut dialogs = Vec::with_capacity(ending.len());
        for call_id in ending {
            let Some(mut call) = table.remove(&call_id) else {
                continue;
            };
            if let (Some(caller), Some(callee)) = (call.caller.take(), call.callee.take()) {
                dialogs.push(Dialog {
                    call_id,
                    caller,
                    callee,
                });
            }
            self.free(call);
        }
        dialogs
    }

    /// The call's INVITE failed (a final non-2xx answer, or none in time): its channel is
    /// free. A failed re-INVITE of an answered call changes nothing.
    pub fn failed(&self, call_id: &str) {
        let mut table = self.lock();
        if table.get(call_id).is_some_and(|call| !call.answered) {
            if let Some(call) = table.remove(call_id) {
                self.free(call);
            }
        }
    }

    /// The call ended (BYE): its channel is free.
    pub fn ended(&self, call_id: &str) {
        if let Some(call) = self.lock().remove(call_id) {
            self.free(call);
        }
    }

    /// [`expire`](Self::expire), at most once a minute: cheap enough to call on every timer
    /// tick of the node.
    pub fn sweep(&self, now: Instant) {
        {
            let mut swept = self.swept.lock().unwrap_or_else(|p| p.into_inner());
            if swept.is_some_and(|at| now.saturating_duration_since(at) < SWEEP_EVERY) {
                return;
            }
            *swept = Some(now);
        }
        self.expire(now);
    }

    /// Forgets calls older than [`MAX_CALL`].
    pub fn expire(&self, now: Instant) {
        let mut table = self.lock();
        let stale: Vec<String> = table
            .iter()
            .filter(|(_, call)| now.saturating_duration_since(call.since) >= MAX_CALL)
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            if let Some(call) = table.remove(&id) {
                self.free(call);
            }
        }
    }

    /// This node's own figures.
    pub fn figures(&self, now: Instant) -> CallFigures {
        self.own.figures(now)
    }

    fn free(&self, call: Call) {
        self.own.release();
        if let Some(shared) = call.shared {
            shared.release();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Call>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl DialogObserver for Calls {
    /// Keeps the channel count and what it takes to end each call.
    fn on_dialog(&self, event: &DialogEvent<'_>) {
        match event {
            DialogEvent::Invited {
                call_id, caller, ..
            } => self.invited(call_id, caller.clone()),
            DialogEvent::Early { .. } => {}
            DialogEvent::Confirmed {
                call_id, callee, ..
            } => self.answered(call_id, callee.clone()),
            DialogEvent::Failed { call_id, .. } => self.failed(call_id),
            DialogEvent::InDialog {
                call_id,
                from_tag,
                cseq,
            } => self.in_dialog(call_id, from_tag, *cseq),
            DialogEvent::Ended { call_id } => self.ended(call_id),
        }
    }
}

impl Drop for Calls {
    /// A node that stops drops its calls: they no longer count in its cluster's budget.
    fn drop(&mut self) {
        let table = std::mem::take(self.table.get_mut().unwrap_or_else(|p| p.into_inner()));
        for (_, call) in table {
            if let Some(shared) = call.shared {
                shared.release();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Option<CallLimits> = Some(CallLimits {
        channels: 2,
        cps: 3,
    });

    #[test]
    fn channels_are_held_until_the_call_fails_or_ends() {
        let calls = Calls::default();
        let now = Instant::now();
        assert_eq!(calls.admit("a", LIMITS, now), Ok(()));
        assert_eq!(calls.admit("b", LIMITS, now), Ok(()));
        assert_eq!(calls.admit("c", LIMITS, now), Err(Full::Channels));
        // The same call again is not a new call.
        assert_eq!(calls.admit("a", LIMITS, now), Ok(()));
        calls.failed("a");
        assert_eq!(calls.figures(now).channels_in_use, 1);
        calls.answered("b", None);
        calls.failed("b");
        assert_eq!(
            calls.figures(now).channels_in_use,
            1,
            "a failed re-INVITE does not end an answered call"
        );
        calls.ended("b");
        assert_eq!(calls.figures(now).channels_in_use, 0);
    }

    #[test]
    fn cps_counts_the_last_second() {
        let calls = Calls::default();
        let start = Instant::now();
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            assert_eq!(
                calls.admit(id, LIMITS, start + Duration::from_millis(i as u64 * 300)),
                Ok(())
            );
            calls.ended(id);
        }
        let at = start + Duration::from_millis(950);
        assert_eq!(calls.figures(at).cps_now, 3);
        assert_eq!(calls.admit("d", LIMITS, at), Err(Full::Cps));
        // At 1.05 s the first call (at 0 s) has left the window.
        let later = start + Duration::from_millis(1050);
        assert_eq!(calls.figures(later).cps_now, 2);
        assert_eq!(calls.admit("d", LIMITS, later), Ok(()));
        assert_eq!(
            calls.figures(start + Duration::from_secs(5)),
            CallFigures {
                channels_in_use: 1,
                cps_now: 0
            }
        );
    }

    #[test]
    fn cluster_members_share_one_budget() {
        let cluster = Arc::new(Budget::default());
        let (a, b) = (Calls::default(), Calls::default());
        a.share(Some(cluster.clone()));
        b.share(Some(cluster.clone()));
        let now = Instant::now();
        assert_eq!(a.admit("1", LIMITS, now), Ok(()));
        assert_eq!(b.admit("2", LIMITS, now), Ok(()));
        assert_eq!(b.admit("3", LIMITS, now), Err(Full::Channels));
        assert_eq!(a.figures(now).channels_in_use, 1);
        assert_eq!(b.figures(now).channels_in_use, 1);
        assert_eq!(cluster.figures(now).channels_in_use, 2);
        // A member that stops takes its calls out of the cluster's count.
        drop(a);
        assert_eq!(cluster.figures(now).channels_in_use, 1);
        assert_eq!(b.admit("3", LIMITS, now), Ok(()));
    }

    #[test]
    fn calls_without_an_end_are_forgotten() {
        let calls = Calls::default();
        let now = Instant::now();
        calls.admit("a", LIMITS, now).unwrap();
        calls.answered("a", None);
        calls.expire(now + Duration::from_secs(3600));
        assert_eq!(calls.figures(now).channels_in_use, 1);
        calls.expire(now + MAX_CALL);
        assert_eq!(calls.figures(now).channels_in_use, 0);
    }

    #[test]
    fn no_limits_admit_everything() {
        let calls = Calls::default();
        let now = Instant::now();
        for i in 0..100 {
            assert_eq!(calls.admit(&i.to_string(), None, now), Ok(()));
        }
        assert_eq!(calls.figures(now).cps_now, 100);
    }

    fn end(party: &str, contact: &str, cseq: Option<u32>) -> End {
        End {
            party: party.into(),
            contact: contact.into(),
            routes: Vec::new(),
            cseq,
        }
    }

    #[test]
    fn answered_calls_give_up_their_ends_once_and_count_each_end_s_cseq() {
        let calls = Calls::default();
        let now = Instant::now();
        calls.admit("ringing", LIMITS, now).unwrap();
        calls.invited("ringing", end("<sip:x@h>;tag=x", "sip:x@1.2.3.4", Some(1)));
        calls.admit("talking", LIMITS, now).unwrap();
        calls.invited("talking", end("<sip:a@h>;tag=a", "sip:a@1.2.3.4", Some(5)));
        assert!(calls.awaits_callee("talking"));
        assert!(!calls.awaits_callee("unknown"));
        let callee = end("<sip:b@h>;tag=b", "sip:b@5.6.7.8", None);
        let towards_caller = vec!["<sip:9.9.9.9;lr>".to_string()];
        calls.answered("talking", Some((callee.clone(), towards_caller.clone())));
        assert!(
            !calls.awaits_callee("talking"),
            "its 2xx need not be read again"
        );
        // A later 2xx (another branch of a fork) does not replace the callee.
        calls.answered(
            "talking",
            Some((end("<sip:c@h>;tag=c", "sip:c@1.1.1.1", None), vec![])),
        );
        calls.in_dialog("talking", "a", 4);
        calls.in_dialog("talking", "a", 9);
        calls.in_dialog("talking", "b", 30);
        calls.in_dialog("talking", "stranger", 99);

        let dialogs = calls.take_dialogs();
        assert_eq!(dialogs.len(), 1, "a call still ringing is not ended");
        let dialog = &dialogs[0];
        assert_eq!(dialog.call_id, "talking");
        assert_eq!(dialog.caller.cseq, Some(9), "the highest seen");
        assert_eq!(dialog.caller.routes, towards_caller);
        assert_eq!(dialog.callee.party, callee.party);
        assert_eq!(dialog.callee.cseq, Some(30));
        assert_eq!(
            calls.figures(now).channels_in_use,
            1,
            "only the ringing call holds one"
        );
        assert!(calls.take_dialogs().is_empty());
    }
}
