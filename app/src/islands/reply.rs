//! The reply being written: its text streams in over an `EventSource` and is
//! rendered as it grows. When it ends the page is loaded again, so that
//! everything around the reply (Retry, Continue, Copy, the composer's Send,
//! the sidebar's order) is the server's, as after any other change.
//!
//! The browser reconnects by itself after a dropped connection, sending
//! `Last-Event-ID`, so nothing is missed or repeated.

use leptos::prelude::*;

/// Placed in a reply in the `generating` state, after its server-rendered
/// text and status; follows its stream from the event after `after` on (the
/// server rendered `text`, the reply's words up to there) and renders into
/// those two. Draws nothing itself: an island that renders no view keeps
/// Leptos' view code out of the download.
#[island]
pub fn ReplyStream(message_id: String, after: u64, text: String) -> impl IntoView {
    #[cfg(feature = "hydrate")]
    stream::follow(&message_id, after, text);
    #[cfg(not(feature = "hydrate"))]
    let _ = (message_id, after, text);
}

#[cfg(feature = "hydrate")]
mod stream {
    use leptos::prelude::*;
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    use web_sys::{EventSource, MessageEvent};

    use crate::components::message_list::{reply_body_html, ReplyStatus};
    use crate::islands::{announce, dom, scroll};
    use wick_types::reply::{stream_url, ReplyEvent};
    use wick_types::{FinishReason, MessageState};

    /// Loads of this conversation in a row that saw its reply make no
    /// progress (its stream refused, or ended before a word arrived, as when
    /// the server cannot store the reply's end yet): each reload after one
    /// waits twice as long as the last (0.5 s up to 30 s), so a reply the
    /// page cannot follow never turns into a reload loop. Kept across the
    /// reloads, per page.
    fn stalls_key() -> String {
        format!("wick:stalls:{}", dom::path())
    }

    thread_local! {
        /// Set once the page starts leaving (a form was posted, a link
        /// followed): a reload then would cancel that navigation.
        static LEAVING: Cell<bool> = const { Cell::new(false) };
    }

    /// How long to wait before reloading after `stalls` loads without progress.
    fn reload_delay(stalls: u32) -> std::time::Duration {
        let ms = 500u64.saturating_mul(1 << stalls.min(6));
        std::time::Duration::from_millis(ms.min(30_000))
    }

    /// Loads the conversation again, at its plain address (what the address
    /// said about the page before, such as a refused form's error, is over).
    fn reload() {
        if LEAVING.with(|l| l.get()) {
            return;
        }
        // Someone busy elsewhere on the page (an edit, a panel, the search
        // box) keeps what they are doing: the composer just offers Send again.
        if busy_elsewhere() {
            offer_send();
            return;
        }
        scroll::keep_place();
        let location = window().location();
        if let Ok(path) = location.pathname() {
            let _ = location.replace(&path);
        }
    }

    /// Reloads now if the reply moved on this page, or after a growing pause.
    fn reload_after(progress: bool) {
        if progress {
            dom::forget(&stalls_key());
            reload();
            return;
        }
        let stalls: u32 = dom::stored(&stalls_key())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        dom::store(&stalls_key(), &stalls.saturating_add(1).to_string());
        set_timeout(reload, reload_delay(stalls));
    }

    /// Whether a field other than the message box has the focus, or a panel
    /// (an edit, the settings, share, delete) is open.
    fn busy_elsewhere() -> bool {
        let focused = document().active_element().is_some_and(|e| {
            matches!(e.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT")
                && e.id() != "composer-input"
        });
        focused || dom::query("details[open]:not(.reasoning)").is_some()
    }

    /// The composer's Stop button becomes Send (what the page shows after a
    /// reload, without the reload).
    fn offer_send() {
        if let Some(stop) = dom::query(".composer button.stop") {
            for name in ["formaction", "name", "value"] {
                let _ = stop.remove_attribute(name);
            }
            let _ = stop.class_list().remove_1("stop");
            stop.set_text_content(Some("Send"));
        }
    }

    /// The reply event in an SSE message named `name`.
    fn parse(name: &str, event: &MessageEvent) -> Option<ReplyEvent> {
        ReplyEvent::parse(name, &event.data().as_string()?)
    }

    /// What the page shows of the reply, kept as it streams.
    struct Shown {
        text: String,
        status: ReplyStatus,
        body: web_sys::Element,
        status_box: web_sys::Element,
    }

    impl Shown {
        fn body(&self) {
            // The reader may have folded or unfolded the reasoning: kept so.
            let open = self
                .body
                .query_selector("details.reasoning")
                .ok()
                .flatten()
                .map(|d| d.has_attribute("open"));
            self.body.set_inner_html(&reply_body_html(&self.text, open));
        }

        fn status(&self) {
            self.status_box.set_inner_html(&self.status.html());
        }
    }

    /// Follows reply `message_id` from the event after `after` until it ends.
    pub fn follow(message_id: &str, after: u64, text: String) {
        let article = format!("#m-{message_id}");
        let (Some(body), Some(status_box)) = (
            dom::query(&format!("{article} .reply-body")),
            dom::query(&format!("{article} .reply-status")),
        ) else {
            return;
        };
        let shown = Rc::new(RefCell::new(Shown {
            text,
            status: ReplyStatus {
                state: MessageState::Generating,
                finish_reason: None,
                error: None,
                waiting: None,
                reading: None,
            },
            body,
            status_box,
        }));
        let url = format!("{}?after={after}", stream_url(message_id));
        let Ok(source) = EventSource::new(&url) else {
            return;
        };
        dom::listen(&window(), "beforeunload", |_: web_sys::Event| {
            LEAVING.with(|l| l.set(true))
        });
        // Back on the page (from the browser's back-forward cache): not leaving.
        dom::listen(&window(), "pageshow", |_: web_sys::Event| {
            LEAVING.with(|l| l.set(false))
        });
        // Whether a word arrived on this page.
        let progress = Rc::new(Cell::new(false));
        let (moved, on_token) = (progress.clone(), shown.clone());
        dom::listen(&source, "token", move |e: MessageEvent| {
            if let Some(ReplyEvent::Token { text }) = parse("token", &e) {
                moved.set(true);
                let mut shown = on_token.borrow_mut();
                shown.text.push_str(&text);
                let was_waiting =
                    shown.status.waiting.take().is_some() | shown.status.reading.take().is_some();
                shown.body();
                if was_waiting {
                    shown.status();
                }
                scroll::nudge();
            }
        });
        let on_waiting = shown.clone();
        dom::listen(&source, "waiting", move |e: MessageEvent| {
            if let Some(ReplyEvent::Waiting { ahead }) = parse("waiting", &e) {
                let mut shown = on_waiting.borrow_mut();
                shown.status.waiting = Some(ahead);
                shown.status();
            }
        });
        let on_reading = shown.clone();
        dom::listen(&source, "reading", move |e: MessageEvent| {
            if let Some(ReplyEvent::Reading { done, total }) = parse("reading", &e) {
                let mut shown = on_reading.borrow_mut();
                shown.status.reading = Some(done * 100 / total.max(1));
                shown.status();
            }
        });
        let (src, ended, on_end) = (source.clone(), progress.clone(), shown.clone());
        dom::listen(&source, "end", move |e: MessageEvent| {
            src.close();
            if let Some(ReplyEvent::End(end)) = parse("end", &e) {
                let mut shown = on_end.borrow_mut();
                shown.status.state = end.state;
                shown.status.finish_reason = end.finish_reason;
                shown.status();
                announce::after_reload(match end.finish_reason {
                    Some(FinishReason::Stopped) => "The reply was stopped.",
                    Some(FinishReason::Length) => "The reply stopped at the length limit.",
                    _ => "The reply is written.",
                });
            }
            reload_after(ended.get());
        });
        let (src, failed, on_failed) = (source.clone(), progress.clone(), shown);
        dom::listen(&source, "failed", move |e: MessageEvent| {
            src.close();
            let mut shown = on_failed.borrow_mut();
            if let Some(ReplyEvent::Failed { message }) = parse("failed", &e) {
                shown.status.error = Some(message);
            }
            shown.status.state = MessageState::Error;
            shown.status.finish_reason = Some(FinishReason::Error);
            shown.status();
            announce::after_reload("The reply failed.");
            reload_after(failed.get());
        });
        // A dropped connection is retried by the browser; a refused one (the
        // reply is no longer live, e.g. the server restarted) closes the
        // source: then the page is loaded again, after a growing pause, and
        // shows how the stored reply ended.
        let src = source.clone();
        dom::listen(&source, "error", move |_: web_sys::Event| {
            if src.ready_state() == EventSource::CLOSED {
                reload_after(progress.get());
            }
        });
    }
}
