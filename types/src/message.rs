//! What a chat message may be, checked the same way in the browser and on the server.

/// The longest message a user may send, in characters (Unicode scalar values).
pub const MAX_MESSAGE_CHARS: usize = 32_000;

/// Why a message cannot be sent, in words for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageProblem {
    #[error("Type a message before sending.")]
    Empty,
    #[error("This message is {chars} characters long; the limit is {max} characters.", max = MAX_MESSAGE_CHARS)]
    TooLong { chars: usize },
}

/// Checks a message as typed. Leading and trailing whitespace is not counted as
/// content, but the text is kept exactly as typed: it is the user's words.
pub fn check_message(content: &str) -> Result<(), MessageProblem> {
    if content.trim().is_empty() {
        return Err(MessageProblem::Empty);
    }
    let chars = content.chars().count();
    if chars > MAX_MESSAGE_CHARS {
        return Err(MessageProblem::TooLong { chars });
    }
    Ok(())
}

/// A conversation's title from its first message: the first words, at most
/// about 60 characters, cut at a word boundary.
pub fn title_from(content: &str) -> String {
    const MAX: usize = 60;
    let words: Vec<&str> = content.split_whitespace().collect();
    let mut title = String::new();
    for word in words {
        let extra = if title.is_empty() { 0 } else { 1 } + word.chars().count();
        if title.chars().count() + extra > MAX {
            if title.is_empty() {
                // One very long word: cut it.
                title = word.chars().take(MAX).collect();
            }
            title.push('…');
            return title;
        }
        if !title.is_empty() {
            title.push(' ');
        }
        title.push_str(word);
    }
    title
}

/// The longest title a person may give a conversation, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// Why a title or a system prompt cannot be kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingProblem {
    #[error("Type a title, or leave the title as it is.")]
    EmptyTitle,
    #[error("This title is {chars} characters long; the limit is {max} characters.", max = MAX_TITLE_CHARS)]
    LongTitle { chars: usize },
    #[error("This system prompt is {chars} characters long; the limit is {max} characters.", max = MAX_MESSAGE_CHARS)]
    LongSystemPrompt { chars: usize },
}

/// A title as typed: not blank, at most [`MAX_TITLE_CHARS`]; returned trimmed
/// and on one line.
pub fn check_title(title: &str) -> Result<String, SettingProblem> {
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    let chars = title.chars().count();
    if chars == 0 {
        return Err(SettingProblem::EmptyTitle);
    }
    if chars > MAX_TITLE_CHARS {
        return Err(SettingProblem::LongTitle { chars });
    }
    Ok(title)
}

/// A system prompt may be as long as a message (or empty: none).
pub fn check_system_prompt(prompt: &str) -> Result<(), SettingProblem> {
    let chars = prompt.chars().count();
    if chars > MAX_MESSAGE_CHARS {
        return Err(SettingProblem::LongSystemPrompt { chars });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_blank_messages_are_refused() {
        assert_eq!(check_message(""), Err(MessageProblem::Empty));
        assert_eq!(check_message(" \n\t "), Err(MessageProblem::Empty));
        assert_eq!(check_message(" hi "), Ok(()));
    }

    #[test]
    fn the_limit_counts_characters_not_bytes() {
        let at_limit = "é".repeat(MAX_MESSAGE_CHARS);
        assert_eq!(check_message(&at_limit), Ok(()));
        let over = "é".repeat(MAX_MESSAGE_CHARS + 1);
        let err = check_message(&over).unwrap_err();
        assert_eq!(err, MessageProblem::TooLong { chars: 32_001 });
        assert_eq!(
            err.to_string(),
            "This message is 32001 characters long; the limit is 32000 characters."
        );
    }

    #[test]
    fn a_typed_title_is_one_trimmed_line_within_the_limit() {
        assert_eq!(check_title("  My\n  chat "), Ok("My chat".to_owned()));
        assert_eq!(check_title(" \n "), Err(SettingProblem::EmptyTitle));
        assert_eq!(
            check_title(&"x".repeat(201)).unwrap_err().to_string(),
            "This title is 201 characters long; the limit is 200 characters."
        );
        assert!(check_system_prompt(&"x".repeat(32_001)).is_err());
        assert!(check_system_prompt("").is_ok());
    }

    #[test]
    fn titles_are_the_first_words() {
        assert_eq!(title_from("  Hello   there\nworld "), "Hello there world");
        let long = "word ".repeat(30);
        let t = title_from(&long);
        assert!(t.ends_with('…') && t.chars().count() <= 61, "{t}");
        assert!(!t.contains("  "));
        let one = "x".repeat(100);
        assert_eq!(title_from(&one).chars().count(), 61);
    }
}
