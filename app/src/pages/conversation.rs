use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::{
    get_conversation, ContinueReply, EditMessage, RenameConversation, RetryReply,
    SaveConversationSettings, SendMessage, SwitchBranch,
};
use crate::components::conversation_tools::ConversationTools;
use crate::components::message_list::{MessageActions, ReplyState};
use crate::components::settings_panel::{PanelData, SettingsPanel};
use crate::components::{composer::Composer, message_list::MessageList};
use crate::data::MessageView;
use crate::error::AppError;
use crate::pages::not_found::NotFound;
use crate::ConversationsChanged;

/// One conversation: its messages and the composer. Rendered fully on the
/// server (`SsrMode::Async`) so that a missing conversation can answer 404.
#[component]
pub fn ConversationPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    // `?at=<message>`: opened from a search result, at that message's branch.
    let query = use_query_map();
    let at = move || query.read().get("at");
    // Created here, inside the routes, so a no-JS form error (`?__err=`) reaches them.
    let send = ServerAction::<SendMessage>::new();
    let retry = ServerAction::<RetryReply>::new();
    let edit = ServerAction::<EditMessage>::new();
    let continue_reply = ServerAction::<ContinueReply>::new();
    let switch = ServerAction::<SwitchBranch>::new();
    let save_settings = ServerAction::<SaveConversationSettings>::new();
    let rename = ServerAction::<RenameConversation>::new();
    let reply_state = ReplyState {
        generating: RwSignal::new(None),
        reload: RwSignal::new(0),
        announce: RwSignal::new(String::new()),
        ended: RwSignal::new(0),
    };
    provide_context(reply_state);
    // Loaded once per conversation (and again when a reply's stream is gone);
    // sending adds to the list from its own answer instead.
    let conversation = Resource::new(
        move || (id(), at(), reply_state.reload.get()),
        |(id, at, _)| get_conversation(id, at),
    );
    let changed = use_context::<ConversationsChanged>();
    let title = RwSignal::new(String::new());
    // The page's `<title>`: reference-counted, not in the page's arena. The
    // server reads it after the page has rendered, from whichever worker
    // thread polls the response then, and that thread's arena may be another
    // request's (a read of an arena signal there panicked, about 1 load in 20
    // under concurrent loads). Set from `title` on the server as the
    // conversation loads, and followed by an effect in the browser.
    let head_title = ArcRwSignal::new(String::new());
    Effect::new({
        let head_title = head_title.clone();
        move |_| head_title.set(title.get())
    });
    Effect::new(move |_| {
        if let Some(Ok(t)) = rename.value().get() {
            title.set(t);
            if let Some(ConversationsChanged(c)) = changed {
                c.update(|n| *n += 1);
            }
        }
    });
    let actions_for = move |can_continue| MessageActions {
        retry,
        edit,
        continue_reply,
        switch,
        can_continue,
    };

    view! {
        <Title text={
            let head_title = head_title.clone();
            move || head_title.get()
        } />
        <Transition fallback=|| view! { <div class="messages"><p class="loading">"Loading…"</p></div> }>
            {move || {
            let head_title = head_title.clone();
            Suspend::new(async move {
                match conversation.await {
                    Ok(c) => {
                        let id = c.id.clone();
                        // The list marks the reply being written, if any, as it renders.
                        reply_state.generating.set(None);
                        title.set(c.title.clone());
                        head_title.set(c.title.clone());
                        if c.title_provisional {
                            await_title(id.clone(), title, reply_state);
                        }
                        let messages = RwSignal::new(c.messages.clone());
                        follow_sends(messages, send);
                        follow_branch_changes(id.clone(), messages, actions_for(c.can_continue));
                        // Without JavaScript nothing streams: the page reloads itself
                        // while a reply is being written. (Inside `noscript`, set as
                        // HTML so that hydration never walks it; with JavaScript
                        // the browser reads it as inert text.)
                        let refresh = c
                            .messages
                            .iter()
                            .any(|m| m.state.is_generating())
                            .then(|| view! {
                                <div
                                    class="no-js-refresh"
                                    inner_html=r#"<noscript><meta http-equiv="refresh" content="2"></noscript>"#
                                ></div>
                            });
                        let panel = PanelData {
                            conversation_id: id.clone(),
                            title: c.title.clone(),
                            system_prompt: c.system_prompt.clone(),
                            settings: c.settings.clone(),
                            defaults: c.defaults.clone(),
                        };
                        view! {
                            <h1 class="visually-hidden">{move || title.get()}</h1>
                            {refresh}
                            <ConversationTools conversation_id=id.clone() pinned=c.pinned can_share=c.can_share />
                            <SettingsPanel data=panel save=save_settings rename />
                            <MessageList messages conversation_id=id.clone() actions=actions_for(c.can_continue) />
                            <p class="visually-hidden" role="status" aria-live="polite">
                                {move || reply_state.announce.get()}
                            </p>
                            <p class="problem edit-problem" role="alert">
                                {move || match edit.value().get() {
                                    Some(Err(e)) => Some(format!("The edit was not sent: {e}")),
                                    _ => None,
                                }}
                            </p>
                            <Composer action=send conversation_id=Some(id) models=c.models model=c.model />
                        }
                            .into_any()
                    }
                    Err(AppError::NotFound) => view! { <NotFound /> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                }
            })
            }}
        </Transition>
    }
}

/// Shows what a send started as soon as it answers: the stored message and
/// the empty reply, which then streams in by itself. Answers already on
/// screen (after a reload) are not added twice.
fn follow_sends(messages: RwSignal<Vec<MessageView>>, send: ServerAction<SendMessage>) {
    let shown = move |id: &str| messages.with_untracked(|m| m.iter().any(|m| m.id == id));
    Effect::new(move |_| {
        if let Some(Ok(sent)) = send.value().get() {
            if !shown(&sent.reply.id) {
                messages.update(|m| m.extend(sent.user_message.into_iter().chain([sent.reply])));
            }
        }
    });
}

/// Retry, edit, Continue and a switch of versions change which branch is
/// shown: when one answers, the conversation is read again and the list takes
/// its messages (those unchanged stay as they are on screen; a reply that
/// started streams). The page itself stays: nothing it shows is rebuilt.
fn follow_branch_changes(
    conversation_id: String,
    messages: RwSignal<Vec<MessageView>>,
    actions: MessageActions,
) {
    let version = RwSignal::new(0usize);
    let bump = move || version.update(|n| *n += 1);
    Effect::new(move |_| {
        if matches!(actions.retry.value().get(), Some(Ok(_))) {
            bump();
        }
    });
    Effect::new(move |_| {
        if matches!(actions.edit.value().get(), Some(Ok(_))) {
            bump();
        }
    });
    Effect::new(move |_| {
        if matches!(actions.continue_reply.value().get(), Some(Ok(_))) {
            bump();
        }
    });
    Effect::new(move |_| {
        if matches!(actions.switch.value().get(), Some(Ok(()))) {
            bump();
        }
    });
    Effect::new(move |first: Option<()>| {
        version.track();
        if first.is_none() {
            return;
        }
        #[cfg(feature = "hydrate")]
        {
            let id = conversation_id.clone();
            leptos::task::spawn_local(async move {
                if let Ok(c) = get_conversation(id, None).await {
                    // Gone meanwhile (another conversation was opened): nothing to do.
                    let _ = messages.try_set(c.messages);
                }
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (&conversation_id, messages);
    });
}

/// While the title is provisional: when a reply ends, asks for the title the
/// model writes after it, and shows it here and in the sidebar.
fn await_title(conversation_id: String, title: RwSignal<String>, reply_state: ReplyState) {
    let changed = use_context::<ConversationsChanged>();
    Effect::new(move |first: Option<()>| {
        reply_state.ended.track();
        if first.is_none() {
            return;
        }
        #[cfg(feature = "hydrate")]
        {
            let conversation_id = conversation_id.clone();
            leptos::task::spawn_local(async move {
                if let Ok(t) = crate::api::conversation_title(conversation_id).await {
                    title.set(t);
                    if let Some(ConversationsChanged(c)) = changed {
                        c.update(|n| *n += 1);
                    }
                }
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (&conversation_id, title, changed);
    });
}
