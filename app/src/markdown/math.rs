//! TeX math as MathML (MathML Core, which browsers draw natively).
//!
//! Why a converter of our own: it runs in the browser's wasm on every streamed
//! token, and the page is already over its weight budget. Measured for wasm32
//! at `opt-level = "z"` with LTO (gzip -9): `pulldown-latex` 0.8 adds about
//! 68 KB (it is thorough, with large symbol and font tables) and writes its
//! error messages into the page unescaped; `latex2mathml` 0.2 adds about 21 KB
//! but writes `\text{…}` unescaped (`$\text{<img onerror=…>}$` would be
//! markup). This one covers what replies use (Greek,
//! operators, relations, arrows, fractions, roots, scripts and limits, big
//! operators, functions, accents, fonts, `\left…\right`, matrices, cases and
//! aligned environments, `\text`) for about 18 KB measured the same way.
//!
//! Safe by construction: every element and attribute written here is a
//! constant of this file; text from the TeX only ever goes through
//! [`escape_into`]. Anything not understood (an unknown command, an unbalanced
//! brace, nesting deeper than [`MAX_DEPTH`]) fails the whole formula, which is
//! then shown as its escaped source in `<code class="math-error">`.

use super::escape_into;

/// Nesting of groups and arguments past which a formula is refused (the parser
/// recurses; this bounds its stack).
const MAX_DEPTH: u32 = 48;

/// `tex` as `<math>…</math>`, `display="block"` when `display`; a formula that
/// doesn't convert as `<code class="math-error">` with its source.
pub fn to_mathml(tex: &str, display: bool) -> String {
    let mut parser = Parser {
        s: tex,
        i: 0,
        depth: 0,
        font: Font::None,
        display,
    };
    match parser.top() {
        Ok(body) => {
            let open = if display {
                "<math display=\"block\">"
            } else {
                "<math>"
            };
            [open, &body, "</math>"].concat()
        }
        Err(Fail) => {
            let mut out = String::from("<code class=\"math-error\">");
            escape_into(tex, &mut out);
            out.push_str("</code>");
            out
        }
    }
}

/// The formula can't be converted.
#[derive(Debug)]
struct Fail;

type R<T> = Result<T, Fail>;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Tok<'a> {
    /// `\name`, or `\` and one other character (`\,`, `\{`, `\\`).
    Cmd(&'a str),
    Char(char),
    Open,
    Close,
    Sup,
    Sub,
    Amp,
    End,
}

/// How an atom takes its scripts.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Ord,
    /// `\sum`, `\prod`…: limits above and below in display math.
    BigOp,
    /// `\int`…: scripts at the side.
    Integral,
    /// `\lim`, `\max`…: limits below in display math; a thin space after.
    LimFn,
    /// `\sin`, `\log`…: a thin space after.
    Func,
    /// `\overbrace`, `\underbrace`: limits above and below always.
    Brace,
}

struct Atom {
    ml: String,
    kind: Kind,
}

impl Atom {
    fn ord(ml: String) -> Self {
        Atom {
            ml,
            kind: Kind::Ord,
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Font {
    None,
    Roman,
    Bold,
    Italic,
    BoldItalic,
    Script,
    Fraktur,
    DoubleStruck,
    Sans,
    Mono,
}

struct Parser<'a> {
    s: &'a str,
    i: usize,
    depth: u32,
    font: Font,
    display: bool,
}

// Symbol classes.
/// `<mi>`, italic when one Latin or Greek letter.
const MI: u8 = b'i';
/// `<mi mathvariant="normal">` (upright capital Greek).
const UP: u8 = b'u';
/// `<mo>`.
const MO: u8 = b'o';
/// A fence, `<mo stretchy="false">` unless after `\left`, `\right`, `\big`.
const FENCE: u8 = b'f';
/// A big operator with limits.
const BIG: u8 = b'b';
/// An integral.
const INT: u8 = b'n';

/// Symbols by class, as `name character` pairs (one string per class is
/// smaller in wasm than a table of pairs).
const SYMBOLS: &[(u8, &str)] = &[
    (
        MI,
        "alpha α beta β gamma γ delta δ epsilon ϵ varepsilon ε zeta ζ eta η theta θ \
         vartheta ϑ iota ι kappa κ lambda λ mu μ nu ν xi ξ pi π varpi ϖ rho ρ varrho ϱ \
         sigma σ varsigma ς tau τ upsilon υ phi ϕ varphi φ chi χ psi ψ omega ω infty ∞ \
         partial ∂ nabla ∇ hbar ℏ ell ℓ aleph ℵ Re ℜ Im ℑ wp ℘ imath ı jmath ȷ",
    ),
    (
        UP,
        "Gamma Γ Delta Δ Theta Θ Lambda Λ Xi Ξ Pi Π Sigma Σ Upsilon Υ Phi Φ Psi Ψ Omega Ω \
         emptyset ∅ varnothing ∅ angle ∠ triangle △ top ⊤ bot ⊥ degree ° S § P ¶ square □ \
         Box □ blacksquare ■ checkmark ✓ complement ∁ sharp ♯ flat ♭ natural ♮ clubsuit ♣ \
         diamondsuit ♢ heartsuit ♡ spadesuit ♠",
    ),
    (
        MO,
        "prime ′ circ ∘ ldots … dots … dotsc … dotsb ⋯ cdots ⋯ vdots ⋮ ddots ⋱ dagger † \
         ddagger ‡ star ⋆ surd √ backslash ∖ colon : pm ± mp ∓ times × div ÷ cdot ⋅ ast ∗ \
         bullet ∙ oplus ⊕ ominus ⊖ otimes ⊗ oslash ⊘ odot ⊙ cap ∩ cup ∪ sqcap ⊓ sqcup ⊔ \
         vee ∨ lor ∨ wedge ∧ land ∧ setminus ∖ uplus ⊎ diamond ⋄ wr ≀ amalg ⨿ neg ¬ \
         lnot ¬ forall ∀ exists ∃ nexists ∄ therefore ∴ because ∵ leq ≤ le ≤ geq ≥ ge ≥ \
         neq ≠ ne ≠ equiv ≡ approx ≈ cong ≅ sim ∼ simeq ≃ propto ∝ ll ≪ gg ≫ subset ⊂ \
         supset ⊃ subseteq ⊆ supseteq ⊇ subsetneq ⊊ supsetneq ⊋ in ∈ notin ∉ ni ∋ perp ⊥ \
         parallel ∥ mid ∣ nmid ∤ vdash ⊢ dashv ⊣ models ⊨ asymp ≍ doteq ≐ prec ≺ succ ≻ \
         preceq ⪯ succeq ⪰ leqslant ⩽ geqslant ⩾ lesssim ≲ gtrsim ≳ coloneqq ≔ \
         triangleq ≜ nleq ≰ ngeq ≱ lneq ⪇ gneq ⪈ to → rightarrow → leftarrow ← gets ← \
         leftrightarrow ↔ Rightarrow ⇒ Leftarrow ⇐ Leftrightarrow ⇔ implies ⟹ impliedby ⟸ \
         iff ⟺ mapsto ↦ longrightarrow ⟶ longleftarrow ⟵ longleftrightarrow ⟷ \
         Longrightarrow ⟹ Longleftarrow ⟸ Longleftrightarrow ⟺ longmapsto ⟼ uparrow ↑ \
         downarrow ↓ updownarrow ↕ Uparrow ⇑ Downarrow ⇓ nearrow ↗ searrow ↘ swarrow ↙ \
         nwarrow ↖ hookrightarrow ↪ hookleftarrow ↩ rightharpoonup ⇀ leftharpoonup ↼ \
         rightleftharpoons ⇌ leadsto ⇝ # # $ $ % % & & _ _",
    ),
    (
        BIG,
        "sum ∑ prod ∏ coprod ∐ bigcup ⋃ bigcap ⋂ bigoplus ⨁ bigotimes ⨂ bigodot ⨀ \
         bigvee ⋁ bigwedge ⋀ biguplus ⨄ bigsqcup ⨆",
    ),
    (INT, "int ∫ iint ∬ iiint ∭ oint ∮ oiint ∯"),
    (
        FENCE,
        "langle ⟨ rangle ⟩ lfloor ⌊ rfloor ⌋ lceil ⌈ rceil ⌉ vert | Vert ‖ lvert | \
         rvert | lVert ‖ rVert ‖ lbrace { rbrace } lbrack [ rbrack ] { { } } | ‖",
    ),
];

/// Functions set upright; `true`: limits below in display math.
#[rustfmt::skip]
const FUNCTIONS: &[(&str, bool)] = &[
    ("sin", false), ("cos", false), ("tan", false), ("cot", false), ("sec", false),
    ("csc", false), ("arcsin", false), ("arccos", false), ("arctan", false), ("sinh", false),
    ("cosh", false), ("tanh", false), ("coth", false), ("log", false), ("ln", false),
    ("lg", false), ("exp", false), ("dim", false), ("ker", false), ("deg", false),
    ("hom", false), ("arg", false), ("det", true), ("gcd", true), ("max", true),
    ("min", true), ("sup", true), ("inf", true), ("lim", true), ("limsup", true),
    ("liminf", true), ("Pr", true), ("argmax", true), ("argmin", true),
];

/// Accents: the mark, above (`true`) or below, stretchy (wide) or not.
#[rustfmt::skip]
const ACCENTS: &[(&str, char, bool, bool)] = &[
    ("hat", '^', true, false), ("widehat", '^', true, true), ("check", 'ˇ', true, false),
    ("tilde", '~', true, false), ("widetilde", '~', true, true), ("bar", '‾', true, false),
    ("overline", '‾', true, true), ("vec", '→', true, false), ("dot", '˙', true, false),
    ("ddot", '¨', true, false), ("acute", '´', true, false), ("grave", '`', true, false),
    ("breve", '˘', true, false), ("mathring", '˚', true, false),
    ("overrightarrow", '→', true, true), ("overleftarrow", '←', true, true),
    ("underline", '_', false, true), ("overbrace", '⏞', true, true),
    ("underbrace", '⏟', false, true),
];

/// Spaces, in em.
#[rustfmt::skip]
const SPACES: &[(&str, &str)] = &[
    (",", "0.1667"), ("thinspace", "0.1667"), (":", "0.2222"), (">", "0.2222"),
    ("medspace", "0.2222"), (";", "0.2778"), ("thickspace", "0.2778"), (" ", "0.3333"),
    ("enspace", "0.5"), ("quad", "1"), ("qquad", "2"),
];

/// Commands that change nothing we draw.
const IGNORED: &[&str] = &[
    "!",
    "negthinspace",
    "displaystyle",
    "textstyle",
    "scriptstyle",
    "scriptscriptstyle",
    "limits",
    "nolimits",
    "nonumber",
    "notag",
    "hline",
    "strut",
    "allowbreak",
    "nobreak",
];

fn lookup<T: Copy>(table: &[(&str, T)], name: &str) -> Option<T> {
    table.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

fn push_esc_char(out: &mut String, c: char) {
    let mut buf = [0; 4];
    escape_into(c.encode_utf8(&mut buf), out);
}

fn mo(c: char) -> String {
    let mut out = String::from("<mo>");
    push_esc_char(&mut out, c);
    out.push_str("</mo>");
    out
}

fn fence(c: char, attrs: &str) -> String {
    let mut out = ["<mo", attrs, ">"].concat();
    push_esc_char(&mut out, c);
    out.push_str("</mo>");
    out
}

fn space(em: &str) -> String {
    ["<mspace width=\"", em, "em\"></mspace>"].concat()
}

/// `<name attrs>inner…</name>` (`attrs` empty or starting with a space).
/// Cheaper in wasm than `format!`.
fn el(name: &str, attrs: &str, inner: &[&str]) -> String {
    let mut out = ["<", name, attrs, ">"].concat();
    for part in inner {
        out.push_str(part);
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
    out
}

/// One `<mrow>` of `items`, or the item itself when there is one.
fn mrow(items: Vec<String>) -> String {
    if items.len() == 1 {
        items.into_iter().next().unwrap_or_default()
    } else {
        el("mrow", "", &[&items.concat()])
    }
}

/// `c` in the Unicode mathematical alphanumerics of `font`, if it has a form
/// there.
fn styled(font: Font, c: char) -> Option<char> {
    let (upper, lower, digit) = match font {
        Font::Bold => (0x1D400, 0x1D41A, Some(0x1D7CE)),
        Font::Italic => (0x1D434, 0x1D44E, None),
        Font::BoldItalic => (0x1D468, 0x1D482, Some(0x1D7CE)),
        Font::Script => (0x1D49C, 0x1D4B6, None),
        Font::Fraktur => (0x1D504, 0x1D51E, None),
        Font::DoubleStruck => (0x1D538, 0x1D552, Some(0x1D7D8)),
        Font::Sans => (0x1D5A0, 0x1D5BA, Some(0x1D7E2)),
        Font::Mono => (0x1D670, 0x1D68A, Some(0x1D7F6)),
        Font::None | Font::Roman => return None,
    };
    // Letters that Unicode had before the block, which leaves holes there.
    let earlier = match (font, c) {
        (Font::Italic, 'h') => 'ℎ',
        (Font::Script, 'B') => 'ℬ',
        (Font::Script, 'E') => 'ℰ',
        (Font::Script, 'F') => 'ℱ',
        (Font::Script, 'H') => 'ℋ',
        (Font::Script, 'I') => 'ℐ',
        (Font::Script, 'L') => 'ℒ',
        (Font::Script, 'M') => 'ℳ',
        (Font::Script, 'R') => 'ℛ',
        (Font::Script, 'e') => 'ℯ',
        (Font::Script, 'g') => 'ℊ',
        (Font::Script, 'o') => 'ℴ',
        (Font::Fraktur, 'C') => 'ℭ',
        (Font::Fraktur, 'H') => 'ℌ',
        (Font::Fraktur, 'I') => 'ℑ',
        (Font::Fraktur, 'R') => 'ℜ',
        (Font::Fraktur, 'Z') => 'ℨ',
        (Font::DoubleStruck, 'C') => 'ℂ',
        (Font::DoubleStruck, 'H') => 'ℍ',
        (Font::DoubleStruck, 'N') => 'ℕ',
        (Font::DoubleStruck, 'P') => 'ℙ',
        (Font::DoubleStruck, 'Q') => 'ℚ',
        (Font::DoubleStruck, 'R') => 'ℝ',
        (Font::DoubleStruck, 'Z') => 'ℤ',
        _ => '\0',
    };
    if earlier != '\0' {
        return Some(earlier);
    }
    let code = match c {
        'A'..='Z' => upper + (c as u32 - 'A' as u32),
        'a'..='z' => lower + (c as u32 - 'a' as u32),
        '0'..='9' => digit? + (c as u32 - '0' as u32),
        _ => return None,
    };
    char::from_u32(code)
}

impl<'a> Parser<'a> {
    // ---- Lexing.

    fn skip_blanks(&mut self) {
        let b = self.s.as_bytes();
        while self.i < b.len() {
            match b[self.i] {
                b' ' | b'\t' | b'\n' | b'\r' => self.i += 1,
                // A comment, to the end of the line.
                b'%' => {
                    self.i = self.s[self.i..]
                        .find('\n')
                        .map_or(self.s.len(), |n| self.i + n);
                }
                _ => break,
            }
        }
    }

    /// The next token and where it ends, without taking it.
    fn peek(&mut self) -> (Tok<'a>, usize) {
        self.skip_blanks();
        let s: &'a str = self.s;
        let rest = &s[self.i..];
        let mut chars = rest.chars();
        let Some(c) = chars.next() else {
            return (Tok::End, self.i);
        };
        let end = self.i + c.len_utf8();
        let tok = match c {
            '{' => Tok::Open,
            '}' => Tok::Close,
            '^' => Tok::Sup,
            '_' => Tok::Sub,
            '&' => Tok::Amp,
            '\\' => {
                let letters = rest[1..]
                    .bytes()
                    .take_while(u8::is_ascii_alphabetic)
                    .count();
                let len = if letters > 0 {
                    letters
                } else {
                    rest[1..].chars().next().map_or(0, char::len_utf8)
                };
                return (Tok::Cmd(&rest[1..1 + len]), end + len);
            }
            c => Tok::Char(c),
        };
        (tok, end)
    }

    fn next(&mut self) -> Tok<'a> {
        let (tok, end) = self.peek();
        self.i = end;
        tok
    }

    /// Takes `c` if it comes next (after blanks).
    fn eat_char(&mut self, c: char) -> bool {
        if self.peek().0 == Tok::Char(c) {
            self.next();
            true
        } else {
            false
        }
    }

    /// The raw text of a `{…}` group (braces balanced, `\{` `\}` skipped).
    fn raw_group(&mut self) -> R<&'a str> {
        if self.next() != Tok::Open {
            return Err(Fail);
        }
        let s: &'a str = self.s;
        let b = s.as_bytes();
        let start = self.i;
        let mut depth = 0usize;
        let mut j = start;
        while j < b.len() {
            match b[j] {
                b'\\' => j += 1,
                b'{' => depth += 1,
                b'}' if depth == 0 => {
                    self.i = j + 1;
                    return Ok(&s[start..j]);
                }
                b'}' => depth -= 1,
                _ => {}
            }
            j += 1;
        }
        Err(Fail)
    }

    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(Fail)
        } else {
            Ok(())
        }
    }

    // ---- Structure.

    /// The whole formula: rows split by `\\` and cells by `&` become a table.
    fn top(&mut self) -> R<String> {
        let rows = self.rows()?;
        if self.next() != Tok::End {
            return Err(Fail);
        }
        Ok(match rows.as_slice() {
            [row] if row.len() == 1 => mrow(rows.into_iter().flatten().flatten().collect()),
            // `a &= b \\ &= c` aligns; lines without `&` are centred.
            _ if rows.iter().any(|row| row.len() > 1) => table(rows, ALIGNED),
            _ => table(rows, " displaystyle=\"true\""),
        })
    }

    /// Rows of cells of items, up to (not taking) whatever ends them.
    fn rows(&mut self) -> R<Vec<Vec<Vec<String>>>> {
        let mut rows = Vec::new();
        let mut cells = Vec::new();
        loop {
            cells.push(self.row(false)?);
            match self.peek().0 {
                Tok::Amp => {
                    self.next();
                }
                Tok::Cmd("\\") | Tok::Cmd("cr") => {
                    self.next();
                    self.skip_row_spacing();
                    rows.push(std::mem::take(&mut cells));
                }
                _ => break,
            }
        }
        // A last `\\` before the end leaves an empty row.
        if !(cells.len() == 1 && cells[0].is_empty() && !rows.is_empty()) {
            rows.push(cells);
        }
        Ok(rows)
    }

    /// Skips the `[2pt]` that may follow `\\`.
    fn skip_row_spacing(&mut self) {
        let rest = &self.s[self.i..];
        if let Some(inner) = rest.strip_prefix('[') {
            if let Some(n) = inner.find(']') {
                let spec = &inner[..n];
                if spec.bytes().any(|c| c.is_ascii_digit())
                    && spec
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b".- ".contains(&c))
                {
                    self.i += n + 2;
                }
            }
        }
    }

    /// Items up to (not taking) the end, `}`, `&`, `\\`, `\right`,
    /// `\middle`, `\end`, or `]` when `bracket`.
    fn row(&mut self, bracket: bool) -> R<Vec<String>> {
        let mut items = Vec::new();
        loop {
            match self.peek().0 {
                Tok::End
                | Tok::Close
                | Tok::Amp
                | Tok::Cmd("\\" | "cr" | "right" | "middle" | "end") => break,
                Tok::Char(']') if bracket => break,
                Tok::Char(c) if c.is_ascii_digit() || c == '.' => {
                    let number = self.number();
                    let atom = self.scripts(Atom::ord(number))?;
                    items.push(atom.ml);
                }
                _ => {
                    let Some(atom) = self.atom()? else { continue };
                    let spaced = matches!(atom.kind, Kind::Func | Kind::LimFn);
                    let atom = self.scripts(atom)?;
                    items.push(atom.ml);
                    if spaced && self.wants_space_after_function() {
                        items.push(space("0.1667"));
                    }
                }
            }
        }
        Ok(items)
    }

    /// `\sin x` has a thin space; `\sin(x)`, `\sin^2`, `\sin}` don't.
    fn wants_space_after_function(&mut self) -> bool {
        match self.peek().0 {
            Tok::Char(c) => c.is_alphanumeric(),
            Tok::Cmd(name) => {
                name.bytes().all(|c| c.is_ascii_alphabetic())
                    && !matches!(
                        name,
                        "left"
                            | "right"
                            | "big"
                            | "Big"
                            | "bigg"
                            | "Bigg"
                            | "bigl"
                            | "Bigl"
                            | "biggl"
                            | "Biggl"
                            | "end"
                    )
                    && lookup_fence(name).is_none()
            }
            Tok::Open => true,
            _ => false,
        }
    }

    /// A run of digits, with a decimal point between digits.
    fn number(&mut self) -> String {
        let b = self.s.as_bytes();
        let start = self.i;
        let mut j = start;
        while j < b.len()
            && (b[j].is_ascii_digit()
                || (b[j] == b'.' && b.get(j + 1).is_some_and(u8::is_ascii_digit)))
        {
            j += 1;
        }
        if j == start {
            // A lone `.`.
            self.i += 1;
            return mo('.');
        }
        self.i = j;
        let digits = &self.s[start..j];
        self.mn(digits)
    }

    fn mn(&self, digits: &str) -> String {
        let mut out = String::from("<mn>");
        for c in digits.chars() {
            push_esc_char(&mut out, styled(self.font, c).unwrap_or(c));
        }
        out.push_str("</mn>");
        out
    }

    /// `{…}` as one item: an `<mrow>` of what's inside.
    fn group(&mut self) -> R<String> {
        self.enter()?;
        self.next(); // `{`
        let font = self.font;
        let items = self.row(false)?;
        self.font = font;
        if self.next() != Tok::Close {
            return Err(Fail);
        }
        self.depth -= 1;
        Ok(el("mrow", "", &[&items.concat()]))
    }

    /// A command's argument: a group, or a single token (`\frac12`).
    fn arg(&mut self) -> R<String> {
        match self.peek().0 {
            Tok::Open => {
                self.enter()?;
                self.next();
                let font = self.font;
                let items = self.row(false)?;
                self.font = font;
                if self.next() != Tok::Close {
                    return Err(Fail);
                }
                self.depth -= 1;
                Ok(mrow(items))
            }
            Tok::Char(c) if c.is_ascii_digit() => {
                self.next();
                let mut buf = [0; 4];
                Ok(self.mn(c.encode_utf8(&mut buf)))
            }
            Tok::End | Tok::Close | Tok::Amp | Tok::Sup | Tok::Sub => Err(Fail),
            _ => {
                self.enter()?;
                let atom = self.atom()?.ok_or(Fail)?;
                self.depth -= 1;
                Ok(atom.ml)
            }
        }
    }

    /// An argument set in `font`.
    fn arg_in(&mut self, font: Font) -> R<String> {
        let saved = self.font;
        self.font = font;
        let arg = self.arg();
        self.font = saved;
        arg
    }

    /// The scripts (`^`, `_`, primes) after `base`.
    fn scripts(&mut self, base: Atom) -> R<Atom> {
        let mut sup: Option<String> = None;
        let mut sub: Option<String> = None;
        let mut primes = String::new();
        let mut limits = match base.kind {
            Kind::BigOp | Kind::LimFn => self.display,
            Kind::Brace => true,
            _ => false,
        };
        loop {
            match self.peek().0 {
                Tok::Sup if sup.is_none() => {
                    self.next();
                    sup = Some(self.arg()?);
                }
                Tok::Sub if sub.is_none() => {
                    self.next();
                    sub = Some(self.arg()?);
                }
                Tok::Sup | Tok::Sub => return Err(Fail),
                Tok::Char('\'') if sup.is_none() => {
                    self.next();
                    primes.push_str(&mo('′'));
                }
                Tok::Cmd("limits") => {
                    self.next();
                    limits = true;
                }
                Tok::Cmd("nolimits") => {
                    self.next();
                    limits = false;
                }
                _ => break,
            }
        }
        let sup = match (primes.is_empty(), sup) {
            (true, sup) => sup,
            (false, None) => Some(primes),
            (false, Some(sup)) => Some(el("mrow", "", &[&primes, &sup])),
        };
        let (under, over, both) = if limits {
            ("munder", "mover", "munderover")
        } else {
            ("msub", "msup", "msubsup")
        };
        let ml = match (sub, sup) {
            (None, None) => return Ok(base),
            (Some(sub), None) => el(under, "", &[&base.ml, &sub]),
            (None, Some(sup)) => el(over, "", &[&base.ml, &sup]),
            (Some(sub), Some(sup)) => el(both, "", &[&base.ml, &sub, &sup]),
        };
        Ok(Atom {
            ml,
            kind: base.kind,
        })
    }

    /// One atom (not taking its scripts); `None` for what draws nothing.
    fn atom(&mut self) -> R<Option<Atom>> {
        let tok = self.peek().0;
        let ml = match tok {
            Tok::Open => self.group()?,
            // A script with nothing before it (`{}^2`, `^2` first).
            Tok::Sup | Tok::Sub => "<mrow></mrow>".to_owned(),
            Tok::Close | Tok::Amp | Tok::End => return Err(Fail),
            Tok::Char(c) => {
                self.next();
                self.char_atom(c)
            }
            Tok::Cmd(name) => {
                self.next();
                return self.command(name);
            }
        };
        Ok(Some(Atom::ord(ml)))
    }

    fn char_atom(&self, c: char) -> String {
        match c {
            'a'..='z' | 'A'..='Z' => self.letter(c),
            '0'..='9' => self.mn(c.encode_utf8(&mut [0; 4])),
            '-' => mo('−'),
            '*' => mo('∗'),
            '\'' => mo('′'),
            '~' => space("0.3333"),
            '(' | ')' | '[' | ']' | '|' | '/' => fence(c, " stretchy=\"false\""),
            c if c.is_alphabetic() => self.letter(c),
            c => mo(c),
        }
    }

    /// A letter in the current font.
    fn letter(&self, c: char) -> String {
        let mut out = String::from("<mi");
        let c = match styled(self.font, c) {
            Some(styled) => styled,
            None if self.font != Font::None => {
                out.push_str(" mathvariant=\"normal\"");
                c
            }
            None => c,
        };
        out.push('>');
        push_esc_char(&mut out, c);
        out.push_str("</mi>");
        out
    }

    fn command(&mut self, name: &'a str) -> R<Option<Atom>> {
        if let Some((c, class)) = symbol(name) {
            let (ml, kind) = match class {
                MI if self.font != Font::None => (self.letter(c), Kind::Ord),
                MI => (el("mi", "", &[c.encode_utf8(&mut [0; 4])]), Kind::Ord),
                UP => (
                    el(
                        "mi",
                        " mathvariant=\"normal\"",
                        &[c.encode_utf8(&mut [0; 4])],
                    ),
                    Kind::Ord,
                ),
                FENCE => (fence(c, " stretchy=\"false\""), Kind::Ord),
                BIG => (mo(c), Kind::BigOp),
                INT => (mo(c), Kind::Integral),
                _ => (mo(c), Kind::Ord),
            };
            return Ok(Some(Atom { ml, kind }));
        }
        if let Some(limits) = lookup(FUNCTIONS, name) {
            let kind = if limits { Kind::LimFn } else { Kind::Func };
            let text = match name {
                "limsup" => "lim\u{a0}sup",
                "liminf" => "lim\u{a0}inf",
                "argmax" => "arg\u{a0}max",
                "argmin" => "arg\u{a0}min",
                _ => name,
            };
            return Ok(Some(Atom {
                ml: el("mi", "", &[text]),
                kind,
            }));
        }
        if let Some((_, mark, over, wide)) = ACCENTS.iter().find(|(n, ..)| *n == name) {
            let base = self.arg()?;
            let stretchy = if *wide { "true" } else { "false" };
            let mark = fence(*mark, &[" stretchy=\"", stretchy, "\""].concat());
            let (ml, kind) = match (over, name) {
                (true, "overbrace") => (el("mover", "", &[&base, &mark]), Kind::Brace),
                (false, "underbrace") => (el("munder", "", &[&base, &mark]), Kind::Brace),
                (true, _) => (el("mover", " accent=\"true\"", &[&base, &mark]), Kind::Ord),
                (false, _) => (
                    el("munder", " accentunder=\"true\"", &[&base, &mark]),
                    Kind::Ord,
                ),
            };
            return Ok(Some(Atom { ml, kind }));
        }
        if let Some(em) = lookup(SPACES, name) {
            return Ok(Some(Atom::ord(space(em))));
        }
        if IGNORED.contains(&name) {
            return Ok(None);
        }
        match name {
            "text" | "textrm" | "textnormal" | "textup" | "mbox" | "hbox" => {
                return self.text("").map(Some)
            }
            "textbf" => return self.text("font-weight:bold").map(Some),
            "textit" | "emph" | "textsl" => return self.text("font-style:italic").map(Some),
            "texttt" => return self.text("font-family:monospace").map(Some),
            "textsf" => return self.text("font-family:sans-serif").map(Some),
            _ => {}
        }
        let font = match name {
            "mathrm" | "rm" | "mathup" | "mathnormal" => Some(Font::Roman),
            "mathbf" | "bf" => Some(Font::Bold),
            "mathit" | "it" => Some(Font::Italic),
            "boldsymbol" | "bm" | "pmb" => Some(Font::BoldItalic),
            "mathcal" | "mathscr" | "cal" => Some(Font::Script),
            "mathfrak" => Some(Font::Fraktur),
            "mathbb" | "Bbb" => Some(Font::DoubleStruck),
            "mathsf" | "sf" => Some(Font::Sans),
            "mathtt" | "tt" => Some(Font::Mono),
            _ => None,
        };
        if let Some(font) = font {
            if matches!(name, "rm" | "bf" | "it" | "cal" | "sf" | "tt") {
                // A switch (`{\bf x}`): the rest of the group.
                self.font = font;
                return Ok(None);
            }
            return Ok(Some(Atom::ord(self.arg_in(font)?)));
        }
        let ml = match name {
            "frac" | "dfrac" | "tfrac" | "cfrac" => {
                let num = self.arg()?;
                let den = self.arg()?;
                let frac = el("mfrac", "", &[&num, &den]);
                match name {
                    "dfrac" | "cfrac" => el("mstyle", " displaystyle=\"true\"", &[&frac]),
                    "tfrac" => el("mstyle", " displaystyle=\"false\"", &[&frac]),
                    _ => frac,
                }
            }
            "binom" | "dbinom" | "tbinom" => {
                let n = self.arg()?;
                let k = self.arg()?;
                [
                    "<mrow><mo>(</mo><mfrac linethickness=\"0\">",
                    &n,
                    &k,
                    "</mfrac><mo>)</mo></mrow>",
                ]
                .concat()
            }
            "sqrt" => {
                if self.eat_char('[') {
                    self.enter()?;
                    let index = self.row(true)?;
                    self.depth -= 1;
                    if !self.eat_char(']') {
                        return Err(Fail);
                    }
                    let base = self.arg()?;
                    el("mroot", "", &[&base, &mrow(index)])
                } else {
                    el("msqrt", "", &[&self.arg()?])
                }
            }
            "operatorname" => {
                let limits = self.eat_char('*');
                let name = self.raw_group()?;
                let mut ml = String::from("<mi>");
                escape_into(&plain_text(name)?, &mut ml);
                ml.push_str("</mi>");
                let kind = if limits { Kind::LimFn } else { Kind::Func };
                return Ok(Some(Atom { ml, kind }));
            }
            "mathop" => {
                return Ok(Some(Atom {
                    ml: self.arg()?,
                    kind: Kind::BigOp,
                }))
            }
            "mathbin" | "mathrel" | "mathord" | "mathopen" | "mathclose" | "mathpunct"
            | "mathinner" | "displaylimits" => self.arg()?,
            "overset" | "stackrel" | "underset" => {
                let script = self.arg()?;
                let base = self.arg()?;
                let name = if name == "underset" {
                    "munder"
                } else {
                    "mover"
                };
                el(name, "", &[&base, &script])
            }
            "left" => self.left_right()?,
            "big" | "Big" | "bigg" | "Bigg" | "bigl" | "Bigl" | "biggl" | "Biggl" | "bigr"
            | "Bigr" | "biggr" | "Biggr" | "bigm" | "Bigm" | "biggm" | "Biggm" => {
                let size = match name.trim_end_matches(['l', 'r', 'm']) {
                    "big" => "1.2",
                    "Big" => "1.8",
                    "bigg" => "2.4",
                    _ => "3",
                };
                match self.delimiter()? {
                    Some(c) => fence(
                        c,
                        &[
                            " stretchy=\"true\" symmetric=\"true\" minsize=\"",
                            size,
                            "em\" maxsize=\"",
                            size,
                            "em\"",
                        ]
                        .concat(),
                    ),
                    None => return Ok(None),
                }
            }
            "not" => {
                self.enter()?;
                let next = self.atom()?.ok_or(Fail)?;
                self.depth -= 1;
                match next.ml.as_str() {
                    "<mo>=</mo>" => mo('≠'),
                    "<mo>∈</mo>" => mo('∉'),
                    "<mo>≡</mo>" => mo('≢'),
                    "<mo>⊂</mo>" => mo('⊄'),
                    "<mo>⊆</mo>" => mo('⊈'),
                    ml => match ml.strip_suffix("</mo>") {
                        Some(open) => [open, "\u{338}</mo>"].concat(),
                        None => return Err(Fail),
                    },
                }
            }
            "boxed" | "fbox" => el("mrow", " class=\"math-boxed\"", &[&self.arg()?]),
            "cancel" | "bcancel" | "xcancel" | "sout" => el(
                "menclose",
                " notation=\"updiagonalstrike\"",
                &[&self.arg()?],
            ),
            "phantom" | "hphantom" | "vphantom" => el("mphantom", "", &[&self.arg()?]),
            "color" => {
                self.raw_group()?;
                return Ok(None);
            }
            "textcolor" | "colorbox" => {
                self.raw_group()?;
                self.arg()?
            }
            "hspace" | "hskip" | "kern" | "mkern" | "mskip" if self.peek().0 == Tok::Open => {
                self.raw_group()?;
                space("0.5")
            }
            "tag" | "label" => {
                self.eat_char('*');
                self.raw_group()?;
                return Ok(None);
            }
            "pmod" => {
                let n = self.arg()?;
                [
                    "<mspace width=\"1em\"></mspace><mo stretchy=\"false\">(</mo><mi>mod</mi>\
                     <mspace width=\"0.3333em\"></mspace>",
                    &n,
                    "<mo stretchy=\"false\">)</mo>",
                ]
                .concat()
            }
            "bmod" | "mod" => "<mo lspace=\"0.2222em\" rspace=\"0.2222em\">mod</mo>".to_owned(),
            "substack" => {
                self.enter()?;
                if self.next() != Tok::Open {
                    return Err(Fail);
                }
                let rows = self.rows()?;
                if self.next() != Tok::Close {
                    return Err(Fail);
                }
                self.depth -= 1;
                table(rows, "")
            }
            "begin" => self.environment()?,
            _ => return Err(Fail),
        };
        Ok(Some(Atom::ord(ml)))
    }

    /// `\text{…}` and its kin: text, styled with `style` (a constant).
    fn text(&mut self, style: &str) -> R<Atom> {
        let text = plain_text(self.raw_group()?)?;
        let mut ml = String::from("<mtext");
        if !style.is_empty() {
            ml.push_str(" style=\"");
            ml.push_str(style);
            ml.push('"');
        }
        ml.push('>');
        // Blanks at the edges of a token are dropped by MathML: keep them.
        escape_into(&text.replace(' ', "\u{a0}"), &mut ml);
        ml.push_str("</mtext>");
        Ok(Atom::ord(ml))
    }

    /// The delimiter after `\left`, `\right`, `\big`…; `None` for `.`.
    fn delimiter(&mut self) -> R<Option<char>> {
        match self.next() {
            Tok::Char('.') => Ok(None),
            Tok::Char('<') => Ok(Some('⟨')),
            Tok::Char('>') => Ok(Some('⟩')),
            Tok::Char(c) if "()[]|/".contains(c) => Ok(Some(c)),
            Tok::Cmd(name) => lookup_fence(name).map(Some).ok_or(Fail),
            _ => Err(Fail),
        }
    }

    /// `\left( … \middle| … \right)`, after `\left`.
    fn left_right(&mut self) -> R<String> {
        self.enter()?;
        const STRETCH: &str = " fence=\"true\" stretchy=\"true\" symmetric=\"true\"";
        let mut items = Vec::new();
        if let Some(c) = self.delimiter()? {
            items.push(fence(c, STRETCH));
        }
        loop {
            items.extend(self.row(false)?);
            match self.next() {
                Tok::Cmd("middle") => {
                    if let Some(c) = self.delimiter()? {
                        items.push(fence(c, STRETCH));
                    }
                }
                Tok::Cmd("right") => {
                    if let Some(c) = self.delimiter()? {
                        items.push(fence(c, STRETCH));
                    }
                    break;
                }
                _ => return Err(Fail),
            }
        }
        self.depth -= 1;
        Ok(el("mrow", "", &[&items.concat()]))
    }

    /// `\begin{name} … \end{name}`, after `\begin`.
    fn environment(&mut self) -> R<String> {
        self.enter()?;
        let name = self.raw_group()?;
        let (open, close, attrs) = match name.trim_end_matches('*') {
            "matrix" | "smallmatrix" => ("", "", ""),
            "pmatrix" => ("(", ")", ""),
            "bmatrix" => ("[", "]", ""),
            "Bmatrix" => ("{", "}", ""),
            "vmatrix" => ("|", "|", ""),
            "Vmatrix" => ("‖", "‖", ""),
            "cases" | "dcases" => ("{", "", " class=\"math-cases\" columnalign=\"left left\""),
            "rcases" => ("", "}", " class=\"math-cases\" columnalign=\"left left\""),
            "array" | "alignedat" | "alignat" => {
                // The column spec (or count): not used.
                self.raw_group()?;
                if name.starts_with("align") {
                    ("", "", ALIGNED)
                } else {
                    ("", "", "")
                }
            }
            "aligned" | "align" | "split" | "eqnarray" | "flalign" => ("", "", ALIGNED),
            "gathered" | "gather" | "equation" | "multline" => ("", "", " displaystyle=\"true\""),
            _ => return Err(Fail),
        };
        let rows = self.rows()?;
        if self.next() != Tok::Cmd("end") || self.raw_group()? != name {
            return Err(Fail);
        }
        self.depth -= 1;
        let table = table(rows, attrs);
        Ok(if open.is_empty() && close.is_empty() {
            table
        } else {
            let mo_of = |c: &str| {
                if c.is_empty() {
                    String::new()
                } else {
                    el("mo", "", &[c])
                }
            };
            let (open, close) = (mo_of(open), mo_of(close));
            el("mrow", "", &[&open, &table, &close])
        })
    }
}

const ALIGNED: &str =
    " class=\"math-align\" displaystyle=\"true\" columnalign=\"right left right left\"";

fn lookup_fence(name: &str) -> Option<char> {
    symbol(name)
        .filter(|&(_, class)| class == FENCE)
        .map(|(c, _)| c)
}

/// The character and class of the symbol `\name`.
fn symbol(name: &str) -> Option<(char, u8)> {
    for &(class, list) in SYMBOLS {
        let mut words = list.split(' ');
        while let (Some(n), Some(c)) = (words.next(), words.next()) {
            if n == name {
                return c.chars().next().map(|c| (c, class));
            }
        }
    }
    None
}

fn table(rows: Vec<Vec<Vec<String>>>, attrs: &str) -> String {
    let mut out = ["<mtable", attrs, ">"].concat();
    for row in rows {
        out.push_str("<mtr>");
        for cell in row {
            out.push_str("<mtd>");
            out.push_str(&cell.concat());
            out.push_str("</mtd>");
        }
        out.push_str("</mtr>");
    }
    out.push_str("</mtable>");
    out
}

/// The text of a `\text{…}` group: braces dropped, `\{` `\%`… unescaped;
/// other commands inside are not supported.
fn plain_text(raw: &str) -> R<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '{' | '}' => {}
            '~' => out.push('\u{a0}'),
            '\\' => match chars.next() {
                Some(c @ ('{' | '}' | '$' | '%' | '&' | '_' | '#' | ' ' | '\\')) => {
                    out.push(if c == '\\' { ' ' } else { c })
                }
                _ => return Err(Fail),
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::to_mathml;

    fn inline(tex: &str) -> String {
        to_mathml(tex, false)
    }

    /// The names of the elements in `html`, and whether each attribute is one
    /// of the few this module writes.
    pub(crate) fn only_mathml(html: &str) -> bool {
        const ELEMENTS: &[&str] = &[
            "math",
            "mrow",
            "mi",
            "mn",
            "mo",
            "mtext",
            "mspace",
            "msub",
            "msup",
            "msubsup",
            "munder",
            "mover",
            "munderover",
            "mfrac",
            "msqrt",
            "mroot",
            "mstyle",
            "mtable",
            "mtr",
            "mtd",
            "mphantom",
            "menclose",
            "code",
        ];
        const ATTRIBUTES: &[&str] = &[
            "display",
            "displaystyle",
            "mathvariant",
            "stretchy",
            "symmetric",
            "fence",
            "minsize",
            "maxsize",
            "accent",
            "accentunder",
            "linethickness",
            "width",
            "lspace",
            "rspace",
            "columnalign",
            "notation",
            "class",
            "style",
        ];
        let mut rest = html;
        while let Some(n) = rest.find('<') {
            rest = &rest[n + 1..];
            let end = rest.find('>').unwrap_or(rest.len());
            let tag = rest[..end].trim_start_matches('/');
            let (name, mut attrs) = tag.split_once(' ').unwrap_or((tag, ""));
            if !ELEMENTS.contains(&name) {
                return false;
            }
            // `name="value"` pairs, one space apart.
            while !attrs.is_empty() {
                let Some((name, rest)) = attrs.split_once("=\"") else {
                    return false;
                };
                let Some((value, rest)) = rest.split_once('"') else {
                    return false;
                };
                if !ATTRIBUTES.contains(&name) || value.contains(['<', '>', '&']) {
                    return false;
                }
                attrs = rest.strip_prefix(' ').unwrap_or(rest);
            }
        }
        true
    }

    #[test]
    fn letters_numbers_and_operators() {
        assert_eq!(
            inline("x+12.5=y"),
            "<math><mrow><mi>x</mi><mo>+</mo><mn>12.5</mn><mo>=</mo><mi>y</mi></mrow></math>"
        );
        assert_eq!(
            to_mathml("a-b", true),
            "<math display=\"block\"><mrow><mi>a</mi><mo>−</mo><mi>b</mi></mrow></math>"
        );
        assert_eq!(inline("x"), "<math><mi>x</mi></math>");
    }

    #[test]
    fn scripts_fractions_roots() {
        assert_eq!(
            inline("x^2"),
            "<math><msup><mi>x</mi><mn>2</mn></msup></math>"
        );
        assert_eq!(
            inline("x_{i}^{n+1}"),
            "<math><msubsup><mi>x</mi><mi>i</mi><mrow><mi>n</mi><mo>+</mo><mn>1</mn></mrow></msubsup></math>"
        );
        assert_eq!(inline("x^23").matches("<mn>").count(), 2);
        assert_eq!(
            inline("\\frac{a}{b}"),
            "<math><mfrac><mi>a</mi><mi>b</mi></mfrac></math>"
        );
        assert_eq!(
            inline("\\frac12"),
            "<math><mfrac><mn>1</mn><mn>2</mn></mfrac></math>"
        );
        assert!(inline("\\sqrt{x}").contains("<msqrt><mi>x</mi></msqrt>"));
        assert!(inline("\\sqrt[3]{x}").contains("<mroot><mi>x</mi><mn>3</mn></mroot>"));
        assert!(inline("f'(x)").contains("<msup><mi>f</mi><mo>′</mo></msup>"));
    }

    #[test]
    fn symbols_functions_and_limits() {
        let out = to_mathml("\\sum_{i=1}^{n} \\alpha_i \\leq \\infty", true);
        assert!(out.contains("<munderover><mo>∑</mo>"), "{out}");
        assert!(out.contains("<msub><mi>α</mi><mi>i</mi></msub>"), "{out}");
        assert!(out.contains("<mo>≤</mo><mi>∞</mi>"), "{out}");
        let out = inline("\\sum_{i=1}^{n} i");
        assert!(out.contains("<msubsup><mo>∑</mo>"), "{out}");
        let out = inline("\\int_0^1 f");
        assert!(
            out.contains("<msubsup><mo>∫</mo><mn>0</mn><mn>1</mn></msubsup>"),
            "{out}"
        );
        let out = inline("\\sin x + \\log(y)");
        assert!(
            out.contains("<mi>sin</mi><mspace width=\"0.1667em\"></mspace><mi>x</mi>"),
            "{out}"
        );
        assert!(
            out.contains("<mi>log</mi><mo stretchy=\"false\">(</mo>"),
            "{out}"
        );
        let out = to_mathml("\\lim_{x \\to 0} x", true);
        assert!(
            out.contains(
                "<munder><mi>lim</mi><mrow><mi>x</mi><mo>→</mo><mn>0</mn></mrow></munder>"
            ),
            "{out}"
        );
        assert!(inline("\\Gamma").contains("<mi mathvariant=\"normal\">Γ</mi>"));
    }

    #[test]
    fn fonts_accents_text() {
        assert!(inline("\\mathbb{R}").contains("<mi>ℝ</mi>"));
        assert!(inline("\\mathbf{v}").contains("<mi>𝐯</mi>"));
        assert!(inline("\\mathcal{L}").contains("<mi>ℒ</mi>"));
        assert!(inline("\\mathrm{d}x").contains("<mi mathvariant=\"normal\">d</mi><mi>x</mi>"));
        assert!(inline("\\hat{x}")
            .contains("<mover accent=\"true\"><mi>x</mi><mo stretchy=\"false\">^</mo></mover>"));
        assert!(inline("\\text{if } x").contains("<mtext>if\u{a0}</mtext>"));
        assert!(inline("\\operatorname{rank} A").contains("<mi>rank</mi>"));
    }

    #[test]
    fn fences_and_environments() {
        let out = inline("\\left( \\frac{a}{b} \\right]");
        assert!(
            out.starts_with(
                "<math><mrow><mo fence=\"true\" stretchy=\"true\" symmetric=\"true\">(</mo><mfrac>"
            ),
            "{out}"
        );
        assert!(
            out.ends_with(
                "<mo fence=\"true\" stretchy=\"true\" symmetric=\"true\">]</mo></mrow></math>"
            ),
            "{out}"
        );
        let out = inline("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}");
        assert_eq!(out, "<math><mrow><mo>(</mo><mtable><mtr><mtd><mn>1</mn></mtd><mtd><mn>2</mn></mtd></mtr><mtr><mtd><mn>3</mn></mtd><mtd><mn>4</mn></mtd></mtr></mtable><mo>)</mo></mrow></math>");
        let out = to_mathml(
            "f(x) = \\begin{cases} 1 & x > 0 \\\\ 0 & \\text{otherwise} \\end{cases}",
            true,
        );
        assert!(out.contains("<mtable class=\"math-cases\""), "{out}");
        let out = to_mathml("a &= b \\\\ &= c", true);
        assert!(out.contains("<mtable class=\"math-align\""), "{out}");
        assert_eq!(out.matches("<mtr>").count(), 2, "{out}");
    }

    /// Nothing in the TeX becomes markup of its own.
    #[test]
    fn tex_cannot_inject_markup() {
        for tex in [
            "\\text{<script>alert(1)</script>}",
            "\\operatorname{<img src=x onerror=alert(1)>}",
            "<script>",
            "a < b > c & d \" e",
            "\\mathrm{<b>}",
        ] {
            let out = inline(tex);
            assert!(only_mathml(&out), "{out}");
            assert!(!out.contains("<script"), "{out}");
        }
        assert!(inline("a < b").contains("<mo>&lt;</mo>"));
        // Unsupported commands, links among them, fail and show as source.
        for tex in [
            "\\href{javascript:alert(1)}{x}",
            "\\url{javascript:alert(1)}",
            "\\style{color:red}{x}",
            "\\class{x}{y}",
            "\\htmlId{x}{y}",
            "\\color{red} x \\textcolor{\"><script>}{y}",
        ] {
            let out = inline(tex);
            assert!(only_mathml(&out), "{out}");
            assert!(!out.contains("<script"), "{out}");
            assert!(!out.contains("href="), "{out}");
            assert!(!out.contains("style=\"color"), "{out}");
        }
        assert!(inline("\\href{javascript:alert(1)}{x}").starts_with("<code class=\"math-error\">"));
    }

    /// Combinations of fragments (mostly broken TeX) never panic, and give
    /// either MathML of the allowed elements or the escaped source.
    #[test]
    fn any_input_gives_mathml_or_source() {
        const PARTS: &[&str] = &[
            "x",
            "12.5",
            "{",
            "}",
            "^",
            "_",
            "\\frac",
            "\\sqrt",
            "[",
            "]",
            "\\left(",
            "\\right)",
            "\\middle|",
            "&",
            "\\\\",
            "\\begin{cases}",
            "\\end{cases}",
            "\\text{<a>",
            "\\not",
            "\\mathbb",
            "\\hat",
            "\\sum",
            "\\lim",
            "\\sin",
            "'",
            "\\",
            "%",
            "<",
            "\"",
            "é",
            "\\operatorname*{",
            "\\big",
            "\\overbrace",
            "\\limits",
            "\\color{",
            "\\bf",
        ];
        for a in PARTS {
            for b in PARTS {
                for c in PARTS {
                    let tex = format!("{a}{b}{c}");
                    for display in [false, true] {
                        let out = to_mathml(&tex, display);
                        assert!(
                            out.starts_with("<code class=\"math-error\">") || only_mathml(&out),
                            "{tex}: {out}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn what_fails_shows_as_source() {
        for tex in [
            "\\frac{a}",
            "x^",
            "{x",
            "x}",
            "\\unknown",
            "\\left( x",
            "x^a^b",
            "\\begin{foo}x\\end{foo}",
            "\\",
        ] {
            let out = inline(tex);
            assert!(
                out.starts_with("<code class=\"math-error\">"),
                "{tex}: {out}"
            );
        }
        assert_eq!(
            inline("\\frac{<b>}"),
            "<code class=\"math-error\">\\frac{&lt;b&gt;}</code>"
        );
        // Deep nesting is refused, not a stack overflow.
        let deep = format!("{}x{}", "{".repeat(10_000), "}".repeat(10_000));
        assert!(inline(&deep).starts_with("<code class=\"math-error\">"));
        let deep = "\\sqrt".repeat(10_000) + "x";
        assert!(inline(&deep).starts_with("<code class=\"math-error\">"));
        let deep = "\\not".repeat(10_000) + "=";
        assert!(inline(&deep).starts_with("<code class=\"math-error\">"));
        let deep = "x^{".repeat(10_000) + "x";
        assert!(inline(&deep).starts_with("<code class=\"math-error\">"));
    }
}
