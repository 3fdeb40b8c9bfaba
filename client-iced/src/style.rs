//! The look shared by every screen: colours for presence, the fonts,
//! avatars, message text with colour emoji, and the small pieces of
//! chrome (badges, dots, cards).

use crate::model::emoji_runs::{Run, runs};
use iced::widget::text::Span;
use iced::widget::{container, rich_text, span, text};
use iced::{Border, Color, Element, Font, Theme, border};

/// The colour emoji font (Debian `fonts-noto-color-emoji`).
pub const EMOJI: Font = Font::with_name("Noto Color Emoji");
/// Body text.
pub const SANS: Font = Font::with_name("DejaVu Sans");
/// Bold body text.
pub const BOLD: Font = Font { weight: iced::font::Weight::Bold, ..SANS };

/// Spacing steps.
pub const S: f32 = 4.0;

/// The colour of a presence status.
pub fn presence_color(status: &str) -> Color {
    match status {
        "online" => Color::from_rgb8(0x2e, 0xb6, 0x7d),
        "busy" => Color::from_rgb8(0xe0, 0x4f, 0x5f),
        "away" => Color::from_rgb8(0xf2, 0xb1, 0x34),
        _ => Color::from_rgb8(0x9a, 0xa0, 0xa6),
    }
}

/// A presence dot.
pub fn dot<'a, M: 'a>(status: &str, size: f32) -> Element<'a, M> {
    let c = presence_color(status);
    container(text(""))
        .width(size)
        .height(size)
        .style(move |_t: &Theme| container::Style {
            background: Some(c.into()),
            border: border::rounded(size / 2.0),
            ..Default::default()
        })
        .into()
}

/// A round avatar with a person's initial, coloured by their name.
pub fn avatar<'a, M: 'a>(name: &str, size: f32) -> Element<'a, M> {
    let initial = name.chars().find(|c| c.is_alphanumeric()).map(|c| c.to_uppercase().to_string()).unwrap_or_default();
    let hue = name.bytes().fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let palette = [
        (0x4f, 0x7c, 0xe0),
        (0x2e, 0x9e, 0x8f),
        (0xc0, 0x5b, 0x9b),
        (0xd9, 0x7a, 0x2b),
        (0x6b, 0x5b, 0xd6),
        (0x3a, 0x8f, 0xc2),
    ];
    let (r, g, b) = palette[(hue as usize) % palette.len()];
    container(text(initial).size(size * 0.45).font(BOLD).color(Color::WHITE))
        .width(size)
        .height(size)
        .center_x(size)
        .center_y(size)
        .style(move |_t: &Theme| container::Style {
            background: Some(Color::from_rgb8(r, g, b).into()),
            border: border::rounded(size / 2.0),
            ..Default::default()
        })
        .into()
}

/// A count badge (unread messages).
pub fn badge<'a, M: 'a>(n: u64) -> Element<'a, M> {
    let label = if n > 99 { "99+".to_owned() } else { n.to_string() };
    container(text(label).size(12).font(BOLD).color(Color::WHITE))
        .padding([1, 7])
        .style(|t: &Theme| container::Style {
            background: Some(t.extended_palette().primary.base.color.into()),
            border: border::rounded(9),
            ..Default::default()
        })
        .into()
}

/// Text in which every emoji is drawn with the colour emoji font.
pub fn rich<'a, M: Clone + 'a>(content: &'a str, size: f32, color: Option<Color>) -> Element<'a, M> {
    rich_spans(content, size, color).into()
}

/// [`rich`] on one line that does not wrap (its container clips it), for
/// a preview such as a conversation's last message.
pub fn rich_line<'a, M: Clone + 'a>(content: &'a str, size: f32, color: Option<Color>) -> Element<'a, M> {
    rich_spans(content, size, color).wrapping(iced::widget::text::Wrapping::None).into()
}

fn rich_spans<'a, M: Clone + 'a>(
    content: &'a str,
    size: f32,
    color: Option<Color>,
) -> iced::widget::text::Rich<'a, iced::Never, M, Theme, iced::Renderer> {
    let spans: Vec<Span<'a, iced::Never, Font>> = runs(content)
        .into_iter()
        .map(|r| {
            let s = match r {
                Run::Text(t) => span(t).font(SANS),
                Run::Emoji(e) => span(e).font(EMOJI),
            };
            match color {
                Some(c) => s.color(c),
                None => s,
            }
        })
        .collect();
    rich_text(spans).size(size).on_link_click(iced::never)
}

/// Secondary text colour.
pub fn muted(t: &Theme) -> Color {
    let p = t.extended_palette();
    let mut c = p.background.base.text;
    c.a = 0.6;
    c
}

/// A card: a rounded surface one step off the background.
pub fn card(t: &Theme) -> container::Style {
    let p = t.extended_palette();
    container::Style {
        background: Some(p.background.weak.color.into()),
        border: Border { radius: 10.0.into(), width: 0.0, color: Color::TRANSPARENT },
        text_color: Some(p.background.weak.text),
        ..Default::default()
    }
}

/// A card inside a message: the window's background, a thin border and
/// an accent on its left edge.
pub fn message_card(t: &Theme) -> container::Style {
    let p = t.extended_palette();
    container::Style {
        background: Some(p.background.base.color.into()),
        border: Border { radius: 8.0.into(), width: 1.0, color: p.background.strong.color },
        text_color: Some(p.background.base.text),
        ..Default::default()
    }
}

/// Our own message bubble.
pub fn own_bubble(t: &Theme) -> container::Style {
    let p = t.extended_palette();
    container::Style {
        background: Some(p.primary.weak.color.into()),
        border: border::rounded(12),
        text_color: Some(p.primary.weak.text),
        ..Default::default()
    }
}

/// Someone else's message bubble.
pub fn their_bubble(t: &Theme) -> container::Style {
    let p = t.extended_palette();
    container::Style {
        background: Some(p.background.strong.color.into()),
        border: border::rounded(12),
        text_color: Some(p.background.strong.text),
        ..Default::default()
    }
}

/// The sidebar's surface.
pub fn sidebar(t: &Theme) -> container::Style {
    let p = t.extended_palette();
    container::Style {
        background: Some(p.background.weak.color.into()),
        text_color: Some(p.background.weak.text),
        ..Default::default()
    }
}

/// An error line.
pub fn error_text(t: &Theme) -> Color {
    t.extended_palette().danger.base.color
}

/// A list row as a button: flat, tinted when hovered, marked when selected.
pub fn row_button(selected: bool) -> impl Fn(&Theme, iced::widget::button::Status) -> iced::widget::button::Style {
    move |t: &Theme, status| {
        use iced::widget::button::{Status, Style};
        let p = t.extended_palette();
        let background = match (selected, status) {
            (true, _) => Some(p.primary.weak.color.into()),
            (false, Status::Hovered | Status::Pressed) => Some(p.background.strong.color.into()),
            _ => None,
        };
        let text_color = if selected { p.primary.weak.text } else { p.background.weak.text };
        Style { background, text_color, border: border::rounded(8), ..Style::default() }
    }
}
