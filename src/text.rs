//! Peer-controlled text made safe for a terminal or a log line.

use std::borrow::Cow;
use std::fmt::Write;

/// Escapes control characters (C0, DEL, C1), Unicode bidi and other format
/// controls, and backslashes, so a peer's text cannot move the cursor,
/// recolour the terminal, forge a log line or hide what it says. Printable
/// text, emoji included, passes unchanged.
pub fn escape(s: &str) -> Cow<'_, str> {
    // Printable ASCII, the common case, needs no decoding to pass.
    if s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\') || !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c == '\\' || c.is_control() || invisible(c)
}

/// An invisible format character: a soft hyphen, a zero-width space or
/// joiner, a bidi mark or override, a line or paragraph separator, a byte
/// order mark, an interlinear annotation mark.
pub fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{061c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_could_steer_a_terminal() {
        assert_eq!(escape("plain 😀"), "plain 😀");
        assert_eq!(escape("a\nb"), "a\\nb");
        assert_eq!(escape("\x1b[2J"), "\\u{1b}[2J");
        assert_eq!(escape("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(escape("back\\slash"), "back\\\\slash");
        assert!(!escape("\u{9b}31m").contains('\u{9b}'));
        // Invisible format characters and line separators show as escapes.
        for c in [
            '\u{ad}', '\u{61c}', '\u{2028}', '\u{2029}', '\u{2060}', '\u{feff}',
        ] {
            let shown = escape(&format!("a{c}b")).into_owned();
            assert!(
                !shown.contains(c) && shown.contains("\\u{"),
                "{c:?} -> {shown}"
            );
        }
    }
}
