//! The operator's tools. Every function here answers "not found" to anyone but the operator,
//! so a provider cannot even tell they exist.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::AccountRow;

#[cfg(feature = "ssr")]
async fn require_operator() -> Result<crate::ssr::store::SessionUser, AppError> {
    let user = crate::ssr::auth::require_user().await?;
    if user.is_operator {
        Ok(user)
    } else {
        Err(AppError::NotFound)
    }
}

#[server(prefix = "/api", endpoint = "list_accounts")]
pub async fn list_accounts() -> Result<Vec<AccountRow>, AppError> {
    use crate::model::Usd;
    use crate::ssr::state::AppState;
    require_operator().await?;
    let accounts = expect_context::<AppState>().store.accounts().await?;
    Ok(accounts
        .into_iter()
        .map(|a| AccountRow {
            id: a.id,
            company: a.company,
            email: a.email,
            balance: Usd(a.balance_cents),
            servers: a.servers,
        })
        .collect())
}

/// Credits a provider account (a top-up received). Recorded in the audit log with the
/// operator's user.
#[server(prefix = "/api", endpoint = "credit_account")]
pub async fn credit_account(account_id: i64, amount: String) -> Result<(), AppError> {
    use crate::model::Usd;
    use crate::ssr::state::AppState;
    let operator = require_operator().await?;
    let amount = Usd::parse(&amount)?;
    if amount.0 == 0 {
        return Err(AppError::field("amount", "Enter an amount above zero."));
    }
    let state = expect_context::<AppState>();
    if !state.store.account_exists(account_id).await? {
        return Err(AppError::NotFound);
    }
    let balance = state.store.credit(account_id, amount).await?;
    state
        .store
        .audit(
            Some(account_id),
            Some(operator.user_id),
            "account.credit",
            &format!("account {account_id}"),
            &format!("{amount} credited by {}; balance {balance}", operator.email),
        )
        .await?;
    Ok(())
}
