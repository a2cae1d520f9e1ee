//! Fitting a conversation into a token budget by dropping its oldest turns,
//! in linear time: each message is counted once, the turns to keep are chosen
//! from suffix sums, and the prompt is measured once more to check the choice
//! (twice when the estimate of the template's overhead was off).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use crate::request::ChatMessage;

/// The most counts a [`TokenCounts`] keeps before it starts afresh.
const MAX_COUNTS: usize = 1 << 16;

/// Message contents' token counts, each counted once and kept, for one
/// model (they are its tokenizer's): when a long conversation is fitted again
/// at its next turn, only its new messages are tokenized. Kept in memory, not
/// in the database, because a conversation may go to several models with
/// several tokenizers. A count found by mistake (two contents with one hash)
/// costs nothing worse than a second measure: the fitting checks its choice
/// against the real prompt.
#[derive(Default)]
pub(crate) struct TokenCounts(Mutex<HashMap<u64, usize>>);

impl TokenCounts {
    /// The tokens of `text`, from `count` the first time.
    pub(crate) fn get<E>(
        &self,
        text: &str,
        count: impl FnOnce(&str) -> Result<usize, E>,
    ) -> Result<usize, E> {
        let mut hasher = DefaultHasher::new();
        text.hash(&mut hasher);
        let key = hasher.finish();
        if let Some(n) = self.lock().get(&key) {
            return Ok(*n);
        }
        let n = count(text)?;
        let mut counts = self.lock();
        if counts.len() >= MAX_COUNTS {
            counts.clear();
        }
        counts.insert(key, n);
        Ok(n)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, usize>> {
        // A count is inserted whole or not at all: a poisoned map is still right.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The turns of `messages` that fit in `budget` tokens: the oldest go first.
/// System messages and the newest message always stay; an assistant turn left
/// at the front goes too, since chat templates expect a user turn first. When
/// even that is too long, it is still returned and the caller reports the
/// overflow. (The newest non-system message stays even when a system message
/// comes after it.)
///
/// `count` gives the tokens of one message's content; `measure` the tokens of
/// the whole prompt of some turns (template included), and is called last on
/// the turns returned, so that a caller can keep what it computed. The
/// template's overhead is estimated from the whole conversation's measure as
/// so much per message; when the turns chosen that way do not fit, the
/// overhead is solved from the two measures (a fixed part and a part per
/// message) and the choice made again. Only if that is still wrong (a
/// tokenizer merging across turns) are turns dropped one measure at a time.
pub(crate) fn drop_old_turns<E>(
    messages: &[ChatMessage],
    budget: usize,
    mut count: impl FnMut(&ChatMessage) -> Result<usize, E>,
    mut measure: impl FnMut(&[ChatMessage]) -> Result<usize, E>,
) -> Result<Vec<ChatMessage>, E> {
    let total = measure(messages)?;
    // The non-system messages, in order: only these are dropped.
    let turns: Vec<usize> = (0..messages.len())
        .filter(|&i| messages[i].role != "system")
        .collect();
    if total <= budget || turns.len() <= 1 {
        return Ok(messages.to_vec());
    }
    let counts: Vec<usize> = messages.iter().map(&mut count).collect::<Result<_, _>>()?;
    let system_tokens: usize = (0..messages.len())
        .filter(|&i| messages[i].role == "system")
        .map(|i| counts[i])
        .sum();
    let systems = messages.len() - turns.len();
    // suffix[j]: the content tokens of turns[j..].
    let mut suffix = vec![0usize; turns.len() + 1];
    for j in (0..turns.len()).rev() {
        suffix[j] = suffix[j + 1] + counts[turns[j]];
    }
    // Where the kept turns may start: never at the first (the whole
    // conversation does not fit), never at an assistant turn but the newest.
    let starts: Vec<usize> = (1..turns.len())
        .filter(|&j| j + 1 == turns.len() || messages[turns[j]].role != "assistant")
        .collect();
    let kept = |start: usize| -> Vec<ChatMessage> {
        messages
            .iter()
            .enumerate()
            .filter(|(i, m)| m.role == "system" || *i >= turns[start])
            .map(|(_, m)| m.clone())
            .collect()
    };
    // The first start whose estimate fits; the newest message alone when none.
    let choose = |fixed: f64, per_message: f64, after: usize| -> usize {
        starts
            .iter()
            .copied()
            .filter(|&j| j > after)
            .find(|&j| {
                let n = (systems + turns.len() - j) as f64;
                let tokens = (system_tokens + suffix[j]) as f64;
                fixed + per_message * n + tokens <= budget as f64
            })
            .unwrap_or(turns.len() - 1)
    };
    let overhead = |measured: usize, start: usize| -> f64 {
        measured as f64 - (system_tokens + suffix[start]) as f64
    };
    let n_at = |start: usize| (systems + turns.len() - start) as f64;

    // First guess: all of the whole conversation's overhead is per message.
    // The part that is fixed is then spread over fewer messages than it
    // should be, so the guess errs on the long side, never dropping a turn
    // that would have fit; the measure shows whether it fits.
    let per_message = overhead(total, 0) / n_at(0);
    let first = choose(0.0, per_message, 0);
    let measured = measure(&kept(first))?;
    if measured <= budget || first + 1 == turns.len() {
        return Ok(kept(first));
    }
    // Two measures give the fixed part and the part per message.
    let per_message =
        (overhead(total, 0) - overhead(measured, first)) / (n_at(0) - n_at(first)).max(1.0);
    let fixed = overhead(measured, first) - per_message * n_at(first);
    let mut start = choose(fixed, per_message, first);
    loop {
        let turns_kept = kept(start);
        if measure(&turns_kept)? <= budget || start + 1 == turns.len() {
            return Ok(turns_kept);
        }
        start = starts
            .iter()
            .copied()
            .find(|&j| j > start)
            .unwrap_or(turns.len() - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Each content is counted once, however often it is asked for.
    #[test]
    fn a_message_is_counted_once() {
        let counts = TokenCounts::default();
        let mut calls = 0;
        for text in ["Hello there", "Hello there", "Bye", "Hello there"] {
            let n = counts
                .get(text, |t| {
                    calls += 1;
                    Ok::<_, ()>(t.len())
                })
                .unwrap();
            assert_eq!(n, text.len());
        }
        assert_eq!(calls, 2);
    }

    fn chat(turns: &[(&str, &str)]) -> Vec<ChatMessage> {
        turns
            .iter()
            .map(|(r, c)| ChatMessage::new(*r, *c))
            .collect()
    }

    /// One "token" per character, to make budgets easy to reason about.
    fn chars(m: &ChatMessage) -> Result<usize, ()> {
        Ok(m.content.len())
    }

    fn all_chars(m: &[ChatMessage]) -> Result<usize, ()> {
        Ok(m.iter().map(|m| m.content.len()).sum())
    }

    /// The rule as it was (remove the oldest turn, measure again): the
    /// reference the linear version must agree with.
    fn one_at_a_time(
        messages: &[ChatMessage],
        budget: usize,
        measure: impl Fn(&[ChatMessage]) -> usize,
    ) -> Vec<ChatMessage> {
        let mut kept = messages.to_vec();
        let first_turn = |m: &[ChatMessage]| m.iter().position(|m| m.role != "system");
        while measure(&kept) > budget {
            match first_turn(&kept) {
                Some(i) if i + 1 < kept.len() => {
                    kept.remove(i);
                    while let Some(j) = first_turn(&kept) {
                        if kept[j].role == "assistant" && j + 1 < kept.len() {
                            kept.remove(j);
                        } else {
                            break;
                        }
                    }
                }
                _ => break,
            }
        }
        kept
    }

    #[test]
    fn a_conversation_that_fits_is_kept_whole() {
        let c = chat(&[("system", "sys"), ("user", "aaaa"), ("assistant", "bbbb")]);
        assert_eq!(drop_old_turns(&c, 100, chars, all_chars).unwrap(), c);
    }

    #[test]
    fn the_oldest_turns_go_first_never_the_system_prompt_or_the_newest() {
        let c = chat(&[
            ("system", "sys"),
            ("user", "u1u1u1"),
            ("assistant", "a1a1a1"),
            ("user", "u2u2"),
            ("assistant", "a2a2"),
            ("user", "u3"),
        ]);
        // 3 + 4 + 4 + 2 = 13: the first exchange goes, user first, and the
        // assistant turn that would then lead goes with it.
        let kept = drop_old_turns(&c, 13, chars, all_chars).unwrap();
        assert_eq!(
            kept,
            chat(&[
                ("system", "sys"),
                ("user", "u2u2"),
                ("assistant", "a2a2"),
                ("user", "u3")
            ])
        );
        // Too small for anything but the system prompt and the newest message.
        let kept = drop_old_turns(&c, 1, chars, all_chars).unwrap();
        assert_eq!(kept, chat(&[("system", "sys"), ("user", "u3")]));
    }

    /// A 30-turn conversation is read about twice, not once per dropped
    /// turn: each message counted once, the whole measured once, the turns
    /// kept measured once. (The old rule measured the whole rest of the
    /// conversation after each dropped exchange: 240 messages tokenized here,
    /// against 64.)
    #[test]
    fn fitting_reads_each_message_a_bounded_number_of_times() {
        let messages: Vec<ChatMessage> = (0..30)
            .map(|i| {
                let role = if i % 2 == 0 { "user" } else { "assistant" };
                ChatMessage::new(role, "x".repeat(100 + i))
            })
            .collect();
        let (calls, read) = (Cell::new(0), Cell::new(0));
        let kept = drop_old_turns(
            &messages,
            500,
            |m| {
                calls.set(calls.get() + 1);
                read.set(read.get() + 1);
                chars(m)
            },
            |m| {
                calls.set(calls.get() + 1);
                read.set(read.get() + m.len());
                all_chars(m)
            },
        )
        .unwrap();
        assert_eq!(
            kept,
            one_at_a_time(&messages, 500, |m| all_chars(m).unwrap())
        );
        assert!(kept.len() < messages.len());
        assert!(calls.get() <= messages.len() + 2, "{} calls", calls.get());
        assert!(
            read.get() <= 2 * messages.len() + kept.len(),
            "{} messages read to fit {}",
            read.get(),
            messages.len()
        );
    }

    /// With a template's overhead (a fixed part, a part per message) the
    /// turns kept are the old rule's, on many shapes of conversation and
    /// budgets, with at most one correcting measure.
    #[test]
    fn the_turns_kept_are_the_old_rules() {
        let overheads = [(0, 0), (0, 5), (30, 0), (30, 5), (200, 1), (3, 40)];
        let mut seed = 7u64;
        let mut random = |n: u64| {
            // xorshift: a fixed sequence, no dependency.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..400 {
            let len = 1 + random(12) as usize;
            let mut messages = Vec::new();
            if random(3) == 0 {
                messages.push(ChatMessage::new("system", "s".repeat(random(50) as usize)));
            }
            for i in 0..len {
                // The newest is never a system message: the old rule could
                // then drop every turn, which this one does not.
                let role = match random(5) {
                    _ if i + 1 == len => "user",
                    0 => "assistant",
                    1 if i > 0 => "system",
                    _ if i % 2 == 1 => "assistant",
                    _ => "user",
                };
                messages.push(ChatMessage::new(role, "w".repeat(random(120) as usize)));
            }
            let (fixed, per) = overheads[round % overheads.len()];
            let measure =
                |m: &[ChatMessage]| fixed + m.iter().map(|m| per + m.content.len()).sum::<usize>();
            let budget = random(800) as usize;
            let measures = Cell::new(0);
            let kept = drop_old_turns(&messages, budget, chars, |m| {
                measures.set(measures.get() + 1);
                Ok::<_, ()>(measure(m))
            })
            .unwrap();
            let expected = one_at_a_time(&messages, budget, measure);
            assert_eq!(kept, expected, "round {round}, budget {budget}");
            assert!(
                measures.get() <= 3,
                "round {round}: {} measures",
                measures.get()
            );
        }
    }
}
