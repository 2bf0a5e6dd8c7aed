//! The Getting Started checklist and the account's own figures.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::Checklist;

#[server(prefix = "/api", endpoint = "get_checklist")]
pub async fn get_checklist() -> Result<Checklist, AppError> {
    use crate::ssr::{auth::require_user, state::AppState};
    let user = require_user().await?;
    let record = expect_context::<AppState>()
        .store
        .checklist(user.account_id)
        .await?;
    Ok(Checklist {
        company_details: !record.company.trim().is_empty(),
        first_top_up: record.first_top_up_at.is_some(),
        terms_accepted: record.terms_accepted_at.is_some(),
    })
}

#[server(prefix = "/api", endpoint = "accept_terms")]
pub async fn accept_terms() -> Result<(), AppError> {
    use crate::ssr::{auth::require_user, state::AppState};
    let user = require_user().await?;
    let state = expect_context::<AppState>();
    state.store.accept_terms(user.account_id).await?;
    state
        .store
        .audit(
            Some(user.account_id),
            Some(user.user_id),
            "account.accept_terms",
            &user.email,
            "",
        )
        .await?;
    Ok(())
}
