//! The conversation opens at its newest text and follows a reply as it grows,
//! unless the reader has scrolled up; then a button leads back down.

use leptos::prelude::*;

#[cfg(feature = "hydrate")]
thread_local! {
    /// Whether the reader is at the bottom of the messages (within 48 px).
    static FOLLOWING: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

#[cfg(feature = "hydrate")]
fn messages() -> Option<leptos::web_sys::Element> {
    super::dom::query(".messages")
}

#[cfg(feature = "hydrate")]
fn to_bottom() {
    if let Some(el) = messages() {
        el.set_scroll_top(el.scroll_height());
    }
}

/// After the next paint, scrolls to the newest text if the reader is there.
#[cfg(feature = "hydrate")]
pub fn nudge() {
    if FOLLOWING.with(|f| f.get()) {
        request_animation_frame(to_bottom);
    }
}

/// "Scroll to the newest", shown while the reader is scrolled up.
#[island]
pub fn ScrollToNewest() -> impl IntoView {
    let away = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    if let Some(el) = messages() {
        to_bottom();
        let list = el.clone();
        super::dom::listen(&el, "scroll", move |_: leptos::web_sys::Event| {
            let from_bottom = list.scroll_height() - list.scroll_top() - list.client_height();
            FOLLOWING.with(|f| f.set(from_bottom < 48));
            if away.get_untracked() != (from_bottom >= 48) {
                away.set(from_bottom >= 48);
            }
        });
    }
    let back = move |_| {
        away.set(false);
        #[cfg(feature = "hydrate")]
        {
            FOLLOWING.with(|f| f.set(true));
            to_bottom();
        }
    };
    view! {
        {move || {
            away.get()
                .then(|| {
                    view! {
                        <button type="button" class="to-bottom" on:click=back>
                            "Scroll to the newest"
                        </button>
                    }
                })
        }}
    }
}
