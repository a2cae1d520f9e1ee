use leptos::prelude::*;
use leptos::server_fn::ServerFn;

use crate::api::{ContinueReply, EditMessage, RetryReply, SwitchBranch};
use crate::data::{MessageView, Role, Siblings};
use crate::islands::reply::ReplyStream;
use crate::islands::scroll::ScrollToNewest;
use crate::markdown;
use wick_types::reasoning::split_reasoning;
use wick_types::{FinishReason, MessageState};

/// What can be done to the messages of a conversation: each is a plain form
/// whose server function answers with a redirect back to the conversation,
/// which then shows the branch it made. (The actions are here for their
/// forms and for the error a refused post comes back with, `?__err=`.)
#[derive(Clone, Copy)]
pub struct MessageActions {
    pub retry: ServerAction<RetryReply>,
    pub edit: ServerAction<EditMessage>,
    pub continue_reply: ServerAction<ContinueReply>,
    pub switch: ServerAction<SwitchBranch>,
    /// Whether the conversation's model can extend a reply in place.
    pub can_continue: bool,
}

/// The messages of a conversation, oldest first. Each is an `<article>` named
/// by its author ("You" / "Assistant") for screen readers and tests alike.
/// Rendered on the server; a reply being written is an island that streams.
#[component]
pub fn MessageList(
    messages: Vec<MessageView>,
    conversation_id: String,
    actions: MessageActions,
) -> impl IntoView {
    // Only the newest reply offers Retry and Continue; nothing is edited
    // while a reply is being written.
    let last_reply = messages
        .iter()
        .rev()
        .find(|m| m.role == Role::Assistant)
        .map(|m| m.id.clone());
    let busy = messages.iter().any(|m| m.state.is_generating());
    view! {
        <div class="messages">
            <div class="message-column">
                {messages
                    .into_iter()
                    .map(|m| {
                        let is_last_reply = last_reply.as_deref() == Some(m.id.as_str());
                        view! {
                            <MessageItem
                                message=m
                                is_last_reply
                                busy
                                conversation_id=conversation_id.clone()
                                actions
                            />
                        }
                    })
                    .collect_view()}
            </div>
            <ScrollToNewest />
        </div>
    }
    // Type-erased: the page's view type would otherwise pass the compiler's
    // recursion limit.
    .into_any()
}

/// How a reply's text, state and ending change while it streams (fixed for
/// a reply that is not being written).
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

impl LiveReply {
    pub fn new(
        text: String,
        state: MessageState,
        finish_reason: Option<FinishReason>,
        error: Option<String>,
    ) -> Self {
        Self {
            text: RwSignal::new(text),
            waiting: RwSignal::new(None),
            reading: RwSignal::new(None),
            state: RwSignal::new(state),
            finish_reason: RwSignal::new(finish_reason),
            error: RwSignal::new(error),
        }
    }
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
    is_last_reply: bool,
    /// A reply of the conversation is being written.
    busy: bool,
    conversation_id: String,
    actions: MessageActions,
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
    let generating = state.is_generating();
    let author_id = format!("author-{id}");
    let labelled_by = author_id.clone();
    let class = format!("message {}", role.as_str());
    let body = match role {
        Role::Assistant if generating => view! {
            <ReplyStream message_id=id.clone() after=seq text=content.clone() />
        }
        .into_any(),
        Role::Assistant => {
            let live = LiveReply::new(content.clone(), state, finish_reason, error);
            view! { {reply_body(live)} {reply_status(live)} }.into_any()
        }
        _ => view! { <div class="content plain" dir="auto">{content.clone()}</div> }.into_any(),
    };
    let versions = siblings.map(|s| {
        view! { <Versions siblings=s conversation_id=conversation_id.clone() actions /> }
    });
    let tools = match role {
        Role::Assistant => {
            let cut_short = !content.is_empty()
                && matches!(
                    (state, finish_reason),
                    (MessageState::Interrupted, _)
                        | (
                            MessageState::Done,
                            Some(FinishReason::Length | FinishReason::Stopped)
                        )
                );
            view! {
                <ReplyTools
                    message_id=id.clone()
                    conversation_id=conversation_id.clone()
                    answer=(!generating).then(|| split_reasoning(&content).answer.to_owned())
                    cut_short
                    is_last_reply
                    actions
                />
            }
            .into_any()
        }
        _ => view! {
            <EditForm
                message_id=id.clone()
                conversation_id=conversation_id.clone()
                original=content
                busy
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
            aria-busy=generating.to_string()
        >
            <header class="author" id=author_id>
                {role.author()}
                {model.map(|m| view! { <span class="model-tag">{m}</span> })}
            </header>
            {body}
            <div class="message-tools">{versions} {tools}</div>
        </article>
    }
    .into_any()
}

/// A reply's text: its reasoning, if any, in a collapsed section of its own
/// (open while the model is still reasoning), then the answer. The same on
/// the server and in the streaming island.
pub fn reply_body(live: LiveReply) -> impl IntoView {
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

/// Under a reply's text: how it stands while written, or how it ended.
pub fn reply_status(live: LiveReply) -> impl IntoView {
    move || {
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
    }
}

/// Under a reply: Copy (its answer, as markdown), and on the newest one
/// Retry and, when it was cut short, Continue. Nothing while it is written
/// (`answer` is `None` then).
#[component]
fn ReplyTools(
    message_id: String,
    conversation_id: String,
    answer: Option<String>,
    cut_short: bool,
    is_last_reply: bool,
    actions: MessageActions,
) -> impl IntoView {
    let settled = answer.is_some();
    // A refused Retry, Continue or switch comes back with the page (`?__err=`).
    let failure = [
        actions.retry.value().get_untracked().and_then(Result::err),
        actions
            .continue_reply
            .value()
            .get_untracked()
            .and_then(Result::err),
        actions.switch.value().get_untracked().and_then(Result::err),
    ]
    .into_iter()
    .flatten()
    .next()
    .map(|e| e.to_string());
    let form = move |class: &'static str, label: &'static str, url: &'static str| {
        view! {
            <form method="post" action=url class=class>
                <input type="hidden" name="conversation_id" value=conversation_id.clone() />
                <input type="hidden" name="message_id" value=message_id.clone() />
                <button type="submit" class="ghost">{label}</button>
            </form>
        }
    };
    view! {
        {answer.map(|text| view! {
            // The answer travels with the button, for the page's Copy handler.
            <button type="button" class="ghost copy-message" data-text=text>"Copy"</button>
        })}
        {(is_last_reply && settled).then(|| form("retry", "Retry", RetryReply::url()))}
        {(actions.can_continue && is_last_reply && settled && cut_short)
            .then(|| form("continue", "Continue", ContinueReply::url()))}
        {is_last_reply.then(|| view! { <span class="problem" role="alert">{failure}</span> })}
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
    busy: bool,
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
                <button type="submit" disabled=busy>"Send edit"</button>
            </ActionForm>
        </details>
    }
}
