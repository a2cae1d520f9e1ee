//! Titles from the model: after a conversation's first good reply, its model
//! writes a few words saying what the conversation is about, replacing the
//! provisional title (the first words of the first message) unless the
//! person typed one meanwhile.

use inference::{ChatMessage, Event, GenerationRequest, Params, Priority, Prompt};
use sqlx::SqlitePool;
use wick_types::message::title_from;

use crate::db::{conversations, StoreError};
use crate::models::Model;

/// The most of the first message the model reads to title it.
const MATERIAL_CHARS: usize = 2_000;
/// A title is a few words; a model that rambles is cut here.
const TITLE_TOKENS: usize = 24;

/// What the model is asked. Small models follow a plain instruction in the
/// user's turn better than a system prompt.
const INSTRUCTION: &str = "Write a title of at most six words for a conversation that starts with \
the message below. Answer with the title only: no quotes, no punctuation at the end.";

/// Writes the title of `conversation` if it is still provisional; the new
/// title, or `None` when there was nothing to do or the model wrote nothing
/// usable.
pub(crate) async fn write(
    pool: &SqlitePool,
    model: &Model,
    conversation: &str,
) -> Result<Option<String>, StoreError> {
    let Some(first) = conversations::title_material(pool, conversation).await? else {
        return Ok(None);
    };
    let material: String = first.chars().take(MATERIAL_CHARS).collect();
    let request = GenerationRequest {
        prompt: Prompt::Chat(vec![ChatMessage::new(
            "user",
            format!("{INSTRUCTION}\n\nMessage:\n{material}"),
        )]),
        params: Params {
            temperature: 0.0,
            max_new_tokens: TITLE_TOKENS,
            stop: vec!["\n".to_owned()],
            ..model.params.clone()
        },
        drop_old_turns: true,
        continue_final: false,
        priority: Priority::Background,
    };
    let mut generation = match model.backend.generate(request) {
        Ok(g) => g,
        Err(e) => {
            tracing::debug!(error = %e, "no title: the request was refused");
            return Ok(None);
        }
    };
    let mut text = String::new();
    while let Some(event) = generation.next().await {
        match event {
            Event::Token { text: t, .. } => text.push_str(&t),
            Event::Done { finish, .. } => {
                // Given way to a reply: the provisional title stays.
                if finish == inference::FinishReason::Cancelled {
                    return Ok(None);
                }
                break;
            }
            Event::Error(e) => {
                tracing::debug!(error = %e.message, "no title: the model failed");
                return Ok(None);
            }
            Event::Waiting { .. } | Event::Prefill { .. } => {}
        }
    }
    let Some(title) = clean(&text) else {
        return Ok(None);
    };
    Ok(conversations::set_model_title(pool, conversation, &title)
        .await?
        .then_some(title))
}

/// The title in what the model wrote: its first line without reasoning,
/// markdown, a "Title:" label, quotes or a final full stop; `None` if that
/// leaves nothing.
fn clean(text: &str) -> Option<String> {
    let answer = wick_types::reasoning::strip_reasoning(text);
    let line = answer.lines().map(str::trim).find(|l| !l.is_empty())?;
    let line = line.trim_start_matches(['#', '*', '-', ' ']);
    let line = ["Title:", "title:", "TITLE:"]
        .iter()
        .find_map(|p| line.strip_prefix(p))
        .unwrap_or(line);
    let line = line.trim_matches(|c: char| {
        c.is_whitespace() || ['"', '\'', '*', '`', '“', '”', '«', '»'].contains(&c)
    });
    let line = line
        .trim_end_matches(|c: char| c == '.' || c == '"' || c == '”' || c.is_whitespace())
        .trim();
    let title = title_from(line);
    (!title.is_empty()).then_some(title)
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn the_title_is_the_first_line_without_decoration() {
        assert_eq!(
            clean("\"Baking Sourdough Bread.\"\nMore"),
            Some("Baking Sourdough Bread".into())
        );
        assert_eq!(
            clean("**Title:** Rust lifetimes"),
            Some("Rust lifetimes".into())
        );
        assert_eq!(
            clean("<think>hmm</think>\n\n# Paris trip"),
            Some("Paris trip".into())
        );
        assert_eq!(clean("  \n \"\" "), None);
        assert_eq!(clean(""), None);
    }
}
