//! The sidebar: who I am and my status, the conversation list or the
//! directory tree, and the tracker connection.

use super::{Connection, Message, Tab, Workspace};
use crate::model::directory::Line;
use crate::{clock, style};
use iced::widget::{button, column, container, pick_list, row, scrollable, space, text, text_input};
use iced::{Alignment, Element, Length, Theme};

const WIDTH: f32 = 290.0;
const STATUSES: [&str; 3] = ["online", "away", "busy"];

/// The sidebar.
pub fn view(w: &Workspace) -> Element<'_, Message> {
    let me = w.directory.display_name(&w.me);
    let statuses: Vec<String> = STATUSES.iter().map(|s| (*s).to_owned()).collect();
    let header = row![
        style::avatar(&me, 36.0),
        column![
            text(me.clone()).size(15).font(style::BOLD),
            row![
                style::dot(&w.status, 8.0),
                pick_list(statuses, Some(w.status.clone()), Message::Status).text_size(12).padding([2, 6]),
            ]
            .spacing(6)
            .align_y(Alignment::Center),
        ]
        .spacing(2),
    ]
    .spacing(10)
    .align_y(Alignment::Center);

    let unread = w.conversations.total_unread();
    let tab = |label: String, t: Tab| {
        let active = w.tab == t;
        button(
            container(text(label).size(13).font(if active { style::BOLD } else { style::SANS })).center_x(Length::Fill),
        )
        .width(Length::Fill)
        .padding([6, 8])
        .style(if active { button::primary } else { button::text })
        .on_press(Message::Tab(t))
    };
    let chats_label = if unread > 0 { format!("Chats ({unread})") } else { "Chats".to_owned() };
    let tabs = row![tab(chats_label, Tab::Chats), tab("People".to_owned(), Tab::People)].spacing(6);

    let body = match w.tab {
        Tab::Chats => chats(w),
        Tab::People => people(w),
    };
    let content = column![header, tabs, body, connection(&w.connection)].spacing(12).padding(14);
    container(content).width(WIDTH).height(Length::Fill).style(style::sidebar).into()
}

fn chats(w: &Workspace) -> Element<'_, Message> {
    if w.conversations.rows().is_empty() {
        return container(
            text("No conversations yet. Open People to start one.")
                .size(13)
                .style(|t: &Theme| text::Style { color: Some(style::muted(t)) }),
        )
        .padding(8)
        .height(Length::Fill)
        .into();
    }
    let open = w.chat.as_ref().map(|c| c.id.as_str());
    let rows = w.conversations.rows().iter().map(|r| {
        let selected = open == Some(r.id.as_str());
        let title = if r.is_group() { format!("# {}", r.title) } else { r.title.clone() };
        let status = (!r.is_group()).then(|| w.directory.status(&r.id));
        let avatar: Element<'_, Message> = match status {
            Some(s) => iced::widget::stack![
                style::avatar(&r.title, 36.0),
                container(style::dot(&s, 10.0)).align_right(36.0).align_bottom(36.0),
            ]
            .into(),
            None => style::avatar(&r.title, 36.0),
        };
        let top = row![
            text(title).size(14).font(if r.unread > 0 { style::BOLD } else { style::SANS }).width(Length::Fill),
            text(clock::short(r.last_at_ms)).size(11).style(|t: &Theme| text::Style { color: Some(style::muted(t)) }),
        ]
        .spacing(6)
        .align_y(Alignment::Center);
        let mut bottom =
            row![container(style::rich(&r.last_text, 12.0, None)).width(Length::Fill).height(18).clip(true)]
                .spacing(6)
                .align_y(Alignment::Center);
        if r.muted {
            bottom = bottom.push(text("🔕").size(11).font(style::EMOJI));
        }
        if r.unread > 0 {
            bottom = bottom.push(style::badge(r.unread));
        }
        let line =
            row![avatar, column![top, bottom].spacing(2).width(Length::Fill)].spacing(10).align_y(Alignment::Center);
        button(line)
            .width(Length::Fill)
            .padding([6, 8])
            .style(style::row_button(selected))
            .on_press(Message::Open(r.id.clone()))
            .into()
    });
    scrollable(column(rows).spacing(2)).height(Length::Fill).into()
}

fn people(w: &Workspace) -> Element<'_, Message> {
    let search =
        text_input("Search people, titles, departments", &w.search).on_input(Message::Search).padding(8).size(13);
    let people = w.directory.people_by_department(&w.search);
    let lines: Vec<Element<'_, Message>> = w
        .directory
        .lines(&people)
        .into_iter()
        .map(|l| match l {
            Line::Department { name, depth, online } => row![
                space().width(depth as f32 * 12.0),
                text(name.to_owned())
                    .size(12)
                    .font(style::BOLD)
                    .style(|t: &Theme| text::Style { color: Some(style::muted(t)) }),
                text(if online > 0 { format!("{online} online") } else { String::new() })
                    .size(11)
                    .style(|t: &Theme| text::Style { color: Some(style::muted(t)) }),
            ]
            .spacing(8)
            .padding([6, 0])
            .into(),
            Line::Person { person, depth } => {
                let detail = person.note.clone().or_else(|| person.title.clone()).unwrap_or_default();
                let line = row![
                    space().width(depth as f32 * 12.0),
                    style::dot(&person.status, 9.0),
                    column![
                        text(person.display_name.clone()).size(13),
                        text(detail).size(11).style(|t: &Theme| text::Style { color: Some(style::muted(t)) }),
                    ],
                ]
                .spacing(8)
                .align_y(Alignment::Center);
                button(line)
                    .width(Length::Fill)
                    .padding([3, 6])
                    .style(style::row_button(false))
                    .on_press(Message::Open(person.name.clone()))
                    .into()
            }
        })
        .collect();
    let list: Element<'_, Message> = if lines.is_empty() {
        text(if w.search.is_empty() { "The directory is loading…" } else { "Nobody matches." })
            .size(13)
            .style(|t: &Theme| text::Style { color: Some(style::muted(t)) })
            .into()
    } else {
        scrollable(column(lines)).height(Length::Fill).into()
    };
    column![search, list].spacing(8).height(Length::Fill).into()
}

fn connection(c: &Connection) -> Element<'_, Message> {
    let (status, label) = match c {
        Connection::Connecting => ("away", "Connecting…".to_owned()),
        Connection::Connected(t) => ("online", format!("Connected to {t}")),
        Connection::Reconnecting(_) => ("away", "Reconnecting…".to_owned()),
        Connection::Ended(m) => ("busy", format!("Signed out: {m}")),
    };
    row![style::dot(status, 8.0), text(label).size(12).style(|t: &Theme| text::Style { color: Some(style::muted(t)) })]
        .spacing(8)
        .align_y(Alignment::Center)
        .into()
}
