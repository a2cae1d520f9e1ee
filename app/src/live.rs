//! The browser side of a streaming reply: an `EventSource` on the reply's
//! stream, feeding the message's signals. The browser reconnects by itself
//! after a dropped connection, sending `Last-Event-ID`, so nothing is missed
//! or repeated.

use leptos::prelude::*;
use send_wrapper::SendWrapper;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{EventSource, MessageEvent};

use wick_types::reply::{stream_url, ReplyEvent};
use wick_types::{FinishReason, MessageState};

use crate::components::message_list::{FollowBottom, LiveReply, ReplyState};
use crate::ConversationsChanged;

thread_local! {
    /// Streams refused in a row: each reload of the conversation after one
    /// waits twice as long as the last (0.5 s up to 30 s), so a reply the
    /// server cannot stream never turns into a reload loop.
    static REFUSED_IN_A_ROW: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// How long to wait before reloading after `refused` refused streams in a row.
fn reload_delay(refused: u32) -> std::time::Duration {
    let ms = 500u64.saturating_mul(1 << refused.min(6));
    std::time::Duration::from_millis(ms.min(30_000))
}

/// The reply event in an SSE message named `name`.
fn parse(name: &str, event: &MessageEvent) -> Option<ReplyEvent> {
    ReplyEvent::parse(name, &event.data().as_string()?)
}

/// Follows reply `message_id` from the event after `after` until it ends.
pub fn follow(
    message_id: &str,
    after: u64,
    live: LiveReply,
    reply_state: Option<ReplyState>,
    follow: FollowBottom,
) {
    let url = format!("{}?after={after}", stream_url(message_id));
    let Ok(source) = EventSource::new(&url) else {
        return;
    };
    let changed = use_context::<ConversationsChanged>();
    let finished = move || {
        if let Some(r) = reply_state {
            r.generating.set(None);
            r.ended.update(|n| *n += 1);
        }
        if let Some(ConversationsChanged(c)) = changed {
            c.update(|n| *n += 1);
        }
    };

    let on_token = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        REFUSED_IN_A_ROW.with(|n| n.set(0));
        if let Some(ReplyEvent::Token { text }) = parse("token", &e) {
            live.waiting.set(None);
            live.reading.set(None);
            live.text.update(|s| s.push_str(&text));
            follow.nudge();
        }
    });
    let on_waiting = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        if let Some(ReplyEvent::Waiting { ahead }) = parse("waiting", &e) {
            live.waiting.set(Some(ahead));
        }
    });
    let on_reading = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        if let Some(ReplyEvent::Reading { done, total }) = parse("reading", &e) {
            live.reading.set(Some(done * 100 / total.max(1)));
        }
    });
    let src = source.clone();
    let on_end = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        src.close();
        REFUSED_IN_A_ROW.with(|n| n.set(0));
        if let Some(ReplyEvent::End(end)) = parse("end", &e) {
            live.finish_reason.set(end.finish_reason);
            live.state.set(end.state);
            if let Some(r) = reply_state {
                let said = match end.finish_reason {
                    Some(FinishReason::Stopped) => "The reply was stopped.",
                    Some(FinishReason::Length) => "The reply stopped at the length limit.",
                    _ => "The reply is written.",
                };
                r.announce.set(said.to_owned());
            }
        }
        finished();
    });
    let src = source.clone();
    let on_failed = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        src.close();
        REFUSED_IN_A_ROW.with(|n| n.set(0));
        if let Some(ReplyEvent::Failed { message }) = parse("failed", &e) {
            live.error.set(Some(message));
        }
        live.state.set(MessageState::Error);
        live.finish_reason.set(Some(FinishReason::Error));
        finished();
    });
    // A dropped connection is retried by the browser; a refused one (the reply
    // is no longer live, e.g. the server restarted) closes the source: then the
    // stored message tells how it ended, read again after a growing pause.
    let src = source.clone();
    let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
        if src.ready_state() == EventSource::CLOSED {
            if let Some(r) = reply_state {
                r.generating.set(None);
                let refused = REFUSED_IN_A_ROW.with(|n| {
                    n.set(n.get().saturating_add(1));
                    n.get() - 1
                });
                set_timeout(move || r.reload.update(|n| *n += 1), reload_delay(refused));
            }
        }
    });
    let listen = |name: &str, f: &web_sys::js_sys::Function| {
        let _ = source.add_event_listener_with_callback(name, f);
    };
    listen("waiting", on_waiting.as_ref().unchecked_ref());
    listen("reading", on_reading.as_ref().unchecked_ref());
    listen("token", on_token.as_ref().unchecked_ref());
    listen("end", on_end.as_ref().unchecked_ref());
    listen("failed", on_failed.as_ref().unchecked_ref());
    listen("error", on_error.as_ref().unchecked_ref());

    // Leaving the page (or re-rendering the list) closes the stream.
    let held = SendWrapper::new((
        source, on_waiting, on_reading, on_token, on_end, on_failed, on_error,
    ));
    on_cleanup(move || {
        let (source, ..) = held.take();
        source.close();
    });
}
