use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use leptos::server_fn::ServerFn;

use crate::api::{
    get_conversation, ContinueReply, ConversationTitle, EditMessage, RenameConversation,
    RetryReply, SaveConversationSettings, SendMessage, SwitchBranch,
};
use crate::components::conversation_tools::ConversationTools;
use crate::components::message_list::MessageActions;
use crate::components::settings_panel::{PanelData, SettingsPanel};
use crate::components::{composer::Composer, message_list::MessageList};
use crate::error::AppError;
use crate::islands::{announce::Announcer, title::TitleWatcher};
use crate::pages::not_found::NotFound;

/// One conversation: its messages and the composer. Rendered fully on the
/// server (`SsrMode::Async`) so that a missing conversation can answer 404;
/// its forms post and come back here, and only the reply being written, the
/// composer's keys, the title and what is said to screen readers are islands.
#[component]
pub fn ConversationPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    // `?at=<message>`: opened from a search result, at that message's branch.
    let query = use_query_map();
    let at = move || query.read().get("at");
    // `?panel=settings|share`: the panel a form of it came back to stays
    // open, with `?saved=1` after the settings were saved.
    let panel = move || query.read().get("panel");
    let saved = move || query.read().get("saved").is_some();
    // Created here, inside the routes, so that a refused form's error
    // (`?__err=`) reaches them.
    let send = ServerAction::<SendMessage>::new();
    let retry = ServerAction::<RetryReply>::new();
    let edit = ServerAction::<EditMessage>::new();
    let continue_reply = ServerAction::<ContinueReply>::new();
    let switch = ServerAction::<SwitchBranch>::new();
    let save_settings = ServerAction::<SaveConversationSettings>::new();
    let rename = ServerAction::<RenameConversation>::new();
    let conversation = Resource::new(move || (id(), at()), |(id, at)| get_conversation(id, at));
    // The page's `<title>`: reference-counted, not in the page's arena. The
    // server reads it after the page has rendered, from whichever worker
    // thread polls the response then, and that thread's arena may be another
    // request's (a read of an arena signal there panicked, about 1 load in 20
    // under concurrent loads). Set as the conversation loads.
    let head_title = ArcRwSignal::new(String::new());
    let actions = move |can_continue| MessageActions {
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
        <Suspense fallback=|| view! { <div class="messages"><p class="loading">"Loading…"</p></div> }>
            {move || {
            let head_title = head_title.clone();
            Suspend::new(async move {
                match conversation.await {
                    Ok(c) => {
                        let id = c.id.clone();
                        head_title.set(c.title.clone());
                        let generating = c
                            .messages
                            .iter()
                            .find(|m| m.state.is_generating())
                            .map(|m| m.id.clone());
                        // Without JavaScript nothing streams: the page reloads itself
                        // while a reply is being written. (Inside `noscript`, set as
                        // HTML; with JavaScript the browser reads it as inert text.)
                        let refresh = generating.is_some().then(|| view! {
                            <div
                                class="no-js-refresh"
                                inner_html=r#"<noscript><meta http-equiv="refresh" content="2"></noscript>"#
                            ></div>
                        });
                        // The model writes the title after the first reply.
                        let title_watch = (c.title_provisional && generating.is_none()).then(|| view! {
                            <TitleWatcher conversation_id=id.clone() url=ConversationTitle::url().to_owned() />
                        });
                        let data = PanelData {
                            conversation_id: id.clone(),
                            title: c.title.clone(),
                            system_prompt: c.system_prompt.clone(),
                            settings: c.settings.clone(),
                            defaults: c.defaults.clone(),
                        };
                        let open = panel();
                        let edit_problem = match edit.value().get_untracked() {
                            Some(Err(e)) => Some(format!("The edit was not sent: {e}")),
                            _ => None,
                        };
                        view! {
                            <h1 class="visually-hidden">{c.title.clone()}</h1>
                            {refresh}
                            {title_watch}
                            <ConversationTools
                                conversation_id=id.clone()
                                pinned=c.pinned
                                can_share=c.can_share
                                share_open=open.as_deref() == Some("share")
                            />
                            <SettingsPanel
                                data
                                save=save_settings
                                rename
                                open=open.as_deref() == Some("settings")
                                saved=saved()
                            />
                            <MessageList messages=c.messages conversation_id=id.clone() actions=actions(c.can_continue) />
                            <p class="visually-hidden announcer" role="status" aria-live="polite"></p>
                            <Announcer />
                            <p class="problem edit-problem" role="alert">{edit_problem}</p>
                            <Composer
                                action=send
                                conversation_id=Some(id)
                                models=c.models
                                model=c.model
                                generating
                            />
                        }
                            .into_any()
                    }
                    Err(AppError::NotFound) => view! { <NotFound /> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                }
            })
            }}
        </Suspense>
    }
}
