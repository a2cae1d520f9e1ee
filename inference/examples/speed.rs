use inference::*;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(2);
    let e = LocalEngine::load(
        std::path::Path::new("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
        EngineConfig { threads },
    )
    .unwrap();
    let words: Vec<&str> = "the river runs past old stone houses and quiet gardens where people sit in the evening sun ".repeat(40).leak().split_whitespace().collect();
    let prompt = words[..200].join(" ");
    for _ in 0..2 {
        let mut g = e
            .generate(GenerationRequest {
                prompt: Prompt::Raw(prompt.clone()),
                params: Params {
                    temperature: 0.0,
                    max_new_tokens: 128,
                    ignore_eos: true,
                    repetition_penalty: 1.0,
                    ..Params::default()
                },
                drop_old_turns: false,
            })
            .unwrap();
        while let Some(ev) = g.blocking_next() {
            if let Event::Done { usage, .. } = ev {
                println!(
                    "pp {:.1} tok/s ({}), tg {:.1} tok/s",
                    usage.prompt_tokens as f64 / usage.prompt_seconds,
                    usage.prompt_tokens,
                    usage.completion_tokens as f64 / usage.decode_seconds
                );
            }
        }
    }
}
