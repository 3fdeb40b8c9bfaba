//! The sidebar: who I am and my status, the conversation list or the
//! directory tree, and the tracker connection.

use super::{Connection, Message, Tab, Workspace};
use crate::model::directory::Line;
use crate::{clock, style};
use iced::widget::{button, column, container, pick_list, row, scrollable, space, text, text_input};
use iced::{Alignment, Element, Length, Theme};

const WIDTH: f32 = 290.0;
/// The message search box.
pub const SEARCH: &str = "search";
/// The new group's name.
pub const GROUP_NAME: &str = "group-name";
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
                button(text("Devices").size(11))
                    .padding([2, 6])
                    .style(button::text)
                    .on_press(Message::Devices(w.devices.is_none())),
                button(text("Sign out").size(11)).padding([2, 6]).style(button::text).on_press(Message::SignOut),
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

    let search = text_input("Search messages (Ctrl+K)", &w.query)
        .id(SEARCH)
        .on_input(Message::Query)
        .on_submit(Message::JumpFirst)
        .padding(8)
        .size(13);
    let body = match (w.query.trim().is_empty(), w.tab, &w.new_group) {
        (false, _, _) => results(w),
        (true, Tab::Chats, Some(g)) => new_group(w, g),
        (true, Tab::Chats, None) => column![
            button(text("+ New group").size(13)).padding([4, 8]).style(button::text).on_press(Message::NewGroup(true)),
            chats(w)
        ]
        .spacing(4)
        .into(),
        (true, Tab::People, _) => people(w),
    };
    let content = column![header, search, tabs, body, connection(&w.connection)].spacing(12).padding(14);
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
        // People show their presence; groups and company systems have none.
        let app = skein_proto::app::app_of(&r.id).is_some();
        let status = (!r.is_group() && !app).then(|| w.directory.status(&r.id));
        let avatar: Element<'_, Message> = match status {
            Some(s) => iced::widget::stack![
                style::avatar(&r.title, 36.0),
                container(style::dot(&s, 10.0)).align_right(36.0).align_bottom(36.0),
            ]
            .into(),
            None => super::conversation_avatar(w, &r.id, &r.title, 36.0),
        };
        let top = row![
            text(title).size(14).font(if r.unread > 0 { style::BOLD } else { style::SANS }).width(Length::Fill),
            text(clock::short(r.last_at_ms)).size(11).style(|t: &Theme| text::Style { color: Some(style::muted(t)) }),
        ]
        .spacing(6)
        .align_y(Alignment::Center);
        let mut bottom =
            row![container(style::rich_line(&r.last_text, 12.0, None)).width(Length::Fill).height(18).clip(true)]
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

fn results(w: &Workspace) -> Element<'_, Message> {
    if w.results.is_empty() {
        return container(
            text("No messages match.").size(13).style(|t: &Theme| text::Style { color: Some(style::muted(t)) }),
        )
        .padding(8)
        .height(Length::Fill)
        .into();
    }
    let rows = w.results.iter().map(|h| {
        let title = w.title_of(&h.conversation);
        let title = if h.conversation.starts_with('#') { format!("# {title}") } else { title };
        let spans: Vec<iced::widget::text::Span<'_, iced::Never, iced::Font>> = h
            .snippet_parts()
            .into_iter()
            .map(|(part, hit)| iced::widget::span(part).font(if hit { style::BOLD } else { style::SANS }))
            .collect();
        let line = column![
            row![
                text(title).size(13).font(style::BOLD).width(Length::Fill),
                text(clock::short(h.sent_at_ms))
                    .size(11)
                    .style(|t: &Theme| text::Style { color: Some(style::muted(t)) }),
            ],
            text(w.directory.display_name(&h.from_user))
                .size(11)
                .style(|t: &Theme| text::Style { color: Some(style::muted(t)) }),
            iced::widget::rich_text(spans).size(12).on_link_click(iced::never),
        ]
        .spacing(2);
        button(line)
            .width(Length::Fill)
            .padding([6, 8])
            .style(style::row_button(false))
            .on_press(Message::Jump(h.conversation.clone(), h.id.to_hex()))
            .into()
    });
    scrollable(column(rows).spacing(2)).height(Length::Fill).into()
}

fn new_group<'a>(w: &'a Workspace, g: &'a super::NewGroup) -> Element<'a, Message> {
    let mut people: Vec<crate::model::directory::Person> =
        w.directory.people_by_department("").into_values().flatten().filter(|p| p.name != w.me).collect();
    people.sort_by_key(|p| p.display_name.to_lowercase());
    let members = people.into_iter().map(|p| {
        let chosen = g.members.contains(&p.name);
        let name = p.name.clone();
        iced::widget::checkbox(chosen)
            .label(p.display_name.clone())
            .size(15)
            .text_size(13)
            .on_toggle(move |on| Message::GroupMember(name.clone(), on))
            .into()
    });
    let mut form = column![
        text("New group").size(15).font(style::BOLD),
        text_input("Group name", &g.name)
            .id(GROUP_NAME)
            .on_input(Message::GroupName)
            .on_submit(Message::CreateGroup)
            .padding(8)
            .size(13),
        text(format!("Members ({} chosen)", g.members.len()))
            .size(12)
            .style(|t: &Theme| text::Style { color: Some(style::muted(t)) }),
        scrollable(column(members).spacing(6)).height(Length::Fill),
    ]
    .spacing(8)
    .height(Length::Fill);
    if let Some(e) = &g.error {
        form = form.push(text(e.clone()).size(12).style(|t: &Theme| text::Style { color: Some(style::error_text(t)) }));
    }
    let create = button(text(if g.busy { "Creating…" } else { "Create" }).size(13))
        .padding([6, 14])
        .on_press_maybe((!g.busy).then_some(Message::CreateGroup));
    let cancel =
        button(text("Cancel").size(13)).padding([6, 14]).style(button::secondary).on_press(Message::NewGroup(false));
    form.push(row![create, cancel].spacing(8)).into()
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
