//! Generations: each assistant reply is produced by a task of its own,
//! independent of any HTTP request, so a reload, a second tab or a dropped
//! connection never loses or restarts it.
//!
//! A task keeps the ordered log of its events (token text, then one final
//! event), numbered from 1; subscribers replay the log from any point and then
//! follow it live. The reply's text is flushed to SQLite every
//! [`FLUSH_INTERVAL`] or [`FLUSH_TOKENS`] tokens, whichever comes first, and
//! finalised with its finish reason and token counts *before* the final event
//! is published, so whoever sees the end can read the finished row.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::Stream;
use inference::{
    CancelHandle, ChatMessage, Event, Failure, Generation, GenerationRequest, Priority, Prompt,
    RequestError, Usage,
};
use sqlx::SqlitePool;
use tokio::sync::watch;
use wick_types::{FinishReason, MessageState, ReplyEnd, ReplyEvent};

use crate::db::{conversations, Finish, NewReply, UserId};
use crate::models::{Model, Models};

pub const FLUSH_INTERVAL: Duration = Duration::from_millis(500);
pub const FLUSH_TOKENS: usize = 32;
/// At shutdown, how long the stopped replies get to store their endings.
const STORE_AT_SHUTDOWN: Duration = Duration::from_secs(5);
/// How long a finished task's log stays available to late subscribers (a
/// tab that reconnects after the end still gets a clean finish).
const KEEP_FINISHED: Duration = Duration::from_secs(120);

/// How replies are generated, for every model.
#[derive(Debug, Clone)]
pub struct ChatSettings {
    /// A fixed seed makes replies reproducible (tests, demos); `None` draws a
    /// fresh one per reply, so that "Retry" gives a different answer.
    pub seed: Option<u64>,
    /// Replies one person (a session's user, or an API token's) may have
    /// running or waiting at once, across all models: one visitor cannot
    /// take every place in a queue.
    pub replies_per_user: usize,
}

impl Default for ChatSettings {
    fn default() -> Self {
        Self {
            seed: None,
            replies_per_user: DEFAULT_REPLIES_PER_USER,
        }
    }
}

pub const DEFAULT_REPLIES_PER_USER: usize = 2;

/// No place for the reply: nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Busy {
    /// The model's queue is full.
    #[error(
        "The server is busy: {0} replies are already being written. Please try again in a moment."
    )]
    Server(usize),
    /// This person already has as many replies running or waiting as one may.
    #[error("You already have {0} replies being written. Wait for one to finish, or stop it, before starting another.")]
    User(usize),
    /// The server is shutting down: it finishes the replies it has and
    /// takes no new ones.
    #[error("Wick is restarting and takes no new replies now. Please try again in a minute.")]
    ShuttingDown,
}

/// Who a reply is for, for the per-person limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Requester {
    /// A user: a browser session's, or an API token's.
    User(UserId),
    /// The operator's own access (a static API key, an anonymous API on a
    /// private network, a visitor's very first message before they have a
    /// user): only the model's queue limits it.
    Unlimited,
}

/// All generations of this server process.
#[derive(Clone)]
pub struct Generations(Arc<Inner>);

struct Inner {
    models: Models,
    pool: SqlitePool,
    settings: ChatSettings,
    tasks: Mutex<HashMap<String, Arc<Task>>>,
    /// Replies running or waiting per user (entries at zero are removed).
    per_user: Mutex<HashMap<UserId, usize>>,
    /// The generations that inference API requests stream themselves, by
    /// their slot's number, so a shutdown can end them with a final event.
    streamed: Mutex<HashMap<u64, CancelHandle>>,
    next_slot: AtomicU64,
    /// Set when a shutdown begins: no new replies are taken.
    draining: AtomicBool,
    /// Set when the shutdown's grace is over: replies still running are
    /// stopped and saved as interrupted (not as stopped by their reader).
    shutting_down: AtomicBool,
    /// The last write of a reply failed and none has succeeded since (a full
    /// disk, a broken file): `/health` says so.
    write_failing: AtomicBool,
    /// Titles being written, by conversation: true once done.
    titles: Mutex<HashMap<String, watch::Receiver<bool>>>,
}

impl Inner {
    fn per_user(&self) -> MutexGuard<'_, HashMap<UserId, usize>> {
        self.per_user.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn streamed(&self) -> MutexGuard<'_, HashMap<u64, CancelHandle>> {
        self.streamed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for Generations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generations")
            .field("settings", &self.0.settings)
            .field("models", &self.0.models)
            .finish()
    }
}

/// A place in a model's queue (and in its user's allowance), taken before
/// anything is stored; given back when the generation ends or when it was
/// never started.
pub struct Slot {
    model: Arc<Model>,
    /// The user whose allowance the place counts against, if any.
    user: Option<UserId>,
    /// This place's number, for the generation it streams (`stream`).
    number: u64,
    generations: Arc<Inner>,
}

impl Slot {
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The user whose allowance (and usage) the place counts against.
    pub fn user(&self) -> Option<UserId> {
        self.user
    }

    /// Counts the place against `user` from now on: for a visitor whose user
    /// was made only after the place was taken (their first message).
    pub fn assign(&mut self, generations: &Generations, user: UserId) {
        if self.user.is_none() {
            *generations.0.per_user().entry(user).or_insert(0) += 1;
            self.user = Some(user);
        }
    }

    /// Says that the caller streams a generation in this place itself (an
    /// inference API request): when a shutdown's grace is over, `cancel`
    /// ends it, so its client gets the API's final event, not a cut.
    pub fn streams(&self, cancel: CancelHandle) {
        if self.generations.shutting_down.load(Ordering::Acquire) {
            cancel.cancel();
        }
        self.generations.streamed().insert(self.number, cancel);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let left = self.model.unfinished.fetch_sub(1, Ordering::AcqRel) - 1;
        crate::telemetry::queue_depth(&self.model.id, left);
        let inner = &self.generations;
        inner.streamed().remove(&self.number);
        if let Some(user) = &self.user {
            let mut per_user = inner.per_user();
            if let Some(n) = per_user.get_mut(user) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    per_user.remove(user);
                }
            }
        }
    }
}

/// One reply being generated.
pub struct Task {
    pub message_id: String,
    pub conversation_id: String,
    pub user: UserId,
    log: Mutex<Log>,
    /// The number of events in the log; subscribers wait for it to change.
    published: watch::Sender<u64>,
    cancel: CancelHandle,
    /// For a continued reply: the tokens it had before, counted in its total.
    earlier_tokens: i64,
}

#[derive(Default)]
struct Log {
    events: Vec<ReplyEvent>,
    /// The text of all token events so far.
    text: String,
    /// The sequence number of the last token event (0: none yet); events
    /// other than tokens (`waiting`) come before it.
    last_token: u64,
    /// Token events so far: what a failed reply is counted as having produced.
    tokens: i64,
    finished: bool,
}

impl Task {
    fn log(&self) -> MutexGuard<'_, Log> {
        // A panic while holding the lock cannot leave the log half-written
        // (each update is a push), so a poisoned lock is still usable.
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, event: ReplyEvent) {
        let mut log = self.log();
        if log.finished {
            // The log is closed by its one terminal event; nothing follows it.
            return;
        }
        match &event {
            ReplyEvent::Token { text } => {
                log.text.push_str(text);
                log.tokens += 1;
                // This event's sequence number (the one it is about to get).
                log.last_token = log.events.len() as u64 + 1;
            }
            ReplyEvent::Waiting { .. } | ReplyEvent::Reading { .. } => {}
            ReplyEvent::End(_) | ReplyEvent::Failed { .. } => log.finished = true,
        }
        log.events.push(event);
        let count = log.events.len() as u64;
        drop(log);
        self.published.send_replace(count);
    }

    /// The text so far and the sequence number of the last token event in it.
    pub fn snapshot(&self) -> (String, u64) {
        let log = self.log();
        (log.text.clone(), log.last_token)
    }

    pub fn is_finished(&self) -> bool {
        self.log().finished
    }

    /// Ends the decode loop within one token; the reply is saved as "stopped".
    pub fn stop(&self) {
        self.cancel.cancel();
    }

    /// Resolves once the final event is published (and so the row is final).
    pub async fn finished(&self) {
        let mut watcher = self.published.subscribe();
        while !self.is_finished() {
            if watcher.changed().await.is_err() {
                return;
            }
        }
    }

    /// The events after sequence number `after` (0 = all), then the live tail,
    /// ending with the final event.
    pub fn events_after(
        self: &Arc<Self>,
        after: u64,
    ) -> impl Stream<Item = (u64, ReplyEvent)> + Send + 'static {
        // Subscribe before reading the log, so no publish can fall in between.
        let watcher = self.published.subscribe();
        futures::stream::unfold(
            (self.clone(), watcher, after),
            |(task, mut watcher, seen)| async move {
                loop {
                    {
                        let log = task.log();
                        if let Some(event) = log.events.get(seen as usize) {
                            let event = event.clone();
                            drop(log);
                            return Some(((seen + 1, event), (task, watcher, seen + 1)));
                        }
                        if log.finished {
                            return None;
                        }
                    }
                    // The sender lives in the task we hold, so this only waits.
                    if watcher.changed().await.is_err() {
                        return None;
                    }
                }
            },
        )
    }
}

impl Generations {
    pub fn new(models: Models, pool: SqlitePool, settings: ChatSettings) -> Self {
        Self(Arc::new(Inner {
            models,
            pool,
            settings,
            tasks: Mutex::new(HashMap::new()),
            per_user: Mutex::new(HashMap::new()),
            streamed: Mutex::new(HashMap::new()),
            next_slot: AtomicU64::new(1),
            draining: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            write_failing: AtomicBool::new(false),
            titles: Mutex::new(HashMap::new()),
        }))
    }

    fn tasks(&self) -> MutexGuard<'_, HashMap<String, Arc<Task>>> {
        self.0.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a place in `model`'s queue for `requester`, or says why there is
    /// none: the person's own limit is checked first, so one visitor filling
    /// the queue hears about their limit and everyone else still gets in.
    /// Callers that stream a model themselves (the inference APIs) take one
    /// too, so the limits hold for everyone.
    pub fn reserve(&self, model: &Arc<Model>, requester: Requester) -> Result<Slot, Busy> {
        self.reserve_within(model, requester, None)
    }

    /// [`reserve`](Self::reserve), with the person's own limit of replies at
    /// once (`None`: the server's `replies_per_user`).
    pub fn reserve_within(
        &self,
        model: &Arc<Model>,
        requester: Requester,
        replies_at_once: Option<usize>,
    ) -> Result<Slot, Busy> {
        if self.0.draining.load(Ordering::Acquire) {
            return Err(Busy::ShuttingDown);
        }
        // Held across both checks, so two requests of one user cannot both
        // pass the per-user check on the last place.
        let mut per_user = self.0.per_user();
        if let Requester::User(user) = requester {
            let limit = replies_at_once.unwrap_or(self.0.settings.replies_per_user);
            if per_user.get(&user).copied().unwrap_or(0) >= limit {
                return Err(Busy::User(limit));
            }
        }
        let depth = model.queue_depth;
        let before = model
            .unfinished
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < depth).then_some(n + 1)
            })
            .map_err(|_| Busy::Server(depth))?;
        crate::telemetry::queue_depth(&model.id, before + 1);
        let user = match requester {
            Requester::User(user) => {
                *per_user.entry(user).or_insert(0) += 1;
                Some(user)
            }
            Requester::Unlimited => None,
        };
        Ok(Slot {
            model: model.clone(),
            user,
            number: self.0.next_slot.fetch_add(1, Ordering::Relaxed),
            generations: self.0.clone(),
        })
    }

    pub fn models(&self) -> &Models {
        &self.0.models
    }

    /// The server's limit of replies running or waiting per person.
    pub fn replies_per_user(&self) -> usize {
        self.0.settings.replies_per_user
    }

    /// The task generating (or lately finished) message `message_id`.
    pub fn get(&self, message_id: &str) -> Option<Arc<Task>> {
        self.tasks().get(message_id).cloned()
    }

    /// Starts generating `reply` (whose row exists in state `generating`)
    /// with the model of `slot`.
    pub fn start(&self, slot: Slot, user: UserId, reply: NewReply) -> Arc<Task> {
        let model = slot.model();
        let mut params = model.params_for(&reply.settings);
        params.seed = self.0.settings.seed.unwrap_or_else(random_seed);
        let request = GenerationRequest {
            prompt: Prompt::Chat(chat_messages(&reply)),
            params,
            drop_old_turns: true,
            continue_final: reply.continues.is_some(),
            priority: Priority::Normal,
        };
        let started = model.backend.generate(request);
        let cancel = match &started {
            Ok(generation) => generation.cancel.clone(),
            Err(_) => CancelHandle::default(),
        };
        let (published, _) = watch::channel(0);
        // A continued reply's log starts with the text it had: what is
        // shown, flushed and stored is always the whole reply.
        let (text, earlier_tokens) = reply
            .continues
            .map_or((String::new(), 0), |c| (c.text, c.completion_tokens));
        let task = Arc::new(Task {
            message_id: reply.message_id,
            conversation_id: reply.conversation_id,
            user,
            log: Mutex::new(Log {
                text,
                ..Log::default()
            }),
            published,
            cancel,
            earlier_tokens,
        });
        self.tasks().insert(task.message_id.clone(), task.clone());
        tokio::spawn(run(self.clone(), task.clone(), started, slot));
        task
    }

    /// Waits (up to `limit`) for the title the model is writing for
    /// `conversation`, if it is writing one.
    pub async fn title_written(&self, conversation: &str, limit: Duration) {
        let watcher = self
            .0
            .titles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(conversation)
            .cloned();
        if let Some(mut watcher) = watcher {
            let _ = tokio::time::timeout(limit, watcher.wait_for(|done| *done)).await;
        }
    }

    /// Has `model` write a title for `conversation` when its title is still
    /// provisional: at background priority, so it never delays a reply. The
    /// provisional title stays if anything fails; a title the person typed
    /// meanwhile is kept (the store checks).
    fn write_title(&self, model: Arc<crate::models::Model>, conversation: String) {
        let (done, watcher) = watch::channel(false);
        {
            let mut titles = self.0.titles.lock().unwrap_or_else(|e| e.into_inner());
            if titles.contains_key(&conversation) {
                return;
            }
            titles.insert(conversation.clone(), watcher);
        }
        let generations = self.clone();
        tokio::spawn(async move {
            let pool = &generations.0.pool;
            match crate::titles::write(pool, &model, &conversation).await {
                Ok(Some(title)) => {
                    tracing::debug!(%conversation, %title, "the model titled a conversation")
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(%conversation, error = %e, "could not title a conversation")
                }
            }
            let _ = done.send(true);
            generations
                .0
                .titles
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&conversation);
        });
    }

    /// Whether the last write of a reply failed (and none succeeded since).
    pub fn write_failing(&self) -> bool {
        self.0.write_failing.load(Ordering::Acquire)
    }

    fn wrote(&self, ok: bool) {
        self.0.write_failing.store(!ok, Ordering::Release);
    }

    /// Stops every generation, saving each as interrupted; for shutdown.
    pub fn shutdown(&self) {
        self.0.draining.store(true, Ordering::Release);
        self.0.shutting_down.store(true, Ordering::Release);
        for task in self.tasks().values() {
            task.stop();
        }
        for cancel in self.0.streamed().values() {
            cancel.cancel();
        }
    }

    /// A graceful shutdown: takes no new replies from the moment it is
    /// called, lets those running (chat replies and API streams alike)
    /// finish for up to `grace`, then stops the rest, which are saved as
    /// interrupted with the text they have; resolves once those are stored
    /// (or after a few seconds more), to how many were still running then.
    pub fn drain(&self, grace: Duration) -> impl std::future::Future<Output = usize> + use<> {
        self.0.draining.store(true, Ordering::Release);
        let generations = self.clone();
        async move {
            let deadline = tokio::time::Instant::now() + grace;
            // A place is taken for every running or waiting reply, so the
            // models' counts say when all have ended. (Polled: a shutdown
            // happens once, and a tenth of a second is nothing to it.)
            let mut running = generations.running();
            while running > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
                running = generations.running();
            }
            if running > 0 {
                tracing::warn!(
                    running,
                    "the shutdown grace is over: the replies still running are saved as interrupted"
                );
            }
            generations.shutdown();
            // A stopped reply gives its place back once its ending is stored:
            // wait for that (briefly), so the process never exits before.
            let stored_by = tokio::time::Instant::now() + STORE_AT_SHUTDOWN;
            while generations.running() > 0 && tokio::time::Instant::now() < stored_by {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            running
        }
    }

    /// Replies running or waiting, over every model.
    pub fn running(&self) -> usize {
        self.0
            .models
            .all()
            .map(|m| m.unfinished.load(Ordering::Acquire))
            .sum()
    }
}

/// What the model is asked to continue: the system prompt, then the turns.
/// Empty replies (failed before their first token) carry nothing and are left out.
/// A model's reasoning (`<think>…</think>`) is not sent back to it on later
/// turns: only its answers are; a reply being continued is sent as it is.
fn chat_messages(reply: &NewReply) -> Vec<ChatMessage> {
    let system = reply
        .system_prompt
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| ChatMessage::new("system", s.as_str()));
    let last = reply.turns.len().saturating_sub(1);
    let continuing = reply.continues.is_some();
    let turns = reply
        .turns
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let content = if m.role == wick_types::Role::Assistant && !(continuing && i == last) {
                wick_types::reasoning::strip_reasoning(&m.content)
            } else {
                m.content.clone()
            };
            (m.role, content)
        })
        .filter(|(_, content)| !content.is_empty())
        .map(|(role, content)| ChatMessage::new(role.as_str(), content));
    system.chain(turns).collect()
}

/// A fresh random sampling seed.
pub fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    u64::from_le_bytes(bytes)
}

enum Outcome {
    Done(inference::FinishReason, Usage),
    Failed(Failure),
}

/// How often, and how far apart, the final save of a reply is tried before
/// the visitor is told it could not be saved; after that it is tried again
/// in the background, ever less often, until it is written.
const FINISH_TRIES: u32 = 3;
const FINISH_RETRY: Duration = Duration::from_millis(200);
const BACKGROUND_RETRY_FIRST: Duration = Duration::from_secs(1);
const BACKGROUND_RETRY_MAX: Duration = Duration::from_secs(60);

/// What the visitor is told when their reply was written but cannot be
/// stored; the text stays in the server's memory (and on their screen) and is
/// stored with this note as soon as the database takes writes again.
pub const NOT_SAVED_MESSAGE: &str =
    "This reply could not be saved: the server cannot write to its \
     database right now. Its text is kept and will be saved when the database works again; copy \
     it if you need it now.";

/// Publishes a failure as the task's terminal event if the task that drives a
/// generation ends without one (it panicked, or its runtime shut down), so
/// that no subscriber waits for an end that never comes, and stores the reply
/// as failed so its conversation can take new messages.
struct TerminalGuard {
    task: Arc<Task>,
    pool: SqlitePool,
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        if self.task.is_finished() {
            return;
        }
        tracing::error!(message = %self.task.message_id, "a generation ended without its final event");
        let message = Failure::INTERNAL_MESSAGE.to_owned();
        let finish = Finish {
            state: MessageState::Error,
            finish_reason: Some(FinishReason::Error),
            error: Some(message.clone()),
            prompt_tokens: None,
            completion_tokens: None,
        };
        self.task.publish(ReplyEvent::Failed { message });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (pool, task) = (self.pool.clone(), self.task.clone());
            runtime.spawn(async move { store_ending(&pool, &task, &finish, FINISH_TRIES).await });
        }
    }
}

/// Stores how a reply ended, trying `tries` times; whether it was stored.
async fn store_ending(pool: &SqlitePool, task: &Task, finish: &Finish, tries: u32) -> bool {
    let (text, _) = task.snapshot();
    for attempt in 1..=tries {
        match conversations::finish_reply(pool, &task.message_id, &text, finish).await {
            Ok(()) => return true,
            Err(e) if attempt < tries => {
                tracing::warn!(message = %task.message_id, error = %e, attempt, "could not store the finished reply; trying again");
                tokio::time::sleep(FINISH_RETRY * attempt).await;
            }
            Err(e) => {
                tracing::error!(message = %task.message_id, error = %e, "could not store the finished reply");
            }
        }
    }
    false
}

/// Keeps trying to store a reply whose final save failed, with back-off,
/// as an error that keeps its text. The task (and so the text, which the
/// conversation page shows from memory meanwhile) stays until it is stored.
async fn store_when_possible(generations: Generations, task: Arc<Task>, finish: Finish) {
    let mut wait = BACKGROUND_RETRY_FIRST;
    loop {
        tokio::time::sleep(wait).await;
        if store_ending(&generations.0.pool, &task, &finish, 1).await {
            tracing::info!(message = %task.message_id, "a reply that could not be saved is now stored");
            generations.wrote(true);
            break;
        }
        wait = (wait * 2).min(BACKGROUND_RETRY_MAX);
    }
    tokio::time::sleep(KEEP_FINISHED).await;
    generations.tasks().remove(&task.message_id);
}

/// Drives one generation to its end, then stores and publishes how it ended.
async fn run(
    generations: Generations,
    task: Arc<Task>,
    started: Result<Generation, RequestError>,
    slot: Slot,
) {
    let pool = &generations.0.pool;
    let guard = TerminalGuard {
        task: task.clone(),
        pool: pool.clone(),
    };
    let mut timer = crate::telemetry::ReplyTimer::start(&slot.model().id);
    let outcome = match started {
        Ok(generation) => follow(&generations, &task, generation, &mut timer).await,
        Err(e) => {
            timer.failed();
            Outcome::Failed(Failure::from(&e))
        }
    };
    let shutting_down = generations.0.shutting_down.load(Ordering::Acquire);
    let (mut finish, event) = ending(outcome, shutting_down);
    // The person's usage, before the end is announced (a page that reads
    // the usage at the end finds this reply in it). A failed reply counts
    // the tokens it produced.
    let produced = finish
        .completion_tokens
        .unwrap_or_else(|| task.log().tokens);
    let prompt = finish.prompt_tokens.unwrap_or(0);
    if let Err(e) =
        crate::db::team::record_usage(pool, task.user, &slot.model().id, prompt, produced).await
    {
        tracing::warn!(message = %task.message_id, error = %e, "could not record the reply's usage");
    }
    if let Some(n) = finish.completion_tokens.as_mut() {
        *n += task.earlier_tokens;
    }
    let stored = store_ending(pool, &task, &finish, FINISH_TRIES).await;
    generations.wrote(stored);
    // A conversation's first good reply: the model titles it (registered
    // before the end is announced, so a page that asks for the title at the
    // end finds it being written).
    if stored
        && finish.state == MessageState::Done
        && finish.finish_reason != Some(FinishReason::Error)
    {
        generations.write_title(slot.model().clone(), task.conversation_id.clone());
    }
    // Free the place before announcing the end, so a client that sends its next
    // message the moment it sees the end is not told the server is busy.
    drop(slot);
    if stored {
        task.publish(event);
        drop(guard);
        tokio::spawn(async move {
            tokio::time::sleep(KEEP_FINISHED).await;
            generations.tasks().remove(&task.message_id);
        });
    } else {
        let message = NOT_SAVED_MESSAGE.to_owned();
        let finish = Finish {
            state: MessageState::Error,
            finish_reason: Some(FinishReason::Error),
            error: Some(message.clone()),
            ..finish
        };
        task.publish(ReplyEvent::Failed { message });
        drop(guard);
        tokio::spawn(store_when_possible(generations.clone(), task, finish));
    }
}

/// Publishes the tokens as they come and flushes the text regularly.
async fn follow(
    generations: &Generations,
    task: &Task,
    mut generation: Generation,
    timer: &mut crate::telemetry::ReplyTimer,
) -> Outcome {
    let mut flush = tokio::time::interval(FLUSH_INTERVAL);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unflushed = 0usize;
    loop {
        tokio::select! {
            // A generation always ends with `Done` or `Error` (it reports a
            // vanished worker as an error itself), so `None` cannot come first.
            event = generation.next() => match event.inspect(|e| timer.observe(e)) {
                Some(Event::Token { text, .. }) => {
                    if !text.is_empty() {
                        task.publish(ReplyEvent::Token { text });
                        unflushed += 1;
                    }
                    if unflushed >= FLUSH_TOKENS {
                        save(generations, task).await;
                        unflushed = 0;
                    }
                }
                // Progress through a long prompt, once it takes more than one chunk.
                Some(Event::Prefill { done, total }) => {
                    if done < total {
                        task.publish(ReplyEvent::Reading { done: done as u64, total: total as u64 });
                    }
                }
                Some(Event::Waiting { ahead }) => {
                    task.publish(ReplyEvent::Waiting { ahead: ahead as u64 });
                }
                Some(Event::Done { finish, usage }) => return Outcome::Done(finish, usage),
                Some(Event::Error(e)) => return Outcome::Failed(e),
                None => return Outcome::Failed(Failure::internal("the generation's stream ended without a final event")),
            },
            _ = flush.tick() => {
                if unflushed > 0 {
                    save(generations, task).await;
                    unflushed = 0;
                }
            }
        }
    }
}

async fn save(generations: &Generations, task: &Task) {
    let (text, _) = task.snapshot();
    let result = conversations::save_partial(&generations.0.pool, &task.message_id, &text).await;
    generations.wrote(result.is_ok());
    if let Err(e) = result {
        // Not fatal: the next flush or the final save writes the whole text again.
        tracing::warn!(message = %task.message_id, error = %e, "could not flush a reply");
    }
}

/// The stored ending and the final event of an outcome.
fn ending(outcome: Outcome, shutting_down: bool) -> (Finish, ReplyEvent) {
    use inference::FinishReason as Engine;
    match outcome {
        Outcome::Done(reason, usage) => {
            let (state, finish_reason) = match reason {
                Engine::Eos => (MessageState::Done, Some(FinishReason::Eos)),
                Engine::Stop => (MessageState::Done, Some(FinishReason::Stop)),
                Engine::Length => (MessageState::Done, Some(FinishReason::Length)),
                Engine::Cancelled if shutting_down => (MessageState::Interrupted, None),
                Engine::Cancelled => (MessageState::Done, Some(FinishReason::Stopped)),
            };
            let finish = Finish {
                state,
                finish_reason,
                error: None,
                prompt_tokens: Some(usage.prompt_tokens as i64),
                completion_tokens: Some(usage.completion_tokens as i64),
            };
            let event = ReplyEvent::End(ReplyEnd {
                state,
                finish_reason,
                prompt_tokens: usage.prompt_tokens as u64,
                completion_tokens: usage.completion_tokens as u64,
            });
            (finish, event)
        }
        Outcome::Failed(Failure { message, .. }) => (
            Finish {
                state: MessageState::Error,
                finish_reason: Some(FinishReason::Error),
                error: Some(message.clone()),
                prompt_tokens: None,
                completion_tokens: None,
            },
            ReplyEvent::Failed { message },
        ),
    }
}
