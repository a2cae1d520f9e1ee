//! A reply's reasoning: the `<think>…</think>` that reasoning models write
//! before their answer. The page shows it apart (folded away); the server
//! leaves it out of what the model reads back on later turns.

/// A reply split into its reasoning and its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reasoning<'a> {
    /// What is between `<think>` and `</think>` (everything after `<think>`
    /// while the closing tag hasn't come yet), when the reply starts with
    /// `<think>`.
    pub thinking: Option<&'a str>,
    /// The rest: the whole reply when it has no reasoning, empty while the
    /// reasoning is still being written. Leading blanks are trimmed.
    pub answer: &'a str,
    /// Whether the reasoning is over (its `</think>` came), or there is none.
    pub thinking_done: bool,
}

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

/// `text` split into its reasoning and its answer: only a reply that starts
/// (after blanks) with `<think>` has reasoning; a `<think>` further on is
/// part of the answer.
pub fn split_reasoning(text: &str) -> Reasoning<'_> {
    let Some(rest) = text.trim_start().strip_prefix(OPEN) else {
        return Reasoning {
            thinking: None,
            answer: text,
            thinking_done: true,
        };
    };
    match rest.find(CLOSE) {
        Some(end) => Reasoning {
            thinking: Some(&rest[..end]),
            answer: rest[end + CLOSE.len()..].trim_start(),
            thinking_done: true,
        },
        None => Reasoning {
            thinking: Some(rest),
            answer: "",
            thinking_done: false,
        },
    }
}

/// The answer of `text` without its reasoning: what the model is given back
/// of its own earlier replies.
pub fn strip_reasoning(text: &str) -> String {
    split_reasoning(text).answer.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_reasoning_is_split_from_the_answer() {
        let r = split_reasoning("  \n<think>\nLet me see.\n</think>\n\nThe answer is 4.");
        assert_eq!(r.thinking, Some("\nLet me see.\n"));
        assert_eq!(r.answer, "The answer is 4.");
        assert!(r.thinking_done);
        assert_eq!(strip_reasoning("<think>a</think>b"), "b");
    }

    #[test]
    fn unclosed_reasoning_is_all_thinking() {
        let r = split_reasoning("<think>Still thinking about </thi");
        assert_eq!(r.thinking, Some("Still thinking about </thi"));
        assert_eq!(r.answer, "");
        assert!(!r.thinking_done);
        assert_eq!(strip_reasoning("<think>half"), "");
        let r = split_reasoning("<think>");
        assert_eq!(r.thinking, Some(""));
        assert!(!r.thinking_done);
    }

    #[test]
    fn text_without_reasoning_is_all_answer() {
        for text in [
            "Hello",
            "",
            "Use <think> tags like <think>x</think>.",
            "<thinking>no</thinking>",
        ] {
            let r = split_reasoning(text);
            assert_eq!(r.thinking, None, "{text}");
            assert_eq!(r.answer, text);
            assert!(r.thinking_done);
            assert_eq!(strip_reasoning(text), text);
        }
        // A partial opening tag mid-stream is not reasoning (yet).
        assert_eq!(split_reasoning("<thi").thinking, None);
    }

    #[test]
    fn empty_reasoning_and_answer() {
        let r = split_reasoning("<think></think>");
        assert_eq!(r.thinking, Some(""));
        assert_eq!(r.answer, "");
        assert!(r.thinking_done);
    }
}
