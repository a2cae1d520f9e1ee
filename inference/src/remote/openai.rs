//! The OpenAI chat-completions wire format, as HF's router, TGI, vLLM,
//! llama.cpp and Ollama speak it.
//!
//! Reasoning text (`reasoning_content`, `reasoning`) that some servers stream
//! before the answer is passed on inside `<think>…</think>`, the way local
//! reasoning models write it: the chat shows it in its own collapsed section
//! and never sends it back to the model.

use serde_json::{json, Value};

use super::{wire, Chunk, RemoteConfig};
use crate::backend::Failure;
use crate::request::{ChatMessage, Params};
use crate::FinishReason;

/// The request body: a streamed chat completion with a usage report.
/// `continue_final`: the last message is an assistant's reply to extend in
/// place (vLLM's and SGLang's `continue_final_message`).
pub(super) fn body(
    model: &str,
    messages: &[ChatMessage],
    params: &Params,
    continue_final: bool,
) -> Value {
    let messages: Vec<Value> = messages
        .iter()
        .map(|m| json!({ "role": m.role, "content": m.content }))
        .collect();
    let mut body = json!({
        "model": model,
        "messages": messages,
        "stream": true,
        "stream_options": { "include_usage": true },
        "max_tokens": params.max_new_tokens,
        "temperature": params.temperature,
    });
    if let Some(top_p) = params.top_p {
        body["top_p"] = json!(top_p);
    }
    if !params.stop.is_empty() {
        body["stop"] = json!(params.stop);
    }
    if params.temperature > 0.0 {
        body["seed"] = json!(params.seed);
    }
    if continue_final {
        body["continue_final_message"] = json!(true);
        body["add_generation_prompt"] = json!(false);
    }
    body
}

/// The reasoning text of a delta or a message, under either name servers use.
fn reasoning(value: Option<&Value>) -> Option<String> {
    let value = value?;
    ["reasoning_content", "reasoning"]
        .iter()
        .find_map(|k| value.get(*k).and_then(Value::as_str))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

fn finish(reason: &str) -> FinishReason {
    match reason {
        "length" => FinishReason::Length,
        // "stop" covers both the end of the turn and a stop sequence; the
        // server does not say which.
        _ => FinishReason::Eos,
    }
}

fn usage(value: &Value) -> Option<(usize, usize)> {
    let usage = value.get("usage")?;
    let count = |k: &str| usage.get(k).and_then(Value::as_u64).map(|n| n as usize);
    Some((count("prompt_tokens")?, count("completion_tokens")?))
}

/// One `data:` payload of the stream.
pub(super) fn parse_chunk(data: &str, config: &RemoteConfig) -> Result<Chunk, Failure> {
    let data = data.trim();
    if data == "[DONE]" {
        return Ok(Chunk {
            done: true,
            ..Chunk::default()
        });
    }
    let value = wire::event_json(data, config)?;
    let mut chunk = Chunk {
        usage: usage(&value),
        ..Chunk::default()
    };
    // `choices` is empty (or null) in the usage chunk.
    if let Some(choice) = value
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
    {
        chunk.text = choice
            .pointer("/delta/content")
            .and_then(Value::as_str)
            .map(str::to_owned);
        chunk.reasoning = reasoning(choice.get("delta"));
        chunk.finish = choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(finish);
    }
    Ok(chunk)
}

/// A whole (non-streamed) chat completion.
pub(super) fn parse_whole(value: &Value) -> Chunk {
    let choice = value.pointer("/choices/0");
    Chunk {
        text: choice
            .and_then(|c| c.pointer("/message/content"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        reasoning: reasoning(choice.and_then(|c| c.get("message"))),
        token_id: None,
        finish: choice
            .and_then(|c| c.get("finish_reason"))
            .and_then(Value::as_str)
            .map(finish),
        usage: usage(value),
        done: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(data: &str) -> Chunk {
        parse_chunk(data, &RemoteConfig::new("http://s")).unwrap()
    }

    #[test]
    fn chunks_of_every_kind() {
        let c = parse(
            r#"{"id":"1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
        );
        assert_eq!(
            (c.text.as_deref(), c.finish, c.done),
            (Some(""), None, false)
        );
        let c =
            parse(r#"{"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#);
        assert_eq!(c.text.as_deref(), Some("Hel"));
        let c = parse(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#);
        assert_eq!(c.finish, Some(FinishReason::Length));
        // Usage chunk: empty, null or missing choices.
        for data in [
            r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}"#,
            r#"{"choices":null,"usage":{"prompt_tokens":9,"completion_tokens":3}}"#,
            r#"{"usage":{"prompt_tokens":9,"completion_tokens":3}}"#,
        ] {
            let c = parse(data);
            assert_eq!((c.text, c.usage), (None, Some((9, 3))), "{data}");
        }
        assert!(parse("[DONE]").done);
        assert!(parse(" [DONE] ").done);
    }

    #[test]
    fn reasoning_is_read_apart_from_the_answer() {
        let c = parse(
            r#"{"choices":[{"index":0,"delta":{"reasoning_content":"Let me think","content":null}}]}"#,
        );
        assert_eq!(c.text, None);
        assert_eq!(c.reasoning.as_deref(), Some("Let me think"));
        let c = parse(r#"{"choices":[{"index":0,"delta":{"reasoning":"hmm"}}]}"#);
        assert_eq!(c.text, None);
        assert_eq!(c.reasoning.as_deref(), Some("hmm"));
    }

    #[test]
    fn continuing_asks_the_server_to_extend_the_last_message() {
        let messages = [
            ChatMessage::new("user", "hi"),
            ChatMessage::new("assistant", "Hel"),
        ];
        let b = body("m", &messages, &Params::default(), true);
        assert_eq!(b["continue_final_message"], json!(true));
        assert_eq!(b["add_generation_prompt"], json!(false));
        let b = body("m", &messages[..1], &Params::default(), false);
        assert!(b.get("continue_final_message").is_none());
    }

    #[test]
    fn errors_in_the_stream_nested_or_flat() {
        let s = RemoteConfig::new("http://s");
        let e = parse_chunk(
            r#"{"error":{"message":"Input validation error: too long","type":"validation"}}"#,
            &s,
        )
        .unwrap_err();
        assert!(
            e.message.contains("reported an error") && !e.message.contains("too long"),
            "{}",
            e.message
        );
        let e = parse_chunk(r#"{"object":"error","message":"The engine died","type":"InternalServerError","param":null,"code":500}"#, &s).unwrap_err();
        assert!(!e.message.contains("engine"), "{}", e.message);
        let e = parse_chunk("not json", &s).unwrap_err();
        assert!(e.message.contains("could not read"), "{}", e.message);
    }

    #[test]
    fn the_body_asks_for_a_stream_with_usage() {
        let params = Params {
            temperature: 0.0,
            stop: vec!["\n\n".into()],
            max_new_tokens: 42,
            ..Params::default()
        };
        let body = body("m", &[ChatMessage::new("user", "hi")], &params, false);
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["max_tokens"], 42);
        assert_eq!(body["messages"][0]["content"], "hi");
        assert_eq!(body["stop"][0], "\n\n");
        assert!(body.get("seed").is_none(), "greedy needs no seed");
    }
}
