//! The reply being written: its text streams in over an `EventSource` and is
//! rendered as it grows. When it ends the page is loaded again, so that
//! everything around the reply (Retry, Continue, Copy, the composer's Send,
//! the sidebar's order) is the server's, as after any other change.
//!
//! The browser reconnects by itself after a dropped connection, sending
//! `Last-Event-ID`, so nothing is missed or repeated.

use leptos::prelude::*;

use crate::components::message_list::{reply_body, reply_status, LiveReply};
use wick_types::MessageState;

/// A reply in the `generating` state, from the event after `after` on.
#[island]
pub fn ReplyStream(message_id: String, after: u64, text: String) -> impl IntoView {
    let live = LiveReply::new(text, MessageState::Generating, None, None);
    #[cfg(feature = "hydrate")]
    stream::follow(&message_id, after, live);
    #[cfg(not(feature = "hydrate"))]
    let _ = (message_id, after);
    view! {
        {reply_body(live)}
        {reply_status(live)}
    }
}

#[cfg(feature = "hydrate")]
mod stream {
    use leptos::prelude::*;
    use web_sys::{EventSource, MessageEvent};

    use super::LiveReply;
    use crate::islands::{announce, dom, scroll};
    use wick_types::reply::{stream_url, ReplyEvent};
    use wick_types::{FinishReason, MessageState};

    /// Streams refused in a row (kept across the reloads they cause): each
    /// reload after one waits twice as long as the last (0.5 s up to 30 s), so
    /// a reply the server cannot stream never turns into a reload loop.
    const REFUSED: &str = "wick:refused-streams";

    thread_local! {
        /// Set once the page starts leaving (a form was posted, a link
        /// followed): a reload then would cancel that navigation.
        static LEAVING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// How long to wait before reloading after `refused` refused streams in a row.
    fn reload_delay(refused: u32) -> std::time::Duration {
        let ms = 500u64.saturating_mul(1 << refused.min(6));
        std::time::Duration::from_millis(ms.min(30_000))
    }

    /// Loads the conversation again, at its plain address: what the address
    /// said about the page before (`?at=` a searched message's branch, a
    /// panel's "Saved", a refused form's error) is over by now.
    fn reload() {
        if !LEAVING.with(|l| l.get()) {
            let location = window().location();
            if let Ok(path) = location.pathname() {
                let _ = location.replace(&path);
            }
        }
    }

    /// The reply event in an SSE message named `name`.
    fn parse(name: &str, event: &MessageEvent) -> Option<ReplyEvent> {
        ReplyEvent::parse(name, &event.data().as_string()?)
    }

    /// Follows reply `message_id` from the event after `after` until it ends.
    pub fn follow(message_id: &str, after: u64, live: LiveReply) {
        let url = format!("{}?after={after}", stream_url(message_id));
        let Ok(source) = EventSource::new(&url) else {
            return;
        };
        dom::listen(&window(), "beforeunload", |_: web_sys::Event| {
            LEAVING.with(|l| l.set(true))
        });
        dom::listen(&source, "token", move |e: MessageEvent| {
            dom::forget(REFUSED);
            if let Some(ReplyEvent::Token { text }) = parse("token", &e) {
                live.waiting.set(None);
                live.reading.set(None);
                live.text.update(|s| s.push_str(&text));
                scroll::nudge();
            }
        });
        dom::listen(&source, "waiting", move |e: MessageEvent| {
            if let Some(ReplyEvent::Waiting { ahead }) = parse("waiting", &e) {
                live.waiting.set(Some(ahead));
            }
        });
        dom::listen(&source, "reading", move |e: MessageEvent| {
            if let Some(ReplyEvent::Reading { done, total }) = parse("reading", &e) {
                live.reading.set(Some(done * 100 / total.max(1)));
            }
        });
        let src = source.clone();
        dom::listen(&source, "end", move |e: MessageEvent| {
            src.close();
            dom::forget(REFUSED);
            if let Some(ReplyEvent::End(end)) = parse("end", &e) {
                live.finish_reason.set(end.finish_reason);
                live.state.set(end.state);
                announce::after_reload(match end.finish_reason {
                    Some(FinishReason::Stopped) => "The reply was stopped.",
                    Some(FinishReason::Length) => "The reply stopped at the length limit.",
                    _ => "The reply is written.",
                });
            }
            reload();
        });
        let src = source.clone();
        dom::listen(&source, "failed", move |e: MessageEvent| {
            src.close();
            dom::forget(REFUSED);
            if let Some(ReplyEvent::Failed { message }) = parse("failed", &e) {
                live.error.set(Some(message));
            }
            live.state.set(MessageState::Error);
            live.finish_reason.set(Some(FinishReason::Error));
            announce::after_reload("The reply failed.");
            reload();
        });
        // A dropped connection is retried by the browser; a refused one (the
        // reply is no longer live, e.g. the server restarted) closes the
        // source: then the page is loaded again, after a growing pause, and
        // shows how the stored reply ended.
        let src = source.clone();
        dom::listen(&source, "error", move |_: web_sys::Event| {
            if src.ready_state() == EventSource::CLOSED {
                let refused: u32 = dom::stored(REFUSED)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                dom::store(REFUSED, &(refused.saturating_add(1)).to_string());
                set_timeout(reload, reload_delay(refused));
            }
        });
    }
}
