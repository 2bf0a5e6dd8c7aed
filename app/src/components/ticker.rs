//! A signal that counts up at a fixed period while the component that made it lives: a
//! resource keyed on it reloads that often (the live tables that have no event stream).

use std::time::Duration;

use leptos::prelude::*;

/// Counts up every `every` in the browser, from the component's creation until its
/// cleanup; stays at 0 on the server, so the first render is the same on both sides.
pub fn ticker(every: Duration) -> RwSignal<u32> {
    let tick = RwSignal::new(0u32);
    #[cfg(feature = "hydrate")]
    {
        let handle = set_interval_with_handle(move || tick.update(|t| *t += 1), every).ok();
        on_cleanup(move || {
            if let Some(handle) = handle {
                handle.clear();
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = every;
    tick
}
