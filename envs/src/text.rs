//! Text from outside the program (a command's answer or stderr, a message of a tool it ran)
//! made safe to put in a message.

/// `text` with every control character written as an escape, so that echoing it to a
/// terminal cannot move the cursor, retitle the window, ring the bell or hide what follows:
/// `\t`, `\n`, `\r` as themselves, the other C0 and C1 controls and DEL as `\u{1b}`, and so
/// the Unicode bidirectional controls (which reorder what a terminal shows, U+202E and the
/// like). Everything else is kept as it is.
pub fn printable(text: &str) -> String {
    if !text.chars().any(needs_escape) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// Whether [`printable`] escapes `c`: a control character (C0, DEL, C1) or a bidirectional
/// formatting character.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Characters that [`quote`] keeps of a text (an offending answer, say).
const QUOTE_CHARS: usize = 200;

/// `text` in single quotes, cut after [`QUOTE_CHARS`] characters, its control characters
/// escaped ([`printable`]).
pub(crate) fn quote(text: &str) -> String {
    format!("'{}'", printable(&truncate(text, QUOTE_CHARS)))
}

/// The first `max` characters of `text`, with `…` when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{QUOTE_CHARS, printable, quote};

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(printable("plain é ✓ text"), "plain é ✓ text");
        assert_eq!(printable("a\x1b[31mred\x07\u{9b}2J"), "a\\u{1b}[31mred\\u{7}\\u{9b}2J");
        assert_eq!(printable("x\ty\r\nz\x7f\0"), "x\\ty\\r\\nz\\u{7f}\\u{0}");
        assert_eq!(printable("abc\u{202e}def"), "abc\\u{202e}def");
        assert!(
            printable(&(0..0x110000).filter_map(char::from_u32).collect::<String>()).chars().all(|c| !c.is_control())
        );
    }

    #[test]
    fn quotes_are_cut_at_200_characters() {
        let long = "x".repeat(1000);
        let quoted = quote(&long);
        assert_eq!(quoted.chars().count(), QUOTE_CHARS + 3);
        assert!(quoted.ends_with("…'"));
        assert_eq!(quote("é"), "'é'");
    }
}
