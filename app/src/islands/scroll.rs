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

/// Where a reader who had scrolled up was, for the page loaded again at a
/// reply's end (per page).
#[cfg(feature = "hydrate")]
fn place_key() -> String {
    format!("wick:place:{}", super::dom::path())
}

/// Before the page is loaded again: keeps the reader's place if they had
/// scrolled up from the newest text.
#[cfg(feature = "hydrate")]
pub fn keep_place() {
    if let Some(el) = messages().filter(|_| !FOLLOWING.with(|f| f.get())) {
        super::dom::store(&place_key(), &el.scroll_top().to_string());
    }
}

/// After the next paint, scrolls to the newest text if the reader is there.
#[cfg(feature = "hydrate")]
pub fn nudge() {
    if FOLLOWING.with(|f| f.get()) {
        request_animation_frame(to_bottom);
    }
}

/// Shows the messages' "Scroll to the newest" button (server-rendered,
/// `hidden`) while the reader is scrolled up. Draws nothing.
#[island]
pub fn ScrollToNewest() -> impl IntoView {
    #[cfg(feature = "hydrate")]
    attach();
}

#[cfg(feature = "hydrate")]
fn attach() {
    let (Some(list), Some(button)) = (messages(), super::dom::query(".messages .to-bottom")) else {
        return;
    };
    // Opened at a message (`#m-…`, from a search result): the browser
    // scrolls to it; otherwise the conversation opens at its end.
    let at_message = window()
        .location()
        .hash()
        .is_ok_and(|h| h.starts_with("#m-"));
    let (scrolled, shown) = (list.clone(), button.clone());
    let check = move || {
        let from_bottom =
            scrolled.scroll_height() - scrolled.scroll_top() - scrolled.client_height();
        FOLLOWING.with(|f| f.set(from_bottom < 48));
        let _ = shown.toggle_attribute_with_force("hidden", from_bottom < 48);
    };
    let on_scroll = check.clone();
    super::dom::listen(&list, "scroll", move |_: leptos::web_sys::Event| {
        on_scroll()
    });
    let kept: Option<i32> = super::dom::take(&place_key()).and_then(|p| p.parse().ok());
    if let Some(top) = kept {
        list.set_scroll_top(top);
        check();
    } else if at_message {
        check();
    } else {
        to_bottom();
    }
    let pressed = button.clone();
    super::dom::listen(&button, "click", move |_: leptos::web_sys::Event| {
        let _ = pressed.set_attribute("hidden", "");
        FOLLOWING.with(|f| f.set(true));
        to_bottom();
    });
}
