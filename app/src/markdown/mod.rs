//! Markdown for replies, safe by construction: the same code renders on the
//! server and, token by token, in the browser.
//!
//! Nothing in a reply can become markup of its own: raw HTML (block or inline)
//! is shown as text, links keep only web and mail addresses, and images become
//! links (a model's reply never makes the browser fetch anything by itself).
//! The markup added here is written by this module from constants, with the
//! reply's text escaped: code blocks, highlighted by [`highlight`], with a
//! head holding their language and a Copy button; TeX math (`$…$`, `$$…$$`,
//! `\(…\)`, `\[…\]`) as MathML by [`math`].

mod highlight;
mod math;

use std::borrow::Cow;

use pulldown_cmark::{html, CodeBlockKind, CowStr, Event, Options, Parser, Tag, TagEnd};

/// The reply `markdown` as HTML that is safe to insert into the page.
pub fn to_html(markdown: &str) -> String {
    let source = tex_delimiters_to_dollars(markdown);
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_GFM
        | Options::ENABLE_MATH;
    let mut events = Vec::new();
    // The code block being read: its language and text.
    let mut code: Option<(Option<String>, String)> = None;
    for (event, range) in Parser::new_ext(&source, options).into_offset_iter() {
        if let Some((lang, text)) = &mut code {
            match event {
                Event::Text(t) => text.push_str(&t),
                Event::End(TagEnd::CodeBlock) => {
                    events.push(Event::Html(code_block(lang.as_deref(), text).into()));
                    code = None;
                }
                _ => {}
            }
            continue;
        }
        let event = match event {
            Event::Start(Tag::CodeBlock(kind)) => {
                let lang = match &kind {
                    CodeBlockKind::Fenced(info) => fence_language(info),
                    CodeBlockKind::Indented => None,
                };
                code = Some((lang, String::new()));
                continue;
            }
            Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
            // `$5-$10`: a closing `$` right before a digit is a price, not math
            // (pandoc's rule; pulldown-cmark doesn't have it).
            Event::InlineMath(tex)
                if source[range.end..].starts_with(|c: char| c.is_ascii_digit()) =>
            {
                Event::Text(format!("${tex}$").into())
            }
            Event::InlineMath(tex) => Event::InlineHtml(math::to_mathml(&tex, false).into()),
            Event::DisplayMath(tex) => Event::InlineHtml(math::to_mathml(&tex, true).into()),
            // Images become links to the picture: nothing is fetched by itself.
            Event::Start(
                Tag::Link {
                    link_type,
                    dest_url,
                    title,
                    id,
                }
                | Tag::Image {
                    link_type,
                    dest_url,
                    title,
                    id,
                },
            ) => Event::Start(Tag::Link {
                link_type,
                dest_url: safe_url(dest_url),
                title,
                id,
            }),
            Event::End(TagEnd::Image) => Event::End(TagEnd::Link),
            // A task list's box is read out by screen readers: it says what it is.
            Event::TaskListMarker(done) => Event::InlineHtml(
                if done {
                    r#"<input type="checkbox" disabled checked aria-label="Done"> "#
                } else {
                    r#"<input type="checkbox" disabled aria-label="Not done"> "#
                }
                .into(),
            ),
            other => other,
        };
        events.push(event);
    }
    if let Some((lang, text)) = code {
        events.push(Event::Html(code_block(lang.as_deref(), &text).into()));
    }
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, events.into_iter());
    // Every `<a href` here is the renderer's own (a reply's raw HTML became
    // text above): links open nothing with a reference back to this page.
    out.replace("<a href=\"", "<a rel=\"noopener noreferrer\" href=\"")
}

/// The language named by a fence's info string (` ```rust ignore`), when it
/// is a plain name; anything else is dropped.
fn fence_language(info: &str) -> Option<String> {
    let name = info.split([' ', '\t', ',', '{']).next()?;
    let plain = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_+#.-".contains(&c));
    plain.then(|| name.to_owned())
}

/// A code block: a head with its language and a Copy button (the page copies
/// the `textContent` of the `<code>`), then the highlighted code. `<pre>`
/// takes keyboard focus, so that a block wider than the page scrolls without
/// a mouse.
fn code_block(lang: Option<&str>, code: &str) -> String {
    let mut out = String::with_capacity(code.len() * 2 + 200);
    out.push_str("<div class=\"code-block\"><div class=\"code-head\"><span class=\"code-lang\">");
    if let Some(lang) = lang {
        escape_into(lang, &mut out);
    }
    out.push_str("</span><button type=\"button\" class=\"copy-code\">Copy</button></div><pre tabindex=\"0\"><code");
    if let Some(lang) = lang {
        out.push_str(" class=\"language-");
        escape_into(lang, &mut out);
        out.push('"');
    }
    out.push('>');
    highlight::highlight(lang.unwrap_or(""), code, &mut out);
    out.push_str("</code></pre></div>\n");
    out
}

/// Appends `text` to `out` with `&`, `<`, `>` and `"` escaped: safe as text
/// and inside a quoted attribute.
pub(crate) fn escape_into(text: &str, out: &mut String) {
    let mut from = 0;
    for (i, c) in text.bytes().enumerate() {
        let escaped = match c {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            _ => continue,
        };
        out.push_str(&text[from..i]);
        out.push_str(escaped);
        from = i + 1;
    }
    out.push_str(&text[from..]);
}

/// `\(…\)` as `$…$` and `\[…\]` as `$$…$$`, outside code, so that the parser
/// finds all math the same way. Fenced code blocks and code spans are left as
/// they are; so is an opening delimiter not closed yet (mid-stream), or TeX
/// holding a `$`.
fn tex_delimiters_to_dollars(markdown: &str) -> Cow<'_, str> {
    if !markdown.contains("\\(") && !markdown.contains("\\[") {
        return Cow::Borrowed(markdown);
    }
    let mut out = String::with_capacity(markdown.len());
    // The fence (character and length) of the code block we are in.
    let mut fence: Option<(u8, usize)> = None;
    let mut prose = String::new();
    for line in markdown.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let run = |c: u8| trimmed.bytes().take_while(|&b| b == c).count();
        match fence {
            Some((c, len)) => {
                out.push_str(line);
                if run(c) >= len && trimmed.trim_end().bytes().all(|b| b == c) {
                    fence = None;
                }
            }
            None => {
                let opening = [b'`', b'~']
                    .into_iter()
                    .map(|c| (c, run(c)))
                    .find(|&(_, n)| n >= 3);
                if let Some(opening) = opening {
                    convert_prose(&prose, &mut out);
                    prose.clear();
                    out.push_str(line);
                    fence = Some(opening);
                } else {
                    prose.push_str(line);
                }
            }
        }
    }
    convert_prose(&prose, &mut out);
    Cow::Owned(out)
}

/// [`tex_delimiters_to_dollars`] for text without fenced code blocks.
fn convert_prose(text: &str, out: &mut String) {
    let b = text.as_bytes();
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        match b[i] {
            b'`' => {
                // A code span: to the next run of as many backticks.
                let n = b[i..].iter().take_while(|&&c| c == b'`').count();
                let ticks = &text[i..i + n];
                let mut j = i + n;
                i = loop {
                    match text[j..].find(ticks) {
                        Some(at) => {
                            let end = j + at + n;
                            if b.get(end) == Some(&b'`') {
                                // A longer run: not the closing one.
                                j = end + b[end..].iter().take_while(|&&c| c == b'`').count();
                            } else {
                                break end;
                            }
                        }
                        None => break i + n,
                    }
                };
            }
            b'\\' if matches!(b.get(i + 1), Some(b'(' | b'[')) => {
                let display = b[i + 1] == b'[';
                let close = if display { b']' } else { b')' };
                match closing_delimiter(text, i + 2, close) {
                    Some(end) => {
                        let tex = text[i + 2..end].trim();
                        if tex.is_empty() || tex.contains('$') {
                            i += 2;
                            continue;
                        }
                        out.push_str(&text[copied..i]);
                        out.push_str(if display { "$$" } else { "$" });
                        out.push_str(tex);
                        out.push_str(if display { "$$" } else { "$" });
                        i = end + 2;
                        copied = i;
                    }
                    None => i += 2,
                }
            }
            // `\\`, `\$`…: an escaped character, skipped whole.
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    out.push_str(&text[copied..]);
}

/// Where the `\)` (or `\]`) closing TeX that starts at `from` is: skipping
/// `\\` and other commands, and not past a blank line (a new paragraph).
fn closing_delimiter(text: &str, from: usize, close: u8) -> Option<usize> {
    let b = text.as_bytes();
    let mut j = from;
    while j < b.len() {
        match b[j] {
            b'\\' if b.get(j + 1) == Some(&close) => return Some(j),
            b'\\' => j += 2,
            b'\n'
                if text[j + 1..]
                    .trim_start_matches([' ', '\t'])
                    .starts_with('\n') =>
            {
                return None
            }
            _ => j += 1,
        }
    }
    None
}

/// `url` when it is a web or mail address or a relative one, else `#`.
/// Browsers ignore tabs and newlines inside a URL (`java\tscript:` runs), so
/// the check looks at the address without them.
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let squeezed: String = url
        .chars()
        .filter(|c| !c.is_ascii_whitespace() && !c.is_control())
        .collect::<String>()
        .to_ascii_lowercase();
    let allowed = ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| squeezed.starts_with(scheme))
        || !squeezed.contains(':');
    if allowed {
        url
    } else {
        CowStr::Borrowed("#")
    }
}

#[cfg(test)]
mod tests {
    use super::to_html;

    /// Code blocks take keyboard focus (a wide one scrolls by keyboard); a
    /// `<pre>` typed in a reply stays text.
    #[test]
    fn code_blocks_are_focusable_and_typed_pre_is_text() {
        let out = to_html("```rust\nfn main() {}\n```\n\n<pre>x</pre>");
        assert!(
            out.contains(r#"<pre tabindex="0"><code class="language-rust">"#),
            "{out}"
        );
        assert_eq!(out.matches("<pre").count(), 1, "{out}");
    }

    #[test]
    fn html_in_a_reply_is_shown_as_text() {
        let out = to_html("<script>alert(1)</script>\n\nhi <img src=x onerror=alert(2)> there");
        assert!(!out.contains("<script"), "{out}");
        assert!(!out.contains("<img"), "{out}");
        assert!(
            out.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{out}"
        );
        assert!(out.contains("&lt;img src=x onerror=alert(2)&gt;"), "{out}");
    }

    #[test]
    fn only_web_and_mail_links_keep_their_address() {
        let out = to_html(
            "[a](https://example.com) [b](javascript:alert(1)) [c](<java\tscript:alert(1)>) \
             [d](mailto:x@example.com) [e](/c/1) [f](data:text/html,<b>x</b>)",
        );
        assert!(
            out.contains(r#"<a rel="noopener noreferrer" href="https://example.com">a</a>"#),
            "{out}"
        );
        assert!(
            out.contains(r##"<a rel="noopener noreferrer" href="#">b</a>"##),
            "{out}"
        );
        assert!(
            out.contains(r##"<a rel="noopener noreferrer" href="#">c</a>"##),
            "{out}"
        );
        assert!(
            out.contains(r#"<a rel="noopener noreferrer" href="mailto:x@example.com">d</a>"#),
            "{out}"
        );
        assert!(
            out.contains(r#"<a rel="noopener noreferrer" href="/c/1">e</a>"#),
            "{out}"
        );
        assert!(
            out.contains(r##"<a rel="noopener noreferrer" href="#">f</a>"##),
            "{out}"
        );
        assert!(!out.contains("javascript"), "{out}");
    }

    #[test]
    fn task_list_boxes_say_what_they_are() {
        let out = to_html("- [x] done\n- [ ] to do");
        assert!(
            out.contains(r#"<input type="checkbox" disabled checked aria-label="Done">"#),
            "{out}"
        );
        assert!(
            out.contains(r#"<input type="checkbox" disabled aria-label="Not done">"#),
            "{out}"
        );
    }

    #[test]
    fn images_become_links() {
        let out = to_html("![a cat](https://example.com/cat.png)");
        assert!(!out.contains("<img"), "{out}");
        assert!(
            out.contains(
                r#"<a rel="noopener noreferrer" href="https://example.com/cat.png">a cat</a>"#
            ),
            "{out}"
        );
    }

    #[test]
    fn code_blocks_are_code_and_escaped() {
        let out = to_html("```rust\nfn main() { println!(\"<b>\"); }\n```\n\nuse `x < y`");
        assert!(
            out.contains(r#"<pre tabindex="0"><code class="language-rust">"#),
            "{out}"
        );
        assert!(out.contains("&lt;b&gt;"), "{out}");
        assert!(out.contains("<code>x &lt; y</code>"), "{out}");
    }

    #[test]
    fn an_unfinished_reply_renders() {
        // Mid-stream text: an open code fence and a half link are still fine.
        // (The code is highlighted: its text is checked without the spans.)
        let out = to_html("Here:\n```py\nprint(1)");
        assert!(
            out.contains("<pre tabindex=\"0\"><code class=\"language-py\">"),
            "{out}"
        );
        assert_eq!(code_texts(&out), ["print(1)"], "{out}");
        let out = to_html("Here:\n```rust\nfn main() {\n    let s = \"unterminated <b>");
        assert_eq!(
            code_texts(&out),
            ["fn main() {\n    let s = \"unterminated <b>"],
            "{out}"
        );
        assert!(out.ends_with("</code></pre></div>\n"), "{out}");
        assert!(to_html("see [the docs](http").contains("[the docs](http"));
        // An opening `\(` or `\[` not closed yet is left alone.
        assert!(!to_html("so \\(x + ").contains("<math"));
        assert!(!to_html("so \\[x + \n").contains("<math"));
    }

    /// The texts of the `<code>` elements of code blocks in `html`, as the
    /// browser's `textContent` would give them (tags dropped, entities
    /// decoded).
    fn code_texts(html: &str) -> Vec<String> {
        html.split("<pre tabindex=\"0\"><code")
            .skip(1)
            .map(|block| {
                let inner =
                    &block[block.find('>').unwrap() + 1..block.find("</code></pre>").unwrap()];
                let mut text = String::new();
                let mut rest = inner;
                while let Some(n) = rest.find('<') {
                    text.push_str(&rest[..n]);
                    rest = &rest[n + rest[n..].find('>').unwrap() + 1..];
                }
                text.push_str(rest);
                text.replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&quot;", "\"")
                    .replace("&amp;", "&")
            })
            .collect()
    }

    #[test]
    fn code_blocks_have_a_head_with_language_and_copy_button() {
        let out = to_html("```rust\nfn main() {}\n```");
        assert_eq!(
            out,
            "<div class=\"code-block\"><div class=\"code-head\"><span class=\"code-lang\">rust</span>\
             <button type=\"button\" class=\"copy-code\">Copy</button></div>\
             <pre tabindex=\"0\"><code class=\"language-rust\"><span class=\"hl-keyword\">fn</span> \
             <span class=\"hl-function\">main</span>() {}\n</code></pre></div>\n"
        );
        // No language (fenced or indented): an empty label, no class.
        for md in ["```\n<x>\n```", "para\n\n    <x>\n"] {
            let out = to_html(md);
            assert!(
                out.contains(
                    "<span class=\"code-lang\"></span><button type=\"button\" class=\"copy-code\">Copy</button></div><pre tabindex=\"0\"><code>&lt;x&gt;\n</code></pre>"
                ),
                "{out}"
            );
        }
        // A language that isn't a plain name is dropped.
        for md in ["```<script>\nx\n```", "```rust\"onclick=\"x\nx\n```"] {
            let out = to_html(md);
            assert!(out.contains("<span class=\"code-lang\"></span>"), "{out}");
            assert!(out.contains("<code>x\n</code>"), "{out}");
        }
        // `c++` and `c#` are names; the rest of the info string is not.
        let out = to_html("```c++ {.numberLines}\nint x;\n```");
        assert!(
            out.contains("<span class=\"code-lang\">c++</span>"),
            "{out}"
        );
        assert!(out.contains("<code class=\"language-c++\">"), "{out}");
    }

    /// Highlighted code keeps its text exactly: what the Copy button copies is
    /// the code of the reply.
    #[test]
    fn highlighted_code_keeps_its_text() {
        let rust = "use std::fmt;\n\n#[derive(Debug)]\nstruct A<'a>(&'a str);\n\nfn main() {\n    // a < b && c > d\n    let x: u32 = 42;\n    println!(\"{x} & \\\"q\\\"\");\n}\n";
        let python = "import os\n\ndef f(x: int) -> str:\n    \"\"\"Doc & <b>.\"\"\"\n    return f\"{x}\" if x > 0 else 'none'  # c\n";
        let out = to_html(&format!("```rust\n{rust}```\n\n```python\n{python}```\n"));
        assert_eq!(code_texts(&out), [rust, python], "{out}");
        for span in [
            "hl-keyword",
            "hl-string",
            "hl-comment",
            "hl-number",
            "hl-type",
            "hl-function",
            "hl-meta",
        ] {
            assert!(
                out.contains(&format!("<span class=\"{span}\">")),
                "{span}: {out}"
            );
        }
        assert!(
            out.contains("<span class=\"hl-keyword\">def</span>"),
            "{out}"
        );
        assert!(
            out.contains("<span class=\"hl-comment\"># c</span>"),
            "{out}"
        );
        assert!(!out.contains("<b>"), "{out}");
    }

    #[test]
    fn math_becomes_mathml() {
        let out = to_html("Inline $x^2 + 1$ and display:\n\n$$\\frac{a}{b}$$");
        assert!(
            out.contains(
                "<math><mrow><msup><mi>x</mi><mn>2</mn></msup><mo>+</mo><mn>1</mn></mrow></math>"
            ),
            "{out}"
        );
        assert!(
            out.contains("<math display=\"block\"><mfrac><mi>a</mi><mi>b</mi></mfrac></math>"),
            "{out}"
        );
        let out = to_html("Also \\(x_1\\) and\n\\[\n\\sum_{i=1}^n i\n\\]\n");
        assert!(
            out.contains("<math><msub><mi>x</mi><mn>1</mn></msub></math>"),
            "{out}"
        );
        assert!(
            out.contains("<math display=\"block\"><mrow><munderover><mo>∑</mo>"),
            "{out}"
        );
        assert!(!out.contains("\\("), "{out}");
        // In a list and a table too.
        let out = to_html("- $a$\n\n| x |\n|---|\n| \\(b\\) |\n");
        assert!(out.contains("<li><math><mi>a</mi></math></li>"), "{out}");
        assert!(out.contains("<td><math><mi>b</mi></math></td>"), "{out}");
    }

    /// Prices in prose are not math.
    #[test]
    fn dollar_amounts_stay_text() {
        for md in [
            "It costs $5 and $10.",
            "Between $5 and $10, or $20.",
            "From $5-$10 a month",
            "$5/$10",
            "Pay $ 5 now, $ 6 later",
        ] {
            let out = to_html(md);
            assert!(!out.contains("<math"), "{md}: {out}");
            assert!(out.contains("$5") || out.contains("$ 5"), "{md}: {out}");
        }
    }

    #[test]
    fn math_inside_code_stays_code() {
        let out = to_html(
            "`$x$` and `\\(y\\)` and ``a `\\(z\\)` b``\n\n```\n$$x$$ \\[y\\]\n```\n\n~~~tex\n\\(x\\)\n~~~\n",
        );
        assert!(!out.contains("<math"), "{out}");
        assert!(out.contains("<code>$x$</code>"), "{out}");
        assert!(out.contains("<code>\\(y\\)</code>"), "{out}");
        assert!(out.contains("<code>a `\\(z\\)` b</code>"), "{out}");
        assert_eq!(code_texts(&out), ["$$x$$ \\[y\\]\n", "\\(x\\)\n"], "{out}");
    }

    /// Nothing in TeX becomes markup of its own, whatever it tries.
    #[test]
    fn math_cannot_inject_markup() {
        for md in [
            "$\\text{<script>alert(1)</script>}$",
            "$\\href{javascript:alert(1)}{x}$",
            "$$\\url{javascript:alert(1)}$$",
            "\\(\\operatorname{<img src=x onerror=alert(1)>}\\)",
            "$\\style{color:red}{x}$ $\\class{a}{b}$ $\\htmlId{a}{b}$",
            "$a<b$ and $\\mathrm{\"><svg onload=alert(1)>}$",
        ] {
            let out = to_html(md);
            // Tags typed in the TeX are text (`&lt;img`), never elements.
            for bad in ["<script", "<img", "<svg", "href=", "style=\"color"] {
                assert!(!out.contains(bad), "{md}: {bad} in {out}");
            }
        }
        let out = to_html("$\\text{<script>}$");
        assert!(out.contains("<mtext>&lt;script&gt;</mtext>"), "{out}");
    }

    /// Every prefix of a reply (what the browser renders as tokens arrive)
    /// renders without panicking, and math, once closed, stays math.
    #[test]
    fn every_prefix_of_a_reply_renders() {
        let reply = "# Title\n\nSome $x^2$ and \\(\\frac{a}{b}\\), costs $5.\n\n\\[\n\\sum_i \\alpha_i\n\\]\n\n\
                     - item `code \\(x\\)`\n\n```rust\nfn f<'a>(s: &'a str) -> &'a str { \"é\" }\n```\n\n\
                     | a | $b$ |\n|---|---|\n| 1 | 2 |\n\n> <think> é $$\\text{<b>}$$";
        for (end, _) in reply.char_indices() {
            let out = to_html(&reply[..end]);
            assert!(!out.contains("<b>") && !out.contains("<think>"), "{out}");
        }
    }

    #[test]
    fn a_failed_formula_shows_as_source() {
        let out = to_html("see $\\frac{a}$ and $\\href{javascript:alert(1)}{x}$");
        assert!(
            out.contains("<code class=\"math-error\">\\frac{a}</code>"),
            "{out}"
        );
        assert!(
            out.contains("<code class=\"math-error\">\\href{javascript:alert(1)}{x}</code>"),
            "{out}"
        );
    }
}
