use leptos::prelude::*;
use leptos_meta::{Meta, Title};
use leptos_router::hooks::use_params_map;

use crate::api::{get_shared, CopyShared};
use crate::markdown;
use crate::pages::not_found::NotFound;
use wick_types::{split_reasoning, Role};

/// A shared conversation, read only, for anyone with the link: no sidebar,
/// kept out of search engines, rendered by the same safe markdown. "Continue
/// in my own chat" copies it into a new conversation of the viewer's.
#[component]
pub fn SharedPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let shared = Resource::new(id, get_shared);
    let copy = ServerAction::<CopyShared>::new();
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.insert_header(
            http::header::HeaderName::from_static("x-robots-tag"),
            http::HeaderValue::from_static("noindex"),
        );
    }
    view! {
        <Meta name="robots" content="noindex" />
        <Transition fallback=|| view! { <div class="messages"><p class="loading">"Loading…"</p></div> }>
            {move || Suspend::new(async move {
                match shared.await {
                    Ok(s) => {
                        let share_id = s.id.clone();
                        view! {
                            <Title text=s.title.clone() />
                            <div class="messages shared-page">
                                <div class="message-column">
                                    <h1>{s.title.clone()}</h1>
                                    <p class="hint">"A shared conversation, read only, as it was when the link was made."</p>
                                    {s
                                        .messages
                                        .into_iter()
                                        .enumerate()
                                        .map(|(i, m)| {
                                            let author_id = format!("shared-author-{i}");
                                            let labelled_by = author_id.clone();
                                            let answer = if m.role == Role::Assistant {
                                                split_reasoning(&m.content).answer.to_owned()
                                            } else {
                                                m.content.clone()
                                            };
                                            let class = match m.role {
                                                Role::User => "message user",
                                                _ => "message assistant",
                                            };
                                            view! {
                                                <article class=class aria-labelledby=labelled_by>
                                                    <header class="author" id=author_id>
                                                        {m.role.author()}
                                                        {m.model.map(|n| view! { <span class="model-tag">{n}</span> })}
                                                    </header>
                                                    <div class="content markdown" dir="auto" inner_html=markdown::to_html(&answer)></div>
                                                </article>
                                            }
                                        })
                                        .collect_view()}
                                    <ActionForm action=copy attr:class="copy-shared">
                                        <input type="hidden" name="share_id" value=share_id />
                                        <button type="submit">"Continue in my own chat"</button>
                                    </ActionForm>
                                    <p class="problem" role="alert">
                                        {move || copy.value().get().and_then(Result::err).map(|e| e.to_string())}
                                    </p>
                                </div>
                            </div>
                        }
                            .into_any()
                    }
                    Err(_) => view! { <NotFound /> }.into_any(),
                }
            })}
        </Transition>
    }
}
