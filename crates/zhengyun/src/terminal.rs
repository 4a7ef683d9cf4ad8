//! What the CLI prints is made safe for a terminal: names and messages come from the server
//! (and, through it, from other people), and a control or format character in them could
//! drive the terminal (escape sequences, carriage returns) or make one name look like another
//! (bidirectional controls, zero-width characters). Such characters are shown escaped as
//! `\u{202e}`; the set is the model's [`hides_text`].

use std::borrow::Cow;
use std::fmt::Write as _;

use zhengyun_model::names::hides_text;

/// `text` with every hiding character escaped, line breaks included: for one table cell or line.
pub fn line(text: &str) -> Cow<'_, str> {
    escape(text, |_, _| false)
}

/// `text` with every hiding character escaped except line breaks (`\n`, and `\r` before `\n`),
/// for text of several lines (an error with its fields, a CSV document).
pub fn lines(text: &str) -> Cow<'_, str> {
    escape(text, |c, next| {
        c == '\n' || (c == '\r' && next == Some('\n'))
    })
}

/// A JSON document with every hiding character left inside its strings written as a JSON
/// escape (`\u202e`), so that it shows nothing hidden and still parses to the same value.
/// `serde_json` escapes control characters already; this adds format characters and separators.
pub fn json(document: &str) -> Cow<'_, str> {
    if !document.chars().any(|c| hides_text(c) && c != '\n') {
        return Cow::Borrowed(document);
    }
    let mut out = String::with_capacity(document.len() + 16);
    for c in document.chars() {
        if hides_text(c) && c != '\n' {
            let mut units = [0; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn escape(text: &str, keep: impl Fn(char, Option<char>) -> bool) -> Cow<'_, str> {
    let mut chars = text.chars().peekable();
    let mut out = String::new();
    let mut changed = false;
    while let Some(c) = chars.next() {
        if hides_text(c) && !keep(c, chars.peek().copied()) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            changed = true;
        } else {
            out.push(c);
        }
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_escapes_everything_hidden_and_leaves_text_alone() {
        assert_eq!(
            line("a\u{1b}[2J\r\nb\u{202e}"),
            "a\\u{1b}[2J\\u{d}\\u{a}b\\u{202e}"
        );
        assert!(matches!(line("区卫生健康委员会 (wjw)"), Cow::Borrowed(_)));
    }

    #[test]
    fn lines_keep_their_breaks_but_not_a_bare_carriage_return() {
        assert_eq!(lines("a\r\nb\nc\rd\u{200b}"), "a\r\nb\nc\\u{d}d\\u{200b}");
    }

    #[test]
    fn json_escapes_outside_the_basic_plane_as_surrogate_pairs() {
        assert_eq!(json("\"\u{e0001}\""), "\"\\udb40\\udc01\"");
    }
}
