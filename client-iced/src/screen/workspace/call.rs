//! The call pane, in place of the conversation while a call is on:
//! ringing (Accept, Audio only for a video call, Decline), calling
//! (Cancel), and connected:
//! the other side's picture filling the pane (in a group call, a grid of
//! everyone else's, each with their name), the self-view in its corner,
//! and the controls (mute, camera, statistics, hang up).

use super::{Message, Workspace};
use crate::model::call::Call;
use crate::style;
use iced::widget::{button, center, column, container, image, row, stack, text};
use iced::{Alignment, Color, ContentFit, Element, Length, Theme};

fn muted_text<'a>(s: String, size: f32) -> iced::widget::Text<'a> {
    text(s).size(size).style(|t: &Theme| text::Style { color: Some(style::muted(t)) })
}

fn danger(t: &Theme, s: button::Status) -> button::Style {
    button::danger(t, s)
}

fn pill<'a>(label: &'a str, on: Message, style: fn(&Theme, button::Status) -> button::Style) -> Element<'a, Message> {
    button(text(label).size(14)).padding([8, 18]).style(style).on_press(on).into()
}

/// The pane for call `c`.
pub fn view<'a>(w: &'a Workspace, c: &'a Call) -> Element<'a, Message> {
    let name = w.title_of(&c.with);
    let kind = match (c.group, c.media.as_str()) {
        (true, "audio") => "Group audio call",
        (true, _) => "Group video call",
        (false, "audio") => "Audio call",
        (false, _) => "Video call",
    };
    match c.state.as_str() {
        "connected" => connected(w, c, name),
        state => {
            let calling_you = match c.caller().filter(|_| c.group) {
                Some(caller) => format!("{} is calling {name}", w.title_of(caller)),
                None => format!("{name} is calling you"),
            };
            let (line, buttons): (String, Vec<Element<'a, Message>>) = match (c.incoming, state) {
                (true, "ringing") => (
                    calling_you,
                    // An audio call has no video to leave out.
                    [
                        Some(pill("Accept", Message::CallAnswer(false), button::success)),
                        (c.media != "audio").then(|| pill("Audio only", Message::CallAnswer(true), button::secondary)),
                        Some(pill("Decline", Message::CallHangUp, danger)),
                    ]
                    .into_iter()
                    .flatten()
                    .collect(),
                ),
                (true, _) => (format!("Connecting to {name}…"), vec![pill("Hang up", Message::CallHangUp, danger)]),
                (false, "ringing") => (format!("Ringing {name}…"), vec![pill("Cancel", Message::CallHangUp, danger)]),
                (false, _) => (format!("Calling {name}…"), vec![pill("Cancel", Message::CallHangUp, danger)]),
            };
            center(
                column![
                    style::avatar(&name, 96.0),
                    text(line).size(20).font(style::BOLD),
                    muted_text(kind.to_owned(), 13.0),
                    row(buttons).spacing(12),
                ]
                .spacing(14)
                .align_x(Alignment::Center),
            )
            .into()
        }
    }
}

fn black(_: &Theme) -> container::Style {
    container::Style { background: Some(Color::BLACK.into()), ..Default::default() }
}

/// One participant's picture (or, without one, their avatar).
fn picture<'a>(c: &'a Call, user: &str, name: &str, state: &str) -> Element<'a, Message> {
    let waiting = match state {
        "connected" if c.media == "audio" => None,
        "connected" => Some("Waiting for video…".to_owned()),
        _ => Some("Connecting…".to_owned()),
    };
    let shown: Element<'a, Message> = match (c.remote.get(user), waiting) {
        (Some(p), _) => {
            image(p.clone()).content_fit(ContentFit::Contain).width(Length::Fill).height(Length::Fill).into()
        }
        (None, None) => center(style::avatar(name, 96.0)).into(),
        (None, Some(why)) => center(
            column![style::avatar(name, 72.0), text(why).size(14).color(Color::WHITE)]
                .spacing(10)
                .align_x(Alignment::Center),
        )
        .into(),
    };
    container(shown).width(Length::Fill).height(Length::Fill).style(black).into()
}

/// A group call's tile: a participant's picture with their name on it.
fn tile<'a>(c: &'a Call, user: &str, name: String, state: &str) -> Element<'a, Message> {
    let label = container(text(name.clone()).size(13).color(Color::WHITE)).padding([3, 8]).style(|_: &Theme| {
        container::Style {
            background: Some(Color { a: 0.6, ..Color::BLACK }.into()),
            border: iced::Border { radius: 4.0.into(), ..Default::default() },
            ..Default::default()
        }
    });
    stack![
        picture(c, user, &name, state),
        container(label).align_left(Length::Fill).align_bottom(Length::Fill).padding(8)
    ]
    .width(Length::Fill)
    .height(Length::Fill)
    .into()
}

/// Everyone else in a group call, two to a row.
fn grid<'a>(w: &'a Workspace, c: &'a Call) -> Element<'a, Message> {
    let mut rows: Vec<Element<'a, Message>> = Vec::new();
    let mut row_tiles: Vec<Element<'a, Message>> = Vec::new();
    for p in c.present() {
        row_tiles.push(tile(c, &p.user, w.title_of(&p.user), &p.state));
        if row_tiles.len() == 2 {
            rows.push(row(std::mem::take(&mut row_tiles)).spacing(4).height(Length::Fill).into());
        }
    }
    if !row_tiles.is_empty() {
        rows.push(row(row_tiles).spacing(4).height(Length::Fill).into());
    }
    column(rows).spacing(4).width(Length::Fill).height(Length::Fill).into()
}

fn connected<'a>(w: &'a Workspace, c: &'a Call, name: String) -> Element<'a, Message> {
    let remote: Element<'a, Message> = if c.group {
        // The tiles stand apart on a dark grey.
        let gaps = |_: &Theme| container::Style {
            background: Some(Color::from_rgb8(0x30, 0x30, 0x30).into()),
            ..Default::default()
        };
        container(grid(w, c)).width(Length::Fill).height(Length::Fill).style(gaps).into()
    } else {
        let user = c.participants.first().map_or(c.with.as_str(), |p| p.user.as_str());
        picture(c, user, &name, "connected")
    };
    let mut layers: Vec<Element<'a, Message>> =
        vec![container(remote).width(Length::Fill).height(Length::Fill).style(black).into()];
    if let Some(me) = c.local.as_ref().filter(|_| c.camera) {
        let view =
            container(image(me.clone()).width(192).height(108).content_fit(ContentFit::Cover)).style(|_: &Theme| {
                container::Style {
                    border: iced::Border { color: Color::WHITE, width: 1.0, radius: 6.0.into() },
                    ..Default::default()
                }
            });
        layers.push(container(view).align_right(Length::Fill).align_bottom(Length::Fill).padding(12).into());
    }
    if c.show_stats {
        let lines = column(c.stats_lines().into_iter().map(|l| text(l).size(12).color(Color::WHITE).into())).spacing(2);
        let panel = container(lines).padding(10).style(|_: &Theme| container::Style {
            background: Some(Color { a: 0.65, ..Color::BLACK }.into()),
            border: iced::Border { radius: 6.0.into(), ..Default::default() },
            ..Default::default()
        });
        layers.push(container(panel).padding(12).into());
    }
    let path = c.path.as_deref().unwrap_or("connecting");
    let detail = match c.group {
        true => format!("{} in the call · {}", c.present().count() + 1, c.duration()),
        false => format!("{path} · {}", c.duration()),
    };
    let head =
        row![style::avatar(&name, 28.0), text(name.clone()).size(16).font(style::BOLD), muted_text(detail, 13.0),]
            .spacing(10)
            .align_y(Alignment::Center);
    let controls = row![
        pill(if c.muted { "Unmute" } else { "Mute" }, Message::CallMute, button::secondary),
        pill(if c.camera { "Camera off" } else { "Camera on" }, Message::CallCamera, button::secondary),
        pill(if c.show_stats { "Hide statistics" } else { "Statistics" }, Message::CallStats, button::secondary),
        pill("Hang up", Message::CallHangUp, danger),
    ]
    .spacing(10);
    column![
        container(head).padding([10, 16]).width(Length::Fill),
        stack(layers).width(Length::Fill).height(Length::Fill),
        container(controls).padding(12).center_x(Length::Fill),
    ]
    .into()
}
