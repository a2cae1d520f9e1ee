//! Markdown for replies, safe by construction: the same code renders on the
//! server and, token by token, in the browser.
//!
//! Nothing in a reply can become markup of its own: raw HTML (block or inline)
//! is shown as text, links keep only web and mail addresses, and images become
//! links (a model's reply never makes the browser fetch anything by itself).

use pulldown_cmark::{html, CowStr, Event, Options, Parser, Tag, TagEnd};

/// The reply `markdown` as HTML that is safe to insert into the page.
pub fn to_html(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_GFM;
    let events = Parser::new_ext(markdown, options).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
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
        other => other,
    });
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, events);
    // Every `<pre>` and `<a href` here is the renderer's own (a reply's raw
    // HTML became text above): code blocks take keyboard focus, so that one
    // wider than the page can be scrolled without a mouse, and links open
    // nothing with a reference back to this page.
    out.replace("<pre>", "<pre tabindex=\"0\">")
        .replace("<a href=\"", "<a rel=\"noopener noreferrer\" href=\"")
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
        let out = to_html("Here:\n```py\nprint(1)");
        assert!(
            out.contains("<pre tabindex=\"0\"><code class=\"language-py\">print(1)"),
            "{out}"
        );
        assert!(to_html("see [the docs](http").contains("[the docs](http"));
    }
}
