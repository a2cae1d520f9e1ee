//! The Hugging Face Inference API / TGI wire format: `{inputs, parameters}` in,
//! a stream of `{token, generated_text, details}` events out.

use serde_json::{json, Value};

use super::{wire, Chunk, RemoteConfig};
use crate::backend::Failure;
use crate::request::Params;
use crate::FinishReason;

/// The request body. `stream: true` is for the Inference API's
/// `/models/{id}`; `/generate_stream` streams anyway.
pub(super) fn body(inputs: &str, params: &Params, with_stream_flag: bool) -> Value {
    let mut parameters = json!({
        "max_new_tokens": params.max_new_tokens,
        "details": true,
        "return_full_text": false,
    });
    // TGI refuses temperature 0 and top_p 1: greedy is `do_sample: false`.
    if params.temperature > 0.0 {
        parameters["do_sample"] = json!(true);
        parameters["temperature"] = json!(params.temperature);
        parameters["seed"] = json!(params.seed);
        if let Some(top_p) = params.top_p.filter(|p| *p < 1.0) {
            parameters["top_p"] = json!(top_p);
        }
        if let Some(top_k) = params.top_k {
            parameters["top_k"] = json!(top_k);
        }
    } else {
        parameters["do_sample"] = json!(false);
    }
    if params.repetition_penalty != 1.0 {
        parameters["repetition_penalty"] = json!(params.repetition_penalty);
    }
    if !params.stop.is_empty() {
        parameters["stop"] = json!(params.stop);
    }
    let mut body = json!({ "inputs": inputs, "parameters": parameters });
    if with_stream_flag {
        body["stream"] = json!(true);
    }
    body
}

fn finish(details: Option<&Value>) -> Option<FinishReason> {
    Some(match details?.get("finish_reason")?.as_str()? {
        "length" => FinishReason::Length,
        "stop_sequence" => FinishReason::Stop,
        _ => FinishReason::Eos,
    })
}

fn generated_tokens(details: Option<&Value>) -> Option<usize> {
    details?
        .get("generated_tokens")?
        .as_u64()
        .map(|n| n as usize)
}

/// One `data:` payload. Special tokens (the end-of-turn token, say) are not
/// text; the event that carries `generated_text` is the last.
pub(super) fn parse_event(data: &str, config: &RemoteConfig) -> Result<Chunk, Failure> {
    let value = wire::event_json(data, config)?;
    let token = value.get("token");
    let special = token
        .and_then(|t| t.get("special"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut chunk = Chunk {
        token_id: token
            .and_then(|t| t.get("id"))
            .and_then(Value::as_u64)
            .map(|id| id as u32),
        ..Chunk::default()
    };
    if !special {
        chunk.text = token
            .and_then(|t| t.get("text"))
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    if value.get("generated_text").is_some_and(|g| !g.is_null()) {
        let details = value.get("details").filter(|d| !d.is_null());
        chunk.done = true;
        chunk.finish = finish(details).or(Some(FinishReason::Eos));
        chunk.usage = generated_tokens(details).map(|n| (0, n));
    }
    Ok(chunk)
}

/// A whole answer: `[{"generated_text"}]` or `{"generated_text", "details"}`.
pub(super) fn parse_whole(value: &Value) -> Chunk {
    let item = value.get(0).unwrap_or(value);
    let details = item.get("details").filter(|d| !d.is_null());
    Chunk {
        text: item
            .get("generated_text")
            .and_then(Value::as_str)
            .map(str::to_owned),
        reasoning: None,
        token_id: None,
        finish: finish(details),
        usage: generated_tokens(details).map(|n| (0, n)),
        done: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_events_skip_special_tokens_and_end_at_generated_text() {
        let s = &RemoteConfig::new("S");
        let c = parse_event(r#"{"index":1,"token":{"id":504,"text":" Hi","logprob":-0.1,"special":false},"generated_text":null,"details":null}"#, s).unwrap();
        assert_eq!(
            (c.text.as_deref(), c.token_id, c.done),
            (Some(" Hi"), Some(504), false)
        );
        let c = parse_event(r#"{"index":2,"token":{"id":2,"text":"<|im_end|>","logprob":0.0,"special":true},"generated_text":" Hi","details":{"finish_reason":"eos_token","generated_tokens":2,"seed":null}}"#, s).unwrap();
        assert_eq!(
            (c.text, c.done, c.finish, c.usage),
            (None, true, Some(FinishReason::Eos), Some((0, 2)))
        );
        let c = parse_event(r#"{"token":{"id":5,"text":"!","special":false},"generated_text":"Hi!","details":{"finish_reason":"length","generated_tokens":3}}"#, s).unwrap();
        assert_eq!(
            (c.text.as_deref(), c.finish),
            (Some("!"), Some(FinishReason::Length))
        );
        let e = parse_event(r#"{"error":"Request failed during generation: Server error: CUDA OOM","error_type":"generation"}"#, s).unwrap_err();
        assert!(
            e.message.contains("reported an error") && !e.message.contains("CUDA"),
            "{}",
            e.message
        );
    }

    #[test]
    fn whole_answers_in_both_shapes() {
        let v: Value = serde_json::from_str(r#"[{"generated_text":"Hello"}]"#).unwrap();
        assert_eq!(parse_whole(&v).text.as_deref(), Some("Hello"));
        let v: Value = serde_json::from_str(
            r#"{"generated_text":"Yo","details":{"finish_reason":"length","generated_tokens":1}}"#,
        )
        .unwrap();
        let c = parse_whole(&v);
        assert_eq!(
            (c.text.as_deref(), c.finish),
            (Some("Yo"), Some(FinishReason::Length))
        );
    }

    #[test]
    fn greedy_requests_do_not_sample() {
        let greedy = Params {
            temperature: 0.0,
            ..Params::default()
        };
        let b = body("<s>hi", &greedy, false);
        assert_eq!(b["parameters"]["do_sample"], false);
        assert!(b["parameters"].get("temperature").is_none());
        assert!(b.get("stream").is_none());
        let sampled = Params {
            temperature: 0.8,
            top_p: Some(1.0),
            ..Params::default()
        };
        let b = body("hi", &sampled, true);
        assert_eq!(b["parameters"]["temperature"], 0.8);
        assert!(
            b["parameters"].get("top_p").is_none(),
            "TGI refuses top_p = 1"
        );
        assert_eq!(b["stream"], true);
        assert_eq!(b["parameters"]["return_full_text"], false);
    }
}
