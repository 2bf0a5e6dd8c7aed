//! The Getting Started checklist and the account's own details.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::Checklist;

#[server(prefix = "/api", endpoint = "get_checklist")]
pub async fn get_checklist() -> Result<Checklist, AppError> {
    use crate::ssr::{auth::require_user, state::AppState};
    let user = require_user().await?;
    let state = AppState::current()?;
    Ok(crate::ssr::fleet::checklist(&state, user.account_id).await?)
}

/// The checklist's first item: the company's billing details.
#[server(prefix = "/api", endpoint = "save_company_details")]
pub async fn save_company_details(
    company: String,
    address: String,
    country: String,
) -> Result<(), AppError> {
    use crate::model::{Address, CompanyName, Country};
    use crate::ssr::{auth::require_user, state::AppState, store::Audit};
    let user = require_user().await?;
    let company = CompanyName::parse(&company)?;
    let address = Address::parse(&address)?;
    let country = Country::parse(&country)?;
    let state = AppState::current()?;
    let audit = Audit::by(
        &user,
        "account.company_details",
        company.as_str(),
        format!("{}, {}", address.as_str(), country.as_str()),
    );
    state
        .store
        .set_company_details(
            user.account_id,
            company.as_str(),
            address.as_str(),
            country.as_str(),
            audit,
        )
        .await?;
    Ok(())
}

#[server(prefix = "/api", endpoint = "accept_terms")]
pub async fn accept_terms() -> Result<(), AppError> {
    use crate::ssr::{auth::require_user, state::AppState, store::Audit};
    let user = require_user().await?;
    let state = AppState::current()?;
    let audit = Audit::by(&user, "account.accept_terms", &user.email, "");
    state.store.accept_terms(user.account_id, audit).await?;
    Ok(())
}

/// One line of the account's audit log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    /// `YYYY-MM-DD HH:MM UTC`.
    pub at: String,
    /// Who did it; "sipfleet" for the platform's own scheduled work.
    pub who: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
}

/// One page of the account's changes, newest first, those that mention `query.search`.
#[server(prefix = "/api", endpoint = "audit_log")]
pub async fn audit_log(
    #[server(default)] query: crate::listing::ListQuery,
) -> Result<crate::listing::Paged<AuditEntry>, AppError> {
    use crate::ssr::{auth::require_user, date_time, state::AppState};
    let user = require_user().await?;
    let page = AppState::current()?
        .store
        .audit_page(user.account_id, &query)
        .await?;
    Ok(page.map(|(at, who, action, subject, detail)| AuditEntry {
        at: date_time(at),
        who: who.unwrap_or_else(|| "sipfleet".into()),
        action,
        subject,
        detail,
    }))
}
