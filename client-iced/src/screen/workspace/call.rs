//! The call pane, in place of the conversation while a call is on:
//! ringing (Accept, Audio only, Decline), calling (Cancel), and connected:
//! the other side's picture filling the pane, the self-view in its corner,
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
    let kind = if c.media == "audio" { "Audio call" } else { "Video call" };
    match c.state.as_str() {
        "connected" => connected(c, name),
        state => {
            let (line, buttons): (String, Vec<Element<'a, Message>>) = match (c.incoming, state) {
                (true, "ringing") => (
                    format!("{name} is calling you"),
                    vec![
                        pill("Accept", Message::CallAnswer(false), button::success),
                        pill("Audio only", Message::CallAnswer(true), button::secondary),
                        pill("Decline", Message::CallHangUp, danger),
                    ],
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

fn connected<'a>(c: &'a Call, name: String) -> Element<'a, Message> {
    let black = |_: &Theme| container::Style { background: Some(Color::BLACK.into()), ..Default::default() };
    let remote: Element<'a, Message> = match (&c.remote, c.media.as_str()) {
        (Some(picture), _) => {
            image(picture.clone()).content_fit(ContentFit::Contain).width(Length::Fill).height(Length::Fill).into()
        }
        (None, "audio") => center(column![style::avatar(&name, 96.0)].align_x(Alignment::Center)).into(),
        (None, _) => center(text("Waiting for video…").size(15).color(Color::WHITE)).into(),
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
    let head = row![
        style::avatar(&name, 28.0),
        text(name.clone()).size(16).font(style::BOLD),
        muted_text(format!("{path} · {}", c.duration()), 13.0),
    ]
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
