//! `wick user create | list | set-role | disable | enable`: accounts from the
//! command line, above all the first admin of a team deployment.

use std::io::{BufRead, IsTerminal};

use wick_core::db::users::{self, AccountError, Role};
use wick_core::{password, StoreError};

use crate::config::UserCommand;
use crate::tokens::when;
use crate::{Config, ServerError};

pub async fn run(config: &Config, command: UserCommand) -> Result<(), ServerError> {
    let pool = crate::open_database(config).await?;
    let store_error = |source| config.store_error(source);
    let find = |who: String| {
        let pool = pool.clone();
        async move {
            users::find_user(&pool, &who).await.map_err(|e| match e {
                StoreError::NotFound => ServerError::NoSuchAccount(who),
                other => store_error(other),
            })
        }
    };
    match command {
        UserCommand::Create {
            email,
            name,
            admin,
            role,
        } => {
            if !users::looks_like_email(&email) {
                return Err(ServerError::BadEmail(email));
            }
            let email = users::normalise_email(&email);
            let role = if admin { Role::Admin } else { role };
            let (secret, made_up) = read_password()?;
            password::check_new(&secret, Some(&email))?;
            let hash = tokio::task::spawn_blocking(move || password::hash(&secret))
                .await
                .map_err(ServerError::Thread)?;
            let id = users::create_local_user(&pool, &email, name.as_deref(), &hash, role)
                .await
                .map_err(|e| match e {
                    AccountError::Taken => ServerError::EmailTaken(email.clone()),
                    AccountError::Store(e) => store_error(e),
                })?;
            eprintln!("Created user {id} <{email}>, role {role}.");
            if let Some(made_up) = made_up {
                eprintln!("Its password is shown only this once:");
                println!("{made_up}");
            }
        }
        UserCommand::List => {
            for u in users::list_users(&pool).await.map_err(store_error)? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\tcreated {}\t{}",
                    u.id,
                    u.email.as_deref().unwrap_or("-"),
                    u.display_name.as_deref().unwrap_or("-"),
                    u.role,
                    u.kind,
                    when(Some(u.created_at)),
                    match u.disabled_at {
                        Some(at) => format!("disabled {}", when(Some(at))),
                        None => "active".into(),
                    }
                );
            }
        }
        UserCommand::SetRole { user, role } => {
            let id = find(user).await?;
            users::set_role(&pool, id, role)
                .await
                .map_err(store_error)?;
            eprintln!("User {id} is now {role}.");
        }
        UserCommand::Disable { user } => {
            let id = find(user).await?;
            users::set_disabled(&pool, id, true)
                .await
                .map_err(store_error)?;
            eprintln!("User {id} is disabled: their sessions are ended and their tokens refused.");
        }
        UserCommand::Enable { user } => {
            let id = find(user).await?;
            users::set_disabled(&pool, id, false)
                .await
                .map_err(store_error)?;
            eprintln!("User {id} may sign in again.");
        }
    }
    pool.close().await;
    Ok(())
}

/// The new account's password: the first line of standard input, or, when
/// that is a terminal (nobody piped one in), a random one that is printed
/// once (returned as the second value too).
fn read_password() -> Result<(String, Option<String>), ServerError> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let made_up = wick_core::session::new_token();
        return Ok((made_up.clone(), Some(made_up)));
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(ServerError::Stdin)?;
    Ok((line.trim_end_matches(['\r', '\n']).to_owned(), None))
}
