//! What a reply's life tells the operator: the queue, the time to its first
//! token and between tokens, its tokens and how it ended, by model. Recorded
//! through the `metrics` facade, which the server exports at `/metrics`
//! (without an installed recorder, as in most tests, nothing is kept).
//!
//! Chat replies and inference API requests are timed by the same
//! [`ReplyTimer`], from the model's own events, so both count alike.

use std::time::Instant;

use inference::Event;

/// Times one generation from the moment it was handed to its model.
pub struct ReplyTimer {
    model: String,
    started: Instant,
    /// Whether the model has started on it (its first event that is not
    /// "waiting, N ahead").
    started_work: bool,
    last_token: Option<Instant>,
    ended: bool,
}

impl ReplyTimer {
    pub fn start(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            started: Instant::now(),
            started_work: false,
            last_token: None,
            ended: false,
        }
    }

    /// Takes note of one of the generation's events; its final event
    /// (done or failed) counts the reply and its tokens.
    pub fn observe(&mut self, event: &Event) {
        let now = Instant::now();
        if !self.started_work && !matches!(event, Event::Waiting { .. }) {
            self.started_work = true;
            metrics::histogram!("wick_queue_wait_seconds", "model" => self.model.clone())
                .record(now - self.started);
        }
        match event {
            Event::Token { .. } => {
                match self.last_token {
                    None => metrics::histogram!(
                        "wick_time_to_first_token_seconds", "model" => self.model.clone()
                    )
                    .record(now - self.started),
                    Some(previous) => metrics::histogram!(
                        "wick_time_per_output_token_seconds", "model" => self.model.clone()
                    )
                    .record(now - previous),
                }
                self.last_token = Some(now);
            }
            Event::Done { finish, usage } => {
                self.end(finish.as_str());
                metrics::counter!("wick_prompt_tokens_total", "model" => self.model.clone())
                    .increment(usage.prompt_tokens as u64);
                metrics::counter!("wick_completion_tokens_total", "model" => self.model.clone())
                    .increment(usage.completion_tokens as u64);
            }
            Event::Error(_) => self.end("error"),
            Event::Waiting { .. } | Event::Prefill { .. } => {}
        }
    }

    /// A generation that failed before it produced any event.
    pub fn failed(&mut self) {
        self.end("error");
    }

    fn end(&mut self, finish: &'static str) {
        if !std::mem::replace(&mut self.ended, true) {
            metrics::counter!(
                "wick_replies_total", "model" => self.model.clone(), "finish" => finish
            )
            .increment(1);
        }
    }
}

/// The replies running or waiting for `model` (its queue places taken).
pub fn queue_depth(model: &str, depth: usize) {
    metrics::gauge!("wick_replies_in_queue", "model" => model.to_owned()).set(depth as f64);
}
