//! `wick token create | list | revoke`: access tokens for the inference APIs.

use crate::api::auth::new_token;
use crate::config::TokenCommand;
use crate::{Config, ServerError};
use wick_core::db::tokens;
use wick_core::StoreError;

pub(crate) fn when(ms: Option<i64>) -> String {
    ms.and_then(|ms| time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).ok())
        .map(|t| format!("{} {:02}:{:02} UTC", t.date(), t.hour(), t.minute()))
        .unwrap_or_else(|| "-".into())
}

pub async fn run(config: &Config, command: TokenCommand) -> Result<(), ServerError> {
    let pool = crate::open_database(config).await?;
    let store_error = |source| config.store_error(source);
    match command {
        TokenCommand::Create { name, user } => {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 100 {
                return Err(ServerError::TokenName);
            }
            let (token, hash) = new_token();
            let (id, user) = tokens::create_api_token(&pool, user, name, &hash)
                .await
                .map_err(|e| match (e, user) {
                    (StoreError::NotFound, Some(user)) => ServerError::NoSuchUser(user),
                    (other, _) => store_error(other),
                })?;
            eprintln!("Created token {id} ({name:?}) for user {user}. It is shown only this once:");
            println!("{token}");
        }
        TokenCommand::List => {
            let tokens = tokens::list_api_tokens(&pool).await.map_err(store_error)?;
            if tokens.is_empty() {
                eprintln!("No tokens yet: `wick token create --name LABEL` makes one.");
            }
            for t in tokens {
                println!(
                    "{}\t{}\tuser {}\tcreated {}\tlast used {}\t{}",
                    t.id,
                    t.name,
                    t.user_id,
                    when(Some(t.created_at)),
                    when(t.last_used_at),
                    if t.revoked_at.is_some() {
                        format!("revoked {}", when(t.revoked_at))
                    } else {
                        "active".into()
                    }
                );
            }
        }
        TokenCommand::Revoke { id } => {
            tokens::revoke_api_token(&pool, id)
                .await
                .map_err(|e| match e {
                    StoreError::NotFound => ServerError::NoSuchToken(id),
                    other => store_error(other),
                })?;
            eprintln!("Token {id} is revoked.");
        }
    }
    pool.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_print_as_utc() {
        assert_eq!(super::when(Some(0)), "1970-01-01 00:00 UTC");
        assert_eq!(super::when(Some(1_795_600_000_000)), "2026-11-25 09:46 UTC");
        assert_eq!(super::when(None), "-");
    }
}
