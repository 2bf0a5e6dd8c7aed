//! Showing a server function's error where the user will look for it.

use leptos::prelude::*;

use crate::error::AppError;

/// The message for one field, placed right under it; empty when the error is about
/// something else.
#[component]
pub fn FieldError(error: Signal<Option<AppError>>, field: &'static str) -> impl IntoView {
    view! {
        <span class="field-error" data-field=field role="alert">
            {move || error.get().and_then(|e| e.for_field(field))}
        </span>
    }
}

/// The message about the form as a whole (refusals, sign-in needed, server trouble).
#[component]
pub fn FormError(error: Signal<Option<AppError>>) -> impl IntoView {
    view! {
        <p class="form-error" role="alert">
            {move || error.get().and_then(|e| e.general())}
        </p>
    }
}

/// What a page shows to a visitor who is not signed in.
pub fn sign_in_prompt() -> AnyView {
    view! {
        <div class="card prompt">
            <p>"Please sign in to see this page."</p>
            <a class="button" href="/login">"Sign in"</a>
            " or "
            <a href="/signup">"create an account"</a>
        </div>
    }
    .into_any()
}

/// An error loading a page's data, or the sign-in prompt when that is the reason.
pub fn load_error(error: AppError) -> AnyView {
    match error {
        AppError::NotSignedIn => sign_in_prompt(),
        other => view! { <p class="form-error" role="alert">{other.to_string()}</p> }.into_any(),
    }
}
