//! The open conversation: its header, the messages grouped by day (with
//! ticks, the path each took, reactions, images and files with their
//! progress), and the composer with the emoji picker and `:shortcode:`
//! completion.

use super::{COMPOSER, MESSAGES, Message, Workspace};
use crate::model::chat::Msg;
use crate::model::emoji_runs::only_emoji;
use crate::model::event::Body;
use crate::model::transfers::human;
use crate::{clock, style};
use iced::widget::{
    button, center, column, container, image, mouse_area, progress_bar, row, scrollable, space, text, text_editor,
};
use iced::{Alignment, Element, Length, Theme, keyboard};

/// Emoji offered by the picker.
const PICKER: [&str; 40] = [
    "😀", "😂", "🙂", "😉", "😍", "🤔", "😅", "😎", "🙌", "👏", "👍", "👎", "🙏", "💪", "👋", "🤝", "🎉", "🔥", "✅",
    "❌", "⚠️", "❤️", "💡", "🚀", "☕", "🍕", "📎", "📅", "📌", "🐛", "🛠️", "💬", "👀", "🤷", "😢", "😮", "🥳", "⭐",
    "💯", "✨",
];
/// Reactions offered on a message under the pointer.
const QUICK: [&str; 4] = ["👍", "❤️", "😂", "🎉"];

fn muted_text<'a>(s: String, size: f32) -> iced::widget::Text<'a> {
    text(s).size(size).style(|t: &Theme| text::Style { color: Some(style::muted(t)) })
}

/// The conversation pane.
pub fn view(w: &Workspace) -> Element<'_, Message> {
    let Some(chat) = &w.chat else {
        return center(
            column![
                text("💬").size(48).font(style::EMOJI),
                text("Pick a conversation, or find someone in People.").size(15),
            ]
            .spacing(12)
            .align_x(Alignment::Center),
        )
        .into();
    };
    let is_group = chat.id.starts_with('#');
    let cert = w.group_certs.get(&chat.id);
    let subtitle = if is_group {
        match cert {
            Some(c) if c.body.closed => format!("Closed group · {} members", c.body.members.len()),
            Some(c) => format!("Group · {} members", c.body.members.len()),
            None => "Group".to_owned(),
        }
    } else if skein_proto::app::app_of(&chat.id).is_some() {
        // Not a person: no presence, and its messages all come through the mailbox.
        "Messages from a company system".to_owned()
    } else {
        let status = w.directory.status(&chat.id);
        let path = chat.messages.iter().rev().find(|m| !m.outgoing).and_then(|m| m.path.clone());
        match path {
            Some(p) => format!("{status} · last message came {p}"),
            None => status,
        }
    };
    let mut head = row![].spacing(10).align_y(Alignment::Center);
    head = head.push(super::conversation_avatar(w, &chat.id, &chat.title, 34.0));
    head = head.push(
        column![text(chat.title.clone()).size(17).font(style::BOLD), muted_text(subtitle, 12.0)]
            .spacing(2)
            .width(Length::Fill),
    );
    let is_person = !is_group && skein_proto::app::app_of(&chat.id).is_none() && chat.id != w.me;
    // A group call takes a small open group.
    let callable_group = cert.is_some_and(|c| {
        !c.body.closed && c.body.members.len() <= skein_node::calls::MAX_PARTICIPANTS && c.body.members.len() > 1
    });
    if is_person || callable_group {
        for (label, audio_only) in [("Call", true), ("Video call", false)] {
            head = head.push(
                button(text(label).size(13))
                    .padding([5, 12])
                    .style(button::secondary)
                    .on_press_maybe(w.call.is_none().then_some(Message::CallStart(audio_only))),
            );
        }
    }
    if cert.is_some() {
        let label = if w.members_panel { "Hide members" } else { "Members" };
        head = head
            .push(button(text(label).size(13)).padding([5, 12]).style(button::secondary).on_press(Message::Members));
    }
    let header = container(head).padding([10, 16]).width(Length::Fill);

    let mut items: Vec<Element<'_, Message>> = Vec::new();
    if !chat.complete && !chat.messages.is_empty() {
        items.push(container(muted_text("Scroll up for older messages".into(), 11.0)).center_x(Length::Fill).into());
    }
    for day in chat.days(clock::offset(), clock::today()) {
        items.push(container(muted_text(day.label.clone(), 12.0)).center_x(Length::Fill).padding([8, 0]).into());
        let mut previous: Option<&str> = None;
        for m in day.messages {
            if let Body::Line(t) = &m.body {
                items.push(
                    container(muted_text(format!("{t} · {}", clock::hm(m.sent_at_ms)), 12.0))
                        .center_x(Length::Fill)
                        .into(),
                );
                previous = None;
                continue;
            }
            let first_of_run = previous != Some(m.from.as_str());
            previous = Some(m.from.as_str());
            items.push(message(w, m, is_group && first_of_run && !m.outgoing));
        }
    }
    if chat.messages.is_empty() {
        items.push(
            container(muted_text("No messages yet. Say hello!".into(), 13.0)).center_x(Length::Fill).padding(20).into(),
        );
    }
    let list = scrollable(column(items).spacing(6).padding([8, 16]))
        .id(MESSAGES)
        .anchor_bottom()
        .on_scroll(Message::Scrolled)
        .height(Length::Fill);

    let bottom: Element<'_, Message> = if skein_proto::app::app_of(&chat.id).is_some() {
        // A company system posts here; there is no one to answer.
        container(muted_text("Company systems post here; replies cannot be sent to them.".into(), 13.0))
            .padding([16, 20])
            .into()
    } else {
        composer(w)
    };
    let pane = column![header, list, bottom].height(Length::Fill);
    match cert.filter(|_| w.members_panel) {
        Some(c) => row![pane, members(w, c)].height(Length::Fill).into(),
        None => pane.into(),
    }
}

/// The open group's members, and what this user may change about it.
fn members<'a>(w: &'a Workspace, cert: &'a skein_proto::group::MembershipCert) -> Element<'a, Message> {
    use super::GroupChange;
    let b = &cert.body;
    let owner = w.owns(cert);
    let mut list = column![text("Members").size(14).font(style::BOLD)].spacing(6);
    for m in &b.members {
        let mut line = row![
            style::dot(&w.directory.status(m), 8.0),
            text(w.directory.display_name(m)).size(13).width(Length::Fill),
        ]
        .spacing(8)
        .align_y(Alignment::Center);
        if matches!(&b.kind, skein_proto::group::GroupKind::Discussion { owner } if owner == m) {
            line = line.push(muted_text("owner".into(), 11.0));
        } else if owner && !b.closed {
            line = line.push(
                button(text("Remove").size(11))
                    .padding([2, 6])
                    .style(button::text)
                    .on_press(Message::ChangeGroup(GroupChange::Remove(m.clone()))),
            );
        }
        list = list.push(line);
    }
    if owner && !b.closed {
        let others: Vec<crate::model::directory::Person> = w
            .directory
            .people_by_department("")
            .into_values()
            .flatten()
            .filter(|p| !b.members.contains(&p.name))
            .collect();
        if !others.is_empty() {
            list = list.push(space().height(6)).push(text("Add people").size(14).font(style::BOLD));
            for p in others {
                list = list.push(
                    row![
                        style::dot(&p.status, 8.0),
                        text(p.display_name.clone()).size(13).width(Length::Fill),
                        button(text("Add").size(11))
                            .padding([2, 8])
                            .style(button::secondary)
                            .on_press(Message::ChangeGroup(GroupChange::Add(p.name.clone()))),
                    ]
                    .spacing(8)
                    .align_y(Alignment::Center),
                );
            }
        }
        list = list.push(space().height(6)).push(text("Name").size(14).font(style::BOLD)).push(
            row![
                iced::widget::text_input(&b.name, &w.rename)
                    .on_input(Message::Rename)
                    .on_submit(Message::ChangeGroup(GroupChange::Rename))
                    .padding(6)
                    .size(13),
                button(text("Rename").size(12)).padding([5, 8]).on_press(Message::ChangeGroup(GroupChange::Rename)),
            ]
            .spacing(6),
        );
    }
    let action = match (owner, b.closed, &b.kind) {
        (_, true, _) => None,
        (true, false, _) => Some(("Close the group", GroupChange::Close)),
        (false, false, skein_proto::group::GroupKind::Discussion { .. }) => {
            Some(("Leave the group", GroupChange::Leave))
        }
        _ => None,
    };
    if let Some((label, change)) = action {
        list = list.push(space().height(10)).push(
            button(text(label).size(12)).padding([5, 10]).style(button::danger).on_press(Message::ChangeGroup(change)),
        );
    }
    container(scrollable(list.padding(14))).width(250).height(Length::Fill).style(style::sidebar).into()
}

fn message<'a>(w: &'a Workspace, m: &'a Msg, show_sender: bool) -> Element<'a, Message> {
    let mut content = column![].spacing(4);
    if show_sender {
        content = content.push(text(w.directory.display_name(&m.from)).size(12).font(style::BOLD));
    }
    content = content.push(body(w, m));
    let mut footer = row![muted_text(clock::hm(m.sent_at_ms), 11.0)].spacing(6).align_y(Alignment::Center);
    if let Some(p) = m.path.as_deref().filter(|p| *p != "direct") {
        footer = footer.push(muted_text(p.to_owned(), 11.0));
    }
    if let Some(tick) = m.tick() {
        let font = if tick == "🕓" { style::EMOJI } else { style::SANS };
        footer = footer.push(text(tick).size(11).font(font));
    }
    content = content.push(footer);
    let (outgoing, marked) = (m.outgoing, w.marked.as_deref() == Some(m.id.as_str()));
    let bubble = container(content).padding([8, 12]).max_width(520).style(move |t: &Theme| {
        let mut s = if outgoing { style::own_bubble(t) } else { style::their_bubble(t) };
        if marked {
            // The message a search opened.
            s.border =
                iced::Border { width: 2.0, color: t.extended_palette().primary.strong.color, radius: 12.0.into() };
        }
        s
    });

    let mut block = column![bubble].spacing(3);
    let hovered = w.hovered.as_deref() == Some(m.id.as_str());
    if !m.reactions.is_empty() || hovered {
        let mut reactions = row![].spacing(4);
        for (emoji, users) in &m.reactions {
            let mine = users.contains(&w.me);
            let label = row![text(emoji.clone()).size(13).font(style::EMOJI), text(users.len().to_string()).size(12)]
                .spacing(4);
            reactions = reactions.push(
                button(label)
                    .padding([2, 8])
                    .style(if mine { button::primary } else { button::secondary })
                    .on_press(Message::React(m.id.clone(), emoji.clone())),
            );
        }
        if hovered {
            for q in QUICK.iter().filter(|q| !m.reactions.iter().any(|(e, _)| e == *q)) {
                reactions = reactions.push(
                    button(text(*q).size(13).font(style::EMOJI))
                        .padding([2, 6])
                        .style(button::text)
                        .on_press(Message::React(m.id.clone(), (*q).to_owned())),
                );
            }
            // The plugins' message actions, on messages that say something.
            if matches!(m.body, Body::Text(_) | Body::Card { .. }) {
                for a in &w.plugins.actions {
                    reactions = reactions.push(
                        button(text(a.label.clone()).size(12))
                            .padding([2, 8])
                            .style(button::secondary)
                            .on_press(Message::Action(a.plugin.clone(), a.id.clone(), m.id.clone())),
                    );
                }
            }
        }
        block = block.push(reactions);
    }
    let block = mouse_area(block).on_enter(Message::Hover(Some(m.id.clone())));
    let line =
        if m.outgoing { row![space().width(Length::Fill), block] } else { row![block, space().width(Length::Fill)] };
    line.into()
}

fn body<'a>(w: &'a Workspace, m: &'a Msg) -> Element<'a, Message> {
    match &m.body {
        Body::Text(t) => {
            let size = if only_emoji(t) { 34.0 } else { 15.0 };
            style::rich(t, size, None)
        }
        Body::File { name, size } => file(w, m, "📎", "Accept", name, *size),
        Body::Line(t) => muted_text(t.clone(), 12.0).into(),
        Body::Card { text, card: c } => {
            let mut col = column![].spacing(8);
            if let Some(t) = text {
                col = col.push(style::rich(t, 15.0, None));
            }
            col.push(card(c)).into()
        }
        Body::Image { name, size, dims, .. } => {
            let mut col = column![].spacing(6);
            if let Some(h) = w.thumbs.get(&m.id) {
                let (tw, th) = fit(*dims, 320.0, 240.0);
                let saved = w.transfers.get(&m.id).and_then(|t| t.saved_path.clone());
                let picture = image(h.clone()).width(tw).height(th);
                col = col.push(match saved {
                    Some(p) => Element::from(button(picture).padding(0).style(button::text).on_press(Message::View(p))),
                    None => picture.into(),
                });
            }
            col.push(file(w, m, "🖼", "Download", name, *size)).into()
        }
    }
}

/// `dims` scaled down to fit `max_w`×`max_h`.
fn fit(dims: (u32, u32), max_w: f32, max_h: f32) -> (f32, f32) {
    let (w, h) = (dims.0.max(1) as f32, dims.1.max(1) as f32);
    let scale = (max_w / w).min(max_h / h).min(1.0);
    (w * scale, h * scale)
}

fn file<'a>(
    w: &'a Workspace,
    m: &'a Msg,
    icon: &'static str,
    accept: &'static str,
    name: &'a str,
    size: u64,
) -> Element<'a, Message> {
    let title = row![
        text(icon).size(20).font(style::EMOJI),
        column![text(name.to_owned()).size(14).font(style::BOLD), muted_text(human(size), 12.0)].spacing(2),
    ]
    .spacing(10)
    .align_y(Alignment::Center);
    let mut col = column![title].spacing(6);
    let t = w.transfers.get(&m.id);
    let state = t.map_or("offered", |t| t.state.as_str());
    match (m.outgoing, state) {
        (false, "offered") => {
            col = col.push(
                row![
                    button(text(accept).size(13)).padding([4, 12]).on_press(Message::Accept(m.id.clone())),
                    button(text("Decline").size(13))
                        .padding([4, 12])
                        .style(button::secondary)
                        .on_press(Message::Decline(m.id.clone())),
                ]
                .spacing(8),
            );
        }
        (_, "completed") => {
            let mut actions = row![muted_text(if m.outgoing { "Sent".into() } else { "Saved".into() }, 12.0)]
                .spacing(8)
                .align_y(Alignment::Center);
            if let Some(p) = t.and_then(|t| t.saved_path.clone()) {
                actions = actions.push(
                    button(text("Open folder").size(12))
                        .padding([3, 10])
                        .style(button::secondary)
                        .on_press(Message::Reveal(p)),
                );
            }
            col = col.push(actions);
        }
        (_, "declined") => col = col.push(muted_text("Declined".into(), 12.0)),
        (_, "failed") => {
            let why = t.and_then(|t| t.error.clone()).unwrap_or_else(|| "the transfer failed".into());
            col = col.push(
                text(format!("Failed: {why}"))
                    .size(12)
                    .style(|t: &Theme| text::Style { color: Some(style::error_text(t)) }),
            );
            if !m.outgoing {
                col = col.push(button(text("Retry").size(12)).padding([3, 10]).on_press(Message::Accept(m.id.clone())));
            }
        }
        _ => {
            if let Some(t) = t.filter(|t| t.active()) {
                col = col.push(progress_bar(0.0..=1.0, t.fraction()).girth(6).length(260));
                col = col.push(muted_text(t.progress_line(), 12.0));
            } else if m.outgoing {
                col = col.push(muted_text("Offered".into(), 12.0));
            }
        }
    }
    container(col).padding(4).into()
}

/// A card: its title, text, fields (name and value in two columns) and
/// buttons that open their links in the browser.
fn card(c: &skein_proto::app::Card) -> Element<'_, Message> {
    let mut inner = column![text(c.title.clone()).size(15).font(style::BOLD)].spacing(6);
    if let Some(t) = &c.text {
        inner = inner.push(text(t.clone()).size(14));
    }
    if !c.fields.is_empty() {
        let mut fields = column![].spacing(3);
        for f in &c.fields {
            fields = fields.push(
                row![muted_text(f.name.clone(), 13.0).width(110), text(f.value.clone()).size(13)]
                    .spacing(8)
                    .align_y(Alignment::Start),
            );
        }
        inner = inner.push(fields);
    }
    if !c.buttons.is_empty() {
        let mut buttons = row![].spacing(6);
        for b in &c.buttons {
            buttons = buttons.push(
                button(text(format!("{} ↗", b.label)).size(13))
                    .padding([4, 10])
                    .style(button::secondary)
                    .on_press(Message::OpenLink(b.url.clone())),
            );
        }
        inner = inner.push(buttons.wrap());
    }
    container(inner).padding([10, 12]).style(style::message_card).into()
}

fn composer(w: &Workspace) -> Element<'_, Message> {
    // The composer keeps its place in the widget tree whatever shows above
    // it (an element added before it would take its state, and its focus):
    // the picker and the suggestions are always there, empty or not.
    let mut area = column![].spacing(6).padding([8, 16]);
    let mut extras = column![].spacing(6);
    if w.picker {
        let mut grid = column![].spacing(2);
        for chunk in PICKER.chunks(10) {
            let mut r = row![].spacing(2);
            for e in chunk {
                r = r.push(
                    button(text(*e).size(20).font(style::EMOJI))
                        .padding(4)
                        .style(button::text)
                        .on_press(Message::Insert((*e).to_owned())),
                );
            }
            grid = grid.push(r);
        }
        extras = extras.push(container(grid).padding(6).style(style::card));
    }
    if let Some(code) = w.shortcode() {
        let matches: Vec<&'static emojis::Emoji> =
            emojis::iter().filter(|e| e.shortcodes().any(|s| s.starts_with(code.as_str()))).take(8).collect();
        if !matches.is_empty() {
            let mut r = row![].spacing(4);
            for e in matches {
                let label = row![
                    text(e.as_str()).size(16).font(style::EMOJI),
                    text(format!(":{}:", e.shortcode().unwrap_or_default())).size(12),
                ]
                .spacing(4)
                .align_y(Alignment::Center);
                r = r.push(
                    button(label)
                        .padding([3, 8])
                        .style(button::secondary)
                        .on_press(Message::Complete(e.as_str().to_owned())),
                );
            }
            extras = extras.push(r.wrap());
        }
    }
    let typed = w.composer.text();
    let commands = w.plugins.completing(typed.trim_end_matches('\n'));
    if !commands.is_empty() {
        let mut list = column![].spacing(2);
        for c in &commands {
            let line = column![
                row![text(format!("/{}", c.name)).size(13).font(style::BOLD), text(c.usage.clone()).size(13)]
                    .spacing(8),
                muted_text(c.description.clone(), 12.0),
            ]
            .spacing(1);
            list = list.push(
                button(line)
                    .width(Length::Fill)
                    .padding([4, 8])
                    .style(button::text)
                    .on_press(Message::CompleteCommand(c.name.clone())),
            );
        }
        extras = extras.push(container(list).padding(4).style(style::card));
    }
    if let Some((plugin, reply)) = &w.plugin_reply {
        let answer = row![
            column![
                text(format!("🧩 {plugin} · only you see this")).size(12).font(style::BOLD),
                text(reply.clone()).size(13),
            ]
            .spacing(2)
            .width(Length::Fill),
            button(text("×").size(14)).padding([2, 8]).style(button::text).on_press(Message::CloseReply),
        ]
        .align_y(Alignment::Start);
        extras = extras.push(container(answer).padding([6, 10]).style(style::card));
    }
    let first_command = commands.first().map(|c| c.name.clone());
    let editor = text_editor(&w.composer)
        .id(COMPOSER)
        .placeholder("Write a message…")
        .on_action(Message::Edit)
        .padding(10)
        .size(15)
        .height(72)
        .key_binding(move |kp| {
            let focused = matches!(kp.status, text_editor::Status::Focused { .. });
            match kp.key.as_ref() {
                keyboard::Key::Named(keyboard::key::Named::Enter) if focused && !kp.modifiers.shift() => {
                    Some(text_editor::Binding::Custom(Message::Send))
                }
                keyboard::Key::Named(keyboard::key::Named::Enter) if focused => Some(text_editor::Binding::Enter),
                // The window's shortcuts (Ctrl+1…9, Ctrl+K), not text: the
                // editor would type the digit or letter.
                keyboard::Key::Character(c) if kp.modifiers.command() && !matches!(c, "a" | "c" | "v" | "x") => None,
                keyboard::Key::Named(keyboard::key::Named::Tab) if focused && first_command.is_some() => {
                    first_command.clone().map(|c| text_editor::Binding::Custom(Message::CompleteCommand(c)))
                }
                _ => text_editor::Binding::from_key_press(kp),
            }
        });
    let send_label = if w.sending > 0 { "Sending…" } else { "Send" };
    let input = row![
        button(text("😀").size(20).font(style::EMOJI)).padding([6, 8]).style(button::text).on_press(Message::Picker),
        button(text("📎").size(20).font(style::EMOJI)).padding([6, 8]).style(button::text).on_press(Message::Attach),
        editor,
        button(text(send_label).size(14).font(style::BOLD)).padding([10, 16]).on_press(Message::Send),
    ]
    .spacing(8)
    .align_y(Alignment::End);
    area = area.push(extras).push(input);
    area = area.push(muted_text(
        "Enter sends · Shift+Enter for a new line · 📎 or drop a file on the window to send it".into(),
        11.0,
    ));
    area.into()
}
