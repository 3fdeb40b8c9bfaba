//! Emoji: `:shortcode:` expansion in text (GitHub's gemoji names, from the
//! `emojis` crate) and checking a reaction.

/// Replaces every `:name:` that is a known shortcode with its emoji;
/// anything else, such as `10:30:00` or `:not-a-code:`, stays as written.
pub fn expand(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(':') {
        let after = &rest[start + 1..];
        match after.find(':') {
            Some(len) if is_name(&after[..len]) => match emojis::get_by_shortcode(&after[..len]) {
                Some(e) => {
                    out.push_str(&rest[..start]);
                    out.push_str(e.as_str());
                    rest = &after[len + 1..];
                }
                None => {
                    // Keep the first colon; the second may open a real code.
                    out.push_str(&rest[..start + 1]);
                    rest = after;
                }
            },
            _ => {
                out.push_str(&rest[..start + 1]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+-".contains(&b))
}

/// The emoji a reaction names: an emoji itself, or a shortcode with or
/// without colons. The error says what was wrong.
pub fn reaction(input: &str) -> Result<String, String> {
    let s = input.trim();
    if let Some(e) = emojis::get(s) {
        return Ok(e.as_str().to_owned());
    }
    let name = s.strip_prefix(':').and_then(|x| x.strip_suffix(':')).unwrap_or(s);
    emojis::get_by_shortcode(name)
        .map(|e| e.as_str().to_owned())
        .ok_or_else(|| format!("{input:?} is not an emoji or a known :shortcode: (try :thumbsup: or 👍)"))
}

/// Checks a reaction that arrived: exactly one known emoji.
pub fn is_emoji(s: &str) -> bool {
    s.len() <= skein_proto::file::MAX_REACTION && emojis::get(s).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcodes_become_emoji() {
        assert_eq!(expand(":thumbsup:"), "👍");
        assert_eq!(expand("ship it :rocket: :tada:!"), "ship it 🚀 🎉!");
        assert_eq!(expand(":+1::-1:"), "👍👎");
    }

    #[test]
    fn other_colons_are_left_alone() {
        assert_eq!(expand("meet at 10:30:00"), "meet at 10:30:00");
        assert_eq!(expand(":nope: but :smile:"), ":nope: but 😄");
        assert_eq!(expand("a: b: c"), "a: b: c");
        assert_eq!(expand("::"), "::");
        assert_eq!(expand("trailing :"), "trailing :");
        assert_eq!(expand("ünïcödé :heart: ok"), "ünïcödé ❤️ ok");
    }

    #[test]
    fn reactions_take_emoji_or_shortcodes() {
        assert_eq!(reaction("👍").as_deref(), Ok("👍"));
        assert_eq!(reaction(":thumbsup:").as_deref(), Ok("👍"));
        assert_eq!(reaction("tada").as_deref(), Ok("🎉"));
        assert!(reaction("banana-phone").expect_err("unknown").contains("not an emoji"));
        assert!(is_emoji("🎉") && !is_emoji("ab") && !is_emoji(""));
    }
}
