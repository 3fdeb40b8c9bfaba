//! The call devices panel, in place of the conversation: which
//! microphone and camera calls use from the next call on.

use super::Message;
use crate::model::devices::Devices;
use crate::style;
use iced::widget::{button, center, column, container, pick_list, row, text};
use iced::{Alignment, Element, Length, Theme};

fn muted<'a>(s: &'a str) -> iced::widget::Text<'a> {
    text(s).size(13).style(|t: &Theme| text::Style { color: Some(style::muted(t)) })
}

/// One device's picker, under its label.
fn picker<'a>(label: &'a str, all: &'a [String], chosen: &'a str, on: fn(String) -> Message) -> Element<'a, Message> {
    column![
        text(label).size(13).font(style::BOLD),
        pick_list(all, Some(chosen.to_owned()), on).text_size(14).padding([6, 10]).width(Length::Fill),
    ]
    .spacing(6)
    .into()
}

/// The panel for `d`.
pub fn view(d: &Devices) -> Element<'_, Message> {
    let mut body = column![
        text("Call devices").size(20).font(style::BOLD),
        muted("Calls from now on use these; a call in progress keeps its own."),
    ]
    .spacing(8);
    if !d.loaded {
        body = body.push(muted("Looking for microphones and cameras…"));
    } else {
        body = body.push(picker("Microphone", &d.microphones, &d.microphone, Message::PickMicrophone)).push(picker(
            "Camera",
            &d.cameras,
            &d.camera,
            Message::PickCamera,
        ));
        if d.none_found() {
            body = body.push(muted(
                "No microphone or camera is plugged in: calls use the system's default once there is one.",
            ));
        }
        if d.test_source {
            body = body.push(muted(
                "Test sources are on (SKEIN_DESK_TEST_SOURCE=1): calls send a test tone and colour bars instead.",
            ));
        }
    }
    let done = button(text("Done").size(14)).padding([8, 18]).on_press(Message::Devices(false));
    center(
        container(column![body.spacing(16), row![done]].spacing(20).align_x(Alignment::Start))
            .max_width(440)
            .padding(24),
    )
    .into()
}
