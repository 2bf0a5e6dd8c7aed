//! Sign-in and sign-up.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::components::forms::{FieldError, FormError};
use crate::Auth;

#[component]
pub fn SignInPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let error = Signal::derive(move || auth.sign_in.value().get().and_then(Result::err));
    view! {
        <section class="card narrow">
            <h1>"Sign in"</h1>
            <ActionForm action=auth.sign_in>
                <label>"Email" <input type="email" name="email" required autocomplete="username"/></label>
                <label>"Password" <input type="password" name="password" required autocomplete="current-password"/></label>
                <FieldError error field="password"/>
                <FormError error/>
                <button type="submit">"Sign in"</button>
            </ActionForm>
            <p>"New to sipfleet? " <A href="/signup">"Create an account"</A></p>
        </section>
    }
}

#[component]
pub fn SignUpPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let error = Signal::derive(move || auth.sign_up.value().get().and_then(Result::err));
    view! {
        <section class="card narrow">
            <h1>"Create your account"</h1>
            <ActionForm action=auth.sign_up>
                <label>"Company" <input type="text" name="company" required autocomplete="organization"/></label>
                <FieldError error field="company"/>
                <label>"Email" <input type="email" name="email" required autocomplete="username"/></label>
                <FieldError error field="email"/>
                <label>"Password" <input type="password" name="password" required minlength="10" autocomplete="new-password"/></label>
                <FieldError error field="password"/>
                <FormError error/>
                <button type="submit">"Create account"</button>
            </ActionForm>
            <p>"Have an account? " <A href="/login">"Sign in"</A></p>
        </section>
    }
}
