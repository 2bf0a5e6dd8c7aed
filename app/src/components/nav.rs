//! The top bar: where to go, the balance, and sign-out.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::Auth;

#[component]
pub fn Nav() -> impl IntoView {
    let auth = expect_context::<Auth>();
    view! {
        <header class="topbar">
            <a class="brand" href="/">"sipfleet"</a>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match auth.me.await {
                        Ok(Some(me)) => view! {
                            <nav>
                                <A href="/servers">"Servers"</A>
                                <A href="/clusters">"Clusters"</A>
                                <A href="/sip-users">"SIP Users"</A>
                                <A href="/rtp-servers">"RTP Servers"</A>
                                <A href="/certificates">"Certificates"</A>
                                {me.is_operator.then(|| view! { <A href="/operator">"Operator"</A> })}
                                <A href="/account">
                                    "Account " <span class="balance" data-testid="balance">{me.balance.to_string()}</span>
                                </A>
                            </nav>
                            <ActionForm action=auth.sign_out attr:class="signout">
                                <span class="who">{me.email}</span>
                                <button type="submit" class="link">"Sign out"</button>
                            </ActionForm>
                        }
                        .into_any(),
                        _ => view! {
                            <nav>
                                <A href="/login">"Sign in"</A>
                                <A href="/signup">"Sign up"</A>
                            </nav>
                        }
                        .into_any(),
                    }
                })}
            </Transition>
        </header>
    }
}
