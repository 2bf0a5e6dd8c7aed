//! The sipfleet console: pages, their components and the server functions they call.
//!
//! # Layout
//! - [`model`]: value types shared by browser and server (parse, don't validate).
//! - [`error`]: [`error::AppError`], the one error a server function returns.
//! - [`api`]: the server functions, by area.
//! - [`pages`]: one module a page; [`components`]: pieces several pages use.
//! - `ssr` (server only): state, store, authentication and services.
//!
//! Rendered on the server and hydrated in the browser: every page works before the wasm
//! arrives (forms post to their server functions) and becomes interactive after.

pub mod api;
pub mod components;
pub mod error;
pub mod model;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod ssr;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;

use api::auth::{current_me, SignIn, SignOut, SignUp};
use error::AppError;
use model::Me;

/// The HTML document around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                // No favicon request: keeps the browser console free of 404s.
                <link rel="icon" href="data:,"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The sign-in state every page can read, and the actions that change it. `me` refetches
/// whenever one of the actions completes, so the navigation follows sign-in and sign-out.
#[derive(Clone, Copy)]
pub struct Auth {
    pub sign_in: ServerAction<SignIn>,
    pub sign_up: ServerAction<SignUp>,
    pub sign_out: ServerAction<SignOut>,
    pub me: Resource<Result<Option<Me>, AppError>>,
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let sign_in = ServerAction::<SignIn>::new();
    let sign_up = ServerAction::<SignUp>::new();
    let sign_out = ServerAction::<SignOut>::new();
    let me = Resource::new(
        move || {
            (
                sign_in.version().get(),
                sign_up.version().get(),
                sign_out.version().get(),
            )
        },
        |_| current_me(),
    );
    provide_context(Auth {
        sign_in,
        sign_up,
        sign_out,
        me,
    });

    view! {
        <Stylesheet id="leptos" href="/pkg/sipfleet.css"/>
        <Title text="sipfleet"/>
        <Router>
            <components::nav::Nav/>
            <main>
                <Routes fallback=|| view! { <p class="empty">"Page not found."</p> }>
                    <Route path=path!("/") view=pages::home::HomePage/>
                    <Route path=path!("/login") view=pages::auth::SignInPage/>
                    <Route path=path!("/signup") view=pages::auth::SignUpPage/>
                    <Route path=path!("/servers") view=pages::servers::ServersPage/>
                    <Route path=path!("/servers/:id") view=pages::server::ServerPage/>
                    <Route path=path!("/clusters") view=pages::clusters::ClustersPage/>
                    <Route path=path!("/rtp-servers") view=pages::rtp::RtpServersPage/>
                    <Route path=path!("/certificates") view=pages::certificates::CertificatesPage/>
                    <Route path=path!("/account") view=pages::account::AccountPage/>
                    <Route path=path!("/getting-started") view=pages::getting_started::GettingStartedPage/>
                    <Route path=path!("/operator") view=pages::operator::OperatorPage/>
                    <Route path=path!("/sip-users") view=pages::sip_users::SipUsersPage/>
                </Routes>
            </main>
        </Router>
    }
}

/// The browser entry point: attaches to the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
    // Hydration is synchronous: from here on the page is interactive. The mark tells tests
    // (and anyone curious) that it is.
    if let Some(body) = leptos::prelude::document().body() {
        let _ = body.set_attribute("data-hydrated", "true");
    }
}
