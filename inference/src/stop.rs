//! Stop sequences in streamed text: the stop text is never emitted, and text
//! that might be the start of one is held back until it is clearly not.

pub struct StopFilter {
    stops: Vec<String>,
    pending: String,
}

impl StopFilter {
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops,
            pending: String::new(),
        }
    }

    /// Adds a piece of generated text. Returns the text that is safe to show,
    /// and whether a stop sequence was reached (the text after it is dropped).
    pub fn push(&mut self, piece: &str) -> (String, bool) {
        self.pending.push_str(piece);
        let earliest = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min();
        if let Some(at) = earliest {
            let out = self.pending[..at].to_owned();
            self.pending.clear();
            return (out, true);
        }
        let hold = self
            .stops
            .iter()
            .map(|s| held_prefix_len(&self.pending, s))
            .max()
            .unwrap_or(0);
        let cut = self.pending.len() - hold;
        let out = self.pending[..cut].to_owned();
        self.pending.drain(..cut);
        (out, false)
    }

    /// What is still held back, at the end of generation.
    pub fn finish(self) -> String {
        self.pending
    }
}

/// The length of the longest proper prefix of `stop` that `text` ends with.
/// Such a suffix starts where `stop` starts, on a character boundary.
fn held_prefix_len(text: &str, stop: &str) -> usize {
    stop.char_indices()
        .map(|(i, _)| i)
        .skip(1)
        .filter(|&k| text.ends_with(&stop[..k]))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut f = StopFilter::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for p in pieces {
            let (text, stopped) = f.push(p);
            out.push_str(&text);
            if stopped {
                return (out, true);
            }
        }
        out.push_str(&f.finish());
        (out, false)
    }

    #[test]
    fn stops_across_pieces_without_emitting_the_stop() {
        assert_eq!(
            run(&["\nUser:"], &["Hi", " there\n", "Us", "er: more"]),
            ("Hi there".into(), true)
        );
        assert_eq!(run(&["END"], &["aEN", "Dz"]), ("a".into(), true));
    }

    #[test]
    fn held_text_is_released_when_it_is_not_a_stop() {
        let mut f = StopFilter::new(vec!["STOP".into()]);
        assert_eq!(f.push("go ST"), ("go ".into(), false));
        assert_eq!(f.push("ART"), ("START".into(), false));
        assert_eq!(
            run(&["STOP"], &["ends with ST"]),
            ("ends with ST".into(), false)
        );
    }

    #[test]
    fn multibyte_stops_and_text() {
        assert_eq!(run(&["世界"], &["你好世", "界!"]), ("你好".into(), true));
        assert_eq!(run(&["👋!"], &["hi 👋", "?"]), ("hi 👋?".into(), false));
        assert_eq!(run(&[], &["plain"]), ("plain".into(), false));
    }
}
