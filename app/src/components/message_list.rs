use leptos::html;
use leptos::prelude::*;

use crate::api::{ContinueReply, EditMessage, RetryReply, SwitchBranch};
use crate::data::{MessageView, Role, Siblings};
use crate::markdown;
use wick_types::reasoning::split_reasoning;
use wick_types::{FinishReason, MessageState};

/// What can be done to the messages of a conversation; each answer reloads
/// the conversation, which then shows the branch it made.
#[derive(Clone, Copy)]
pub struct MessageActions {
    pub retry: ServerAction<RetryReply>,
    pub edit: ServerAction<EditMessage>,
    pub continue_reply: ServerAction<ContinueReply>,
    pub switch: ServerAction<SwitchBranch>,
    /// Whether the conversation's model can extend a reply in place.
    pub can_continue: bool,
}

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
    /// Bumped whenever a reply's stream ends.
    pub ended: RwSignal<usize>,
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
        if !self.following.try_get_value().unwrap_or(false) {
            return;
        }
        // By the next frame the list may be gone (the conversation was read
        // again): then there is nothing to scroll.
        request_animation_frame(move || {
            if let Some(el) = self.scroller.try_get_untracked().flatten() {
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
    actions: MessageActions,
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
    // Only the newest reply offers Retry and Continue.
    let last_reply = Memo::new(move |_| {
        messages.with(|m| {
            m.iter()
                .rev()
                .find(|m| m.role == Role::Assistant)
                .map(|m| m.id.clone())
        })
    });

    view! {
        <div class="messages" node_ref=scroller on:scroll=on_scroll on:click=copy_code>
            <div class="message-column">
                // Keyed by what a message looks like once read: a reply that
                // was continued (longer, or generating again) or gained
                // versions is drawn anew; the others stay as they are. `seq`
                // tells two streams apart: a reply read while it held all
                // its words (seq > 0) and read again as its continuation
                // starts (seq 0) has the same state and text, but the page
                // must follow the new stream.
                <For
                    each=move || messages.get()
                    key=|m| (m.id.clone(), m.state, m.finish_reason, m.content.len(), m.seq, m.siblings.clone())
                    let:m
                >
                    {
                        let id = m.id.clone();
                        let can_retry = Signal::derive(move || {
                            last_reply.with(|last| last.as_deref() == Some(id.as_str()))
                        });
                        view! {
                            <MessageItem
                                message=m
                                is_last_reply=can_retry
                                conversation_id=conversation_id.clone()
                                actions
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

/// A click on a code block's Copy button puts the block's code, exactly, on
/// the clipboard (one listener for every block of the list: their HTML comes
/// from the markdown renderer).
fn copy_code(ev: leptos::ev::MouseEvent) {
    #[cfg(feature = "hydrate")]
    {
        use leptos::wasm_bindgen::JsCast;
        let Some(button) = ev
            .target()
            .and_then(|t| t.dyn_into::<leptos::web_sys::Element>().ok())
            .and_then(|e| e.closest(".copy-code").ok().flatten())
        else {
            return;
        };
        let code = button
            .closest(".code-block")
            .ok()
            .flatten()
            .and_then(|block| block.query_selector("code").ok().flatten())
            .and_then(|code| code.text_content());
        if let Some(code) = code {
            copy_text(&code, &button);
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = ev;
}

/// Writes `text` to the clipboard and says so on `button` for a moment.
#[cfg(feature = "hydrate")]
fn copy_text(text: &str, button: &leptos::web_sys::Element) {
    let _ = window().navigator().clipboard().write_text(text);
    let label = button.text_content().unwrap_or_default();
    button.set_text_content(Some("Copied"));
    let button = send_wrapper::SendWrapper::new(button.clone());
    set_timeout(
        move || button.set_text_content(Some(&label)),
        std::time::Duration::from_millis(1500),
    );
}

/// `‹ 2 / 3 ›`: the versions of a turn, each arrow a small form that shows
/// that version's branch (a plain post without JavaScript).
#[component]
fn Versions(siblings: Siblings, conversation_id: String, actions: MessageActions) -> impl IntoView {
    let Siblings {
        position,
        count,
        previous,
        next,
    } = siblings;
    let arrow = move |target: Option<String>, text: &'static str, label: &'static str| {
        let conversation_id = conversation_id.clone();
        match target {
            Some(id) => view! {
                <ActionForm action=actions.switch attr:class="version-switch">
                    <input type="hidden" name="conversation_id" value=conversation_id />
                    <input type="hidden" name="message_id" value=id />
                    <button type="submit" class="ghost icon" aria-label=label title=label>{text}</button>
                </ActionForm>
            }
            .into_any(),
            None => view! {
                <button type="button" class="ghost icon" aria-label=label title=label disabled=true>{text}</button>
            }
            .into_any(),
        }
    };
    view! {
        <nav class="versions" aria-label="Versions">
            {arrow(previous, "‹", "Previous version")}
            <span class="version-count">{format!("{position} / {count}")}</span>
            {arrow(next, "›", "Next version")}
        </nav>
    }
}

#[component]
fn MessageItem(
    message: MessageView,
    #[prop(into)] is_last_reply: Signal<bool>,
    conversation_id: String,
    actions: MessageActions,
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
        siblings,
    } = message;
    let original = content.clone();
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
    let busy = move || reply_state.is_some_and(|r| r.generating.get().is_some());

    let author_id = format!("author-{id}");
    let labelled_by = author_id.clone();
    let class = format!("message {}", role.as_str());
    let body = match role {
        Role::Assistant => view! { <ReplyBody live /> }.into_any(),
        _ => view! { <div class="content plain" dir="auto">{move || live.text.get()}</div> }
            .into_any(),
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

    let versions = siblings.map(|s| {
        view! { <Versions siblings=s conversation_id=conversation_id.clone() actions /> }
    });
    let tools = match role {
        Role::Assistant => view! {
            <ReplyTools
                message_id=id.clone()
                conversation_id=conversation_id.clone()
                live
                is_last_reply
                actions
            />
        }
        .into_any(),
        _ => view! {
            <EditForm
                message_id=id.clone()
                conversation_id=conversation_id.clone()
                original
                busy=Signal::derive(busy)
                actions
            />
        }
        .into_any(),
    };

    view! {
        <article
            id=format!("m-{id}")
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
            <div class="message-tools">{versions} {tools}</div>
        </article>
    }
    .into_any()
}

/// A reply's text: its reasoning, if any, in a collapsed section of its own
/// (open while the model is still reasoning), then the answer.
#[component]
fn ReplyBody(live: LiveReply) -> impl IntoView {
    let thinking = move || {
        live.text.with(|t| {
            let r = split_reasoning(t);
            r.thinking
                .map(|th| (markdown::to_html(th), r.thinking_done))
        })
    };
    let answer = move || {
        live.text
            .with(|t| markdown::to_html(split_reasoning(t).answer))
    };
    view! {
        {move || {
            thinking()
                .map(|(html, done)| {
                    view! {
                        <details class="reasoning" open=!done>
                            <summary>{if done { "Reasoning" } else { "Reasoning…" }}</summary>
                            <div class="markdown" dir="auto" inner_html=html></div>
                        </details>
                    }
                })
        }}
        <div class="content markdown" dir="auto" inner_html=answer></div>
    }
}

/// Under a reply: Copy (its answer, as markdown), and on the newest one
/// Retry and, when it was cut short, Continue.
#[component]
fn ReplyTools(
    message_id: String,
    conversation_id: String,
    live: LiveReply,
    is_last_reply: Signal<bool>,
    actions: MessageActions,
) -> impl IntoView {
    let on_copy = move |ev: leptos::ev::MouseEvent| {
        #[cfg(feature = "hydrate")]
        {
            use leptos::wasm_bindgen::JsCast;
            let answer = live
                .text
                .with_untracked(|t| split_reasoning(t).answer.to_owned());
            if let Some(button) = ev
                .current_target()
                .and_then(|t| t.dyn_into::<leptos::web_sys::Element>().ok())
            {
                copy_text(&answer, &button);
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    let settled = move || !live.state.get().is_generating();
    let cut_short = move || {
        matches!(
            (live.state.get(), live.finish_reason.get()),
            (MessageState::Interrupted, _)
                | (
                    MessageState::Done,
                    Some(FinishReason::Length | FinishReason::Stopped)
                )
        ) && live.text.with(|t| !t.is_empty())
    };
    let failure = move || {
        [
            actions.retry.value().get().and_then(Result::err),
            actions.continue_reply.value().get().and_then(Result::err),
            actions.switch.value().get().and_then(Result::err),
        ]
        .into_iter()
        .flatten()
        .next()
        .map(|e| e.to_string())
    };
    let (retry_conversation, retry_message) = (conversation_id.clone(), message_id.clone());
    let retry = move || {
        let (conversation_id, message_id) = (retry_conversation.clone(), retry_message.clone());
        (is_last_reply.get() && settled()).then(move || {
            view! {
                <ActionForm action=actions.retry attr:class="retry">
                    <input type="hidden" name="conversation_id" value=conversation_id />
                    <input type="hidden" name="message_id" value=message_id />
                    <button type="submit" class="ghost" disabled=move || actions.retry.pending().get()>
                        "Retry"
                    </button>
                </ActionForm>
            }
        })
    };
    let continue_form = move || {
        let (conversation_id, message_id) = (conversation_id.clone(), message_id.clone());
        (actions.can_continue && is_last_reply.get() && settled() && cut_short()).then(move || {
            view! {
                <ActionForm action=actions.continue_reply attr:class="continue">
                    <input type="hidden" name="conversation_id" value=conversation_id />
                    <input type="hidden" name="message_id" value=message_id />
                    <button
                        type="submit"
                        class="ghost"
                        disabled=move || actions.continue_reply.pending().get()
                    >
                        "Continue"
                    </button>
                </ActionForm>
            }
        })
    };
    view! {
        {move || settled().then(|| view! {
            <button type="button" class="ghost copy-message" on:click=on_copy>"Copy"</button>
        })}
        {retry}
        {continue_form}
        {move || is_last_reply.get().then(|| view! { <span class="problem" role="alert">{failure}</span> })}
    }
    .into_any()
}

/// Under a question: Edit, which opens a box with its text; sending the
/// edit makes a new branch with a new reply. A `<details>` and a plain form,
/// so it works without JavaScript too. (A refused edit is said once, above
/// the composer, where a refused message is said: the form may be folded.)
#[component]
fn EditForm(
    message_id: String,
    conversation_id: String,
    original: String,
    busy: Signal<bool>,
    actions: MessageActions,
) -> impl IntoView {
    let box_id = format!("edit-{message_id}");
    view! {
        <details class="edit">
            <summary>"Edit"</summary>
            <ActionForm action=actions.edit attr:class="edit-form">
                <input type="hidden" name="conversation_id" value=conversation_id />
                <input type="hidden" name="message_id" value=message_id />
                <label for=box_id.clone() class="visually-hidden">"Edited message"</label>
                <textarea id=box_id name="content" rows="3" dir="auto" inner_html=crate::textarea_text(&original)></textarea>
                <button
                    type="submit"
                    disabled=move || busy.get() || actions.edit.pending().get()
                >
                    "Send edit"
                </button>
            </ActionForm>
        </details>
    }
}
