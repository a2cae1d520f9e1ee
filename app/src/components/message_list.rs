use leptos::html;
use leptos::prelude::*;

use crate::api::RetryReply;
use crate::data::{MessageView, Role};
use crate::markdown;
use wick_types::{FinishReason, MessageState};

/// What the page knows about the reply being written, shared by the messages
/// and the composer.
#[derive(Clone, Copy)]
pub struct ReplyState {
    /// The id of the reply being generated, if one is.
    pub generating: RwSignal<Option<String>>,
    /// Bumped to load the conversation again (e.g. when a stream is gone).
    pub reload: RwSignal<usize>,
    /// Said once to screen readers when a reply ends (its tokens are not
    /// read out one by one: the reply is `aria-busy` while it grows).
    pub announce: RwSignal<String>,
}

/// Keeps the newest text in view while a reply grows, unless the reader has
/// scrolled up to read something else.
#[derive(Clone, Copy)]
pub struct FollowBottom {
    scroller: NodeRef<html::Div>,
    following: StoredValue<bool>,
}

impl FollowBottom {
    /// Scrolls to the bottom after the next paint, if the reader is there.
    pub fn nudge(self) {
        if !self.following.get_value() {
            return;
        }
        request_animation_frame(move || {
            if let Some(el) = self.scroller.get_untracked() {
                el.set_scroll_top(el.scroll_height());
            }
        });
    }
}

/// The messages of a conversation, oldest first. Each is an `<article>` named
/// by its author ("You" / "Assistant") for screen readers and tests alike.
/// The list grows in place as messages are sent (from what `send_message`
/// answers), so a message already on screen, and a reply streaming into it,
/// is never rendered again.
#[component]
pub fn MessageList(
    messages: RwSignal<Vec<MessageView>>,
    conversation_id: String,
    retry: ServerAction<RetryReply>,
) -> impl IntoView {
    let scroller = NodeRef::<html::Div>::new();
    let following = StoredValue::new(true);
    let follow = FollowBottom {
        scroller,
        following,
    };
    // Open a conversation at its end, and follow it as it grows.
    Effect::new(move |_| {
        messages.track();
        follow.nudge()
    });
    // Scrolled up from the newest text: then a button leads back down.
    let away = RwSignal::new(false);
    let on_scroll = move |_| {
        if let Some(el) = scroller.get_untracked() {
            let from_bottom = el.scroll_height() - el.scroll_top() - el.client_height();
            following.set_value(from_bottom < 48);
            if away.get_untracked() != (from_bottom >= 48) {
                away.set(from_bottom >= 48);
            }
        }
    };
    let to_bottom = move |_| {
        following.set_value(true);
        away.set(false);
        if let Some(el) = scroller.get_untracked() {
            el.set_scroll_top(el.scroll_height());
        }
    };
    // Only the newest reply offers Retry.
    let last_reply = Memo::new(move |_| {
        messages.with(|m| {
            m.iter()
                .rev()
                .find(|m| m.role == Role::Assistant)
                .map(|m| m.id.clone())
        })
    });

    view! {
        <div class="messages" node_ref=scroller on:scroll=on_scroll>
            <div class="message-column">
                <For each=move || messages.get() key=|m| m.id.clone() let:m>
                    {
                        let id = m.id.clone();
                        let can_retry = Signal::derive(move || {
                            last_reply.with(|last| last.as_deref() == Some(id.as_str()))
                        });
                        view! {
                            <MessageItem
                                message=m
                                can_retry
                                conversation_id=conversation_id.clone()
                                retry
                                follow
                            />
                        }
                    }
                </For>
            </div>
            {move || {
                away.get()
                    .then(|| {
                        view! {
                            <button type="button" class="to-bottom" on:click=to_bottom>
                                "Scroll to the newest"
                            </button>
                        }
                    })
            }}
        </div>
    }
    // Type-erased: the page's view type would otherwise pass the compiler's
    // recursion limit in the browser build.
    .into_any()
}

/// How a reply's text, state and ending change while it streams.
#[derive(Clone, Copy)]
pub struct LiveReply {
    pub text: RwSignal<String>,
    /// While the reply waits for the model: how many replies are ahead of it.
    pub waiting: RwSignal<Option<u64>>,
    /// While the model reads a long conversation: the share read, in percent.
    pub reading: RwSignal<Option<u64>>,
    pub state: RwSignal<MessageState>,
    pub finish_reason: RwSignal<Option<FinishReason>>,
    pub error: RwSignal<Option<String>>,
}

#[component]
fn MessageItem(
    message: MessageView,
    #[prop(into)] can_retry: Signal<bool>,
    conversation_id: String,
    retry: ServerAction<RetryReply>,
    follow: FollowBottom,
) -> impl IntoView {
    let MessageView {
        id,
        role,
        content,
        state,
        finish_reason,
        error,
        seq,
        model,
    } = message;
    let live = LiveReply {
        text: RwSignal::new(content),
        waiting: RwSignal::new(None),
        reading: RwSignal::new(None),
        state: RwSignal::new(state),
        finish_reason: RwSignal::new(finish_reason),
        error: RwSignal::new(error),
    };
    let reply_state = use_context::<ReplyState>();
    if live.state.get_untracked().is_generating() {
        if let Some(r) = reply_state {
            r.generating.set(Some(id.clone()));
        }
        #[cfg(feature = "hydrate")]
        crate::live::follow(&id, seq, live, reply_state, follow);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (seq, follow);

    let author_id = format!("author-{id}");
    let labelled_by = author_id.clone();
    let class = format!("message {}", role.as_str());
    let body = match role {
        Role::Assistant => {
            view! { <div class="content markdown" dir="auto" inner_html=move || markdown::to_html(&live.text.get())></div> }
                .into_any()
        }
        _ => view! { <div class="content plain" dir="auto">{move || live.text.get()}</div> }.into_any(),
    };
    let status = move || {
        let state = live.state.get();
        let waiting = match (live.waiting.get(), live.reading.get()) {
            (_, Some(percent)) => format!("Reading the conversation… {percent} %"),
            (Some(0), _) => "Waiting for the model: this reply is next.".to_owned(),
            (Some(1), _) => "Waiting for the model: 1 reply ahead.".to_owned(),
            (Some(n), _) => format!("Waiting for the model: {n} replies ahead."),
            (None, None) => "Writing…".to_owned(),
        };
        let note = match (state, live.finish_reason.get()) {
            (MessageState::Generating, _) => Some(waiting),
            (MessageState::Interrupted, _) => {
                Some("Interrupted: the server stopped before this reply was finished.".to_owned())
            }
            (MessageState::Error, _) => None,
            (MessageState::Done, Some(FinishReason::Stopped)) => Some("Stopped.".to_owned()),
            (MessageState::Done, Some(FinishReason::Length)) => {
                Some("Stopped at the length limit.".to_owned())
            }
            (MessageState::Done, _) => None,
        };
        let problem = (state == MessageState::Error).then(|| {
            live.error
                .get()
                .unwrap_or_else(|| "The reply failed.".to_owned())
        });
        view! {
            {note.map(|n| view! { <p class="status">{n}</p> })}
            {problem.map(|p| view! { <p class="status failed" role="alert">{p}</p> })}
        }
    };
    let message_id = id.clone();
    let retry_form = move || {
        let conversation_id = conversation_id.clone();
        let message_id = message_id.clone();
        (can_retry.get() && !live.state.get().is_generating()).then(move || {
            let failure = move || match retry.value().get() {
                Some(Err(e)) => Some(e.to_string()),
                _ => None,
            };
            view! {
                <ActionForm action=retry attr:class="retry">
                    <input type="hidden" name="conversation_id" value=conversation_id />
                    <input type="hidden" name="message_id" value=message_id />
                    <button type="submit" class="ghost" disabled=move || retry.pending().get()>
                        "Retry"
                    </button>
                    <span class="problem" role="alert">{failure}</span>
                </ActionForm>
            }
        })
    };

    view! {
        <article
            class=class
            aria-labelledby=labelled_by
            aria-busy=move || live.state.get().is_generating().to_string()
        >
            <header class="author" id=author_id>
                {role.author()}
                {model.map(|m| view! { <span class="model-tag">{m}</span> })}
            </header>
            {body}
            {status}
            {retry_form}
        </article>
    }
}
