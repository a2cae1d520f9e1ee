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
            // Shown by the island while the reader is scrolled up.
            <button type="button" class="to-bottom" hidden=true>"Scroll to the newest"</button>
            <ScrollToNewest />
        </div>
    }
    // Type-erased: the page's view type would otherwise pass the compiler's
    // recursion limit.
    .into_any()
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
        Role::Assistant => {
            let stream = generating.then(
                || view! { <ReplyStream message_id=id.clone() after=seq text=content.clone() /> },
            );
            let status = ReplyStatus {
                state,
                finish_reason,
                error,
                waiting: None,
                reading: None,
            };
            view! {
                <div class="reply-body" inner_html=reply_body_html(&content, None)></div>
                <div class="reply-status" inner_html=status.html()></div>
                {stream}
            }
            .into_any()
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

/// A reply's text as HTML: its reasoning, if any, in a collapsed section of
/// its own (open while the model is still reasoning, unless `open` says how
/// the reader left it), then the answer. The server renders it, and the
/// streaming island renders it again as the reply grows: one renderer.
pub fn reply_body_html(text: &str, open: Option<bool>) -> String {
    let reply = split_reasoning(text);
    let mut html = String::new();
    if let Some(thinking) = reply.thinking {
        let open = open.unwrap_or(!reply.thinking_done);
        html.push_str(if open {
            "<details class=\"reasoning\" open>"
        } else {
            "<details class=\"reasoning\">"
        });
        html.push_str(if reply.thinking_done {
            "<summary>Reasoning</summary>"
        } else {
            "<summary>Reasoning…</summary>"
        });
        html.push_str("<div class=\"markdown\" dir=\"auto\">");
        html.push_str(&markdown::to_html(thinking));
        html.push_str("</div></details>");
    }
    html.push_str("<div class=\"content markdown\" dir=\"auto\">");
    html.push_str(&markdown::to_html(reply.answer));
    html.push_str("</div>");
    html
}

/// How a reply stands: while written (waiting in the queue, reading a long
/// conversation, writing), or how it ended.
pub struct ReplyStatus {
    pub state: MessageState,
    pub finish_reason: Option<FinishReason>,
    pub error: Option<String>,
    /// While the reply waits for the model: how many replies are ahead of it.
    pub waiting: Option<u64>,
    /// While the model reads a long conversation: the share read, in percent.
    pub reading: Option<u64>,
}

impl ReplyStatus {
    /// The lines under the reply's text, as HTML (the error's text escaped).
    pub fn html(&self) -> String {
        let note = match (self.state, self.finish_reason) {
            (MessageState::Generating, _) => Some(match (self.waiting, self.reading) {
                (_, Some(percent)) => format!("Reading the conversation… {percent} %"),
                (Some(0), _) => "Waiting for the model: this reply is next.".to_owned(),
                (Some(1), _) => "Waiting for the model: 1 reply ahead.".to_owned(),
                (Some(n), _) => format!("Waiting for the model: {n} replies ahead."),
                (None, None) => "Writing…".to_owned(),
            }),
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
        let mut html = String::new();
        if let Some(note) = note {
            html.push_str(&format!(
                "<p class=\"status\">{}</p>",
                crate::escape_html(&note)
            ));
        }
        if self.state == MessageState::Error {
            let problem = self.error.as_deref().unwrap_or("The reply failed.");
            html.push_str(&format!(
                "<p class=\"status failed\" role=\"alert\">{}</p>",
                crate::escape_html(problem)
            ));
        }
        html
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
