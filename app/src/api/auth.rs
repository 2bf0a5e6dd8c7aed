//! Sign-up, sign-in, sign-out and "who am I".

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::Me;

/// Creates a provider account with its first user and signs them in.
#[server(prefix = "/api", endpoint = "sign_up")]
pub async fn sign_up(company: String, email: String, password: String) -> Result<(), AppError> {
    use crate::model::{CompanyName, Email, NewPassword};
    use crate::ssr::auth::{hash_password, new_session_token, set_session_cookie, SESSION_DAYS};
    use crate::ssr::state::AppState;
    use crate::ssr::store::{Audit, CreateUserError};

    let company = CompanyName::parse(&company)?;
    let email = Email::parse(&email)?;
    let password = NewPassword::parse(&password)?;
    let state = AppState::current()?;
    let hash = hash_password(password.expose().to_string()).await?;
    let (_, user_id) = match state
        .store
        .create_account(
            company.as_str(),
            email.as_str(),
            &hash,
            false,
            |account, user| {
                Some(Audit::new(
                    Some(account),
                    Some(user),
                    "account.sign_up",
                    email.as_str(),
                    company.as_str(),
                ))
            },
        )
        .await
    {
        Ok(ids) => ids,
        Err(CreateUserError::EmailTaken) => {
            return Err(AppError::field(
                "email",
                "An account with this email exists already. Sign in instead.",
            ))
        }
        Err(CreateUserError::Store(e)) => return Err(e.into()),
    };
    let (token, token_hash) = new_session_token();
    state
        .store
        .create_session(
            &token_hash,
            user_id,
            crate::ssr::now() + SESSION_DAYS * 86_400,
        )
        .await?;
    set_session_cookie(Some(&token));
    leptos_axum::redirect("/servers");
    Ok(())
}

/// Signs a user in. Five wrong passwords for one email within 15 minutes lock that email out
/// for the rest of the window.
#[server(prefix = "/api", endpoint = "sign_in")]
pub async fn sign_in(email: String, password: String) -> Result<(), AppError> {
    use crate::ssr::auth::{new_session_token, set_session_cookie, verify_password, SESSION_DAYS};
    use crate::ssr::state::AppState;

    let state = AppState::current()?;
    let email = email.trim().to_lowercase();
    if !state.login_limiter.allowed(&email) {
        return Err(AppError::RateLimited);
    }
    let credentials = state.store.credentials(&email).await?;
    let ok = verify_password(
        password,
        credentials.as_ref().map(|c| c.password_hash.clone()),
    )
    .await;
    let Some(credentials) = credentials.filter(|_| ok) else {
        state.login_limiter.record_failure(&email);
        return Err(AppError::field("password", "Wrong email or password."));
    };
    state.login_limiter.clear(&email);
    let (token, token_hash) = new_session_token();
    state
        .store
        .create_session(
            &token_hash,
            credentials.user_id,
            crate::ssr::now() + SESSION_DAYS * 86_400,
        )
        .await?;
    set_session_cookie(Some(&token));
    leptos_axum::redirect("/servers");
    Ok(())
}

#[server(prefix = "/api", endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), AppError> {
    use crate::ssr::auth::{request_token, set_session_cookie, token_hash};
    use crate::ssr::state::AppState;

    if let Some(token) = request_token() {
        AppState::current()?
            .store
            .delete_session(&token_hash(&token))
            .await?;
    }
    set_session_cookie(None);
    leptos_axum::redirect("/login");
    Ok(())
}

/// The signed-in user, or `None`.
#[server(prefix = "/api", endpoint = "current_me")]
pub async fn current_me() -> Result<Option<Me>, AppError> {
    use crate::model::Usd;
    Ok(crate::ssr::auth::current_user().await?.map(|u| Me {
        email: u.email,
        company: u.company,
        balance: Usd(u.balance_cents),
        is_operator: u.is_operator,
    }))
}
