//! The interactive parts of the pages, and the only parts compiled to wasm.
//!
//! Every other component is rendered on the server only: its forms post as
//! plain forms (the server function answers with a redirect back to the page)
//! and its links are plain links, so the pages work the same without
//! JavaScript. These islands add what a page cannot do by itself: the reply
//! streaming in, the composer's keys, Copy, scrolling, folding the sidebar,
//! loading more of it, the model's title, and what is said to screen readers.
//! Keeping them this few is what keeps the download small (BENCHMARKS.md,
//! "Page weight"): none calls a server function through Leptos' client.

pub mod announce;
pub mod composer;
pub mod page;
pub mod reply;
pub mod scroll;
pub mod sidebar;
pub mod title;

/// Small helpers over the browser's document and session storage.
#[cfg(feature = "hydrate")]
pub(crate) mod dom {
    use leptos::prelude::*;
    use leptos::wasm_bindgen::JsCast;

    /// The element with `id`, as the type asked for.
    pub fn by_id<T: JsCast>(id: &str) -> Option<T> {
        document().get_element_by_id(id)?.dyn_into::<T>().ok()
    }

    /// The first element matching `selector`.
    pub fn query(selector: &str) -> Option<leptos::web_sys::Element> {
        document().query_selector(selector).ok().flatten()
    }

    /// Every element matching `selector`, in document order.
    pub fn query_all(selector: &str) -> Vec<leptos::web_sys::Element> {
        let Ok(list) = document().query_selector_all(selector) else {
            return Vec::new();
        };
        (0..list.length())
            .filter_map(|i| list.get(i)?.dyn_into().ok())
            .collect()
    }

    /// The page's path (what the storage keys below are scoped to).
    pub fn path() -> String {
        window().location().pathname().unwrap_or_default()
    }

    fn storage() -> Option<leptos::web_sys::Storage> {
        window().session_storage().ok().flatten()
    }

    pub fn stored(key: &str) -> Option<String> {
        storage()?.get_item(key).ok().flatten()
    }

    pub fn store(key: &str, value: &str) {
        if let Some(s) = storage() {
            let _ = s.set_item(key, value);
        }
    }

    pub fn forget(key: &str) {
        if let Some(s) = storage() {
            let _ = s.remove_item(key);
        }
    }

    /// Reads and removes `key`.
    pub fn take(key: &str) -> Option<String> {
        let value = stored(key);
        forget(key);
        value
    }

    /// Calls `f` for every `event` on `target` for as long as the page lives
    /// (islands are never unmounted: each page is a document of its own).
    pub fn listen<E: leptos::wasm_bindgen::convert::FromWasmAbi + 'static>(
        target: &leptos::web_sys::EventTarget,
        event: &str,
        f: impl FnMut(E) + 'static,
    ) {
        let closure = leptos::wasm_bindgen::closure::Closure::<dyn FnMut(E)>::new(f);
        let _ = target.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref());
        closure.forget();
    }
}
