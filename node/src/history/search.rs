//! Full-text search over the history: what messages say, and the names of
//! the files and images they offer.
//!
//! The index (`messages_fts`, migration 9) is an FTS5 table over the
//! messages' text with SQLite's trigram tokenizer. Stored messages join it
//! in batches ([`index_new`], migration 10): a task indexes what arrived
//! every [`INDEX_EVERY`], and a search first indexes whatever is left, so
//! it finds every stored message. (FTS5 writes an index segment at every
//! commit; indexing each message as it was stored, one commit each, was
//! half the cost of storing it.) Triggers take changed and deleted
//! messages out of the index, and put changed ones back. Trigrams need no
//! spaces between words, so Chinese and Japanese text is found by any part
//! of it, and a term matches anywhere in a word, not only at its start
//! (`ess` finds "message"): a prefix search and more.
//!
//! A query is what the user typed, never FTS5 syntax:
//!
//! - Whitespace separates terms; a hit contains every term. Quotes, `*`,
//!   `NEAR(`, `AND`, `OR`, `NOT`, `-`, `%` and the like are characters to
//!   find like any other, so no query is a syntax error.
//! - A term of three or more characters goes to the index, quoted as a
//!   phrase. It ignores case and diacritics: `creme` finds "Crème", `STRASSE`
//!   does not find "Straße" (folding is per character).
//! - The index cannot look up a term of one or two characters (a two-character
//!   Chinese word, "ok"): such a term is matched with `LIKE`, ignoring case
//!   in ASCII letters only, on the messages the longer terms found, or on
//!   every message when there is no longer term (a scan of the history).
//!
//! Hits come by relevance (bm25) then newest first; a query of short terms
//! only has no relevance, just newest first. Each hit carries a snippet of
//! about [`SNIPPET_CHARS`] characters around its matches, each match between
//! [`HIGHLIGHT_START`] and [`HIGHLIGHT_END`] ([`SearchHit::snippet_parts`]
//! splits it); a message that itself contains those control characters can
//! show a false highlight, never hide a message. In a query that mixes long
//! and short terms, only the long ones are highlighted.

use super::{History, HistoryError, fixed, stored_time};
use skein_proto::bytes::MailId;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

/// Opens a match in [`SearchHit::snippet`] (U+0002, START OF TEXT).
pub const HIGHLIGHT_START: char = '\u{2}';
/// Closes a match in [`SearchHit::snippet`] (U+0003, END OF TEXT).
pub const HIGHLIGHT_END: char = '\u{3}';
/// Marks text left out at either end of a snippet.
pub const ELLIPSIS: &str = "…";
/// About how many characters of the text a snippet shows (FTS5 counts
/// tokens, one per character with trigrams, and allows 64 at most).
pub const SNIPPET_CHARS: usize = 48;
/// Most terms in a query.
pub const MAX_TERMS: usize = 16;
/// Most characters in a query.
pub const MAX_QUERY_CHARS: usize = 512;
/// Most hits one search returns, whatever limit is asked for.
pub const MAX_HITS: u32 = 1000;

/// Terms shorter than this (in characters) cannot use the trigram index.
const INDEXED_TERM_CHARS: usize = 3;

/// One message that matches a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    /// The sender's message id.
    pub id: MailId,
    /// Its conversation: the other user's name, or a group's address
    /// (`#` and the group id), as [`conversation_of`](super::conversation_of) names it.
    pub conversation: String,
    /// The sending user.
    pub from_user: String,
    /// When the sender wrote it, ms since the Unix epoch.
    pub sent_at_ms: u64,
    /// Its whole text; for a file or an image, the offered name.
    pub text: String,
    /// Part of the text around the matches, each match between
    /// [`HIGHLIGHT_START`] and [`HIGHLIGHT_END`], with [`ELLIPSIS`] where
    /// text was left out.
    pub snippet: String,
}

impl SearchHit {
    /// The snippet in pieces, each with whether it is a match, for a face to
    /// show matches its own way. Empty pieces are left out.
    pub fn snippet_parts(&self) -> Vec<(&str, bool)> {
        let mut parts = Vec::new();
        let mut highlighted = false;
        let mut rest = self.snippet.as_str();
        loop {
            let marker = if highlighted { HIGHLIGHT_END } else { HIGHLIGHT_START };
            let (part, after) = match rest.split_once(marker) {
                Some((part, after)) => (part, Some(after)),
                None => (rest, None),
            };
            if !part.is_empty() {
                parts.push((part, highlighted));
            }
            match after {
                Some(after) => {
                    rest = after;
                    highlighted = !highlighted;
                }
                None => return parts,
            }
        }
    }
}

impl History {
    /// The messages whose text (or file or image name) contains every term
    /// of `query`, at most `limit` (and at most [`MAX_HITS`]), the most
    /// relevant first, then the newest. Reactions are never hits.
    ///
    /// Any text is a valid query (see the [module docs](self)); an empty
    /// one, or one longer than [`MAX_QUERY_CHARS`] characters or
    /// [`MAX_TERMS`] terms, is [`HistoryError::InvalidInput`].
    pub async fn search(&self, query: &str, limit: u32) -> Result<Vec<SearchHit>, HistoryError> {
        let terms = Terms::parse(query)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        index_new(&self.writer).await?;
        let rows = terms.select(limit.min(MAX_HITS)).build().fetch_all(&self.pool).await?;
        rows.iter().map(|row| hit(row, &terms)).collect()
    }
}

/// How often stored messages are added to the index (by a task of the
/// history's).
pub(super) const INDEX_EVERY: std::time::Duration = std::time::Duration::from_millis(500);
/// Messages added to the index in one transaction at most, so that the
/// writer's other work waits for one short transaction at a time.
const INDEX_BATCH: i64 = 1_000;

/// Adds every stored message not yet in the index, [`INDEX_BATCH`] to a
/// transaction; returns how many.
pub(super) async fn index_new(writer: &sqlx::SqlitePool) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        // Looked at first without the write lock, which an idle history
        // need not take every INDEX_EVERY.
        let waiting: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM messages WHERE seq > (SELECT seq FROM search_indexed WHERE id = 1) LIMIT 1",
        )
        .fetch_optional(writer)
        .await?;
        if waiting.is_none() {
            return Ok(total);
        }
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
        let added = sqlx::query(
            "INSERT INTO messages_fts (rowid, text) \
             SELECT seq, text FROM messages WHERE seq > (SELECT seq FROM search_indexed WHERE id = 1) \
             ORDER BY seq LIMIT $1",
        )
        .bind(INDEX_BATCH)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if added > 0 {
            sqlx::query(
                "UPDATE search_indexed SET seq = (SELECT MAX(seq) FROM (SELECT seq FROM messages \
                 WHERE seq > search_indexed.seq ORDER BY seq LIMIT $1)) WHERE id = 1",
            )
            .bind(INDEX_BATCH)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        total += added;
        if added < INDEX_BATCH as u64 {
            return Ok(total);
        }
    }
}

/// A query split into what the index looks up and what `LIKE` filters.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Terms {
    /// An FTS5 query of quoted phrases, when any term is long enough.
    fts: Option<String>,
    /// Terms too short for the index, as typed.
    short: Vec<String>,
}

impl Terms {
    /// Splits `query` at whitespace and control characters (a NUL would cut
    /// the FTS5 query short).
    fn parse(query: &str) -> Result<Terms, HistoryError> {
        let chars = query.chars().count();
        if chars > MAX_QUERY_CHARS {
            return Err(HistoryError::InvalidInput(format!(
                "the search is {chars} characters long; search for at most {MAX_QUERY_CHARS}"
            )));
        }
        let terms: Vec<&str> =
            query.split(|c: char| c.is_whitespace() || c.is_control()).filter(|t| !t.is_empty()).collect();
        if terms.is_empty() {
            return Err(HistoryError::InvalidInput("the search is empty: give a word to look for".into()));
        }
        if terms.len() > MAX_TERMS {
            return Err(HistoryError::InvalidInput(format!(
                "the search has {} words; search for at most {MAX_TERMS}",
                terms.len()
            )));
        }
        let (long, short): (Vec<&str>, Vec<&str>) =
            terms.into_iter().partition(|t| t.chars().count() >= INDEXED_TERM_CHARS);
        let fts = (!long.is_empty()).then(|| long.iter().map(|t| phrase(t)).collect::<Vec<_>>().join(" "));
        Ok(Terms { fts, short: short.into_iter().map(str::to_owned).collect() })
    }

    /// The statement that finds up to `limit` hits.
    fn select(&self, limit: u32) -> QueryBuilder<Sqlite> {
        let mut q = QueryBuilder::new("SELECT m.id, m.conversation, m.from_user, m.sent_at_ms, m.text, ");
        match &self.fts {
            Some(fts) => {
                q.push("snippet(messages_fts, 0, ")
                    .push_bind(HIGHLIGHT_START.to_string())
                    .push(", ")
                    .push_bind(HIGHLIGHT_END.to_string())
                    .push(", ")
                    .push_bind(ELLIPSIS)
                    .push(format_args!(", {SNIPPET_CHARS}) AS snippet "))
                    .push("FROM messages_fts JOIN messages m ON m.seq = messages_fts.rowid WHERE messages_fts MATCH ")
                    .push_bind(fts.as_str());
            }
            None => {
                q.push("NULL AS snippet FROM messages m WHERE 1");
            }
        }
        q.push(" AND m.kind != 'reaction'");
        for term in &self.short {
            q.push(" AND m.text LIKE ").push_bind(like_pattern(term)).push(" ESCAPE '\\'");
        }
        if self.fts.is_some() {
            q.push(" ORDER BY bm25(messages_fts), m.sent_at_ms DESC, m.seq DESC LIMIT ");
        } else {
            q.push(" ORDER BY m.sent_at_ms DESC, m.seq DESC LIMIT ");
        }
        q.push_bind(i64::from(limit));
        q
    }
}

/// `term` as an FTS5 phrase: in double quotes, its own doubled. Inside the
/// quotes nothing is syntax.
fn phrase(term: &str) -> String {
    format!("\"{}\"", term.replace('"', "\"\""))
}

/// A `LIKE` pattern (with `\` as the escape) for text containing `term`.
fn like_pattern(term: &str) -> String {
    let mut pattern = String::with_capacity(term.len() + 4);
    pattern.push('%');
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Decodes one row of [`Terms::select`].
fn hit(row: &SqliteRow, terms: &Terms) -> Result<SearchHit, HistoryError> {
    let text: String = row.try_get::<Option<String>, _>("text")?.unwrap_or_default();
    let snippet = match row.try_get::<Option<String>, _>("snippet")? {
        Some(snippet) => snippet,
        None => mark_short_terms(&text, &terms.short),
    };
    Ok(SearchHit {
        id: MailId(fixed(row.try_get("id")?, "message id")?),
        conversation: row.try_get("conversation")?,
        from_user: row.try_get("from_user")?,
        sent_at_ms: stored_time(row.try_get("sent_at_ms")?, "sent_at_ms")?,
        text,
        snippet,
    })
}

/// What `snippet()` would give for terms the index cannot look up: about
/// [`SNIPPET_CHARS`] characters of `text` from a little before the first
/// match, every match marked. Matches as `LIKE` does, ignoring case in
/// ASCII letters only; where terms overlap, the longest one starting first
/// is marked.
fn mark_short_terms(text: &str, terms: &[String]) -> String {
    let chars: Vec<char> = text.chars().collect();
    let terms: Vec<Vec<char>> =
        terms.iter().map(|t| t.chars().collect()).filter(|t: &Vec<char>| !t.is_empty()).collect();
    let matches_at = |i: usize, term: &[char]| {
        chars.get(i..i + term.len()).is_some_and(|s| s.iter().zip(term).all(|(a, b)| a.eq_ignore_ascii_case(b)))
    };
    let mut spans = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match terms.iter().filter(|t| matches_at(i, t)).map(Vec::len).max() {
            Some(len) => {
                spans.push((i, i + len));
                i += len;
            }
            None => i += 1,
        }
    }
    let first = spans.first().map_or(0, |&(start, _)| start);
    let start = first.saturating_sub(SNIPPET_CHARS / 4);
    let end = chars.len().min(start + SNIPPET_CHARS);

    let mut out = String::with_capacity(text.len().min(4 * SNIPPET_CHARS) + 16);
    if start > 0 {
        out.push_str(ELLIPSIS);
    }
    let mut spans = spans.into_iter().peekable();
    let mut open_until = None;
    for (i, &c) in chars.iter().enumerate().take(end).skip(start) {
        if open_until.is_none() && spans.peek().is_some_and(|&(s, _)| s == i) {
            open_until = spans.next().map(|(_, e)| e);
            out.push(HIGHLIGHT_START);
        }
        out.push(c);
        if open_until == Some(i + 1) {
            open_until = None;
            out.push(HIGHLIGHT_END);
        }
    }
    if open_until.is_some() {
        out.push(HIGHLIGHT_END);
    }
    if end < chars.len() {
        out.push_str(ELLIPSIS);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::history::tests::{ALICE_PHONE, BOB_PHONE, fresh, id, msg};
    use skein_proto::bytes::{ContentHash, DeviceId, GroupId};
    use skein_proto::file::{FileOffer, ImageMessage, Reaction};
    use skein_proto::peer::{ChatMessage, Conversation, MessageBody};

    /// Alice's history with these messages from bob, the `n`th sent at
    /// `1000 + n` ms (so later ones are newer), with id `n`.
    async fn alice_with(texts: &[&str]) -> (tempfile::TempDir, History) {
        let (dir, _, history) = fresh().await;
        for (n, text) in (1..).zip(texts) {
            assert!(
                history.insert_incoming("alice", &msg(n, "bob", BOB_PHONE, "alice", text), "direct").await.unwrap()
            );
        }
        (dir, history)
    }

    /// The texts of the hits for `query`, in order.
    async fn found(history: &History, query: &str) -> Vec<String> {
        let hits = history.search(query, 100).await.unwrap_or_else(|e| panic!("{query:?}: {e}"));
        hits.into_iter().map(|h| h.text).collect()
    }

    /// The snippet of the one hit for `query`, matches in brackets.
    async fn snippet(history: &History, query: &str) -> String {
        let hits = history.search(query, 100).await.unwrap();
        assert_eq!(hits.len(), 1, "{query:?}: {hits:?}");
        hits[0].snippet.replace(HIGHLIGHT_START, "[").replace(HIGHLIGHT_END, "]")
    }

    /// Whether the index agrees with the messages it indexes.
    async fn index_is_sound(history: &History) -> bool {
        sqlx::query("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)")
            .execute(&history.writer)
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn finds_messages_by_word_and_by_any_part_of_a_word() {
        let texts = ["Lunch at noon?", "The meeting moved to Thursday", "Meetings are boring", "nothing here"];
        let (_dir, history) = alice_with(&texts).await;
        let both = ["Meetings are boring", "The meeting moved to Thursday"];
        assert_eq!(found(&history, "meeting").await, both, "the shorter text is the more relevant");
        assert_eq!(found(&history, "meet").await, both);
        assert_eq!(found(&history, "eeting").await, both, "inside a word too");
        assert_eq!(found(&history, "thurs").await, [texts[1]]);
        assert_eq!(found(&history, "  noon   lunch ").await, [texts[0]], "every term, in any order");
        assert!(found(&history, "lunch thursday").await.is_empty());
        assert!(found(&history, "friday").await.is_empty());
        assert_eq!(snippet(&history, "thurs").await, "The meeting moved to [Thurs]day");
        assert_eq!(snippet(&history, "moved meeting").await, "The [meeting] [moved] to Thursday");
    }

    #[tokio::test]
    async fn ignores_case_and_diacritics() {
        let texts = ["Crème brûlée for DESSERT", "Straße", "ok then"];
        let (_dir, history) = alice_with(&texts).await;
        for query in ["creme", "CRÈME", "Crème", "brulee", "BRÛLÉE", "dessert", "creme dessert"] {
            assert_eq!(found(&history, query).await, [texts[0]], "{query}");
        }
        assert_eq!(found(&history, "STRAẞE").await, [texts[1]]);
        assert!(found(&history, "strasse").await.is_empty(), "folding is per character");
        assert_eq!(found(&history, "OK").await, [texts[2]], "short terms ignore ASCII case");
        assert_eq!(snippet(&history, "brulee").await, "Crème [brûlée] for DESSERT");
    }

    #[tokio::test]
    async fn finds_chinese_and_japanese_text_by_any_part_of_it() {
        let texts = ["我们明天开会讨论项目计划", "会议在三点开始", "東京で会いましょう"];
        let (_dir, history) = alice_with(&texts).await;
        assert_eq!(found(&history, "讨论项目").await, [texts[0]]);
        assert_eq!(snippet(&history, "讨论项目").await, "我们明天开会[讨论项目]计划");
        assert_eq!(found(&history, "東京").await, [texts[2]], "a two-character word");
        assert_eq!(snippet(&history, "会议").await, "[会议]在三点开始");
        assert_eq!(found(&history, "会").await, [texts[2], texts[1], texts[0]], "short terms only: newest first");
        assert_eq!(found(&history, "会议 三点开始").await, [texts[1]], "long and short terms together");
        assert!(found(&history, "会议 東京").await.is_empty());
    }

    #[tokio::test]
    async fn hostile_queries_are_text_to_find_not_syntax() {
        let texts = [r#"she said "hi" * NEAR( AND OR NOT"#, r"50% off_today \ back", "plain words"];
        let (_dir, history) = alice_with(&texts).await;
        let hostile = [
            "\"",
            "\"\"",
            "\"\"\"",
            "\"unterminated",
            "*",
            "**",
            "***",
            "*plain*",
            "NEAR(",
            "NEAR(plain words)",
            r#"NEAR("plain" "words", 2)"#,
            "AND",
            "OR",
            "NOT",
            "plain AND",
            "OR words",
            "NOT plain",
            "(",
            ")",
            "()",
            ":",
            "text:plain",
            "{text}: plain",
            "^plain",
            "-plain",
            "+",
            "'",
            "''; DROP TABLE messages; --",
            "%",
            "_",
            "\\",
            "\0plain",
            "plain\0words",
            "\u{1b}[2J",
            "\u{202e}",
            "a\"b",
            "😀",
            "\u{301}",
            "x\u{301}",
        ];
        for query in hostile {
            history.search(query, 10).await.unwrap_or_else(|e| panic!("{query:?}: {e}"));
        }
        assert_eq!(found(&history, "\"").await, [texts[0]]);
        assert_eq!(found(&history, "\"hi\"").await, [texts[0]]);
        assert_eq!(found(&history, "*").await, [texts[0]]);
        assert_eq!(found(&history, "NEAR(").await, [texts[0]]);
        assert_eq!(found(&history, "NOT").await, [texts[0]]);
        assert_eq!(found(&history, "%").await, [texts[1]], "% is no wildcard");
        assert_eq!(found(&history, "_").await, [texts[1]], "_ is no wildcard");
        assert_eq!(found(&history, "\\").await, [texts[1]]);
        assert_eq!(found(&history, "plain\0words").await, [texts[2]], "a NUL separates terms");
        assert!(found(&history, "*plain*").await.is_empty(), "the stars are part of the term");
        assert_eq!(history.messages("bob", 10, None).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn an_empty_or_oversized_query_is_refused() {
        let (_dir, history) = alice_with(&["hello"]).await;
        for query in ["", "   ", "\t\n", "\0"] {
            let err = history.search(query, 10).await.unwrap_err();
            assert!(matches!(&err, HistoryError::InvalidInput(why) if why.contains("empty")), "{query:?}: {err}");
        }
        let many = vec!["word"; MAX_TERMS + 1].join(" ");
        assert!(matches!(history.search(&many, 10).await, Err(HistoryError::InvalidInput(_))));
        let long = "x".repeat(MAX_QUERY_CHARS + 1);
        assert!(matches!(history.search(&long, 10).await, Err(HistoryError::InvalidInput(_))));
        assert!(history.search("hello", 0).await.unwrap().is_empty());
        assert_eq!(history.search(&vec!["hello"; MAX_TERMS].join(" "), 10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn hits_name_their_conversation_sender_and_time() {
        let (_dir, _, history) = fresh().await;
        let group = GroupId([0x67; 16]);
        let address = skein_proto::peer::group_address(&group);
        let to_group = ChatMessage {
            to_user: address.clone(),
            conversation: Conversation::Group { group, version: 1, hlc: 7, seq: 1 },
            ..msg(3, "carol", DeviceId([0xc1; 16]), "", "status report for the team")
        };
        let offer = FileOffer { name: "status-report.pdf".into(), size: 10, root: ContentHash([0; 32]) };
        let file = ChatMessage { body: MessageBody::File(offer.clone()), ..msg(4, "bob", BOB_PHONE, "alice", "") };
        let image = ImageMessage {
            file: FileOffer { name: "report.png".into(), ..offer },
            format: "png".into(),
            width: 1,
            height: 1,
            thumbnail: Vec::new(),
        };
        let image = ChatMessage { body: MessageBody::Image(image), ..msg(5, "alice", ALICE_PHONE, "dave", "") };
        let reaction = Reaction { target: id(1), emoji: "👍".into(), remove: false };
        let reaction = ChatMessage { body: MessageBody::Reaction(reaction), ..msg(6, "bob", BOB_PHONE, "alice", "") };

        history
            .insert_incoming("alice", &msg(1, "bob", BOB_PHONE, "alice", "status report ready"), "direct")
            .await
            .unwrap();
        let mine = msg(2, "alice", ALICE_PHONE, "bob", "thanks for the report");
        history.insert_outgoing("alice", &mine, crate::history::OutState::Sent).await.unwrap();
        for m in [&to_group, &file, &image, &reaction] {
            history.insert_incoming("alice", m, "relayed").await.unwrap();
        }

        let mut hits = history.search("report", 100).await.unwrap();
        hits.sort_by_key(|h| h.sent_at_ms);
        let seen: Vec<(MailId, &str, &str, u64, &str)> = hits
            .iter()
            .map(|h| (h.id, h.conversation.as_str(), h.from_user.as_str(), h.sent_at_ms, h.text.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (id(1), "bob", "bob", 1001, "status report ready"),
                (id(2), "bob", "alice", 1002, "thanks for the report"),
                (id(3), address.as_str(), "carol", 1003, "status report for the team"),
                (id(4), "bob", "bob", 1004, "status-report.pdf"),
                (id(5), "dave", "alice", 1005, "report.png"),
            ]
        );
        assert!(found(&history, "👍").await.is_empty(), "reactions are not hits");
    }

    #[tokio::test]
    async fn changed_and_deleted_messages_are_found_as_they_are_now() {
        let (_dir, history) = alice_with(&["see you thursday", "the plan for thursday", "lunch?"]).await;
        assert_eq!(found(&history, "thursday").await.len(), 2);
        // Reading them changes other columns only.
        assert_eq!(history.mark_read("bob", 2_000).await.unwrap().len(), 3);
        assert_eq!(found(&history, "thursday").await.len(), 2);

        sqlx::query("UPDATE messages SET text = 'see you friday' WHERE id = $1")
            .bind(id(1).0.to_vec())
            .execute(&history.writer)
            .await
            .unwrap();
        assert_eq!(found(&history, "thursday").await, ["the plan for thursday"]);
        assert_eq!(found(&history, "friday").await, ["see you friday"]);

        sqlx::query("DELETE FROM messages WHERE id = $1")
            .bind(id(2).0.to_vec())
            .execute(&history.writer)
            .await
            .unwrap();
        assert!(found(&history, "thursday").await.is_empty());
        assert!(found(&history, "plan").await.is_empty());
        assert_eq!(found(&history, "see").await, ["see you friday"]);
        assert!(index_is_sound(&history).await);
    }

    /// Where the index has got to.
    async fn indexed_up_to(history: &History) -> i64 {
        sqlx::query_scalar("SELECT seq FROM search_indexed WHERE id = 1").fetch_one(&history.pool).await.unwrap()
    }

    /// A message from bob numbered `n` (any size of number).
    fn numbered(n: u32, text: &str) -> ChatMessage {
        let mut m = msg(1, "bob", BOB_PHONE, "alice", text);
        m.id.0[..4].copy_from_slice(&n.to_be_bytes());
        m.sent_at_ms = 1_000 + u64::from(n);
        m
    }

    #[tokio::test]
    async fn stored_messages_join_the_index_in_the_background_and_a_search_never_misses_one() {
        let (_dir, _, history) = fresh().await;
        // More than one indexing transaction's worth.
        let n = u32::try_from(INDEX_BATCH).unwrap() * 2 + 500;
        for i in 0..n {
            let text = if i + 1 == n { "the very last one".to_owned() } else { format!("message number {i}") };
            assert!(history.insert_incoming("alice", &numbered(i, &text), "direct").await.unwrap());
        }
        // A search right away finds the newest, indexing what is left first.
        assert_eq!(found(&history, "very last").await, ["the very last one"]);
        assert_eq!(indexed_up_to(&history).await, i64::from(n));
        assert_eq!(found(&history, "number 1234").await, ["message number 1234"]);

        // Without a search, the indexing task catches up by itself.
        history.insert_incoming("alice", &numbered(n, "one more"), "direct").await.unwrap();
        let deadline = std::time::Instant::now() + INDEX_EVERY * 10;
        while indexed_up_to(&history).await < i64::from(n) + 1 {
            assert!(std::time::Instant::now() < deadline, "the indexing task never took the new message");
            tokio::time::sleep(INDEX_EVERY / 5).await;
        }
        assert!(index_is_sound(&history).await);
    }

    #[tokio::test]
    async fn changing_or_deleting_a_message_not_yet_indexed_keeps_the_index_sound() {
        let (_dir, history) = alice_with(&["indexed thursday"]).await;
        assert_eq!(found(&history, "thursday").await.len(), 1);
        // Stored after the last search, so not in the index yet (the task
        // runs every INDEX_EVERY; these follow at once).
        history
            .insert_incoming("alice", &msg(2, "bob", BOB_PHONE, "alice", "pending thursday"), "direct")
            .await
            .unwrap();
        history
            .insert_incoming("alice", &msg(3, "bob", BOB_PHONE, "alice", "doomed thursday"), "direct")
            .await
            .unwrap();
        for (sql, n) in [
            ("UPDATE messages SET text = 'pending friday' WHERE id = $1", 2),
            ("DELETE FROM messages WHERE id = $1", 3),
        ] {
            sqlx::query(sql).bind(id(n).0.to_vec()).execute(&history.writer).await.unwrap();
        }
        assert_eq!(found(&history, "thursday").await, ["indexed thursday"]);
        assert_eq!(found(&history, "friday").await, ["pending friday"]);
        assert!(index_is_sound(&history).await);
    }

    #[tokio::test]
    async fn hits_come_most_relevant_first_then_newest() {
        let texts = ["standup", "standup notes are in the wiki for everyone to read later", "standup", "ok", "OK ok"];
        let (_dir, history) = alice_with(&texts).await;
        let hits = history.search("standup", 100).await.unwrap();
        assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), [id(3), id(1), id(2)]);
        let short = history.search("ok", 100).await.unwrap();
        assert_eq!(short.iter().map(|h| h.id).collect::<Vec<_>>(), [id(5), id(4)], "newest first");
        let limited = history.search("standup", 2).await.unwrap();
        assert_eq!(limited.iter().map(|h| h.id).collect::<Vec<_>>(), [id(3), id(1)]);
    }

    #[tokio::test]
    async fn messages_stored_before_the_index_existed_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        crate::history::migrate::run_up_to(&path, 8).await.unwrap();
        {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
            let body = skein_proto::frame::encode_payload(&MessageBody::Text("an old message".into())).unwrap();
            sqlx::query(
                "INSERT INTO messages (id, conversation, from_user, from_device, to_user, sent_at_ms, stored_at_ms, \
                 body, text, outgoing, state) VALUES ($1, 'bob', 'bob', $2, 'alice', 5, 6, $3, 'an old message', 0, 'received')",
            )
            .bind(id(1).0.to_vec())
            .bind(BOB_PHONE.0.to_vec())
            .bind(body)
            .execute(&mut conn)
            .await
            .unwrap();
            conn.close().await.unwrap();
        }
        let history = History::open(&path).await.unwrap();
        let hits = history.search("old", 10).await.unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!((hits[0].id, hits[0].conversation.as_str(), hits[0].sent_at_ms), (id(1), "bob", 5));
        assert!(index_is_sound(&history).await);
    }

    #[test]
    fn terms_become_quoted_phrases_and_escaped_patterns() {
        let terms = Terms::parse(r#"say "hi" ok % NEAR( a"b"#).unwrap();
        assert_eq!(terms.fts.as_deref(), Some(r#""say" """hi""" "NEAR(" "a""b""#));
        assert_eq!(terms.short, ["ok", "%"]);
        assert_eq!(Terms::parse("会 ok").unwrap(), Terms { fts: None, short: vec!["会".into(), "ok".into()] });
        assert_eq!(like_pattern("%"), r"%\%%");
        assert_eq!(like_pattern(r"a_\"), r"%a\_\\%");
        assert_eq!(like_pattern("会议"), "%会议%");
    }

    #[test]
    fn short_terms_are_marked_in_a_snippet_of_their_own() {
        let mark = |text: &str, terms: &[&str]| {
            let terms: Vec<String> = terms.iter().map(|t| (*t).to_owned()).collect();
            mark_short_terms(text, &terms).replace(HIGHLIGHT_START, "[").replace(HIGHLIGHT_END, "]")
        };
        assert_eq!(mark("ok then OK", &["ok"]), "[ok] then [OK]");
        assert_eq!(mark("xaby", &["a", "ab"]), "x[ab]y", "the longest term starting first");
        assert_eq!(mark("会议在三点", &["会议", "点"]), "[会议]在三[点]");
        let long = format!("{}ok{}", "x".repeat(100), "y".repeat(100));
        let marked = mark(&long, &["ok"]);
        assert!(marked.starts_with(ELLIPSIS) && marked.ends_with(ELLIPSIS), "{marked}");
        assert!(marked.contains("x[ok]y"), "{marked}");
        assert_eq!(marked.chars().count(), SNIPPET_CHARS + 2 * ELLIPSIS.chars().count() + 2);
        // A match cut by the end of the snippet is still closed.
        let edge = format!("ab{}ab", "-".repeat(SNIPPET_CHARS - 3));
        assert_eq!(mark(&edge, &["ab"]), format!("[ab]{}[a]{ELLIPSIS}", "-".repeat(SNIPPET_CHARS - 3)));
    }

    #[test]
    fn a_snippet_splits_into_matches_and_the_rest() {
        let hit = SearchHit {
            id: id(1),
            conversation: "bob".into(),
            from_user: "bob".into(),
            sent_at_ms: 1,
            text: String::new(),
            snippet: format!("{ELLIPSIS}a {HIGHLIGHT_START}b{HIGHLIGHT_END}{HIGHLIGHT_START}c{HIGHLIGHT_END} d"),
        };
        assert_eq!(
            hit.snippet_parts(),
            [(format!("{ELLIPSIS}a ").as_str(), false), ("b", true), ("c", true), (" d", false)]
        );
    }
}
