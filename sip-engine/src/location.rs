//! The location service: which contacts each address-of-record is reachable at.
//!
//! [`LocationStore`] is the only owner of bindings; the registrar changes them only through
//! it. The trait is synchronous and object-safe: the node answers from memory on its receive
//! loop, so a persistent backend (SQL, Redis) keeps a write-through cache behind this trait
//! and persists off the hot path, as Kamailio's usrloc does. [`MemoryLocationStore`] is the
//! in-memory one, shareable by every node of a process through an `Arc`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::transport::Transport;

/// One contact of an address-of-record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI as the phone sent it (without `<>` or header parameters).
    pub contact: String,
    /// When it lapses unless refreshed (wall-clock: a store may be shared across hosts).
    pub expires_at: SystemTime,
    /// Where the REGISTER actually came from: behind NAT, the only address that reaches
    /// the phone (RFC 3581).
    pub received: SocketAddr,
    pub transport: Transport,
    /// Call-ID and CSeq of the REGISTER that last wrote it: they order updates (RFC 3261
    /// §10.3 step 7).
    pub call_id: String,
    pub cseq: u32,
    pub user_agent: Option<String>,
    /// Last answer to a keep-alive, and the round trip it measured.
    pub last_keepalive: Option<SystemTime>,
    pub latency: Option<Duration>,
    /// OPTIONS keep-alives sent since the last answer (or the last REGISTER, which proves
    /// the phone reachable just as well). Counted by the store so that matching a reply
    /// needs no per-ping state in the node.
    pub missed_keepalives: u32,
    /// False once a contact left too many keep-alives unanswered: it went away without
    /// un-registering. Any answer, or a new REGISTER, brings it back.
    pub online: bool,
    /// The REGISTER's Path (RFC 3327), header values nearest the registrar first: the
    /// proxies a request for this contact must pass (the Dispatcher that holds the
    /// phone's NAT binding, which then also keeps it open). Empty for a phone that
    /// registered here directly.
    pub path: Vec<String>,
}

impl Binding {
    /// Seconds left before it lapses, as a 200 OK reports it.
    pub fn expires_in(&self, now: SystemTime) -> u64 {
        self.expires_at
            .duration_since(now)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// One change a REGISTER asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Add or refresh this binding (matched by contact URI).
    Upsert(Binding),
    /// Remove the binding of `contact` (a contact with expires 0).
    Remove {
        contact: String,
        call_id: String,
        cseq: u32,
    },
    /// `Contact: *` with `Expires: 0`: remove every binding of the AOR.
    RemoveAll { call_id: String, cseq: u32 },
}

/// Why a store refused a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Same Call-ID as the stored binding with a CSeq not above it: an old or reordered
    /// REGISTER. Nothing was changed.
    #[error("out-of-order REGISTER for {contact}")]
    OutOfOrder { contact: String },
    /// The backend could not do it (a persistent store's I/O); nothing was changed.
    #[error("location store unavailable: {0}")]
    Unavailable(String),
}

/// The location service. Implementations must apply a list of changes atomically: all or
/// none (RFC 3261 §10.3 step 7), and never return a binding past its expiry.
pub trait LocationStore: Send + Sync + std::fmt::Debug {
    /// Applies `changes` to `aor` and returns its live bindings afterwards.
    fn apply(
        &self,
        aor: &str,
        changes: &[Change],
        now: SystemTime,
    ) -> Result<Vec<Binding>, StoreError>;

    /// The live bindings of `aor`.
    fn lookup(&self, aor: &str, now: SystemTime) -> Result<Vec<Binding>, StoreError>;

    /// Removes one binding without ordering checks (a phone that stopped answering
    /// keep-alives). True if it existed.
    fn remove(&self, aor: &str, contact: &str) -> Result<bool, StoreError>;

    /// Removes every binding of `aor` (the user was deleted). Returns how many there were.
    fn remove_all(&self, aor: &str) -> Result<usize, StoreError>;

    /// Records a keep-alive answer for a binding: when, the round trip, and that it is
    /// online again with nothing unanswered. False if the binding does not exist.
    fn record_keepalive(
        &self,
        aor: &str,
        contact: &str,
        at: SystemTime,
        latency: Duration,
    ) -> Result<bool, StoreError>;

    /// Drops lapsed bindings; returns how many.
    fn purge_expired(&self, now: SystemTime) -> Result<usize, StoreError>;

    /// Every live binding of the AORs in `domain` (`sip:<user>@<domain>`), with its AOR:
    /// what a node's keep-alives walk through. The default lists nothing, so a store that
    /// cannot enumerate simply gets no keep-alives.
    fn bindings_in_domain(
        &self,
        domain: &str,
        now: SystemTime,
    ) -> Result<Vec<(String, Binding)>, StoreError> {
        let _ = (domain, now);
        Ok(Vec::new())
    }

    /// Shows `visit` every live binding of the AORs in `domain`, with its AOR, in no
    /// particular order: what a node's keep-alives plan a round from. The default walks
    /// [`bindings_in_domain`](Self::bindings_in_domain); a store that can lend its
    /// bindings saves copying (and sorting) all of them every interval.
    fn visit_domain(
        &self,
        domain: &str,
        now: SystemTime,
        visit: &mut dyn FnMut(&str, &Binding),
    ) -> Result<(), StoreError> {
        for (aor, binding) in self.bindings_in_domain(domain, now)? {
            visit(&aor, &binding);
        }
        Ok(())
    }

    /// Counts one more OPTIONS keep-alive sent to a binding, and marks the binding offline
    /// when `max_missed` keep-alives were already left unanswered before this one. Returns
    /// that count of unanswered keep-alives (before this one), or `None` when the binding
    /// is gone. The default counts nothing and answers `Some(0)`: with a store that cannot
    /// count, contacts are pinged but never judged offline.
    fn record_keepalive_sent(
        &self,
        aor: &str,
        contact: &str,
        max_missed: u32,
    ) -> Result<Option<u32>, StoreError> {
        let _ = (aor, contact, max_missed);
        Ok(Some(0))
    }
}

/// Contact URIs compare with scheme and host case-insensitive (RFC 3261 §19.1.4), the user
/// part as is. This is the key bindings are matched by.
pub fn contact_key(uri: &str) -> String {
    let uri = uri.trim();
    match uri.split_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((scheme, user)) => format!(
                "{}:{}@{}",
                scheme.to_ascii_lowercase(),
                user,
                host.to_ascii_lowercase()
            ),
            None => format!("{user}@{}", host.to_ascii_lowercase()),
        },
        None => uri.to_ascii_lowercase(),
    }
}

/// Whether two contact URIs have the same [`contact_key`], compared without building either
/// key: the store matches a contact against every binding of its AOR on each REGISTER,
/// keep-alive and keep-alive answer, and two allocations per comparison showed in profiles.
pub fn same_contact(a: &str, b: &str) -> bool {
    // Keep-alives and their answers name a binding's contact exactly as stored.
    a == b || key_bytes(a).eq(key_bytes(b))
}

/// The bytes of [`contact_key`]`(uri)`, in order: the scheme and host lowercased, the
/// user part as is.
fn key_bytes(uri: &str) -> impl Iterator<Item = u8> + '_ {
    let uri = uri.trim();
    // (text, lowercased?) pieces, the same five for every shape of URI.
    let pieces: [(&str, bool); 5] = match uri.split_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((scheme, user)) => [
                (scheme, true),
                (":", false),
                (user, false),
                ("@", false),
                (host, true),
            ],
            None => [
                ("", false),
                ("", false),
                (user, false),
                ("@", false),
                (host, true),
            ],
        },
        None => [
            (uri, true),
            ("", false),
            ("", false),
            ("", false),
            ("", false),
        ],
    };
    pieces.into_iter().flat_map(|(text, lower)| {
        text.bytes()
            .map(move |b| if lower { b.to_ascii_lowercase() } else { b })
    })
}

/// Bindings in memory, behind one std `Mutex` (never held across an `.await`; each operation
/// touches one AOR's short list).
#[derive(Debug, Default)]
pub struct MemoryLocationStore {
    aors: Mutex<HashMap<String, Vec<Binding>>>,
}

impl MemoryLocationStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many bindings are stored, live or lapsed but not yet swept (cheap: no copies).
    pub fn len(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every live binding of the AORs in `domain` (`sip:<user>@<domain>`), for the
    /// console's registrations view and the node's keep-alives.
    pub fn in_domain(&self, domain: &str, now: SystemTime) -> Vec<(String, Binding)> {
        let suffix = format!("@{domain}");
        let aors = self.lock();
        let mut found: Vec<(String, Binding)> = aors
            .iter()
            .filter(|(aor, _)| aor.ends_with(&suffix))
            .flat_map(|(aor, bindings)| {
                bindings
                    .iter()
                    .filter(|b| b.expires_at > now)
                    .map(move |b| (aor.clone(), b.clone()))
            })
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.contact.cmp(&b.1.contact)));
        found
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Binding>>> {
        // Every operation works on a copy and swaps it in whole, so a poisoned map is intact.
        self.aors.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Checks the ordering rule for one stored binding: same Call-ID needs a higher CSeq.
fn in_order(stored: &Binding, call_id: &str, cseq: u32) -> bool {
    stored.call_id != call_id || cseq > stored.cseq
}

impl LocationStore for MemoryLocationStore {
    fn apply(
        &self,
        aor: &str,
        changes: &[Change],
        now: SystemTime,
    ) -> Result<Vec<Binding>, StoreError> {
        let mut aors = self.lock();
        let mut bindings: Vec<Binding> = aors
            .get(aor)
            .map(|list| {
                list.iter()
                    .filter(|b| b.expires_at > now)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for change in changes {
            match change {
                Change::Upsert(binding) => {
                    match bindings
                        .iter_mut()
                        .find(|b| same_contact(&b.contact, &binding.contact))
                    {
                        Some(stored) => {
                            if !in_order(stored, &binding.call_id, binding.cseq) {
                                return Err(StoreError::OutOfOrder {
                                    contact: binding.contact.clone(),
                                });
                            }
                            // Keep-alive history belongs to the contact, not the REGISTER
                            // (whose own arrival resets the missed count and `online`).
                            let (last_keepalive, latency) = (stored.last_keepalive, stored.latency);
                            *stored = binding.clone();
                            stored.last_keepalive = stored.last_keepalive.or(last_keepalive);
                            stored.latency = stored.latency.or(latency);
                        }
                        None => bindings.push(binding.clone()),
                    }
                }
                Change::Remove {
                    contact,
                    call_id,
                    cseq,
                } => {
                    if let Some(at) = bindings
                        .iter()
                        .position(|b| same_contact(&b.contact, contact))
                    {
                        if !in_order(&bindings[at], call_id, *cseq) {
                            return Err(StoreError::OutOfOrder {
                                contact: contact.clone(),
                            });
                        }
                        bindings.remove(at);
                    }
                }
                Change::RemoveAll { call_id, cseq } => {
                    if let Some(stored) = bindings.iter().find(|b| !in_order(b, call_id, *cseq)) {
                        return Err(StoreError::OutOfOrder {
                            contact: stored.contact.clone(),
                        });
                    }
                    bindings.clear();
                }
            }
        }
        if bindings.is_empty() {
            aors.remove(aor);
        } else if let Some(stored) = aors.get_mut(aor) {
            // A refresh (most REGISTERs): the AOR's key is kept, not built again.
            stored.clone_from(&bindings);
        } else {
            aors.insert(aor.to_string(), bindings.clone());
        }
        Ok(bindings)
    }

    fn lookup(&self, aor: &str, now: SystemTime) -> Result<Vec<Binding>, StoreError> {
        Ok(self
            .lock()
            .get(aor)
            .map(|list| {
                list.iter()
                    .filter(|b| b.expires_at > now)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    fn remove(&self, aor: &str, contact: &str) -> Result<bool, StoreError> {
        let mut aors = self.lock();
        let Some(list) = aors.get_mut(aor) else {
            return Ok(false);
        };
        let before = list.len();
        list.retain(|b| !same_contact(&b.contact, contact));
        let removed = list.len() != before;
        if list.is_empty() {
            aors.remove(aor);
        }
        Ok(removed)
    }

    fn remove_all(&self, aor: &str) -> Result<usize, StoreError> {
        Ok(self.lock().remove(aor).map_or(0, |list| list.len()))
    }

    fn record_keepalive(
        &self,
        aor: &str,
        contact: &str,
        at: SystemTime,
        latency: Duration,
    ) -> Result<bool, StoreError> {
        let mut aors = self.lock();
        let Some(binding) = aors
            .get_mut(aor)
            .and_then(|list| list.iter_mut().find(|b| same_contact(&b.contact, contact)))
        else {
            return Ok(false);
        };
        binding.last_keepalive = Some(at);
        binding.latency = Some(latency);
        binding.missed_keepalives = 0;
        binding.online = true;
        Ok(true)
    }

    fn bindings_in_domain(
        &self,
        domain: &str,
        now: SystemTime,
    ) -> Result<Vec<(String, Binding)>, StoreError> {
        Ok(self.in_domain(domain, now))
    }

    fn visit_domain(
        &self,
        domain: &str,
        now: SystemTime,
        visit: &mut dyn FnMut(&str, &Binding),
    ) -> Result<(), StoreError> {
        let aors = self.lock();
        for (aor, bindings) in aors.iter() {
            let in_domain = aor
                .strip_suffix(domain)
                .is_some_and(|rest| rest.ends_with('@'));
            if in_domain {
                for binding in bindings.iter().filter(|b| b.expires_at > now) {
                    visit(aor, binding);
                }
            }
        }
        Ok(())
    }

    fn record_keepalive_sent(
        &self,
        aor: &str,
        contact: &str,
        max_missed: u32,
    ) -> Result<Option<u32>, StoreError> {
        let mut aors = self.lock();
        let Some(binding) = aors
            .get_mut(aor)
            .and_then(|list| list.iter_mut().find(|b| same_contact(&b.contact, contact)))
        else {
            return Ok(None);
        };
        let unanswered = binding.missed_keepalives;
        if unanswered >= max_missed {
            binding.online = false;
        }
        binding.missed_keepalives = unanswered.saturating_add(1);
        Ok(Some(unanswered))
    }

    fn purge_expired(&self, now: SystemTime) -> Result<usize, StoreError> {
        let mut purged = 0;
        let mut aors = self.lock();
        aors.retain(|_, list| {
            let before = list.len();
            list.retain(|b| b.expires_at > now);
            purged += before - list.len();
            !list.is_empty()
        });
        Ok(purged)
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    const AOR: &str = "sip:alice@sip.example";

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn binding(contact: &str, call_id: &str, cseq: u32, lifetime: u64) -> Binding {
        Binding {
            contact: contact.into(),
            expires_at: now() + Duration::from_secs(lifetime),
            received: "198.51.100.7:40000".parse().unwrap(),
            transport: Transport::Udp,
            call_id: call_id.into(),
            cseq,
            user_agent: Some("phone".into()),
            last_keepalive: None,
            latency: None,
            missed_keepalives: 0,
            online: true,
            path: Vec::new(),
        }
    }

    #[test]
    fn contacts_match_exactly_when_their_keys_are_equal() {
        let uris = [
            "sip:alice@10.0.0.1:5060",
            "SIP:alice@10.0.0.1:5060",
            "sip:Alice@10.0.0.1:5060",
            "sip:alice@EXAMPLE.com;transport=UDP",
            "sip:alice@example.com;transport=udp",
            " sip:alice@example.com;transport=udp ",
            "alice@Example.com",
            "ALICE@example.com",
            "sip:Example.com",
            "sip:example.COM",
            "sip:a:b@h",
            "sip:a@b@C",
            "",
        ];
        for a in uris {
            for b in uris {
                assert_eq!(
                    same_contact(a, b),
                    contact_key(a) == contact_key(b),
                    "{a:?} vs {b:?}"
                );
            }
        }
    }

    #[test]
    fn several_contacts_are_kept_and_a_refresh_replaces_the_matching_one() {
        let store = MemoryLocationStore::new();
        let a = binding("sip:alice@10.0.0.1:5060", "c1", 1, 3600);
        let b = binding("sip:alice@10.0.0.2:5060", "c2", 1, 3600);
        store
            .apply(AOR, &[Change::Upsert(a), Change::Upsert(b)], now())
            .unwrap();
        let refreshed = binding("sip:alice@10.0.0.1:5060", "c1", 2, 60);
        let list = store
            .apply(AOR, &[Change::Upsert(refreshed.clone())], now())
            .unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0], refreshed);
        assert_eq!(store.lookup(AOR, now()).unwrap(), list);
    }

    #[test]
    fn an_out_of_order_register_changes_nothing() {
        let store = MemoryLocationStore::new();
        let first = binding("sip:alice@10.0.0.1", "c1", 5, 3600);
        store
            .apply(AOR, &[Change::Upsert(first.clone())], now())
            .unwrap();
        let other = binding("sip:alice@10.0.0.9", "c1", 6, 3600);
        let old = binding("sip:alice@10.0.0.1", "c1", 5, 10);
        let result = store.apply(AOR, &[Change::Upsert(other), Change::Upsert(old)], now());
        assert!(matches!(result, Err(StoreError::OutOfOrder { .. })));
        assert_eq!(store.lookup(AOR, now()).unwrap(), vec![first]);
        // Another Call-ID (a rebooted phone) may overwrite whatever its CSeq.
        let rebooted = binding("sip:alice@10.0.0.1", "c9", 1, 3600);
        assert!(store.apply(AOR, &[Change::Upsert(rebooted)], now()).is_ok());
    }

    #[test]
    fn removal_honours_ordering_and_remove_all_clears_the_aor() {
        let store = MemoryLocationStore::new();
        store
            .apply(
                AOR,
                &[
                    Change::Upsert(binding("sip:alice@10.0.0.1", "c1", 5, 3600)),
                    Change::Upsert(binding("sip:alice@10.0.0.2", "c2", 5, 3600)),
                ],
                now(),
            )
            .unwrap();
        let stale_remove = Change::Remove {
            contact: "SIP:alice@10.0.0.1".into(),
            call_id: "c1".into(),
            cseq: 4,
        };
        assert!(store.apply(AOR, &[stale_remove], now()).is_err());
        let remove = Change::Remove {
            contact: "SIP:alice@10.0.0.1".into(),
            call_id: "c1".into(),
            cseq: 6,
        };
        assert_eq!(store.apply(AOR, &[remove], now()).unwrap().len(), 1);
        let all = Change::RemoveAll {
            call_id: "c3".into(),
            cseq: 1,
        };
        assert!(store.apply(AOR, &[all], now()).unwrap().is_empty());
        assert!(store.lookup(AOR, now()).unwrap().is_empty());
    }

    #[test]
    fn expired_bindings_are_never_returned_and_purge_drops_them() {
        let store = MemoryLocationStore::new();
        store
            .apply(
                AOR,
                &[
                    Change::Upsert(binding("sip:alice@10.0.0.1", "c1", 1, 60)),
                    Change::Upsert(binding("sip:alice@10.0.0.2", "c2", 1, 3600)),
                ],
                now(),
            )
            .unwrap();
        let later = now() + Duration::from_secs(61);
        assert_eq!(store.lookup(AOR, later).unwrap().len(), 1);
        assert_eq!(store.purge_expired(later).unwrap(), 1);
        assert_eq!(store.purge_expired(later).unwrap(), 0);
    }

    #[test]
    fn keep_alive_results_are_recorded_and_survive_a_refresh() {
        let store = MemoryLocationStore::new();
        let contact = "sip:alice@10.0.0.1";
        store
            .apply(
                AOR,
                &[Change::Upsert(binding(contact, "c1", 1, 3600))],
                now(),
            )
            .unwrap();
        assert!(store
            .record_keepalive(AOR, contact, now(), Duration::from_millis(42))
            .unwrap());
        store
            .apply(
                AOR,
                &[Change::Upsert(binding(contact, "c1", 2, 3600))],
                now(),
            )
            .unwrap();
        let list = store.lookup(AOR, now()).unwrap();
        assert_eq!(list[0].latency, Some(Duration::from_millis(42)));
        assert!(store.remove(AOR, contact).unwrap());
        assert_eq!(store.remove_all(AOR).unwrap(), 0);
    }

    #[test]
    fn unanswered_keep_alives_are_counted_until_offline_and_an_answer_resets_them() {
        let store = MemoryLocationStore::new();
        let contact = "sip:alice@10.0.0.1";
        store
            .apply(
                AOR,
                &[Change::Upsert(binding(contact, "c1", 1, 3600))],
                now(),
            )
            .unwrap();
        for expected in 0..3 {
            assert_eq!(
                store.record_keepalive_sent(AOR, contact, 3).unwrap(),
                Some(expected)
            );
            assert!(store.lookup(AOR, now()).unwrap()[0].online);
        }
        assert_eq!(
            store.record_keepalive_sent(AOR, contact, 3).unwrap(),
            Some(3)
        );
        assert!(!store.lookup(AOR, now()).unwrap()[0].online);
        store
            .record_keepalive(AOR, contact, now(), Duration::from_millis(5))
            .unwrap();
        let list = store.lookup(AOR, now()).unwrap();
        assert!(list[0].online);
        assert_eq!(list[0].missed_keepalives, 0);
        assert_eq!(
            store
                .record_keepalive_sent(AOR, "sip:nobody@10.0.0.9", 3)
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .bindings_in_domain("sip.example", now())
                .unwrap()
                .len(),
            1
        );
    }
}
