//! Syntax highlighting of fenced code blocks: class-based spans
//! (`<span class="hl-keyword">` …), coloured by the stylesheet.
//!
//! Why a small tokenizer of our own rather than a crate: this runs in the
//! browser's wasm on every streamed token, and the page is already over its
//! weight budget. Measured for wasm32 at `opt-level = "z"` with LTO (gzip -9,
//! over a baseline that already holds the standard library's formatting):
//! `hl-lite` 0.11 adds about 14.5 KB and lacks C, Go, Java and SQL;
//! `oxidoc-highlight` 0.1 adds about 24.5 KB (it also carries PHP, Markdown
//! and its own formats); tree-sitter or syntect based highlighters add
//! megabytes. This one (13 languages) adds about 8 KB measured the same way: a
//! single forward pass over the bytes with keyword lists per language, at the
//! fidelity of highlight.js: lexical, not a parse.
//!
//! Guarantees: every byte of the code comes out exactly once, HTML-escaped, in
//! order (so the `textContent` of the block is the code); no span is cut in
//! the middle of a character; an unterminated string or comment (a reply still
//! streaming) runs to the end of the line or of the code without panicking.

use super::escape_into;

/// Which scanner a language uses.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Programming and data languages: keywords, strings, comments, numbers.
    Code,
    /// HTML and XML: tags, attributes, comments.
    Markup,
}

// Flags of a `Lang`.
/// `#` starts a comment only at the start of a word (`$#`, `a#b` are not).
const HASH_WORD: u16 = 1;
/// Keywords match whatever their case (SQL).
const NO_CASE: u16 = 1 << 1;
/// `"""` and `'''` strings (Python, TOML).
const TRIPLE: u16 = 1 << 2;
/// Rust: `#[attributes]`, `'lifetimes`, `r#"raw strings"#`, `macro!`.
const RUST: u16 = 1 << 3;
/// `$name`, `${name}` are variables (shells).
const DOLLAR: u16 = 1 << 4;
/// Identifiers may hold `-` (CSS, YAML, TOML).
const DASH: u16 = 1 << 5;
/// A capitalised identifier names a type (`String`, `HashMap`).
const CAPS: u16 = 1 << 6;
/// A name followed by `:` (JSON, YAML, CSS) is a key / property.
const KEY_COLON: u16 = 1 << 7;
/// A name followed by `=` (TOML) is a key.
const KEY_EQ: u16 = 1 << 8;
/// `@name` is an annotation / decorator / at-rule.
const AT: u16 = 1 << 9;
/// `#` at the start of a line starts a preprocessor line (C, C++).
const PREPROC: u16 = 1 << 10;
/// `[table]` headers at the start of a line (TOML).
const SECTIONS: u16 = 1 << 11;
/// `$` may be part of an identifier (JavaScript).
const DOLLAR_IDENT: u16 = 1 << 12;

struct Lang {
    mode: Mode,
    flags: u16,
    /// Space-separated (smaller in wasm than a table of strings).
    keywords: &'static str,
    types: &'static str,
    line_comments: &'static [&'static str],
    block_comment: Option<(&'static str, &'static str)>,
    /// Quote characters that open a string.
    quotes: &'static [u8],
    /// Of those, the ones whose strings may span lines.
    multiline: &'static [u8],
}

impl Lang {
    fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }
}

const C_COMMENT: Option<(&str, &str)> = Some(("/*", "*/"));

const RUST_LANG: Lang = Lang {
    mode: Mode::Code,
    flags: RUST | CAPS,
    keywords:
        "as async await break const continue crate dyn else enum extern false fn for if impl \
         in let loop match mod move mut pub ref return self Self static struct super trait \
         true type unsafe use where while yield",
    types: "bool char str u8 u16 u32 u64 u128 usize i8 i16 i32 i64 i128 isize f32 f64",
    line_comments: &["//"],
    block_comment: C_COMMENT,
    quotes: b"\"",
    multiline: b"\"",
};

const PYTHON: Lang = Lang {
    mode: Mode::Code,
    flags: TRIPLE | CAPS | AT,
    keywords: "and as assert async await break case class continue def del elif else except False \
         finally for from global if import in is lambda match None nonlocal not or pass raise \
         return self True try while with yield",
    types: "int float str bool list dict set tuple bytes object",
    line_comments: &["#"],
    block_comment: None,
    quotes: b"\"'",
    multiline: b"",
};

const JAVASCRIPT: Lang = Lang {
    mode: Mode::Code,
    flags: CAPS | AT | DOLLAR_IDENT,
    // TypeScript's words too: harmless in JavaScript.
    keywords: "abstract as async await break case catch class const continue debugger declare \
         default delete do else enum export extends false finally for from function get if \
         implements import in instanceof interface keyof let namespace new null of private \
         protected public readonly return set static super switch this throw true try type \
         typeof undefined var void while with yield",
    types: "any bigint boolean never number object string symbol unknown",
    line_comments: &["//"],
    block_comment: C_COMMENT,
    quotes: b"\"'`",
    multiline: b"`",
};

const JSON: Lang = Lang {
    mode: Mode::Code,
    flags: KEY_COLON,
    keywords: "true false null",
    types: "",
    line_comments: &["//"],
    block_comment: C_COMMENT,
    quotes: b"\"",
    multiline: b"",
};

const SHELL: Lang = Lang {
    mode: Mode::Code,
    flags: HASH_WORD | DOLLAR,
    keywords: "alias break case cd continue declare do done echo elif else esac eval exec exit \
         export fi for function if in local readonly return select set shift source then time \
         trap unset until while",
    types: "",
    line_comments: &["#"],
    block_comment: None,
    quotes: b"\"'`",
    multiline: b"\"'`",
};

const C_LANG: Lang = Lang {
    mode: Mode::Code,
    flags: CAPS | PREPROC,
    // C and C++ together.
    keywords: "auto break case catch class const constexpr const_cast continue default delete do \
         dynamic_cast else enum explicit extern false for friend goto if inline namespace new \
         noexcept nullptr NULL operator override private protected public register \
         reinterpret_cast restrict return sizeof static static_cast struct switch template \
         this throw true try typedef typename union using virtual volatile while",
    types: "bool char double float int int8_t int16_t int32_t int64_t long short signed size_t \
         uint8_t uint16_t uint32_t uint64_t unsigned void wchar_t",
    line_comments: &["//"],
    block_comment: C_COMMENT,
    quotes: b"\"'",
    multiline: b"",
};

const GO: Lang = Lang {
    mode: Mode::Code,
    flags: 0,
    keywords:
        "break case chan const continue default defer else fallthrough false for func go goto \
         if import interface iota map nil package range return select struct switch true type \
         var",
    types: "any bool byte complex128 error float32 float64 int int8 int16 int32 int64 rune \
         string uint uint8 uint16 uint32 uint64 uintptr",
    line_comments: &["//"],
    block_comment: C_COMMENT,
    quotes: b"\"'`",
    multiline: b"`",
};

const JAVA: Lang = Lang {
    mode: Mode::Code,
    flags: CAPS | AT,
    keywords: "abstract assert break case catch class const continue default do else enum extends \
         false final finally for goto if implements import instanceof interface native new \
         null package permits private protected public record return sealed static super \
         switch synchronized this throw throws transient true try var volatile while yield",
    types: "boolean byte char double float int long short void",
    line_comments: &["//"],
    block_comment: C_COMMENT,
    quotes: b"\"'",
    multiline: b"",
};

const SQL: Lang = Lang {
    mode: Mode::Code,
    flags: NO_CASE,
    keywords: "add all alter and as asc begin between by case check commit constraint create \
         default delete desc distinct drop else end exists false foreign from full group \
         having if in index inner insert into is join key left like limit not null offset on \
         or order outer primary references returning right rollback select set table then \
         transaction true union unique update values view when where with",
    types: "bigint blob boolean char date decimal double float int integer numeric real serial \
         smallint text timestamp varchar",
    line_comments: &["--"],
    block_comment: C_COMMENT,
    quotes: b"'\"`",
    multiline: b"'",
};

const TOML: Lang = Lang {
    mode: Mode::Code,
    flags: HASH_WORD | TRIPLE | DASH | KEY_EQ | SECTIONS,
    keywords: "true false",
    types: "",
    line_comments: &["#"],
    block_comment: None,
    quotes: b"\"'",
    multiline: b"",
};

const YAML: Lang = Lang {
    mode: Mode::Code,
    flags: HASH_WORD | DASH | KEY_COLON,
    keywords: "true false null yes no on off",
    types: "",
    line_comments: &["#"],
    block_comment: None,
    quotes: b"\"'",
    multiline: b"",
};

const CSS: Lang = Lang {
    mode: Mode::Code,
    flags: DASH | KEY_COLON | AT,
    keywords: "important inherit initial none auto",
    types: "",
    line_comments: &[],
    block_comment: C_COMMENT,
    quotes: b"\"'",
    multiline: b"",
};

const MARKUP: Lang = Lang {
    mode: Mode::Markup,
    flags: 0,
    keywords: "",
    types: "",
    line_comments: &[],
    block_comment: None,
    quotes: b"\"'",
    multiline: b"\"'",
};

/// The scanner for a fence's language name, if it is one we know.
fn language(name: &str) -> Option<&'static Lang> {
    let name = name.to_ascii_lowercase();
    Some(match name.as_str() {
        "rust" | "rs" => &RUST_LANG,
        "python" | "py" | "python3" | "py3" => &PYTHON,
        "javascript" | "js" | "jsx" | "mjs" | "cjs" | "typescript" | "ts" | "tsx" | "node" => {
            &JAVASCRIPT
        }
        "json" | "jsonc" | "json5" => &JSON,
        "bash" | "sh" | "shell" | "zsh" | "console" | "shellscript" => &SHELL,
        "c" | "h" | "cpp" | "c++" | "cc" | "cxx" | "hpp" => &C_LANG,
        "go" | "golang" => &GO,
        "java" => &JAVA,
        "sql" | "postgres" | "postgresql" | "mysql" | "sqlite" | "plsql" => &SQL,
        "toml" => &TOML,
        "yaml" | "yml" => &YAML,
        "css" | "scss" | "less" => &CSS,
        "html" | "htm" | "xml" | "svg" | "xhtml" => &MARKUP,
        _ => return None,
    })
}

/// Appends `code` to `out`, HTML-escaped, with spans around the tokens of the
/// language `lang` names; a language we don't know stays plain.
pub fn highlight(lang: &str, code: &str, out: &mut String) {
    match language(lang) {
        Some(l) if l.mode == Mode::Markup => markup(code, out),
        Some(l) => scan(l, code, out),
        None => escape_into(code, out),
    }
}

fn span(out: &mut String, class: &str, text: &str) {
    out.push_str("<span class=\"hl-");
    out.push_str(class);
    out.push_str("\">");
    escape_into(text, out);
    out.push_str("</span>");
}

/// The index just past the character that starts at `i`.
fn step(s: &str, i: usize) -> usize {
    i + s[i..].chars().next().map_or(1, char::len_utf8)
}

/// The end of the line that `i` is on (before its `\n`).
fn line_end(s: &str, i: usize) -> usize {
    s[i..].find('\n').map_or(s.len(), |n| i + n)
}

/// The index past `close` from `from` on, or the end of `s`.
fn past(s: &str, from: usize, close: &str) -> usize {
    s[from..]
        .find(close)
        .map_or(s.len(), |n| from + n + close.len())
}

fn is_ident(b: u8, l: &Lang) -> bool {
    b.is_ascii_alphanumeric()
        || b == b'_'
        || (b == b'-' && l.has(DASH))
        || (b == b'$' && l.has(DOLLAR_IDENT))
}

fn ident_end(s: &str, from: usize, l: &Lang) -> usize {
    let b = s.as_bytes();
    let mut j = from;
    while j < b.len() && is_ident(b[j], l) {
        j += 1;
    }
    j
}

/// The end of a string opened by the quote at `i`: past its closing quote, or
/// at the end of its line (single-line strings) or of the code.
fn string_end(s: &str, i: usize, l: &Lang) -> usize {
    let b = s.as_bytes();
    let quote = b[i];
    let multiline = l.multiline.contains(&quote);
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' if j + 1 < b.len() => j = step(s, j + 1),
            c if c == quote => return j + 1,
            b'\n' if !multiline => return j,
            _ => j += 1,
        }
    }
    b.len()
}

/// Whether what follows `j` (after blanks) is the key separator `sep`, itself
/// followed by a blank or the end of the line when `spaced`.
fn key_follows(s: &str, j: usize, sep: u8, spaced: bool) -> bool {
    let b = s.as_bytes();
    let mut k = j;
    while k < b.len() && (b[k] == b' ' || b[k] == b'\t') {
        k += 1;
    }
    k < b.len() && b[k] == sep && (!spaced || b.get(k + 1).is_none_or(|c| c.is_ascii_whitespace()))
}

fn is_key(s: &str, j: usize, l: &Lang, spaced: bool) -> bool {
    (l.has(KEY_COLON) && key_follows(s, j, b':', spaced))
        || (l.has(KEY_EQ) && key_follows(s, j, b'=', false))
}

/// The end of a Rust raw string `r"…"`, `r#"…"#` (or `br…`) starting at `i`.
fn raw_string_end(s: &str, i: usize) -> Option<usize> {
    let b = s.as_bytes();
    let mut j = i + if b[i] == b'b' { 2 } else { 1 };
    let hashes_from = j;
    while j < b.len() && b[j] == b'#' {
        j += 1;
    }
    if b.get(j) != Some(&b'"') || (b[i] == b'b' && b.get(i + 1) != Some(&b'r')) {
        return None;
    }
    let mut close = String::from("\"");
    close.push_str(&s[hashes_from..j]);
    Some(past(s, j + 1, &close))
}

/// A Rust character literal at `i` (`'a'`, `'\n'`, `'\u{1F600}'`), rather than
/// a lifetime or label (`'a`, `'static`).
fn char_literal_end(s: &str, i: usize) -> Option<usize> {
    let b = s.as_bytes();
    let j = i + 1;
    if j >= b.len() {
        return None;
    }
    if b[j] == b'\\' {
        let end = s[j..].find('\'').map(|n| j + n + 1)?;
        // An escape is short and on one line.
        return (end - i <= 12 && !s[i..end].contains('\n')).then_some(end);
    }
    let k = step(s, j);
    (b.get(k) == Some(&b'\'')).then_some(k + 1)
}

fn scan(l: &Lang, s: &str, out: &mut String) {
    let b = s.as_bytes();
    let mut i = 0;
    // Start of the text not yet written (plain).
    let mut plain = 0;
    // Only blanks so far on this line.
    let mut line_start = true;
    while i < b.len() {
        let c = b[i];
        let rest = &s[i..];
        let word_start = i == 0 || b[i - 1].is_ascii_whitespace();
        let token: Option<(usize, &str)> = if c.is_ascii_whitespace() {
            None
        } else if l
            .line_comments
            .iter()
            .any(|p| rest.starts_with(p) && (c != b'#' || !l.has(HASH_WORD) || word_start))
        {
            Some((line_end(s, i), "comment"))
        } else if let Some((open, close)) = l.block_comment.filter(|(o, _)| rest.starts_with(o)) {
            Some((past(s, i + open.len(), close), "comment"))
        } else if c == b'#' && line_start && l.has(PREPROC) {
            Some((line_end(s, i), "meta"))
        } else if c == b'[' && line_start && l.has(SECTIONS) {
            let end = rest.find([']', '\n']).map_or(s.len(), |n| i + n + 1);
            Some((end.min(line_end(s, i)), "type"))
        } else if c == b'#' && l.has(RUST) && (rest.starts_with("#[") || rest.starts_with("#![")) {
            Some((rust_attribute_end(s, i), "meta"))
        } else if c == b'@' && l.has(AT) && b.get(i + 1).is_some_and(|&n| is_ident(n, l)) {
            Some((ident_end(s, i + 1, l), "meta"))
        } else if c == b'$' && l.has(DOLLAR) {
            let end = match b.get(i + 1) {
                Some(b'{') => past(s, i + 2, "}"),
                Some(&n) if n.is_ascii_alphabetic() || n == b'_' => ident_end(s, i + 1, l),
                Some(&n) if n.is_ascii_digit() || b"@#?$!*-".contains(&n) => i + 2,
                _ => i + 1,
            };
            (end > i + 1).then_some((end, "variable"))
        } else if l.has(TRIPLE) && (rest.starts_with("\"\"\"") || rest.starts_with("'''")) {
            Some((past(s, i + 3, &rest[..3]), "string"))
        } else if let Some(end) =
            (l.has(RUST) && (c == b'r' || c == b'b') && !prev_is_ident(b, i, l))
                .then(|| raw_string_end(s, i))
                .flatten()
        {
            Some((end, "string"))
        } else if c == b'\'' && l.has(RUST) {
            match char_literal_end(s, i) {
                Some(end) => Some((end, "string")),
                None => Some((ident_end(s, i + 1, l).max(i + 1), "meta")),
            }
        } else if l.quotes.contains(&c) {
            let end = string_end(s, i, l);
            let class = if is_key(s, end, l, false) {
                "property"
            } else {
                "string"
            };
            Some((end, class))
        } else if c.is_ascii_digit()
            || (c == b'.'
                && b.get(i + 1).is_some_and(u8::is_ascii_digit)
                && !prev_is_ident(b, i, l))
        {
            Some((number_end(b, i), "number"))
        } else if is_ident(c, l) && !c.is_ascii_digit() && c != b'-' {
            let end = ident_end(s, i, l);
            word_class(l, s, i, end).map(|class| (end, class))
        } else {
            None
        };
        if !c.is_ascii_whitespace() {
            line_start = false;
        } else if c == b'\n' {
            line_start = true;
        }
        match token {
            Some((end, class)) => {
                escape_into(&s[plain..i], out);
                span(out, class, &s[i..end]);
                // A comment ending at its newline: the next line starts fresh.
                i = end;
                plain = end;
            }
            None if is_ident(c, l) && c != b'-' => {
                // A plain word: skip it whole, so that no keyword is found
                // inside it.
                i = ident_end(s, i, l);
            }
            None => i = step(s, i),
        }
    }
    escape_into(&s[plain..], out);
}

fn prev_is_ident(b: &[u8], i: usize, l: &Lang) -> bool {
    i > 0 && is_ident(b[i - 1], l)
}

fn number_end(b: &[u8], i: usize) -> usize {
    let mut j = i + 1;
    while j < b.len() {
        let c = b[j];
        let exponent_sign = (c == b'-' || c == b'+')
            && matches!(b[j - 1], b'e' | b'E')
            && b[i].is_ascii_digit()
            && !b[i..j].starts_with(b"0x");
        if c.is_ascii_alphanumeric()
            || c == b'_'
            || exponent_sign
            || (c == b'.' && b.get(j + 1).is_some_and(u8::is_ascii_digit))
        {
            j += 1;
        } else {
            break;
        }
    }
    j
}

/// The end of a Rust `#[…]` / `#![…]`, counting nested brackets, on its line.
fn rust_attribute_end(s: &str, i: usize) -> usize {
    let end_of_line = line_end(s, i);
    let mut depth = 0usize;
    for (n, c) in s[i..end_of_line].bytes().enumerate() {
        match c {
            b'[' => depth += 1,
            b']' => {
                depth -= 1;
                if depth == 0 {
                    return i + n + 1;
                }
            }
            _ => {}
        }
    }
    end_of_line
}

/// The class of the word `s[i..end]`, if it has one.
fn word_class(l: &Lang, s: &str, i: usize, end: usize) -> Option<&'static str> {
    let word = &s[i..end];
    let is = |list: &str| {
        list.split(' ').any(|k| {
            if l.has(NO_CASE) {
                k.eq_ignore_ascii_case(word)
            } else {
                k == word
            }
        })
    };
    let next = s.as_bytes().get(end).copied();
    if is_key(s, end, l, true) {
        Some("property")
    } else if is(l.keywords) {
        Some("keyword")
    } else if is(l.types) {
        Some("type")
    } else if next == Some(b'(')
        || (l.has(RUST) && next == Some(b'!') && s.as_bytes().get(end + 1) != Some(&b'='))
    {
        Some("function")
    } else if l.has(CAPS) && word.as_bytes()[0].is_ascii_uppercase() {
        Some("type")
    } else {
        None
    }
}

/// HTML and XML: `<tag attr="value">`, `<!-- comments -->`; text stays plain.
fn markup(s: &str, out: &mut String) {
    let b = s.as_bytes();
    let mut i = 0;
    let mut plain = 0;
    let flush = |out: &mut String, from: usize, to: usize| escape_into(&s[from..to], out);
    while i < b.len() {
        if s[i..].starts_with("<!--") {
            flush(out, plain, i);
            let end = past(s, i + 4, "-->");
            span(out, "comment", &s[i..end]);
            i = end;
            plain = end;
            continue;
        }
        let opens_tag = b[i] == b'<'
            && b.get(i + 1)
                .is_some_and(|&n| n.is_ascii_alphabetic() || b"/!?".contains(&n));
        if !opens_tag {
            i = step(s, i);
            continue;
        }
        // `<`, then `/`, `!` or `?`, then the name.
        let mut j = i + 1;
        if b"/!?".contains(&b[j]) {
            j += 1;
        }
        flush(out, plain, j);
        let name_end = {
            let mut k = j;
            while k < b.len() && (b[k].is_ascii_alphanumeric() || b"-_:.".contains(&b[k])) {
                k += 1;
            }
            k
        };
        if name_end > j {
            span(out, "tag", &s[j..name_end]);
        }
        i = name_end;
        plain = i;
        // Attributes, up to the `>`.
        while i < b.len() && b[i] != b'>' {
            let c = b[i];
            if c == b'"' || c == b'\'' {
                flush(out, plain, i);
                let end = s[i + 1..].find(c as char).map_or(s.len(), |n| i + n + 2);
                span(out, "string", &s[i..end]);
                i = end;
                plain = end;
            } else if c.is_ascii_alphabetic() || c == b'_' || c == b':' || c == b'@' {
                flush(out, plain, i);
                let mut k = i + 1;
                while k < b.len() && (b[k].is_ascii_alphanumeric() || b"-_:.@".contains(&b[k])) {
                    k += 1;
                }
                span(out, "attr", &s[i..k]);
                i = k;
                plain = k;
            } else if c == b'<' {
                // A tag left open (still streaming, or a typo): stop here.
                break;
            } else {
                i = step(s, i);
            }
        }
    }
    flush(out, plain, s.len());
}

#[cfg(test)]
mod tests {
    use super::highlight;

    fn hl(lang: &str, code: &str) -> String {
        let mut out = String::new();
        highlight(lang, code, &mut out);
        out
    }

    /// The text of highlighted HTML: tags removed, entities decoded.
    pub(crate) fn text_of(html: &str) -> String {
        let mut text = String::new();
        let mut rest = html;
        while let Some(n) = rest.find('<') {
            text.push_str(&rest[..n]);
            rest = &rest[n..];
            rest = &rest[rest.find('>').map_or(rest.len(), |e| e + 1)..];
        }
        text.push_str(rest);
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
    }

    const SAMPLES: &[(&str, &str)] = &[
        (
            "rust",
            "#[derive(Debug)]\nstruct P<'a> { s: &'a str }\n/// doc\nfn main() {\n    let c = 'x';\n    let r = r#\"raw \"q\" <b>\"#;\n    println!(\"{} {}\", 0x1F, 1.5e-3); // done\n}\n",
        ),
        (
            "python",
            "@dataclass\nclass A:\n    \"\"\"Doc <b>\"\"\"\n    def f(self, x: int) -> str:\n        # comment\n        return f'{x}' + \"a\\\"b\" if x > 1.5 else None\n",
        ),
        ("js", "const a = `t ${x}`; // c\nfunction f($el) { return /* b */ 10; }"),
        ("json", "{\"a\": [1, 2.5e3, true, null], \"b\": \"<x>\"}"),
        ("bash", "#!/bin/sh\nfor f in *.txt; do echo \"$f\" ${#f} $1; done # end\necho a#b"),
        ("cpp", "#include <stdio.h>\nint main() { printf(\"%d\\n\", 'c'); return 0; }"),
        ("go", "package main\nfunc main() { s := `raw\nline`; fmt.Println(s, 42) }"),
        ("java", "@Override public String toString() { return \"x\" + 1L; }"),
        ("sql", "SELECT id, name FROM users WHERE age > 18 -- adults\nORDER BY name;"),
        ("toml", "[package]\nname = \"wick\" # the app\nversion = '0.1'\nworkspace = true"),
        ("yaml", "name: wick\nitems:\n  - a: 1\n    b: \"two\" # c\n"),
        ("css", "@media (x) { .a > b:hover { color: #fff; margin: 0 1.5em; } /* c */ }"),
        ("html", "<!-- c --><a href=\"x?a=1&b=2\" data-x='y'>t &amp; <b>u</b></a><br/>"),
        ("rust", "let s = \"unterminated\nfn x() { /* open"),
        ("python", "'''never closed"),
        ("html", "<a href=\"open"),
        ("rust", "'\\u{1F600}' 'é' é 'static \u{1F600}\"\\é"),
        ("bash", "x=$"),
        ("unknown", "<b>&</b>"),
    ];

    /// Every sample's text comes back exactly: the `textContent` of the block
    /// is the code, whatever the language and however unfinished.
    #[test]
    fn highlighting_keeps_the_code_text() {
        for (lang, code) in SAMPLES {
            let html = hl(lang, code);
            assert_eq!(&text_of(&html), code, "{lang}: {html}");
            assert!(!html.contains("<b>"), "{lang}: {html}");
        }
    }

    /// Every prefix of every sample, in every language (what a streamed
    /// reply shows token by token), keeps its text and doesn't panic.
    #[test]
    fn every_prefix_in_every_language_keeps_its_text() {
        let langs = [
            "rust", "python", "js", "json", "bash", "c", "go", "java", "sql", "toml", "yaml",
            "css", "html",
        ];
        for (_, code) in SAMPLES {
            for (end, _) in code.char_indices() {
                let prefix = &code[..end];
                for lang in langs {
                    assert_eq!(text_of(&hl(lang, prefix)), prefix, "{lang}");
                }
            }
        }
    }

    #[test]
    fn rust_tokens_are_classed() {
        let html = hl("rust", SAMPLES[0].1);
        for expected in [
            r#"<span class="hl-meta">#[derive(Debug)]</span>"#,
            r#"<span class="hl-keyword">struct</span>"#,
            r#"<span class="hl-type">P</span>"#,
            r#"<span class="hl-meta">'a</span>"#,
            r#"<span class="hl-type">str</span>"#,
            r#"<span class="hl-comment">/// doc</span>"#,
            r#"<span class="hl-keyword">fn</span> <span class="hl-function">main</span>"#,
            r#"<span class="hl-string">'x'</span>"#,
            r#"<span class="hl-string">r#&quot;raw &quot;q&quot; &lt;b&gt;&quot;#</span>"#,
            r#"<span class="hl-function">println</span>!"#,
            r#"<span class="hl-number">0x1F</span>"#,
            r#"<span class="hl-number">1.5e-3</span>"#,
            r#"<span class="hl-comment">// done</span>"#,
        ] {
            assert!(html.contains(expected), "{expected} in {html}");
        }
    }

    #[test]
    fn python_tokens_are_classed() {
        let html = hl("py", SAMPLES[1].1);
        for expected in [
            r#"<span class="hl-meta">@dataclass</span>"#,
            r#"<span class="hl-keyword">class</span> <span class="hl-type">A</span>"#,
            r#"<span class="hl-string">&quot;&quot;&quot;Doc &lt;b&gt;&quot;&quot;&quot;</span>"#,
            r#"<span class="hl-keyword">def</span> <span class="hl-function">f</span>"#,
            r#"<span class="hl-type">int</span>"#,
            r##"<span class="hl-comment"># comment</span>"##,
            r#"<span class="hl-string">'{x}'</span>"#,
            r#"<span class="hl-string">&quot;a\&quot;b&quot;</span>"#,
            r#"<span class="hl-number">1.5</span>"#,
            r#"<span class="hl-keyword">None</span>"#,
        ] {
            assert!(html.contains(expected), "{expected} in {html}");
        }
    }

    #[test]
    fn other_languages_are_classed() {
        let cases: &[(usize, &[&str])] = &[
            (
                2,
                &[
                    r#"<span class="hl-string">`t ${x}`</span>"#,
                    r#"<span class="hl-function">f</span>($el)"#,
                ],
            ),
            (
                3,
                &[
                    r#"<span class="hl-property">&quot;a&quot;</span>"#,
                    r#"<span class="hl-string">&quot;&lt;x&gt;&quot;</span>"#,
                    r#"<span class="hl-keyword">null</span>"#,
                ],
            ),
            (
                4,
                &[
                    r#"<span class="hl-variable">$1</span>"#,
                    r#"<span class="hl-variable">${#f}</span>"#,
                    r##"<span class="hl-comment"># end</span>"##,
                    "echo</span> a#b",
                ],
            ),
            (
                5,
                &[
                    r#"<span class="hl-meta">#include &lt;stdio.h&gt;</span>"#,
                    r#"<span class="hl-type">int</span>"#,
                ],
            ),
            (
                6,
                &[
                    "<span class=\"hl-string\">`raw\nline`</span>",
                    r#"<span class="hl-number">42</span>"#,
                ],
            ),
            (
                7,
                &[
                    r#"<span class="hl-meta">@Override</span>"#,
                    r#"<span class="hl-type">String</span>"#,
                ],
            ),
            (
                8,
                &[
                    r#"<span class="hl-keyword">SELECT</span>"#,
                    r#"<span class="hl-comment">-- adults</span>"#,
                ],
            ),
            (
                9,
                &[
                    r#"<span class="hl-type">[package]</span>"#,
                    r#"<span class="hl-property">name</span>"#,
                    r#"<span class="hl-keyword">true</span>"#,
                ],
            ),
            (
                10,
                &[
                    r#"<span class="hl-property">name</span>"#,
                    r#"<span class="hl-property">a</span>"#,
                    r##"<span class="hl-comment"># c</span>"##,
                ],
            ),
            (
                11,
                &[
                    r#"<span class="hl-meta">@media</span>"#,
                    r#"<span class="hl-property">color</span>"#,
                    r#"<span class="hl-number">1.5em</span>"#,
                ],
            ),
            (
                12,
                &[
                    r#"<span class="hl-comment">&lt;!-- c --&gt;</span>"#,
                    r#"<span class="hl-tag">a</span> <span class="hl-attr">href</span>=<span class="hl-string">&quot;x?a=1&amp;b=2&quot;</span>"#,
                ],
            ),
        ];
        for (n, expected) in cases {
            let (lang, code) = SAMPLES[*n];
            let html = hl(lang, code);
            for e in *expected {
                assert!(html.contains(e), "{lang}: {e} in {html}");
            }
        }
    }

    #[test]
    fn unknown_languages_are_only_escaped() {
        assert_eq!(hl("brainfuck", "<b>&</b>"), "&lt;b&gt;&amp;&lt;/b&gt;");
    }
}
