//! Text from other people, made safe to print on a terminal.
//!
//! Message text, user and file names, notes and errors reported by peers
//! are chosen by someone else. Printed raw, an escape sequence in them can
//! move the cursor, rewrite earlier lines, retitle the window or, on some
//! terminals, answer back as if typed; a carriage return can overwrite the
//! line it is on; a bidirectional override can make `exe.pdf` read as
//! `fdp.exe`. Human-readable output passes such text through [`line`] or
//! [`text`], which show every control character (C0, DEL, C1 including
//! ESC and CSI) and every invisible formatting character (the bidi controls
//! and the others [`is_hidden_format`] names) as a visible escape such as
//! `\x1b` or `\u{202e}`. `--json` output is never escaped: it must carry the
//! exact text, and JSON encoding already escapes control characters.

use crate::transfer::names::is_hidden_format;
use std::borrow::Cow;
use std::fmt::Write;

/// `s` for a single line: every control and invisible formatting character
/// escaped, newlines and tabs included.
pub fn line(s: &str) -> Cow<'_, str> {
    escape(s, |_| false)
}

/// `s` as possibly multi-line text: like [`line`], but tabs are kept, and
/// each newline is kept and followed by `indent`, so a continuation line
/// can never pass for a line of its own.
pub fn text<'a>(s: &'a str, indent: &str) -> Cow<'a, str> {
    match escape(s, |c| c == '\n' || c == '\t') {
        Cow::Borrowed(b) if !b.contains('\n') => Cow::Borrowed(b),
        escaped => Cow::Owned(escaped.replace('\n', &format!("\n{indent}"))),
    }
}

fn needs_escape(c: char) -> bool {
    c.is_control() || is_hidden_format(c)
}

fn escape(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(|c| needs_escape(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !needs_escape(c) || keep(c) {
            out.push(c);
        } else if (c as u32) <= 0xff {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:04x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_untouched() {
        for s in ["", "hello bob", "Grüße 👍", "family 👨\u{200d}👩\u{200d}👧", "C:\\path\\file.txt"] {
            assert!(matches!(line(s), Cow::Borrowed(b) if b == s), "{s}");
            assert!(matches!(text(s, "  "), Cow::Borrowed(b) if b == s), "{s}");
        }
    }

    #[test]
    fn terminal_controls_are_shown_not_obeyed() {
        // Clear the screen, retitle the window, overwrite the line.
        assert_eq!(line("a\u{1b}[2Jb"), "a\\x1b[2Jb");
        assert_eq!(line("\u{1b}]0;pwned\u{7}"), "\\x1b]0;pwned\\x07");
        assert_eq!(line("ok\rfake"), "ok\\x0dfake");
        assert_eq!(line("del\u{7f}"), "del\\x7f");
        // C1: single-byte CSI and the next-line control.
        assert_eq!(line("\u{9b}31m\u{85}"), "\\x9b31m\\x85");
        assert_eq!(line("tab\there\nnext"), "tab\\x09here\\x0anext");
    }

    #[test]
    fn bidi_and_invisible_characters_are_shown() {
        assert_eq!(line("invoice\u{202e}fdp.exe"), "invoice\\u{202e}fdp.exe");
        assert_eq!(line("\u{2066}x\u{2069}\u{200f}\u{feff}"), "\\u{2066}x\\u{2069}\\u{200f}\\u{feff}");
        assert_eq!(line("soft\u{ad}hyphen"), "soft\\xadhyphen");
    }

    #[test]
    fn text_keeps_tabs_and_indents_continuation_lines() {
        assert_eq!(text("a\tb", "  "), "a\tb");
        assert_eq!(text("first\n12:00:00 alice: forged", "    "), "first\n    12:00:00 alice: forged");
        assert_eq!(text("x\r\n\u{1b}[1A", "  "), "x\\x0d\n  \\x1b[1A");
    }
}
