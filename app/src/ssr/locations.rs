//! Registrations that survive a restart: the engine's in-memory location store, with every
//! change written behind it to the store.
//!
//! The nodes read and write bindings on the packet path, synchronously, so memory stays
//! the one they talk to; each change marks its AOR dirty and a writer task copies that
//! AOR's bindings to SQLite a moment later. At start, the saved bindings that have not
//! lapsed are loaded back, so phones stay reachable across a restart without registering
//! again. (A crash loses at most the changes of the last few milliseconds.) A binding's
//! Path is saved with it: a phone registered through a Dispatcher is still called through
//! that Dispatcher after a restart.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sip_engine::location::{Change, StoreError};
use sip_engine::transport::Transport;
use sip_engine::{Binding, LocationStore, MemoryLocationStore};
use tokio::sync::mpsc;

use super::store::{split_path, Store};

#[derive(Debug)]
pub struct PersistentLocations {
    memory: Arc<MemoryLocationStore>,
    dirty: mpsc::UnboundedSender<String>,
}

fn unix(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

impl PersistentLocations {
    /// Loads the saved bindings and starts the writer.
    pub async fn open(store: Store) -> Result<Arc<Self>, sqlx::Error> {
        let memory = Arc::new(MemoryLocationStore::new());
        let now = SystemTime::now();
        let mut loaded = 0;
        for row in store.saved_registrations(unix(now)).await? {
            let Ok(received) = row.received.parse::<SocketAddr>() else {
                continue;
            };
            let binding = Binding {
                contact: row.contact,
                expires_at: UNIX_EPOCH + Duration::from_secs(row.expires_at.max(0) as u64),
                received,
                transport: Transport::from_name(&row.transport).unwrap_or(Transport::Udp),
                call_id: row.call_id,
                cseq: u32::try_from(row.cseq).unwrap_or(0),
                user_agent: row.user_agent,
                last_keepalive: None,
                latency: None,
                missed_keepalives: 0,
                online: true,
                path: split_path(&row.path),
            };
            if memory
                .apply(&row.aor, &[Change::Upsert(binding)], now)
                .is_ok()
            {
                loaded += 1;
            }
        }
        tracing::info!(bindings = loaded, "registrations restored");
        let (dirty, mut changes) = mpsc::unbounded_channel::<String>();
        let writer_memory = memory.clone();
        tokio::spawn(async move {
            while let Some(aor) = changes.recv().await {
                let bindings = writer_memory
                    .lookup(&aor, SystemTime::now())
                    .unwrap_or_default();
                if let Err(error) = store.save_registrations(&aor, &bindings, unix).await {
                    tracing::error!(%error, %aor, "registrations not saved");
                }
            }
        });
        Ok(Arc::new(PersistentLocations { memory, dirty }))
    }

    /// Every live binding in `domain`, for the console.
    pub fn in_domain(&self, domain: &str, now: SystemTime) -> Vec<(String, Binding)> {
        self.memory.in_domain(domain, now)
    }

    fn changed(&self, aor: &str) {
        let _ = self.dirty.send(aor.to_string());
    }
}

impl LocationStore for PersistentLocations {
    fn apply(
        &self,
        aor: &str,
        changes: &[Change],
        now: SystemTime,
    ) -> Result<Vec<Binding>, StoreError> {
        let result = self.memory.apply(aor, changes, now);
        if result.is_ok() {
            self.changed(aor);
        }
        result
    }

    fn lookup(&self, aor: &str, now: SystemTime) -> Result<Vec<Binding>, StoreError> {
        self.memory.lookup(aor, now)
    }

    fn remove(&self, aor: &str, contact: &str) -> Result<bool, StoreError> {
        let removed = self.memory.remove(aor, contact)?;
        if removed {
            self.changed(aor);
        }
        Ok(removed)
    }

    fn remove_all(&self, aor: &str) -> Result<usize, StoreError> {
        let removed = self.memory.remove_all(aor)?;
        self.changed(aor);
        Ok(removed)
    }

    // Keep-alive figures change every few seconds and are re-measured after a restart:
    // memory only.
    fn record_keepalive(
        &self,
        aor: &str,
        contact: &str,
        at: SystemTime,
        latency: Duration,
    ) -> Result<bool, StoreError> {
        self.memory.record_keepalive(aor, contact, at, latency)
    }

    fn record_keepalive_sent(
        &self,
        aor: &str,
        contact: &str,
        max_missed: u32,
    ) -> Result<Option<u32>, StoreError> {
        self.memory.record_keepalive_sent(aor, contact, max_missed)
    }

    // Lapsed rows are skipped when loading and replaced when their AOR changes.
    fn purge_expired(&self, now: SystemTime) -> Result<usize, StoreError> {
        self.memory.purge_expired(now)
    }

    fn bindings_in_domain(
        &self,
        domain: &str,
        now: SystemTime,
    ) -> Result<Vec<(String, Binding)>, StoreError> {
        self.memory.bindings_in_domain(domain, now)
    }

    // The keep-alive rounds read the memory in place, as they do without persistence.
    fn visit_domain(
        &self,
        domain: &str,
        now: SystemTime,
        visit: &mut dyn FnMut(&str, &Binding),
    ) -> Result<(), StoreError> {
        self.memory.visit_domain(domain, now, visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh store in its own file, removed when dropped.
    struct TempStore {
        store: Store,
        path: std::path::PathBuf,
    }

    impl Drop for TempStore {
        fn drop(&mut self) {
            for suffix in ["", "-wal", "-shm"] {
                let mut file = self.path.clone().into_os_string();
                file.push(suffix);
                let _ = std::fs::remove_file(file);
            }
        }
    }

    async fn temp_store(name: &str) -> TempStore {
        let path = std::env::temp_dir().join(format!(
            "sipfleet-{name}-{}-{}.db",
            std::process::id(),
            unix(SystemTime::now())
        ));
        let store = Store::open(&path).await.unwrap();
        TempStore { store, path }
    }

    fn binding(path: Vec<String>) -> Binding {
        Binding {
            contact: "sip:carol@198.51.100.7:41000".into(),
            expires_at: SystemTime::now() + Duration::from_secs(600),
            received: "203.0.113.5:5060".parse().unwrap(),
            transport: Transport::Udp,
            call_id: "reg-1".into(),
            cseq: 1,
            user_agent: Some("phone".into()),
            last_keepalive: None,
            latency: None,
            missed_keepalives: 0,
            online: true,
            path,
        }
    }

    /// Waits (bounded) until the writer has saved `rows` registrations.
    async fn saved(store: &Store, rows: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let now = unix(SystemTime::now());
            if store.saved_registrations(now).await.unwrap().len() == rows {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "not saved in time");
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_binding_registered_through_a_dispatcher_keeps_its_path_across_a_reload() {
        let temp = temp_store("locations-path").await;
        // Two entries, one with a comma in its user part: the separator is not a comma.
        let path = vec![
            "<sip:203.0.113.5:5060;lr;nat=198.51.100.7~41000>".to_string(),
            "<sip:a,b@203.0.113.9;lr>".to_string(),
        ];
        let locations = PersistentLocations::open(temp.store.clone()).await.unwrap();
        let now = SystemTime::now();
        locations
            .apply(
                "sip:carol@203.0.113.5",
                &[Change::Upsert(binding(path.clone()))],
                now,
            )
            .unwrap();
        locations
            .apply(
                "sip:dave@203.0.113.5",
                &[Change::Upsert(binding(Vec::new()))],
                now,
            )
            .unwrap();
        saved(&temp.store, 2).await;

        let reloaded = PersistentLocations::open(temp.store.clone()).await.unwrap();
        let carol = reloaded
            .lookup("sip:carol@203.0.113.5", SystemTime::now())
            .unwrap();
        assert_eq!(carol.len(), 1);
        assert_eq!(carol[0].path, path);
        let dave = reloaded
            .lookup("sip:dave@203.0.113.5", SystemTime::now())
            .unwrap();
        assert_eq!(
            dave[0].path,
            Vec::<String>::new(),
            "a direct phone has none"
        );
    }
}
