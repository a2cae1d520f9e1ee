//! The chat's history operations: the sidebar's pages, search, pins,
//! deletion and share links. Like the rest of [`Chat`], each takes the
//! caller's user id and touches only that user's data.

use wick_types::{
    group_by_period, MessageState, SearchResults, ShareExpiry, ShareInfo, SharedView, SidebarPage,
};

use crate::chat::{Chat, ChatError};
use crate::db::conversations::Owner;
use crate::db::{self, history, shares, UserId};
use crate::session;

/// How many conversations the sidebar shows at first, and adds per "More".
pub const SIDEBAR_PAGE: usize = 50;
/// The most the sidebar lists at once (a person with more searches).
pub const SIDEBAR_MAX: usize = 10_000;
/// How many results a search shows.
pub const SEARCH_RESULTS: usize = 20;

impl Chat {
    /// The first `shown` of the user's conversations (pinned first, then
    /// newest), grouped for the sidebar. `shown` is rounded to whole pages.
    pub async fn sidebar(&self, user: UserId, shown: usize) -> Result<SidebarPage, ChatError> {
        let shown = shown
            .div_ceil(SIDEBAR_PAGE)
            .clamp(1, SIDEBAR_MAX / SIDEBAR_PAGE)
            * SIDEBAR_PAGE;
        // One more than shown says whether there are more.
        let mut list = db::conversations::list_conversations(self.pool(), user, shown + 1).await?;
        let more = list.len() > shown;
        list.truncate(shown);
        Ok(SidebarPage {
            groups: group_by_period(list, db::now_ms()),
            shown,
            more,
        })
    }

    /// The user's conversations matching `query`: title matches first, then
    /// message matches (any branch), newest first, one result per conversation.
    pub async fn search(
        &self,
        user: Option<UserId>,
        query: &str,
    ) -> Result<SearchResults, ChatError> {
        let query = query.trim();
        let hits = match user {
            Some(user) if !query.is_empty() => {
                history::search(self.pool(), user, query, SEARCH_RESULTS).await?
            }
            _ => Vec::new(),
        };
        Ok(SearchResults {
            query: query.to_owned(),
            hits,
        })
    }

    /// One of the user's conversations, opened at message `at` (a search
    /// result): when `at` is not on the branch shown, its branch is shown
    /// from now on, as if the person had chosen that version. While a reply
    /// is being written the branch stays as it is.
    pub async fn conversation_at(
        &self,
        user: UserId,
        id: &str,
        at: Option<&str>,
    ) -> Result<wick_types::ConversationView, ChatError> {
        let view = self.conversation(user, id).await?;
        let Some(at) = at.filter(|at| !view.messages.iter().any(|m| m.id == *at)) else {
            return Ok(view);
        };
        match db::conversations::switch_branch(self.pool(), user, id, at).await {
            Ok(()) => self.conversation(user, id).await,
            // Not a message of this conversation, or a reply is running: the
            // conversation as it is.
            Err(db::StoreError::NotFound | db::StoreError::ReplyRunning) => Ok(view),
            Err(e) => Err(e.into()),
        }
    }

    /// Pins the conversation to the top of the sidebar, or unpins it.
    pub async fn pin(
        &self,
        user: Option<UserId>,
        conversation: &str,
        pinned: bool,
    ) -> Result<(), ChatError> {
        let user = user.ok_or(ChatError::NotFound)?;
        Ok(history::set_pinned(self.pool(), user, conversation, pinned).await?)
    }

    /// Deletes the conversation, every branch and its share links, stopping
    /// a reply still being written there first.
    pub async fn delete(&self, user: Option<UserId>, conversation: &str) -> Result<(), ChatError> {
        let user = user.ok_or(ChatError::NotFound)?;
        self.stop_replies(user, Some(conversation)).await?;
        Ok(history::delete(self.pool(), user, conversation).await?)
    }

    /// Deletes all of the user's conversations; how many there were.
    pub async fn delete_all(&self, user: Option<UserId>) -> Result<u64, ChatError> {
        let Some(user) = user else {
            return Ok(0);
        };
        self.stop_replies(user, None).await?;
        Ok(history::delete_all(self.pool(), user).await?)
    }

    /// Stops the replies being written in the conversations about to go, so
    /// that the model is not kept busy for text nobody will read.
    pub(crate) async fn stop_replies(
        &self,
        user: UserId,
        conversation: Option<&str>,
    ) -> Result<(), ChatError> {
        for id in history::generating_replies(self.pool(), user, conversation).await? {
            if let Some(task) = self.generations().get(&id) {
                task.stop();
            }
        }
        Ok(())
    }

    /// Makes a share link to the branch of the conversation shown now.
    pub async fn share(
        &self,
        user: Option<UserId>,
        conversation: &str,
        expiry: &str,
    ) -> Result<ShareInfo, ChatError> {
        let user = user.ok_or(ChatError::NotFound)?;
        let expiry = ShareExpiry::parse(expiry).ok_or_else(|| {
            ChatError::Invalid(format!(
                "A link can last 1 day, 7 days, 30 days or for ever, not {expiry:?}."
            ))
        })?;
        Ok(shares::create(self.pool(), user, conversation, expiry).await?)
    }

    /// The user's share links that still open, newest first.
    pub async fn shares(&self, user: Option<UserId>) -> Result<Vec<ShareInfo>, ChatError> {
        match user {
            Some(user) => Ok(shares::list(self.pool(), user).await?),
            None => Ok(Vec::new()),
        }
    }

    /// Revokes one of the user's share links.
    pub async fn revoke_share(&self, user: Option<UserId>, share: &str) -> Result<(), ChatError> {
        let user = user.ok_or(ChatError::NotFound)?;
        Ok(shares::revoke(self.pool(), user, share).await?)
    }

    /// A shared conversation, for anyone with the link; models by name.
    pub async fn shared(&self, share: &str) -> Result<SharedView, ChatError> {
        let mut view = shares::open(self.pool(), share).await?;
        let models = self.models();
        for m in view.messages.iter_mut() {
            m.model = m.model.as_deref().map(|id| models.name_of(id));
        }
        Ok(view)
    }

    /// Copies a shared branch into a new conversation of the viewer's, with
    /// their default model. Returns its id, and the token of the session
    /// made for a visitor who had none.
    pub async fn copy_shared(
        &self,
        user: Option<UserId>,
        share: &str,
    ) -> Result<(String, Option<String>), ChatError> {
        let mut shared = shares::open(self.pool(), share).await?;
        // Copied as it reads: nothing in it is being written.
        for m in shared.messages.iter_mut() {
            if m.state == MessageState::Generating {
                m.state = MessageState::Interrupted;
            }
        }
        let (owner, token, model) = match user {
            Some(user) => (Owner::User(user), None, self.default_model_of(user).await?),
            None => {
                let (token, token_hash) = session::new_token_and_hash();
                let owner = Owner::NewVisitor {
                    token_hash,
                    lifetime: session::SESSION_LIFETIME,
                };
                (owner, Some(token), self.models().default_model().clone())
            }
        };
        let (_, id) = shares::copy(self.pool(), owner, &shared, &model.id).await?;
        Ok((id, token))
    }
}
