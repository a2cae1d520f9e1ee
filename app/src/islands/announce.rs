//! What a page says once to screen readers, such as how a reply ended.
//!
//! The page that learns it (the reply's stream ends, Stop is pressed) is
//! replaced right after by the next one, so the sentence is left in session
//! storage for that page, keyed by its path, and said there once.

use leptos::prelude::*;

#[cfg(feature = "hydrate")]
const KEY: &str = "wick:announce";

/// Leaves `sentence` for the next load of this page to say.
#[cfg(feature = "hydrate")]
pub fn after_reload(sentence: &str) {
    super::dom::store(KEY, &format!("{}\n{sentence}", super::dom::path()));
}

/// Says the sentence left for this page in its polite live region (the
/// server renders it empty, beside this island). Draws nothing.
#[island]
pub fn Announcer() -> impl IntoView {
    #[cfg(feature = "hydrate")]
    if let Some(left) = super::dom::take(KEY) {
        if let Some((path, sentence)) = left.split_once('\n') {
            if path == super::dom::path() {
                let sentence = sentence.to_owned();
                // A moment after the page appears: a region's first content
                // is not read out, a change to it is.
                set_timeout(
                    move || {
                        if let Some(region) = super::dom::query("p.announcer") {
                            region.set_text_content(Some(&sentence));
                        }
                    },
                    std::time::Duration::from_millis(200),
                );
            }
        }
    }
}
