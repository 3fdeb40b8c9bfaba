//! Messages from apps: what company systems post through the tracker's
//! HTTP API.
//!
//! An app's post ([`AppPost`]: text, a card, an image, or several of them)
//! is made into an [`AppMessage`] by the tracker, for one user, and signed
//! with the organisation's key over [`AppMessageBody::signing_bytes`] (the
//! signing lives in `skein-certs`). It travels sealed in the recipient
//! devices' mailboxes like any offline item, so a node takes it only when
//! the organisation's signature holds: another user cannot put a forged
//! one there. In the node's history it is a message from the sender
//! [`app_sender`] (`app:NAME`, a name no user can have) whose body is
//! [`crate::peer::MessageBody::App`].
//!
//! [`AppPost::check`] is the one rule for what a post may hold; the tracker
//! refuses what it refuses, and a node refuses it again.

use crate::bytes::{GroupId, MailId, Signature};
use serde::{Deserialize, Serialize};

/// Domain-separation tag prefixed to the signed bytes.
pub const APP_MESSAGE_DOMAIN: &[u8] = b"skein/app-message/v1\0";
/// What an app's name becomes as a message's sender.
pub const APP_PREFIX: &str = "app:";
/// Longest text, in bytes.
pub const MAX_APP_TEXT: usize = 16 * 1024;
/// Longest card title, in characters.
pub const MAX_CARD_TITLE: usize = 200;
/// Most fields on a card.
pub const MAX_CARD_FIELDS: usize = 20;
/// Longest field name, in characters.
pub const MAX_FIELD_NAME: usize = 100;
/// Longest field value or card text, in characters.
pub const MAX_FIELD_VALUE: usize = 2_000;
/// Most link buttons on a card.
pub const MAX_CARD_BUTTONS: usize = 5;
/// Longest button label, in characters.
pub const MAX_BUTTON_LABEL: usize = 60;
/// Longest button link, in bytes.
pub const MAX_URL: usize = 2_048;
/// Largest image, in bytes: it travels inside a sealed mailbox item.
pub const MAX_APP_IMAGE: usize = 256 * 1024;

/// The sender name of messages from the app `app`.
pub fn app_sender(app: &str) -> String {
    format!("{APP_PREFIX}{app}")
}

/// The app's name, when `sender` is an app's sender name.
pub fn app_of(sender: &str) -> Option<&str> {
    sender.strip_prefix(APP_PREFIX)
}

/// What an app posts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppPost {
    /// The app's name.
    pub app: String,
    /// Plain text.
    pub text: Option<String>,
    /// A card.
    pub card: Option<Card>,
    /// An image.
    pub image: Option<AppImage>,
}

/// A card: a title, a text, fields and link buttons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    /// The title.
    pub title: String,
    /// Text under the title.
    pub text: Option<String>,
    /// Name and value pairs, shown in order.
    pub fields: Vec<CardField>,
    /// Buttons that open links.
    pub buttons: Vec<CardButton>,
}

/// One field of a card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardField {
    /// The field's name.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// A button that opens a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardButton {
    /// What the button says.
    pub label: String,
    /// An `https://` or `http://` link.
    pub url: String,
}

/// An image, whole (it is small: at most [`MAX_APP_IMAGE`] bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppImage {
    /// `image/png`, `image/jpeg`, `image/gif` or `image/webp`.
    pub mime: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The encoded image.
    pub bytes: Vec<u8>,
}

/// The image types an app may post, by their first bytes.
pub fn image_mime(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

fn within(what: &str, s: &str, max_chars: usize) -> Result<(), String> {
    let n = s.chars().count();
    if n > max_chars {
        return Err(format!("{what} is {n} characters long; at most {max_chars} are taken"));
    }
    Ok(())
}

fn not_blank(what: &str, s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err(format!("{what} is empty"));
    }
    Ok(())
}

impl AppPost {
    /// Whether the post may be sent: something to show, every part within
    /// its limits, links only to the web, an image of a known type. The
    /// error says which part is wrong and how.
    pub fn check(&self) -> Result<(), String> {
        if self.text.is_none() && self.card.is_none() && self.image.is_none() {
            return Err("a message needs `text`, a `card` or an `image`".into());
        }
        if let Some(t) = &self.text {
            not_blank("`text`", t)?;
            if t.len() > MAX_APP_TEXT {
                return Err(format!("`text` is {} bytes; at most {MAX_APP_TEXT} are taken", t.len()));
            }
        }
        if let Some(c) = &self.card {
            c.check()?;
        }
        if let Some(i) = &self.image {
            if i.bytes.len() > MAX_APP_IMAGE {
                return Err(format!(
                    "the image is {} KiB; at most {} KiB is taken (link to larger ones from a card)",
                    i.bytes.len() / 1024,
                    MAX_APP_IMAGE / 1024
                ));
            }
            if image_mime(&i.bytes) != Some(i.mime.as_str()) {
                return Err("the image is not a PNG, JPEG, GIF or WebP image".into());
            }
            if i.width == 0 || i.height == 0 {
                return Err("the image has no pixels".into());
            }
        }
        Ok(())
    }

    /// The words a search finds it by: the text, the card's title, text
    /// and fields.
    pub fn searchable(&self) -> String {
        let mut parts: Vec<String> = self.text.iter().cloned().collect();
        parts.extend(self.card.as_ref().map(Card::searchable));
        parts.join("\n")
    }
}

impl Card {
    /// The words a search finds it by: its title, text and fields.
    pub fn searchable(&self) -> String {
        let mut parts: Vec<&str> = vec![&self.title];
        parts.extend(self.text.as_deref());
        for f in &self.fields {
            parts.push(&f.name);
            parts.push(&f.value);
        }
        parts.join("\n")
    }

    /// Whether the card may be sent; the error says which part is wrong.
    pub fn check(&self) -> Result<(), String> {
        not_blank("the card's `title`", &self.title)?;
        within("the card's `title`", &self.title, MAX_CARD_TITLE)?;
        if let Some(t) = &self.text {
            within("the card's `text`", t, MAX_FIELD_VALUE)?;
        }
        if self.fields.len() > MAX_CARD_FIELDS {
            return Err(format!("the card has {} fields; at most {MAX_CARD_FIELDS} are taken", self.fields.len()));
        }
        for (i, f) in self.fields.iter().enumerate() {
            not_blank(&format!("the name of card field {}", i + 1), &f.name)?;
            within(&format!("the name of card field {}", i + 1), &f.name, MAX_FIELD_NAME)?;
            within(&format!("the value of card field {}", i + 1), &f.value, MAX_FIELD_VALUE)?;
        }
        if self.buttons.len() > MAX_CARD_BUTTONS {
            return Err(format!("the card has {} buttons; at most {MAX_CARD_BUTTONS} are taken", self.buttons.len()));
        }
        for (i, b) in self.buttons.iter().enumerate() {
            not_blank(&format!("the label of card button {}", i + 1), &b.label)?;
            within(&format!("the label of card button {}", i + 1), &b.label, MAX_BUTTON_LABEL)?;
            let web = b.url.starts_with("https://") || b.url.starts_with("http://");
            if !web || b.url.len() > MAX_URL || b.url.chars().any(char::is_whitespace) {
                return Err(format!(
                    "card button {} links to {:?}; give an https:// or http:// link of at most {MAX_URL} bytes",
                    i + 1,
                    b.url.chars().take(80).collect::<String>()
                ));
            }
        }
        Ok(())
    }
}

/// What the organisation signs: one app message for one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppMessageBody {
    /// The message's id: the same for every recipient, and the same again
    /// when a post is retried with the same idempotency key.
    pub id: MailId,
    /// The user it is for.
    pub to_user: String,
    /// The group or department whose conversation it goes into; `None`
    /// for the user's conversation with the app.
    pub group: Option<GroupId>,
    /// When the tracker took the post, ms since the Unix epoch.
    pub sent_at_ms: u64,
    /// The app's icon (PNG), if it has one.
    pub icon_png: Option<Vec<u8>>,
    /// What the app posted.
    pub post: AppPost,
}

impl AppMessageBody {
    /// The exact bytes the organisation signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = APP_MESSAGE_DOMAIN.to_vec();
        // Encoding a plain struct of strings, bytes and integers cannot fail.
        out.extend_from_slice(&postcard::to_stdvec(self).unwrap_or_default());
        out
    }
}

/// An app message with the organisation's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppMessage {
    /// The signed message.
    pub body: AppMessageBody,
    /// ed25519 signature over [`AppMessageBody::signing_bytes`].
    pub signature: Signature,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn post() -> AppPost {
        AppPost {
            app: "tickets".into(),
            text: Some("Printer on 3rd floor is down".into()),
            card: Some(Card {
                title: "TICKET-42".into(),
                text: None,
                fields: vec![CardField { name: "Priority".into(), value: "high".into() }],
                buttons: vec![CardButton { label: "Open".into(), url: "https://tickets.example/42".into() }],
            }),
            image: None,
        }
    }

    #[test]
    fn a_post_with_text_and_a_card_passes_and_is_searchable_by_both() {
        let p = post();
        assert_eq!(p.check(), Ok(()));
        let s = p.searchable();
        assert!(s.contains("Printer") && s.contains("TICKET-42") && s.contains("high"), "{s}");
    }

    #[test]
    fn each_bad_part_is_named() {
        let mut p = post();
        p.text = None;
        p.card = None;
        assert!(p.check().unwrap_err().contains("needs `text`"));
        let mut p = post();
        p.card.as_mut().unwrap().buttons[0].url = "javascript:alert(1)".into();
        assert!(p.check().unwrap_err().contains("card button 1"));
        let mut p = post();
        p.card.as_mut().unwrap().title = " ".into();
        assert!(p.check().unwrap_err().contains("`title` is empty"));
        let mut p = post();
        p.card.as_mut().unwrap().fields = vec![CardField { name: "n".into(), value: "v".into() }; MAX_CARD_FIELDS + 1];
        assert!(p.check().unwrap_err().contains("fields"));
        let mut p = post();
        p.image = Some(AppImage { mime: "image/png".into(), width: 1, height: 1, bytes: b"GIF89a....".to_vec() });
        assert!(p.check().unwrap_err().contains("not a PNG"));
        let mut p = post();
        p.text = Some("x".repeat(MAX_APP_TEXT + 1));
        assert!(p.check().unwrap_err().contains("`text` is"));
    }

    #[test]
    fn an_app_sender_cannot_be_a_user_name() {
        assert_eq!(app_sender("tickets"), "app:tickets");
        assert_eq!(app_of("app:tickets"), Some("tickets"));
        assert_eq!(app_of("alice"), None);
    }
}
