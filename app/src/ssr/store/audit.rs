//! The audit log: written with every change, never updated or deleted.

use super::pages::ListSql;
use super::*;
use crate::listing::{ListQuery, Paged};

impl Store {
    /// One page of the account's audit log, newest first, of the entries whose action,
    /// subject or detail holds `query.search`; rows are (at, who, action, subject, detail).
    pub async fn audit_page(
        &self,
        account_id: AccountId,
        query: &ListQuery,
    ) -> Result<Paged<(i64, Option<String>, String, String, String)>, sqlx::Error> {
        const MATCHES: &str = "(?2 = '' OR instr(lower(l.action), lower(?2)) > 0 \
             OR instr(lower(l.subject), lower(?2)) > 0 OR instr(lower(l.detail), lower(?2)) > 0)";
        let sql = ListSql {
            counts: &format!(
                "SELECT COUNT(*), COALESCE(SUM({MATCHES}), 0) FROM audit_log l WHERE l.account_id = ?1"
            ),
            rows: &format!(
                "SELECT l.at, u.email, l.action, l.subject, l.detail FROM audit_log l \
                 LEFT JOIN users u ON u.id = l.user_id WHERE l.account_id = ?1 AND {MATCHES} \
                 ORDER BY l.id DESC LIMIT ?3 OFFSET ?4"
            ),
        };
        self.page_of(sql, account_id, &[&query.search], query.page)
            .await
    }

    /// Records an event that changes no stored row (an action run on a node, a network
    /// tool run); a change to the store writes its row with the change instead.
    pub async fn record(&self, audit: Audit) -> Result<(), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        audit.write(&mut conn).await
    }
}

/// One audit log row: who made a change, and what (action, subject, detail) it was. A
/// change's store method takes the `Audit` describing it and writes it in the change's own
/// transaction: no change is stored without its row, and no row is left for a change that
/// did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    account_id: Option<AccountId>,
    user_id: Option<i64>,
    action: String,
    subject: String,
    detail: String,
}

impl Audit {
    /// A change a signed-in user made in their own account.
    pub fn by(
        user: &SessionUser,
        action: impl Into<String>,
        subject: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(
            Some(user.account_id),
            Some(user.user_id),
            action,
            subject,
            detail,
        )
    }

    /// A change the operator made to `account`, or (`None`) to what every account is
    /// offered.
    pub fn by_operator(
        operator: &SessionUser,
        account: Option<AccountId>,
        action: impl Into<String>,
        subject: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(account, Some(operator.user_id), action, subject, detail)
    }

    /// The platform's own change to an account (scheduled work, the command line): no user,
    /// so the log says "sipfleet".
    pub fn by_platform(
        account: AccountId,
        action: impl Into<String>,
        subject: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(Some(account), None, action, subject, detail)
    }

    /// A row with every part given; for a user who is not signed in yet (signing up).
    pub fn new(
        account_id: Option<AccountId>,
        user_id: Option<i64>,
        action: impl Into<String>,
        subject: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Audit {
            account_id,
            user_id,
            action: action.into(),
            subject: subject.into(),
            detail: detail.into(),
        }
    }

    /// Writes the row on `conn`: inside the transaction of the change it describes.
    pub(super) async fn write(&self, conn: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO audit_log (account_id, user_id, action, subject, detail, at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(self.account_id)
        .bind(self.user_id)
        .bind(&self.action)
        .bind(&self.subject)
        .bind(&self.detail)
        .bind(now())
        .execute(conn)
        .await?;
        Ok(())
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
            now()
        ));
        let store = Store::open(&path).await.unwrap();
        TempStore { store, path }
    }

    async fn count(store: &Store, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(store.pool())
            .await
            .unwrap()
    }

    /// Makes every audit write fail from now on, as a full disk or a broken table would.
    async fn refuse_audit_rows(store: &Store) {
        sqlx::query(
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log \
             BEGIN SELECT RAISE(ABORT, 'audit refused'); END",
        )
        .execute(store.pool())
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_change_whose_audit_row_cannot_be_written_is_not_stored() {
        let temp = temp_store("audit-refused").await;
        let store = &temp.store;
        let (account, user) = store
            .create_account("Acme", "a@acme.test", "hash", false, |_, _| None)
            .await
            .unwrap();
        let audit = |action: &str| Audit::new(Some(account), Some(user), action, "s", "d");
        refuse_audit_rows(store).await;

        assert!(store
            .create_cluster(account, "Core", |_| audit("cluster.create"))
            .await
            .is_err());
        assert!(store
            .create_sip_user(
                account,
                "bob",
                "secret 123",
                "disabled",
                audit("sip_user.create")
            )
            .await
            .is_err());
        assert!(store
            .credit(account, Usd::dollars(20), |_| audit("account.credit"))
            .await
            .is_err());
        assert!(store
            .accept_terms(account, audit("account.accept_terms"))
            .await
            .is_err());

        assert_eq!(count(store, "SELECT COUNT(*) FROM clusters").await, 0);
        assert_eq!(count(store, "SELECT COUNT(*) FROM sip_users").await, 0);
        assert_eq!(store.balance(account).await.unwrap(), Usd(0));
        assert!(store
            .checklist(account)
            .await
            .unwrap()
            .terms_accepted_at
            .is_none());
        assert_eq!(count(store, "SELECT COUNT(*) FROM audit_log").await, 0);
    }

    #[tokio::test]
    async fn a_change_and_its_audit_row_are_written_together() {
        let temp = temp_store("audit-written").await;
        let store = &temp.store;
        let (account, user) = store
            .create_account("Acme", "a@acme.test", "hash", false, |account, user| {
                Some(Audit::new(
                    Some(account),
                    Some(user),
                    "account.sign_up",
                    "a@acme.test",
                    "Acme",
                ))
            })
            .await
            .unwrap();
        let id = store
            .create_cluster(account, "Core", |id| {
                Audit::new(
                    Some(account),
                    Some(user),
                    "cluster.create",
                    format!("cluster {id}"),
                    "Core",
                )
            })
            .await
            .unwrap();
        // A refused change leaves no row either.
        assert!(matches!(
            store
                .create_cluster(account, "Core", |_| unreachable!("no row for a refusal"))
                .await,
            Err(ClusterError::NameTaken)
        ));

        let entries = store
            .audit_page(account, &ListQuery::default())
            .await
            .unwrap();
        let rows: Vec<(&str, &str, &str)> = entries
            .rows
            .iter()
            .map(|(_, _, action, subject, detail)| {
                (action.as_str(), subject.as_str(), detail.as_str())
            })
            .collect();
        let subject = format!("cluster {id}");
        assert_eq!(
            rows,
            [
                ("cluster.create", subject.as_str(), "Core"),
                ("account.sign_up", "a@acme.test", "Acme"),
            ]
        );
        // The log is searched in the store, in action, subject and detail, any case.
        for (search, expected) in [("CLUSTER", 1), ("acme", 1), ("core", 1), ("nothing", 0)] {
            let query = ListQuery {
                search: search.into(),
                page: 1,
            };
            let found = store.audit_page(account, &query).await.unwrap();
            assert_eq!(
                (found.rows.len() as u64, found.matched, found.total),
                (expected, expected, 2),
                "{search}"
            );
        }
    }
}
