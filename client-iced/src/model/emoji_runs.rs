//! Text split into runs of emoji and of everything else, so each emoji is
//! drawn with the colour emoji font: some text fonts carry black-and-white
//! glyphs for common emoji, and the first font that has a glyph wins.

/// One run of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run<'a> {
    /// Ordinary text.
    Text(&'a str),
    /// One or more emoji (with their joiners, variation selectors and
    /// skin tones).
    Emoji(&'a str),
}

/// Whether `c` starts or continues an emoji sequence.
fn is_emoji(c: char) -> bool {
    matches!(c as u32,
        0x1F000..=0x1FAFF      // pictographs, emoticons, transport, flags (regional indicators)
        | 0x2600..=0x27BF      // miscellaneous symbols and dingbats
        | 0x2B00..=0x2BFF      // arrows and stars (⭐)
        | 0x2300..=0x23FF      // technical (⌚ ⏰)
    )
}

/// Whether `c` only makes sense inside an emoji sequence.
fn joins(c: char) -> bool {
    matches!(c as u32, 0x200D | 0xFE0F | 0x20E3 | 0x1F3FB..=0x1F3FF | 0xE0020..=0xE007F)
}

/// The runs of `text`, in order; concatenated they give `text` back.
pub fn runs(text: &str) -> Vec<Run<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_emoji = false;
    for (i, c) in text.char_indices() {
        let emoji = is_emoji(c) || (in_emoji && joins(c));
        if emoji != in_emoji && i > start {
            out.push(if in_emoji { Run::Emoji(&text[start..i]) } else { Run::Text(&text[start..i]) });
            start = i;
        }
        in_emoji = emoji;
    }
    if start < text.len() {
        out.push(if in_emoji { Run::Emoji(&text[start..]) } else { Run::Text(&text[start..]) });
    }
    out
}

/// Whether `text` is nothing but emoji (shown large, as chat apps do).
pub fn only_emoji(text: &str) -> bool {
    let t = text.trim();
    !t.is_empty() && runs(t).iter().all(|r| matches!(r, Run::Emoji(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_sequences_are_runs_of_their_own_and_nothing_is_lost() {
        let text = "Ship it 🚀 now 👩‍💻👍🏽 ok ❤️ 🇩🇪!";
        let r = runs(text);
        assert_eq!(
            r,
            vec![
                Run::Text("Ship it "),
                Run::Emoji("🚀"),
                Run::Text(" now "),
                Run::Emoji("👩‍💻👍🏽"),
                Run::Text(" ok "),
                Run::Emoji("❤️"),
                Run::Text(" "),
                Run::Emoji("🇩🇪"),
                Run::Text("!"),
            ]
        );
        let back: String = r
            .iter()
            .map(|r| match r {
                Run::Text(t) | Run::Emoji(t) => *t,
            })
            .collect();
        assert_eq!(back, text);
        assert_eq!(runs("plain 日本語"), vec![Run::Text("plain 日本語")]);
        assert!(only_emoji(" 🎉🎉 "));
        assert!(!only_emoji("🎉 yay"));
        assert!(runs("").is_empty());
    }
}
