//! The chat's operations, as the browser's server functions call them: read
//! the sidebar and a conversation, send, retry, stop, switch model. Each takes
//! the caller's user id (from the session, found by the web layer) and touches
//! only that user's data; someone else's conversation or reply is `NotFound`.

use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;
use wick_types::message::{check_message, check_system_prompt, check_title, title_from};
use wick_types::{
    ConversationView, GenerationSettings, MessageState, MessageView, Role, Sent, UserSettingsView,
};

use crate::db::conversations::Owner;
use crate::db::{self, conversations, NewReply, Placement, StoreError, UserId};
use crate::generation::{Busy, Generations, Requester, Slot};
use crate::models::{Model, Models};
use crate::session;

/// How long `stop` waits for the stopped reply to be saved (about one token).
const STOP_WAIT: Duration = Duration::from_secs(2);
/// How long a page waits for the model's title before showing what there is.
const TITLE_WAIT: Duration = Duration::from_secs(30);

/// Why a chat operation was refused; the messages are for the person asking.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// Something the user sent is wrong; the message says what.
    #[error("{0}")]
    Invalid(String),
    /// The conversation or reply does not exist or belongs to someone else;
    /// the two are deliberately indistinguishable.
    #[error("This conversation does not exist.")]
    NotFound,
    /// The model's queue is full; nothing was stored.
    #[error(transparent)]
    Busy(#[from] Busy),
    /// The conversation has a reply still being written; nothing was stored.
    #[error("A reply is still being written. Stop it or wait for it before sending.")]
    ReplyRunning,
    /// The person may not use this model (named): a team's admin opened it
    /// to other groups only.
    #[error("You may not use the model {0}; ask an admin of this server for access.")]
    ModelClosed(String),
    /// One of the person's quotas is used up; nothing was stored.
    #[error("{}", .0.message)]
    Quota(crate::team::QuotaRefusal),
    /// A fault on our side (logged by whoever turns it into a response).
    #[error("database: {0}")]
    Store(StoreError),
}

impl From<StoreError> for ChatError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ChatError::NotFound,
            StoreError::ReplyRunning => ChatError::ReplyRunning,
            StoreError::NotLatestReply => ChatError::Invalid(
                "Only the latest reply can be written again; earlier ones keep their answers."
                    .to_owned(),
            ),
            other => ChatError::Store(other),
        }
    }
}

/// A message to send: into a conversation, or starting one when
/// `conversation_id` is `None` or empty; `model` (optional) switches the
/// conversation to that model first.
#[derive(Debug, Clone, Default)]
pub struct SendRequest {
    pub conversation_id: Option<String>,
    pub content: String,
    pub model: Option<String>,
}

/// A conversation's settings as typed into its panel: numbers as text, an
/// empty field meaning "the model's default".
#[derive(Debug, Clone, Default)]
pub struct SettingsForm {
    pub system_prompt: String,
    pub temperature: String,
    pub top_p: String,
    pub max_new_tokens: String,
}

/// What a send did: the reply it started, and the token of the session it
/// opened for a visitor who had none (to be set as their cookie).
#[derive(Debug, Clone)]
pub struct Sending {
    pub sent: Sent,
    pub new_session: Option<String>,
}

/// The chat: the database and the replies being generated.
#[derive(Clone, Debug)]
pub struct Chat {
    pool: SqlitePool,
    generations: Generations,
    accounts: Arc<crate::accounts::AccountPolicy>,
    recent: Arc<crate::team::RecentRequests>,
    retention: crate::team::Retention,
}

impl Chat {
    pub fn new(pool: SqlitePool, generations: Generations) -> Self {
        Self {
            pool,
            generations,
            accounts: Arc::default(),
            recent: Arc::default(),
            retention: Default::default(),
        }
    }

    /// The same chat, letting people in as `policy` says (the default:
    /// anonymous visitors, open sign-up).
    pub fn with_accounts(mut self, policy: crate::accounts::AccountPolicy) -> Self {
        self.accounts = Arc::new(policy);
        self
    }

    /// The same chat, keeping things as long as `retention` says (shown to
    /// people on their settings page; the server's sweep applies it).
    pub fn with_retention(mut self, retention: crate::team::Retention) -> Self {
        self.retention = retention;
        self
    }

    pub fn retention(&self) -> crate::team::Retention {
        self.retention
    }

    pub fn accounts(&self) -> &crate::accounts::AccountPolicy {
        &self.accounts
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub fn generations(&self) -> &Generations {
        &self.generations
    }

    pub(crate) fn recent_requests(&self) -> &crate::team::RecentRequests {
        &self.recent
    }

    pub fn models(&self) -> &Models {
        self.generations.models()
    }

    /// Whether the last write of a reply failed, and none succeeded since.
    pub fn write_failing(&self) -> bool {
        self.generations.write_failing()
    }

    /// A configured model, or a message naming the unknown one.
    pub fn model(&self, id: &str) -> Result<Arc<Model>, ChatError> {
        self.models().get(id).cloned().ok_or_else(|| {
            ChatError::Invalid(format!(
                "There is no model {id:?} on this server; choose one from the list."
            ))
        })
    }

    /// One of the user's conversations. A reply still generating carries its
    /// live text and where its stream stands; models are shown by name.
    pub async fn conversation(
        &self,
        user: UserId,
        id: &str,
    ) -> Result<ConversationView, ChatError> {
        let mut conversation = conversations::get_conversation(&self.pool, user, id).await?;
        let models = self.models();
        for m in conversation.messages.iter_mut() {
            m.model = m.model.as_deref().map(|id| models.name_of(id));
            if m.state.is_generating() {
                match self.generations.get(&m.id) {
                    Some(task) => (m.content, m.seq) = task.snapshot(),
                    // Stored as generating but written by nobody: its final
                    // save failed and was given up. Shown as interrupted, so
                    // that no browser waits (or reconnects) for a stream that
                    // does not exist.
                    None => m.state = MessageState::Interrupted,
                }
            }
        }
        let model = models.get_or_default(&conversation.model);
        conversation.model = model.id.clone();
        conversation.defaults = model.defaults();
        conversation.can_continue = model.can_continue;
        conversation.models = self.model_options(Some(user)).await?;
        Ok(conversation)
    }

    /// Stores the user's message and its reply's placeholder in one
    /// transaction and starts the reply. A visitor without a session (`user`
    /// is `None`) may start a conversation, which makes them an anonymous user.
    /// Validation and the queue come first: a refused message stores nothing.
    pub async fn send(
        &self,
        user: Option<UserId>,
        request: SendRequest,
    ) -> Result<Sending, ChatError> {
        let SendRequest {
            conversation_id,
            content,
            model,
        } = request;
        check_message(&content).map_err(|p| ChatError::Invalid(p.to_string()))?;
        let chosen = model
            .filter(|m| !m.is_empty())
            .map(|id| self.model(&id))
            .transpose()?;
        match conversation_id.filter(|id| !id.is_empty()) {
            Some(id) => {
                let user = user.ok_or(ChatError::NotFound)?;
                let current = self.model_if_idle(user, &id).await?;
                let model =
                    chosen.unwrap_or_else(|| self.models().get_or_default(&current).clone());
                let slot = self.admit(&model, Requester::User(user)).await?;
                let reply = conversations::append_with_reply(
                    &self.pool,
                    user,
                    &id,
                    Placement::AfterLeaf,
                    &content,
                    &model.id,
                )
                .await?;
                Ok(Sending {
                    sent: self.start(slot, user, reply),
                    new_session: None,
                })
            }
            None => {
                let model = match (chosen, user) {
                    (Some(model), _) => model,
                    (None, Some(user)) => self.default_model_of(user).await?,
                    (None, None) => self.open_model(None, self.models().default_model()).await?,
                };
                // The person's own system prompt for this model, if they set one.
                let system_prompt = match user {
                    Some(user) => db::settings::model_prompt(&self.pool, user, &model.id).await?,
                    None => None,
                };
                let requester = user.map_or(Requester::Unlimited, Requester::User);
                let mut slot = self.admit(&model, requester).await?;
                // A first-time visitor's user and session are stored with the
                // conversation, in one transaction.
                let (owner, new_session) = match user {
                    Some(user) => (Owner::User(user), None),
                    None => {
                        let (token, token_hash) = session::new_token_and_hash();
                        let lifetime = session::SESSION_LIFETIME;
                        (
                            Owner::NewVisitor {
                                token_hash,
                                lifetime,
                            },
                            Some(token),
                        )
                    }
                };
                let title = title_from(&content);
                let (user, reply) = conversations::create_with_reply(
                    &self.pool,
                    owner,
                    &title,
                    &model.id,
                    system_prompt.as_deref(),
                    &content,
                )
                .await?;
                slot.assign(&self.generations, user);
                Ok(Sending {
                    sent: self.start(slot, user, reply),
                    new_session,
                })
            }
        }
    }

    /// Generates a reply again: a new answer to the same user message, shown in
    /// place of the old one (which stays stored, as a branch).
    pub async fn retry(
        &self,
        user: Option<UserId>,
        conversation: &str,
        message: &str,
    ) -> Result<Sent, ChatError> {
        let user = user.ok_or(ChatError::NotFound)?;
        let slot = self.place_in(user, conversation).await?;
        let model = slot.model().clone();
        let reply =
            conversations::retry_with_reply(&self.pool, user, conversation, message, &model.id)
                .await?;
        Ok(self.start(slot, user, reply))
    }

    /// Sends an edited version of the user's question `message`: stored
    /// beside the original (which stays, as another branch) with a new
    /// reply, and shown from now on.
    pub async fn edit(
        &self,
        user: Option<UserId>,
        conversation: &str,
        message: &str,
        content: &str,
    ) -> Result<Sent, ChatError> {
        check_message(content).map_err(|p| ChatError::Invalid(p.to_string()))?;
        let user = user.ok_or(ChatError::NotFound)?;
        let slot = self.place_in(user, conversation).await?;
        let model = slot.model().clone();
        let reply = conversations::append_with_reply(
            &self.pool,
            user,
            conversation,
            Placement::EditOf(message),
            content,
            &model.id,
        )
        .await?;
        Ok(self.start(slot, user, reply))
    }

    /// Extends the user's reply `message` in place, when it was cut short
    /// (the length limit, Stop, a restart) and its model can continue it.
    pub async fn continue_reply(
        &self,
        user: Option<UserId>,
        conversation: &str,
        message: &str,
    ) -> Result<Sent, ChatError> {
        let user = user.ok_or(ChatError::NotFound)?;
        let slot = self.place_in(user, conversation).await?;
        if !slot.model().can_continue {
            return Err(ChatError::Invalid(format!(
                "{} cannot continue a reply; use Retry instead.",
                slot.model().name
            )));
        }
        let reply = conversations::continue_reply(&self.pool, user, conversation, message)
            .await?
            .ok_or_else(|| {
                ChatError::Invalid(
                    "Only a reply that was cut short (by the length limit or Stop) can be continued."
                        .to_owned(),
                )
            })?;
        let text = reply.continues.as_ref().map(|c| c.text.clone());
        let mut sent = self.start(slot, user, reply);
        sent.reply.content = text.unwrap_or_default();
        Ok(sent)
    }

    /// Shows the branch through `message`: one version of a turn chosen
    /// with `‹ ›`, and below it the newest version of every later turn.
    pub async fn switch_branch(
        &self,
        user: Option<UserId>,
        conversation: &str,
        message: &str,
    ) -> Result<(), ChatError> {
        let user = user.ok_or(ChatError::NotFound)?;
        conversations::switch_branch(&self.pool, user, conversation, message).await?;
        Ok(())
    }

    /// Stores the conversation's system prompt and generation settings,
    /// checked with the bounds (and messages) of the inference APIs.
    pub async fn save_settings(
        &self,
        user: Option<UserId>,
        conversation: &str,
        form: SettingsForm,
    ) -> Result<(), ChatError> {
        let user = user.ok_or(ChatError::NotFound)?;
        let (current, _) =
            conversations::conversation_model_and_busy(&self.pool, user, conversation).await?;
        let settings = GenerationSettings {
            temperature: number("temperature", &form.temperature)?,
            top_p: number("top_p", &form.top_p)?,
            max_new_tokens: number("max_new_tokens", &form.max_new_tokens)?,
        };
        check_system_prompt(&form.system_prompt).map_err(|p| ChatError::Invalid(p.to_string()))?;
        let model = self.models().get_or_default(&current);
        model
            .check(&settings)
            .map_err(|e| ChatError::Invalid(e.to_string()))?;
        conversations::set_settings(
            &self.pool,
            user,
            conversation,
            &form.system_prompt,
            &settings,
        )
        .await?;
        Ok(())
    }

    /// Gives the conversation the title the person typed; the model never
    /// replaces it.
    pub async fn rename(
        &self,
        user: Option<UserId>,
        conversation: &str,
        title: &str,
    ) -> Result<String, ChatError> {
        let user = user.ok_or(ChatError::NotFound)?;
        let title = check_title(title).map_err(|p| ChatError::Invalid(p.to_string()))?;
        conversations::rename(&self.pool, user, conversation, &title).await?;
        Ok(title)
    }

    /// The conversation's title once the model has written it (or failed
    /// to, or it was never to), waiting up to half a minute.
    pub async fn title(
        &self,
        user: Option<UserId>,
        conversation: &str,
    ) -> Result<String, ChatError> {
        let user = user.ok_or(ChatError::NotFound)?;
        // The owner first: nobody waits on someone else's conversation.
        conversations::title(&self.pool, user, conversation).await?;
        self.generations
            .title_written(conversation, TITLE_WAIT)
            .await;
        Ok(conversations::title(&self.pool, user, conversation)
            .await?
            .0)
    }

    /// The user's own defaults, for the Settings page.
    pub async fn user_settings(&self, user: Option<UserId>) -> Result<UserSettingsView, ChatError> {
        let models = self.models();
        let (default_model, prompts) = match user {
            Some(user) => (
                self.default_model_of(user).await?.id.clone(),
                db::settings::model_prompts(&self.pool, user).await?,
            ),
            None => (models.default_model().id.clone(), Vec::new()),
        };
        let options = self.model_options(user).await?;
        let prompts = options
            .iter()
            .map(|m| {
                prompts
                    .iter()
                    .find(|(id, _)| *id == m.id)
                    .map(|(_, p)| p.clone())
                    .unwrap_or_default()
            })
            .collect();
        Ok(UserSettingsView {
            default_model,
            models: options,
            prompts,
        })
    }

    /// Stores the user's defaults: the model new conversations start with, and
    /// a system prompt per model (`prompts` as (model id, prompt); empty
    /// removes it). A visitor without a session gets one, as on a first
    /// message (the token to set as their cookie is returned).
    pub async fn save_user_settings(
        &self,
        user: Option<UserId>,
        default_model: &str,
        prompts: Vec<(String, String)>,
    ) -> Result<Option<String>, ChatError> {
        let model = self.model(default_model)?;
        for (id, prompt) in &prompts {
            self.model(id)?;
            check_system_prompt(prompt).map_err(|p| ChatError::Invalid(p.to_string()))?;
        }
        let (user, new_session) = match user {
            Some(user) => (user, None),
            None => {
                let (token, token_hash) = session::new_token_and_hash();
                let user = db::users::create_anonymous_user(
                    &self.pool,
                    &token_hash,
                    session::SESSION_LIFETIME,
                )
                .await?;
                (user, Some(token))
            }
        };
        db::settings::save(&self.pool, user, &model.id, &prompts).await?;
        Ok(new_session)
    }

    /// The model the user's new conversations start with: their choice, if
    /// that model is still configured, else the server's default.
    pub(crate) async fn default_model_of(&self, user: UserId) -> Result<Arc<Model>, ChatError> {
        let chosen = db::settings::default_model(&self.pool, user).await?;
        let preferred = chosen
            .and_then(|id| self.models().get(&id).cloned())
            .unwrap_or_else(|| self.models().default_model().clone());
        self.open_model(Some(user), &preferred).await
    }

    /// Stops the user's reply `message`; it is saved with the text so far and
    /// finish reason "stopped". Answers once the reply is saved (about one
    /// token), so a page loaded next shows it stopped.
    pub async fn stop(&self, user: Option<UserId>, message: &str) -> Result<(), ChatError> {
        match (user, self.generations.get(message)) {
            (Some(user), Some(task)) if task.user == user => {
                task.stop();
                let _ = tokio::time::timeout(STOP_WAIT, task.finished()).await;
                Ok(())
            }
            _ => Err(ChatError::NotFound),
        }
    }

    /// Switches the user's conversation to another model for the replies to come.
    pub async fn set_model(
        &self,
        user: Option<UserId>,
        conversation: &str,
        model: &str,
    ) -> Result<(), ChatError> {
        let user = user.ok_or(ChatError::NotFound)?;
        let model = self.model(model)?;
        if !db::team::may_use(&self.pool, user, &model.id).await? {
            return Err(ChatError::ModelClosed(model.name.clone()));
        }
        conversations::set_conversation_model(&self.pool, user, conversation, &model.id).await?;
        Ok(())
    }

    /// A place in the queue of the conversation's model (the default if it is
    /// no longer configured) for a new reply there; refused while one is
    /// being written.
    async fn place_in(&self, user: UserId, conversation: &str) -> Result<Slot, ChatError> {
        let current = self.model_if_idle(user, conversation).await?;
        let model = self.models().get_or_default(&current).clone();
        self.admit(&model, Requester::User(user)).await
    }

    /// The conversation's model, or `ReplyRunning` while a reply is being
    /// written there: said before the queue is asked, so a busy conversation
    /// is reported as such even when the queue is full.
    async fn model_if_idle(&self, user: UserId, conversation: &str) -> Result<String, ChatError> {
        match conversations::conversation_model_and_busy(&self.pool, user, conversation).await? {
            (_, true) => Err(ChatError::ReplyRunning),
            (model, false) => Ok(model),
        }
    }

    /// Starts the reply and says what the browser needs to show it at once:
    /// the stored user message (if any) and the empty reply to stream into.
    fn start(&self, slot: Slot, user: UserId, reply: NewReply) -> Sent {
        let model_name = slot.model().name.clone();
        let user_message = reply.user_message.clone();
        let conversation_id = reply.conversation_id.clone();
        let task = self.generations.start(slot, user, reply);
        Sent {
            conversation_id,
            message_id: task.message_id.clone(),
            user_message,
            reply: MessageView {
                id: task.message_id.clone(),
                role: Role::Assistant,
                content: String::new(),
                state: MessageState::Generating,
                finish_reason: None,
                error: None,
                seq: 0,
                model: Some(model_name),
                siblings: None,
            },
        }
    }
}

/// A number typed into a settings field: empty is `None` (the model's
/// default); anything else must read as a number, named by its field.
fn number<T: std::str::FromStr>(field: &str, text: &str) -> Result<Option<T>, ChatError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| ChatError::Invalid(format!("{field} must be a number (got {text:?})")))
}
