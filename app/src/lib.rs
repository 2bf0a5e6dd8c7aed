//! The sipfleet console: pages, their components and the server functions they call.
//!
//! # Layout
//! - [`model`]: value types shared by browser and server (parse, don't validate).
//! - [`error`]: [`error::AppError`], the one error a server function returns.
//! - [`api`]: the server functions, by area.
//! - [`pages`]: one module a page; [`components`]: pieces several pages use.
//! - `ssr` (server only): state, store, authentication and the services the server
//!   functions call (servers, configuration, clusters, SIP users, certificates).
//!
//! Rendered on the server and hydrated in the browser: every page works before the wasm
//! arrives (forms post to their server functions) and becomes interactive after.

pub mod api;
pub mod components;
pub mod error;
pub mod listing;
pub mod model;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod ssr;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{lazy_route, path, Lazy, LazyRoute};

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
                    <Route path=path!("/login") view={Lazy::<SignInRoute>::new()}/>
                    <Route path=path!("/signup") view={Lazy::<SignUpRoute>::new()}/>
                    <Route path=path!("/servers") view={Lazy::<ServersRoute>::new()}/>
                    <Route path=path!("/servers/:id") view={Lazy::<ServerRoute>::new()}/>
                    <Route path=path!("/servers/:id/registrations") view={Lazy::<ServerRegistrationsRoute>::new()}/>
                    <Route path=path!("/servers/:id/trace") view={Lazy::<ServerTraceRoute>::new()}/>
                    <Route path=path!("/servers/:id/certificates") view={Lazy::<ServerCertificatesRoute>::new()}/>
                    <Route path=path!("/servers/:id/tools") view={Lazy::<NetworkToolsRoute>::new()}/>
                    <Route path=path!("/clusters") view={Lazy::<ClustersRoute>::new()}/>
                    <Route path=path!("/rtp-servers") view={Lazy::<RtpServersRoute>::new()}/>
                    <Route path=path!("/certificates") view={Lazy::<CertificatesRoute>::new()}/>
                    <Route path=path!("/account") view={Lazy::<AccountRoute>::new()}/>
                    <Route path=path!("/getting-started") view={Lazy::<GettingStartedRoute>::new()}/>
                    <Route path=path!("/operator") view={Lazy::<OperatorRoute>::new()}/>
                    <Route path=path!("/sip-users") view={Lazy::<SipUsersRoute>::new()}/>
                </Routes>
            </main>
        </Router>
    }
}

/// A page whose code the browser loads when it is first shown: `cargo leptos build --split`
/// puts each one's view (and what only it uses: its server functions' client side, its
/// forms) in a wasm chunk of its own, so the bundle every page loads holds only the shell,
/// navigation and the reactive runtime.
macro_rules! lazy_page {
    ($route:ident, $page:path) => {
        pub struct $route;

        #[lazy_route]
        impl LazyRoute for $route {
            fn data() -> Self {
                $route
            }

            fn view(_this: Self) -> AnyView {
                view! { <$page/> }.into_any()
            }
        }
    };
}

lazy_page!(SignInRoute, pages::auth::SignInPage);
lazy_page!(SignUpRoute, pages::auth::SignUpPage);
lazy_page!(ServersRoute, pages::servers::ServersPage);
lazy_page!(ServerRoute, pages::server::ServerPage);
lazy_page!(
    ServerRegistrationsRoute,
    pages::server_tools::ServerRegistrationsPage
);
lazy_page!(ServerTraceRoute, pages::server_tools::ServerTracePage);
lazy_page!(
    ServerCertificatesRoute,
    pages::server_tools::ServerCertificatesPage
);
lazy_page!(NetworkToolsRoute, pages::network_tools::NetworkToolsPage);
lazy_page!(ClustersRoute, pages::clusters::ClustersPage);
lazy_page!(RtpServersRoute, pages::rtp::RtpServersPage);
lazy_page!(CertificatesRoute, pages::certificates::CertificatesPage);
lazy_page!(AccountRoute, pages::account::AccountPage);
lazy_page!(
    GettingStartedRoute,
    pages::getting_started::GettingStartedPage
);
lazy_page!(OperatorRoute, pages::operator::OperatorPage);
lazy_page!(SipUsersRoute, pages::sip_users::SipUsersPage);

/// The browser entry point: attaches to the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Lazy routes hydrate once their chunk has loaded: hydration is asynchronous. The mark
    // goes on when it is done, so tests (and anyone curious) know the page is interactive.
    let _ = any_spawner::Executor::init_wasm_bindgen();
    leptos::task::spawn_local(async {
        let body = leptos::prelude::document().body().expect("a body");
        let owner = leptos::mount::hydrate_from_async(body.clone(), App).await;
        owner.forget();
        let _ = body.set_attribute("data-hydrated", "true");
    });
}
