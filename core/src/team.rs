//! The rules of a team deployment, as the chat and the inference APIs apply
//! them before any work starts: which models a person may use, and their
//! quotas (replies per minute, tokens per day, replies at once).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wick_types::account::UsageView;
use wick_types::conversation::ModelOption;

use crate::chat::{Chat, ChatError};
use crate::db::team::{self, Limits};
use crate::db::UserId;
use crate::generation::{Requester, Slot};
use crate::models::Model;

const MINUTE: Duration = Duration::from_secs(60);

/// How long things are kept (`WICK_RETENTION_DAYS`, `WICK_AUDIT_LOG_DAYS`);
/// 0: forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Conversations not updated for this many days are deleted.
    pub conversation_days: u32,
    /// Audit events older than this many days are deleted.
    pub audit_log_days: u32,
}

impl Retention {
    /// Deletes what is older than kept: (conversations, audit events).
    pub async fn sweep(&self, pool: &sqlx::SqlitePool) -> Result<(u64, u64), crate::StoreError> {
        let conversations = match self.conversation_days {
            0 => 0,
            days => team::delete_stale_conversations(pool, days).await?,
        };
        let events = match self.audit_log_days {
            0 => 0,
            days => team::prune_audit(pool, days).await?,
        };
        Ok((conversations, events))
    }
}

/// The starts of each person's requests in the last minute, for
/// `requests_per_minute` (kept in memory: a restart forgets at most a minute).
#[derive(Debug, Default)]
pub struct RecentRequests(Mutex<HashMap<UserId, VecDeque<Instant>>>);

impl RecentRequests {
    /// Counts a request of `user` now, unless they already made `limit` in
    /// the last minute: then how long until the oldest leaves the window.
    fn admit(&self, user: UserId, limit: usize) -> Result<(), Duration> {
        let now = Instant::now();
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let recent = all.entry(user).or_default();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= MINUTE)
        {
            recent.pop_front();
        }
        if recent.len() >= limit {
            let oldest = recent.front().copied().unwrap_or(now);
            return Err(MINUTE.saturating_sub(now.duration_since(oldest)));
        }
        recent.push_back(now);
        // Keep the map from growing with people who stopped asking.
        if all.len() > 10_000 {
            all.retain(|_, r| r.back().is_some_and(|t| now.duration_since(*t) < MINUTE));
        }
        Ok(())
    }

    /// Requests of `user` in the last minute.
    #[cfg(test)]
    fn count(&self, user: UserId) -> usize {
        let now = Instant::now();
        let all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.get(&user).map_or(0, |r| {
            r.iter()
                .filter(|t| now.duration_since(**t) < MINUTE)
                .count()
        })
    }
}

/// The highest value each limit may be set to.
pub const MAX_REQUESTS_PER_MINUTE: i64 = 100_000;
pub const MAX_TOKENS_PER_DAY: i64 = 1_000_000_000_000;
pub const MAX_REPLIES_AT_ONCE: i64 = 1_000;

/// Limits as typed into a form: whole numbers as text, empty for none.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct LimitsForm {
    #[serde(default)]
    pub requests_per_minute: String,
    #[serde(default)]
    pub tokens_per_day: String,
    #[serde(default)]
    pub replies_at_once: String,
}

impl LimitsForm {
    /// The limits, or a sentence naming the field that is wrong and its bounds.
    pub fn parse(&self) -> Result<Limits, String> {
        fn field(text: &str, label: &str, max: i64) -> Result<Option<i64>, String> {
            let text = text.trim().replace([',', '_'], "");
            if text.is_empty() {
                return Ok(None);
            }
            match text.parse::<i64>() {
                Ok(n) if (0..=max).contains(&n) => Ok(Some(n)),
                _ => Err(format!(
                    "{label} must be a whole number from 0 to {}, or empty for no limit.",
                    with_commas(max)
                )),
            }
        }
        Ok(Limits {
            requests_per_minute: field(
                &self.requests_per_minute,
                "Replies per minute",
                MAX_REQUESTS_PER_MINUTE,
            )?,
            tokens_per_day: field(&self.tokens_per_day, "Tokens per day", MAX_TOKENS_PER_DAY)?,
            replies_at_once: field(
                &self.replies_at_once,
                "Replies at once",
                MAX_REPLIES_AT_ONCE,
            )?,
        })
    }
}

/// A group's name as typed: trimmed, 1 to 64 characters.
pub fn check_group_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    match name.chars().count() {
        0 => Err("Type a name for the group.".to_owned()),
        1..=64 => Ok(name.to_owned()),
        _ => Err("A group name may have at most 64 characters.".to_owned()),
    }
}

/// A quota that refused a request: the sentence for the person, and when
/// to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaRefusal {
    pub message: String,
    pub retry_after: Duration,
}

pub use wick_types::account::with_commas;

/// Time until the next midnight UTC, when the tokens of the day start again.
pub fn until_midnight_utc() -> Duration {
    const DAY: u64 = 24 * 60 * 60;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    Duration::from_secs(DAY - now % DAY)
}

impl Chat {
    /// A place in `model`'s queue for `requester`, after the team's rules:
    /// the person may use the model, and none of their quotas is used up.
    /// Every reply of the chat and every inference API request comes here.
    pub async fn admit(&self, model: &Arc<Model>, requester: Requester) -> Result<Slot, ChatError> {
        let Requester::User(user) = requester else {
            return Ok(self.generations().reserve(model, requester)?);
        };
        if !team::may_use(self.pool(), user, &model.id).await? {
            return Err(ChatError::ModelClosed(model.name.clone()));
        }
        let limits = team::effective_limits(self.pool(), user).await?;
        if let Some(limit) = limits.tokens_per_day {
            if team::tokens_today(self.pool(), user).await? >= limit {
                return Err(ChatError::Quota(QuotaRefusal {
                    message: format!(
                        "You have used your {} tokens for today; it resets at 00:00 UTC.",
                        with_commas(limit)
                    ),
                    retry_after: until_midnight_utc(),
                }));
            }
        }
        let at_once = limits
            .replies_at_once
            .map(|n| usize::try_from(n).unwrap_or(0));
        if at_once == Some(0) {
            return Err(ChatError::Quota(QuotaRefusal {
                message: "Your account may not start replies; ask an admin.".to_owned(),
                retry_after: until_midnight_utc(),
            }));
        }
        if let Some(limit) = limits.requests_per_minute {
            let limit = usize::try_from(limit).unwrap_or(0);
            if let Err(wait) = self.recent_requests().admit(user, limit) {
                let seconds = wait.as_secs().max(1);
                return Err(ChatError::Quota(QuotaRefusal {
                    message: format!(
                        "You may start {limit} replies per minute; try again in {seconds} seconds."
                    ),
                    retry_after: Duration::from_secs(seconds),
                }));
            }
        }
        Ok(self
            .generations()
            .reserve_within(model, requester, at_once)?)
    }

    /// The models `user` may choose from (everyone's, for a visitor).
    pub async fn model_options(&self, user: Option<UserId>) -> Result<Vec<ModelOption>, ChatError> {
        let closed = match user {
            Some(user) => team::closed_models(self.pool(), user).await?,
            None => team::model_access(self.pool())
                .await?
                .into_iter()
                .map(|(model, _)| model)
                .collect(),
        };
        Ok(self
            .models()
            .options()
            .into_iter()
            .filter(|m| !closed.contains(&m.id))
            .collect())
    }

    /// The model a person's new conversation starts with when they name
    /// none: `preferred` if they may use it, else the first they may.
    pub(crate) async fn open_model(
        &self,
        user: Option<UserId>,
        preferred: &Arc<Model>,
    ) -> Result<Arc<Model>, ChatError> {
        let options = self.model_options(user).await?;
        if options.iter().any(|m| m.id == preferred.id) {
            return Ok(preferred.clone());
        }
        options
            .first()
            .and_then(|m| self.models().get(&m.id).cloned())
            .ok_or_else(|| ChatError::ModelClosed(preferred.name.clone()))
    }

    /// What `user` used today, the limits that hold for them, and how long
    /// conversations are kept (a visitor without a session has used nothing).
    pub async fn usage(&self, user: Option<UserId>) -> Result<UsageView, ChatError> {
        let (tokens_today, limits) = match user {
            Some(user) => (
                team::tokens_today(self.pool(), user).await?,
                team::effective_limits(self.pool(), user).await?,
            ),
            None => (0, Limits::default()),
        };
        Ok(UsageView {
            tokens_today,
            tokens_per_day: limits.tokens_per_day,
            requests_per_minute: limits.requests_per_minute,
            replies_at_once: limits
                .replies_at_once
                .unwrap_or(self.generations().replies_per_user() as i64),
            retention_days: self.retention().conversation_days,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(with_commas(0), "0");
        assert_eq!(with_commas(999), "999");
        assert_eq!(with_commas(50_000), "50,000");
        assert_eq!(with_commas(1_234_567), "1,234,567");
        assert_eq!(with_commas(-1000), "-1,000");
    }

    #[test]
    fn limits_are_whole_numbers_within_bounds_and_empty_is_none() {
        let form = |rpm: &str, tpd: &str, at_once: &str| LimitsForm {
            requests_per_minute: rpm.into(),
            tokens_per_day: tpd.into(),
            replies_at_once: at_once.into(),
        };
        assert_eq!(
            form("5", "50,000", "").parse(),
            Ok(Limits {
                requests_per_minute: Some(5),
                tokens_per_day: Some(50_000),
                replies_at_once: None,
            })
        );
        let e = form("-1", "", "").parse().unwrap_err();
        assert!(
            e.starts_with("Replies per minute must be a whole number from 0 to 100,000"),
            "{e}"
        );
        let e = form("", "1e99", "").parse().unwrap_err();
        assert!(e.starts_with("Tokens per day must be"), "{e}");
        let e = form("", "99999999999999999999", "").parse().unwrap_err();
        assert!(e.starts_with("Tokens per day must be"), "{e}");
        let e = form("", "", "2.5").parse().unwrap_err();
        assert!(e.starts_with("Replies at once must be"), "{e}");
        assert_eq!(
            check_group_name("  "),
            Err("Type a name for the group.".into())
        );
        assert_eq!(check_group_name(" staff "), Ok("staff".into()));
    }

    #[test]
    fn a_minute_holds_as_many_requests_as_the_limit() {
        let recent = RecentRequests::default();
        assert!(recent.admit(1, 2).is_ok());
        assert!(recent.admit(1, 2).is_ok());
        let wait = recent.admit(1, 2).unwrap_err();
        assert!(wait > Duration::from_secs(58) && wait <= MINUTE, "{wait:?}");
        // Another person has their own minute.
        assert!(recent.admit(2, 2).is_ok());
        assert_eq!(recent.count(1), 2);
    }
}
