//! The main window: the sidebar (conversations, or the directory), the
//! open conversation, and one's own status and connection. Its state is
//! what the node reported; its commands go to the node and never block
//! the window: each runs as a task, and a failed one says why in a banner.

mod call;
mod conversation;
mod devices;
mod sidebar;

pub use sidebar::SEARCH;
#[cfg(test)]
mod tests;

use crate::model::chat::{Chat, Msg};
use crate::model::conversations::{Conversations, Row};
use crate::model::directory::Directory;
use crate::model::event::{self, Body, NodeEvent};
use crate::model::transfers::Transfers;
use iced::widget::{button, container, operation, row, scrollable, text, text_editor};
use iced::{Element, Length, Task};
use serde_json::Value;
use skein_node::handle::NodeHandle;
use std::path::PathBuf;

/// The message list's scrollable.
pub const MESSAGES: &str = "messages";
/// The composer.
pub const COMPOSER: &str = "composer";
/// Messages loaded per page.
const PAGE: u32 = 50;
/// How long without input before the status turns to away.
pub const AWAY_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

/// The tracker connection as the indicator shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// Starting up.
    Connecting,
    /// Connected to this tracker.
    Connected(String),
    /// Lost; retrying.
    Reconnecting(String),
    /// The session ended.
    Ended(String),
}

/// What the sidebar shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// Conversations.
    Chats,
    /// The directory.
    People,
}

/// A desktop notification to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The conversation it opens.
    pub conversation: String,
    /// Title: who wrote.
    pub title: String,
    /// The message, in one line.
    pub body: String,
}

/// What the user (or the node) does.
#[derive(Debug, Clone)]
pub enum Message {
    /// An event of the node.
    Node(Value),
    /// The conversation list was read from the history.
    Conversations(Result<Vec<Row>, String>),
    /// The directory: users, departments and presence.
    Directory(Result<(Value, Value, Value), String>),
    /// Open a conversation.
    Open(String),
    /// A page of a conversation: (conversation, messages, oldest seq, complete, newest page).
    Page(String, Result<(Vec<Msg>, Option<i64>, bool, bool), String>),
    /// The message list scrolled.
    Scrolled(scrollable::Viewport),
    /// The composer changed.
    Edit(text_editor::Action),
    /// Send what the composer holds.
    Send,
    /// Add an emoji to the composer.
    Insert(String),
    /// Finish the `:shortcode` being typed with this emoji.
    Complete(String),
    /// Show or hide the emoji picker.
    Picker,
    /// React to a message with an emoji (again: take it back).
    React(String, String),
    /// Accept a file offer.
    Accept(String),
    /// Decline a file offer.
    Decline(String),
    /// Open the folder a file was saved in.
    Reveal(String),
    /// Open a received image full size.
    View(String),
    /// Open a card's link in the browser.
    OpenLink(String),
    /// A file was dropped on the window: offer it here.
    Dropped(PathBuf),
    /// Pick a file to send, with the desktop's file chooser.
    Attach,
    /// A command finished: refresh the open conversation, or say why it failed.
    Done(Result<Value, String>),
    /// A send finished (the same, and one fewer in flight).
    Sent(Result<Value, String>),
    /// Something failed; say why.
    Failed(String),
    /// Switch the sidebar.
    Tab(Tab),
    /// The directory's search box.
    Search(String),
    /// Set one's status.
    Status(String),
    /// The pointer is over a message (its quick reactions show).
    Hover(Option<String>),
    /// The node's transfers, to show where each file stands.
    TransfersLoaded(Value),
    /// The message search box changed.
    Query(String),
    /// Search results for a query.
    Results(String, Result<Vec<skein_node::history::SearchHit>, String>),
    /// Open a conversation at one of its messages (a search result).
    Jump(String, String),
    /// Enter in the search box: open the first result.
    JumpFirst,
    /// Start making a group (or give up on it).
    NewGroup(bool),
    /// The new group's name.
    GroupName(String),
    /// Add or take out a member of the new group.
    GroupMember(String, bool),
    /// Make the group.
    CreateGroup,
    /// The group was made (its address and name), or why not.
    GroupCreated(Result<(String, String), String>),
    /// Show or hide the open group's members panel.
    Members,
    /// Change the open group (invite, remove, leave, rename, close).
    ChangeGroup(GroupChange),
    /// The group's new certificate, or why the change was refused.
    GroupChanged(Result<skein_proto::group::MembershipCert, String>),
    /// The name being typed for the open group.
    Rename(String),
    /// Every group's current certificate.
    GroupCerts(Vec<skein_proto::group::MembershipCert>),
    /// A conversation was marked read on the node.
    ReadDone(String),
    /// The node's plugins, for their commands and actions.
    PluginsLoaded(Result<Value, String>),
    /// Put this slash command in the composer.
    CompleteCommand(String),
    /// Run a plugin's message action: (plugin, action, message id).
    Action(String, String, String),
    /// Close the plugin's answer shown above the composer.
    CloseReply,
    /// Call the open conversation's user (audio only: true).
    CallStart(bool),
    /// Answer the call that rings (audio only: true).
    CallAnswer(bool),
    /// Hang up, decline, or cancel.
    CallHangUp,
    /// Mute or unmute the microphone.
    CallMute,
    /// Turn the camera off or on.
    CallCamera,
    /// Show or hide the call's statistics.
    CallStats,
    /// Open (true) or close the call devices panel.
    Devices(bool),
    /// The node's devices and the ones calls use.
    DevicesLoaded(Result<Value, String>),
    /// Use this microphone from the next call on.
    PickMicrophone(String),
    /// Use this camera from the next call on.
    PickCamera(String),
    /// A picture for the call pane: another participant's (whose), or the
    /// self-view.
    Frame(Option<String>, skein_media::Frame),
    /// Sign this device out.
    SignOut,
    /// Close the error banner.
    Dismiss,
}

/// A change to a group, from its panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChange {
    /// Invite a user.
    Add(String),
    /// Remove a member.
    Remove(String),
    /// Leave it.
    Leave,
    /// Give it the name typed.
    Rename,
    /// Close it for good.
    Close,
}

/// A group being made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewGroup {
    /// Its name.
    pub name: String,
    /// The members chosen (besides this user).
    pub members: std::collections::BTreeSet<String>,
    /// Waiting for the tracker.
    pub busy: bool,
    /// Why it could not be made.
    pub error: Option<String>,
}

/// The main window's state.
#[derive(Debug)]
pub struct Workspace {
    node: Option<NodeHandle>,
    /// The signed-in user.
    pub me: String,
    /// The tracker connection.
    pub connection: Connection,
    /// One's own status.
    pub status: String,
    /// Away was set by idleness, not by the user.
    pub auto_away: bool,
    /// The conversation list.
    pub conversations: Conversations,
    /// Group names by address.
    pub groups: std::collections::HashMap<String, String>,
    /// The open conversation.
    pub chat: Option<Chat>,
    /// File transfers.
    pub transfers: Transfers,
    /// The directory.
    pub directory: Directory,
    /// What the sidebar shows.
    pub tab: Tab,
    /// The directory search.
    pub search: String,
    /// The composer.
    pub composer: text_editor::Content,
    /// The emoji picker is open.
    pub picker: bool,
    /// Sends in flight.
    pub sending: usize,
    /// The last failed action.
    pub error: Option<String>,
    /// The window has focus.
    pub focused: bool,
    /// Notifications to show (taken by the app).
    pub notices: Vec<Notice>,
    /// The message under the pointer.
    pub hovered: Option<String>,
    /// The message search.
    pub query: String,
    /// Its results (for `query`).
    pub results: Vec<skein_node::history::SearchHit>,
    /// The message to show (a search result), until it is on screen.
    pub target: Option<String>,
    /// The message shown marked (the last search result opened).
    pub marked: Option<String>,
    /// A group being made.
    pub new_group: Option<NewGroup>,
    /// Every group's newest certificate, by address.
    pub group_certs: std::collections::HashMap<String, skein_proto::group::MembershipCert>,
    /// The members panel of the open group shows.
    pub members_panel: bool,
    /// The name being typed for the open group.
    pub rename: String,
    /// Conversations being marked read on the node.
    reading: std::collections::HashSet<String>,
    /// Conversations to mark read again once the request in flight ends.
    read_again: std::collections::HashSet<String>,
    /// The message list shows the newest message (new ones scroll in).
    at_bottom: bool,
    /// The query the results are for.
    results_for: String,
    /// Image thumbnails by message id, decoded once.
    pub thumbs: std::collections::HashMap<String, iced::widget::image::Handle>,
    /// An older page is being loaded.
    loading_older: bool,
    /// No tracker connection yet since the app started.
    first_connect: bool,
    /// The plugins' slash commands and message actions.
    pub plugins: crate::model::plugins::Plugins,
    /// A plugin's last answer, shown to this user alone: (plugin, text).
    pub plugin_reply: Option<(String, String)>,
    /// Apps' icons by conversation (`app:NAME`), as the node keeps them.
    pub app_icons: std::collections::HashMap<String, iced::widget::image::Handle>,
    /// The call, while one is on.
    pub call: Option<crate::model::call::Call>,
    /// The call devices panel, while it is open.
    pub devices: Option<crate::model::devices::Devices>,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Workspace {
    /// The window for `me`, driving `node` (none in tests).
    pub fn new(me: &str, node: Option<NodeHandle>) -> Self {
        Self {
            node,
            me: me.to_owned(),
            connection: Connection::Connecting,
            status: "online".into(),
            auto_away: false,
            conversations: Conversations::default(),
            groups: Default::default(),
            chat: None,
            transfers: Transfers::default(),
            directory: Directory::default(),
            tab: Tab::Chats,
            search: String::new(),
            composer: text_editor::Content::new(),
            picker: false,
            sending: 0,
            error: None,
            focused: true,
            notices: Vec::new(),
            hovered: None,
            query: String::new(),
            results: Vec::new(),
            target: None,
            marked: None,
            new_group: None,
            group_certs: Default::default(),
            members_panel: false,
            rename: String::new(),
            reading: Default::default(),
            read_again: Default::default(),
            at_bottom: true,
            results_for: String::new(),
            thumbs: Default::default(),
            loading_older: false,
            first_connect: true,
            plugins: Default::default(),
            plugin_reply: None,
            app_icons: Default::default(),
            call: None,
            devices: None,
        }
    }

    /// Loads what the history holds, and the plugins.
    pub fn load(&self) -> Task<Message> {
        Task::batch([self.load_conversations(), self.load_plugins()])
    }

    fn load_plugins(&self) -> Task<Message> {
        let Some(node) = self.node.clone() else { return Task::none() };
        Task::perform(async move { node.plugins().await.map_err(err) }, Message::PluginsLoaded)
    }

    fn load_conversations(&self) -> Task<Message> {
        let Some(node) = self.node.clone() else { return Task::none() };
        Task::perform(
            async move {
                let list = node.history().conversations().await.map_err(err)?;
                Ok(list
                    .into_iter()
                    .map(|c| Row {
                        title: c.id.clone(),
                        id: c.id,
                        unread: c.unread,
                        last_text: c.last_text.unwrap_or_default().lines().next().unwrap_or_default().to_owned(),
                        last_at_ms: c.last_at_ms,
                        muted: false,
                    })
                    .collect())
            },
            Message::Conversations,
        )
    }

    fn load_directory(&self) -> Task<Message> {
        let Some(node) = self.node.clone() else { return Task::none() };
        let groups = node.clone();
        Task::batch([
            Task::perform(
                async move {
                    let users = node.directory(None, None).await.map_err(err)?;
                    let departments = node.departments().await.map_err(err)?;
                    let presence = node.presence().await.map_err(err)?;
                    Ok((users, departments, presence))
                },
                Message::Directory,
            ),
            Task::perform(async move { groups.groups().await.unwrap_or_default() }, Message::GroupCerts),
        ])
    }

    /// Finds the icon the node kept for the app of conversation `id`, once.
    fn find_app_icon(&mut self, id: &str) {
        let (Some(app), Some(node)) = (skein_proto::app::app_of(id), self.node.as_ref()) else { return };
        if self.app_icons.contains_key(id) {
            return;
        }
        let path = skein_node::app_mail::icons_dir(node.history().path()).join(format!("{app}.png"));
        if path.is_file() {
            self.app_icons.insert(id.to_owned(), iced::widget::image::Handle::from_path(path));
        }
    }

    /// What a conversation is called.
    pub fn title_of(&self, id: &str) -> String {
        if let Some(app) = skein_proto::app::app_of(id) {
            return app.to_owned();
        }
        match id.strip_prefix('#') {
            Some(_) => self.groups.get(id).cloned().unwrap_or_else(|| "Group".to_owned()),
            None => self.directory.display_name(id),
        }
    }

    fn page(&self, id: &str, before: Option<i64>) -> Task<Message> {
        let Some(node) = self.node.clone() else { return Task::none() };
        let id = id.to_owned();
        let newest = before.is_none();
        Task::perform(
            {
                let id = id.clone();
                async move {
                    let h = node.history();
                    let list = h.messages(&id, PAGE, before).await.map_err(err)?;
                    let complete = list.len() < PAGE as usize;
                    let oldest = list.first().map(|m| m.seq);
                    let mut msgs = Vec::with_capacity(list.len());
                    for m in &list {
                        let reactions = h.reactions(m.id).await.map_err(err)?;
                        msgs.extend(Msg::stored(m, &reactions));
                    }
                    // A group's change lines within this page (all of them
                    // once the page reaches the conversation's start).
                    if id.starts_with('#') {
                        let since = if complete { 0 } else { list.first().map_or(0, |m| m.hlc) };
                        let until = if before.is_none() { u64::MAX } else { list.last().map_or(u64::MAX, |m| m.hlc) };
                        for e in h.events(&id, since).await.map_err(err)?.into_iter().filter(|e| e.hlc <= until) {
                            let at = skein_node::hlc::physical_ms(e.hlc);
                            msgs.push(Msg::line(format!("line-{}", e.hlc), at, e.text));
                        }
                        msgs.sort_by_key(|m| m.sent_at_ms);
                    }
                    Ok((msgs, oldest, complete, newest))
                }
            },
            move |r| Message::Page(id.clone(), r),
        )
    }

    /// Marks a conversation read here and on the node (which tells the
    /// senders), one request at a time per conversation.
    fn mark_read(&mut self, id: &str) -> Task<Message> {
        self.conversations.read(id);
        let Some(node) = self.node.clone() else { return Task::none() };
        if !self.reading.insert(id.to_owned()) {
            self.read_again.insert(id.to_owned());
            return Task::none();
        }
        let id = id.to_owned();
        Task::perform(
            {
                let id = id.clone();
                async move { node.read(&id).await.map_err(err) }
            },
            move |_| Message::ReadDone(id.clone()),
        )
    }

    /// Opens the `n`th conversation of the list (0-based).
    pub fn open_nth(&mut self, n: usize) -> Task<Message> {
        match self.conversations.rows().get(n).map(|r| r.id.clone()) {
            Some(id) => self.update(Message::Open(id)),
            None => Task::none(),
        }
    }

    /// The window gained or lost focus.
    pub fn set_focus(&mut self, focused: bool) -> Task<Message> {
        self.focused = focused;
        match (focused, self.chat.as_ref().map(|c| c.id.clone())) {
            (true, Some(id)) => self.mark_read(&id),
            _ => Task::none(),
        }
    }

    /// Idle for a while (`idle`), or active again (`false`): turns an
    /// online status away, and back when the user returns.
    pub fn idle(&mut self, idle: bool) -> Task<Message> {
        match (idle, self.status.as_str(), self.auto_away) {
            (true, "online", _) => {
                self.auto_away = true;
                self.set_status("away")
            }
            (false, "away", true) => {
                self.auto_away = false;
                self.set_status("online")
            }
            _ => Task::none(),
        }
    }

    fn set_status(&mut self, status: &str) -> Task<Message> {
        self.status = status.to_owned();
        let Some(node) = self.node.clone() else { return Task::none() };
        let status = status.to_owned();
        Task::perform(async move { node.set_status(&status, None).await.map_err(err) }, |r| match r {
            Ok(_) => Message::Dismiss,
            Err(e) => Message::Failed(e),
        })
    }

    /// Runs a node command; its outcome comes back as [`Message::Done`].
    fn command<F>(&self, f: impl FnOnce(NodeHandle) -> F + 'static) -> Task<Message>
    where
        F: std::future::Future<Output = Result<Value, skein_node::handle::NodeError>> + Send + 'static,
    {
        self.run(f, Message::Done)
    }

    /// Runs a send; its outcome comes back as [`Message::Sent`].
    fn send_command<F>(&self, f: impl FnOnce(NodeHandle) -> F + 'static) -> Task<Message>
    where
        F: std::future::Future<Output = Result<Value, skein_node::handle::NodeError>> + Send + 'static,
    {
        self.run(f, Message::Sent)
    }

    fn run<F>(
        &self,
        f: impl FnOnce(NodeHandle) -> F + 'static,
        done: fn(Result<Value, String>) -> Message,
    ) -> Task<Message>
    where
        F: std::future::Future<Output = Result<Value, skein_node::handle::NodeError>> + Send + 'static,
    {
        match self.node.clone() {
            Some(node) => Task::perform(f(node), move |r| done(r.map_err(err))),
            None => Task::none(),
        }
    }

    /// The `:shortcode` being typed at the end of the composer, if any.
    pub fn shortcode(&self) -> Option<String> {
        let t = self.composer.text();
        let t = t.trim_end_matches('\n');
        let start = t.rfind(':')?;
        let code = &t[start + 1..];
        (code.len() >= 2 && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '+' || c == '-'))
            .then(|| code.to_owned())
    }

    /// Handles a message.
    pub fn update(&mut self, message: Message) -> Task<Message> {
        match message {
            Message::Node(v) if matches!(v["type"].as_str(), Some("call" | "call_stats" | "call_error")) => {
                self.call_event(&v)
            }
            Message::Node(v) => return self.node_event(&v),
            Message::CallStart(audio_only) => {
                let (Some(node), Some(chat)) = (self.node.clone(), self.chat.as_ref()) else { return Task::none() };
                let to = chat.id.clone();
                return Task::perform(
                    async move { node.place_call(&to, audio_only).await.map_err(err) },
                    Message::Done,
                );
            }
            Message::CallAnswer(audio_only) => {
                let Some(node) = self.node.clone() else { return Task::none() };
                return Task::perform(async move { node.answer_call(audio_only).await.map_err(err) }, Message::Done);
            }
            Message::CallHangUp => {
                let Some(node) = self.node.clone() else { return Task::none() };
                return Task::perform(async move { node.hang_up().await.map_err(err) }, Message::Done);
            }
            Message::CallMute | Message::CallCamera => {
                let (Some(node), Some(c)) = (self.node.clone(), self.call.as_mut()) else { return Task::none() };
                let (muted, camera) = match message {
                    Message::CallMute => (Some(!c.muted), None),
                    _ => (None, Some(!c.camera)),
                };
                c.muted = muted.unwrap_or(c.muted);
                c.camera = camera.unwrap_or(c.camera);
                return Task::perform(
                    async move { node.call_controls(muted, camera).await.map_err(err) },
                    Message::Done,
                );
            }
            Message::CallStats => {
                if let Some(c) = self.call.as_mut() {
                    c.show_stats = !c.show_stats;
                }
            }
            Message::Devices(open) => {
                self.devices = open.then(Default::default);
                let Some(node) = self.node.clone().filter(|_| open) else { return Task::none() };
                return Task::perform(async move { node.call_devices().await.map_err(err) }, Message::DevicesLoaded);
            }
            Message::DevicesLoaded(Ok(v)) => {
                if self.devices.is_some() {
                    self.devices = Some(crate::model::devices::Devices::from_node(&v));
                }
            }
            Message::DevicesLoaded(Err(e)) => self.error = Some(e),
            Message::PickMicrophone(name) => return self.pick_devices(Some(name), None),
            Message::PickCamera(name) => return self.pick_devices(None, Some(name)),
            Message::Frame(from, f) => {
                if let Some(c) = self.call.as_mut().filter(|c| c.state == "connected") {
                    let picture = crate::model::call::picture(f);
                    match from {
                        Some(from) => c.picture_from(from, picture),
                        None => c.local = Some(picture),
                    }
                }
            }
            Message::Conversations(Ok(rows)) => {
                let mut rows = rows;
                for r in &mut rows {
                    r.title = self.title_of(&r.id);
                    self.find_app_icon(&r.id);
                }
                self.conversations.merge(rows);
            }
            Message::Directory(Ok((users, departments, presence))) => {
                self.directory.load(&users, &departments);
                self.directory.presence_all(&presence);
                self.retitle();
            }
            Message::Conversations(Err(e)) | Message::Directory(Err(e)) => self.error = Some(e),
            Message::Open(id) => {
                self.tab = Tab::Chats;
                self.picker = false;
                self.target = None;
                self.marked = None;
                self.at_bottom = true;
                if self.chat.as_ref().is_some_and(|c| c.id == id) {
                    return operation::focus(COMPOSER);
                }
                self.chat = Some(Chat::new(&id, &self.title_of(&id)));
                let read = if self.focused { self.mark_read(&id) } else { Task::none() };
                return Task::batch([self.page(&id, None), self.load_transfers(), read, operation::focus(COMPOSER)]);
            }
            Message::Page(id, Ok((msgs, oldest, complete, newest))) => {
                self.loading_older = false;
                if let Some(c) = self.chat.as_mut().filter(|c| c.id == id) {
                    if newest && !c.messages.is_empty() {
                        c.merge(msgs);
                    } else {
                        c.prepend(msgs, oldest, complete);
                    }
                    self.cache_thumbs();
                    if self.target.is_some() {
                        return self.reveal();
                    }
                    if newest && self.at_bottom {
                        return to_latest();
                    }
                }
            }
            Message::Page(_, Err(e)) => {
                self.loading_older = false;
                self.error = Some(e);
            }
            Message::Scrolled(v) => {
                // The list is anchored at the bottom: offset 0 is the latest
                // message, 1 the oldest loaded.
                let room = v.content_bounds().height - v.bounds().height;
                let at_top = room <= 0.0 || v.relative_offset().y >= 0.98;
                self.at_bottom = room <= 0.0 || v.absolute_offset().y <= 24.0;
                if let Some(c) = self.chat.as_ref().filter(|c| at_top && !c.complete && !self.loading_older) {
                    self.loading_older = true;
                    return self.page(&c.id.clone(), c.oldest_seq);
                }
            }
            Message::Edit(action) => self.composer.perform(action),
            Message::Insert(e) => {
                self.composer.perform(text_editor::Action::Edit(text_editor::Edit::Paste(std::sync::Arc::new(e))));
                return operation::focus(COMPOSER);
            }
            Message::Complete(emoji) => {
                if let Some(code) = self.shortcode() {
                    // The shortcode being typed ends the text: edit there.
                    self.composer.perform(text_editor::Action::Move(text_editor::Motion::DocumentEnd));
                    for _ in 0..=code.chars().count() {
                        self.composer.perform(text_editor::Action::Edit(text_editor::Edit::Backspace));
                    }
                    self.composer
                        .perform(text_editor::Action::Edit(text_editor::Edit::Paste(std::sync::Arc::new(emoji))));
                }
                return operation::focus(COMPOSER);
            }
            Message::Picker => self.picker = !self.picker,
            Message::Send => return self.send(),
            Message::React(id, emoji) => {
                let mine = self
                    .chat
                    .as_ref()
                    .and_then(|c| c.messages.iter().find(|m| m.id == id))
                    .is_some_and(|m| m.reactions.iter().any(|(e, users)| *e == emoji && users.contains(&self.me)));
                if let Some(c) = self.chat.as_mut() {
                    c.reaction(&id, &self.me.clone(), &emoji, mine);
                }
                return self.command(move |n| async move { n.react(&id, &emoji, mine).await });
            }
            Message::Accept(id) => return self.command(move |n| async move { n.accept(&id, None).await }),
            Message::Decline(id) => return self.command(move |n| async move { n.decline(&id).await }),
            Message::Reveal(path) => {
                let dir = std::path::Path::new(&path).parent().map(PathBuf::from).unwrap_or_default();
                return open_externally(dir.into_os_string());
            }
            Message::View(path) => {
                // Only a file that is an image by its name and its bytes: the
                // desktop would run whatever else it was handed.
                let path = PathBuf::from(path);
                let image = is_image(&path)
                    && std::fs::File::open(&path)
                        .and_then(|mut f| {
                            let mut head = [0u8; 32];
                            std::io::Read::read(&mut f, &mut head).map(|n| head[..n].to_vec())
                        })
                        .is_ok_and(|head| image::guess_format(&head).is_ok());
                if !image {
                    self.error = Some(format!("{} is not an image; open its folder instead", path.display()));
                    return Task::none();
                }
                return open_externally(path.into_os_string());
            }
            Message::OpenLink(url) => {
                // Cards carry only web links (checked where they are made and taken).
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    self.error = Some(format!("{url} is not a web link; it was not opened"));
                    return Task::none();
                }
                return open_externally(url.into());
            }
            Message::Attach => {
                if self.chat.is_none() {
                    return Task::none();
                }
                return Task::perform(
                    async {
                        rfd::AsyncFileDialog::new()
                            .set_title("Send a file")
                            .pick_file()
                            .await
                            .map(|f| f.path().to_owned())
                    },
                    |picked| match picked {
                        Some(path) => Message::Dropped(path),
                        None => Message::Dismiss,
                    },
                );
            }
            Message::Dropped(path) => {
                let Some(to) = self.chat.as_ref().map(|c| c.id.clone()) else {
                    self.error = Some("Open a conversation first, then drop the file on it.".into());
                    return Task::none();
                };
                self.sending += 1;
                let image = is_image(&path);
                return self.send_command(move |n| async move {
                    if image { n.send_image(&to, &path).await } else { n.send_file(&to, &path).await }
                });
            }
            Message::Failed(e) => self.error = Some(e),
            Message::Sent(r) => {
                self.sending = self.sending.saturating_sub(1);
                return self.update(Message::Done(r));
            }
            Message::Done(r) => {
                match r {
                    Err(e) => self.error = Some(e),
                    // A slash command or an action: the plugin's answer is for this user alone.
                    Ok(v) if v.get("plugin").is_some() => {
                        let reply = v["reply"].as_str().map(str::to_owned);
                        let posted = v["posted"].is_object().then(|| "Posted here.".to_owned());
                        if let Some(text) = reply.or(posted) {
                            self.plugin_reply = Some((v["plugin"].as_str().unwrap_or_default().to_owned(), text));
                        }
                    }
                    Ok(_) => {}
                }
                if let Some(id) = self.chat.as_ref().map(|c| c.id.clone()) {
                    return self.page(&id, None);
                }
            }
            Message::PluginsLoaded(Ok(list)) => self.plugins = crate::model::plugins::Plugins::from_list(&list),
            Message::PluginsLoaded(Err(e)) => tracing::warn!("cannot list the plugins: {e}"),
            Message::CompleteCommand(name) => {
                self.composer = text_editor::Content::with_text(&format!("/{name} "));
                self.composer.perform(text_editor::Action::Move(text_editor::Motion::DocumentEnd));
                return operation::focus(COMPOSER);
            }
            Message::Action(plugin, action, id) => {
                self.hovered = None;
                return self.command(move |n| async move { n.plugin_action(&plugin, &action, &id).await });
            }
            Message::CloseReply => self.plugin_reply = None,
            Message::Tab(t) => self.tab = t,
            Message::Search(s) => self.search = s,
            Message::Status(s) => {
                self.auto_away = false;
                return self.set_status(&s);
            }
            Message::Hover(id) => self.hovered = id,
            Message::GroupCerts(list) => {
                for c in list {
                    self.learn_group(c);
                }
                self.retitle();
            }
            Message::Members => self.members_panel = !self.members_panel,
            Message::Rename(n) => self.rename = n,
            Message::ChangeGroup(change) => {
                use skein_proto::control::GroupUpdate;
                let Some(cert) = self.chat.as_ref().and_then(|c| self.group_certs.get(&c.id)) else {
                    return Task::none();
                };
                let group = cert.body.group;
                let update = match change {
                    GroupChange::Add(u) => GroupUpdate::Add(vec![u]),
                    GroupChange::Remove(u) => GroupUpdate::Remove(vec![u]),
                    GroupChange::Leave => GroupUpdate::Leave,
                    GroupChange::Rename if self.rename.trim().is_empty() => return Task::none(),
                    GroupChange::Rename => GroupUpdate::Rename(self.rename.trim().to_owned()),
                    GroupChange::Close => GroupUpdate::Close,
                };
                let Some(node) = self.node.clone() else { return Task::none() };
                return Task::perform(
                    async move { node.update_group(group, update).await.map_err(err) },
                    Message::GroupChanged,
                );
            }
            Message::GroupChanged(Ok(cert)) => {
                self.rename.clear();
                self.learn_group(cert);
                self.retitle();
            }
            Message::GroupChanged(Err(e)) => self.error = Some(e),
            Message::NewGroup(open) => {
                self.tab = Tab::Chats;
                self.new_group = open.then(NewGroup::default);
                if open {
                    return operation::focus(sidebar::GROUP_NAME);
                }
            }
            Message::GroupName(n) => {
                if let Some(g) = self.new_group.as_mut() {
                    g.name = n;
                }
            }
            Message::GroupMember(user, add) => {
                if let Some(g) = self.new_group.as_mut() {
                    if add {
                        g.members.insert(user);
                    } else {
                        g.members.remove(&user);
                    }
                }
            }
            Message::CreateGroup => {
                let Some(g) = self.new_group.as_mut().filter(|g| !g.busy) else { return Task::none() };
                let name = g.name.trim().to_owned();
                if name.is_empty() {
                    g.error = Some("Give the group a name.".into());
                    return Task::none();
                }
                g.busy = true;
                g.error = None;
                let members: Vec<String> = g.members.iter().cloned().collect();
                let Some(node) = self.node.clone() else { return Task::none() };
                return Task::perform(
                    async move {
                        let cert = node.create_group(&name, members).await.map_err(err)?;
                        Ok((skein_proto::peer::group_address(&cert.body.group), cert.body.name))
                    },
                    Message::GroupCreated,
                );
            }
            Message::GroupCreated(Ok((address, name))) => {
                self.new_group = None;
                self.groups.insert(address.clone(), name.clone());
                self.conversations.outgoing(&address, &name, String::new(), skein_node::now_ms());
                return self.update(Message::Open(address));
            }
            Message::GroupCreated(Err(e)) => {
                if let Some(g) = self.new_group.as_mut() {
                    g.busy = false;
                    g.error = Some(e);
                }
            }
            Message::Query(q) => {
                self.query = q;
                if self.query.trim().is_empty() {
                    self.results.clear();
                    return Task::none();
                }
                let Some(node) = self.node.clone() else { return Task::none() };
                let q = self.query.clone();
                return Task::perform(
                    {
                        let q = q.clone();
                        async move { node.history().search(&q, 50).await.map_err(err) }
                    },
                    move |r| Message::Results(q.clone(), r),
                );
            }
            Message::Results(q, r) if q == self.query => match r {
                Ok(hits) => {
                    self.results = hits;
                    self.results_for = q;
                }
                Err(e) => self.error = Some(e),
            },
            Message::Results(..) => {}
            Message::JumpFirst => {
                if let Some(h) = self.results.first().filter(|_| self.results_for == self.query) {
                    let (conversation, id) = (h.conversation.clone(), h.id.to_hex());
                    return self.update(Message::Jump(conversation, id));
                }
            }
            Message::Jump(conversation, id) => {
                let open = self.update(Message::Open(conversation));
                self.target = Some(id.clone());
                self.marked = Some(id);
                return Task::batch([open, self.reveal()]);
            }
            Message::TransfersLoaded(list) => {
                for t in list.as_array().into_iter().flatten() {
                    self.transfers.apply(t);
                }
            }
            Message::Dismiss => self.error = None,
            Message::ReadDone(id) => {
                self.reading.remove(&id);
                if self.read_again.remove(&id) {
                    return self.mark_read(&id);
                }
            }
            Message::SignOut => {
                // The node stops once signed out; the app then shows the sign-in screen.
                return self.command(|n| async move { n.logout().await });
            }
        }
        Task::none()
    }

    /// Scrolls to the message being looked for once it is loaded, loading
    /// older pages until it is (or the conversation's start is reached).
    fn reveal(&mut self) -> Task<Message> {
        let (Some(target), Some(chat)) = (self.target.clone(), self.chat.as_ref()) else { return Task::none() };
        match chat.messages.iter().position(|m| m.id == target) {
            Some(i) => {
                self.target = None;
                // Anchored at the bottom: 0 is the newest message, 1 the oldest loaded.
                let n = chat.messages.len().max(2) - 1;
                let y = (n - i.min(n)) as f32 / n as f32;
                operation::snap_to(MESSAGES, scrollable::RelativeOffset { x: 0.0, y })
            }
            None if !chat.complete && !chat.messages.is_empty() && !self.loading_older => {
                self.loading_older = true;
                let (id, before) = (chat.id.clone(), chat.oldest_seq);
                self.page(&id, before)
            }
            None => Task::none(),
        }
    }

    /// Keeps a group's certificate (the newest version wins) and its name.
    fn learn_group(&mut self, cert: skein_proto::group::MembershipCert) {
        let address = skein_proto::peer::group_address(&cert.body.group);
        if self.group_certs.get(&address).is_some_and(|c| c.body.version > cert.body.version) {
            return;
        }
        self.groups.insert(address.clone(), cert.body.name.clone());
        self.group_certs.insert(address, cert);
    }

    /// The query the search results shown are for.
    pub fn results_for(&self) -> &str {
        &self.results_for
    }

    /// Whether this user may change the open group's members and name.
    pub fn owns(&self, cert: &skein_proto::group::MembershipCert) -> bool {
        matches!(&cert.body.kind, skein_proto::group::GroupKind::Discussion { owner } if *owner == self.me)
    }

    /// Decodes the thumbnails of the open conversation not decoded yet.
    fn cache_thumbs(&mut self) {
        let Some(c) = &self.chat else { return };
        for m in &c.messages {
            if let Body::Image { thumbnail, .. } = &m.body
                && !thumbnail.is_empty()
                && !self.thumbs.contains_key(&m.id)
            {
                self.thumbs.insert(m.id.clone(), iced::widget::image::Handle::from_bytes(thumbnail.clone()));
            }
        }
    }

    fn load_transfers(&self) -> Task<Message> {
        let Some(node) = self.node.clone() else { return Task::none() };
        Task::perform(async move { node.transfers(None).await.unwrap_or_default() }, Message::TransfersLoaded)
    }

    fn retitle(&mut self) {
        let ids: Vec<String> = self.conversations.rows().iter().map(|r| r.id.clone()).collect();
        for id in ids {
            let title = self.title_of(&id);
            self.conversations.set_title(&id, &title);
        }
        if let Some(c) = self.chat.as_mut() {
            let id = c.id.clone();
            c.title = match id.strip_prefix('#') {
                Some(_) => self.groups.get(&id).cloned().unwrap_or_else(|| c.title.clone()),
                None => self.directory.display_name(&id),
            };
        }
    }

    fn send(&mut self) -> Task<Message> {
        let text = self.composer.text().trim_end_matches('\n').to_owned();
        let Some(to) = self.chat.as_ref().map(|c| c.id.clone()) else { return Task::none() };
        if text.trim().is_empty() {
            return Task::none();
        }
        self.composer = text_editor::Content::new();
        self.picker = false;
        self.sending += 1;
        self.at_bottom = true;
        self.plugin_reply = None;
        // A slash command goes to its plugin: nothing is sent as it is.
        if !matches!(skein_node::plugins::slash(&text), skein_node::plugins::Slash::Command { .. }) {
            let title = self.title_of(&to);
            let shown = match skein_node::plugins::slash(&text) {
                skein_node::plugins::Slash::Escaped(t) => t.to_owned(),
                _ => text.clone(),
            };
            self.conversations.outgoing(
                &to,
                &title,
                Body::Text(skein_node::emoji::expand(&shown)).summary(),
                skein_node::now_ms(),
            );
        }
        Task::batch([self.send_command(move |n| async move { n.send(&to, &text).await }), operation::focus(COMPOSER)])
    }

    /// A call's event: it starts, moves on, reports its figures, or ends
    /// (an end the user did not choose is said in the banner).
    fn call_event(&mut self, v: &Value) {
        let id = v["call"].as_str().unwrap_or_default();
        match v["type"].as_str() {
            Some("call_stats") => {
                if let Some(c) = self.call.as_mut().filter(|c| c.id == id) {
                    c.stats(v);
                }
            }
            Some("call_error") => self.error = Some(format!("The call failed: {}", v["error"].as_str().unwrap_or("?"))),
            _ => {
                let ended = v["state"] == "ended";
                match self.call.as_mut().filter(|c| c.id == id) {
                    Some(c) => c.update(v),
                    None if !ended => {
                        self.call = crate::model::call::Call::from_event(v);
                        // A call that rings while the window is elsewhere is announced.
                        if let Some(c) = self.call.as_ref().filter(|c| c.incoming && !self.focused) {
                            let kind = if c.media == "audio" { "an audio call" } else { "a video call" };
                            self.notices.push(Notice {
                                conversation: c.with.clone(),
                                title: self.title_of(&c.with),
                                body: format!("is calling you: {kind}"),
                            });
                        }
                    }
                    None => {}
                }
                if ended {
                    let reason = v["reason"].as_str().unwrap_or_default();
                    // Declining here is the user's own choice too.
                    let declined_here = reason == "declined" && v["direction"] == "incoming";
                    if !reason.starts_with("hung up") && reason != "cancelled" && !declined_here {
                        let who = self.title_of(v["with"].as_str().unwrap_or_default());
                        self.error = Some(format!("Call with {who} ended: {reason}"));
                    }
                    self.call = None;
                }
            }
        }
    }

    fn node_event(&mut self, v: &Value) -> Task<Message> {
        let Some(ev) = event::parse(v) else {
            return Task::none();
        };
        match ev {
            NodeEvent::Connected { tracker, status } => {
                self.connection = Connection::Connected(tracker);
                if !status.is_empty() && !self.auto_away {
                    // Starting the app means being at the computer: an away
                    // status kept from last time ends with the first input.
                    self.auto_away = self.first_connect && status == "away";
                    self.status = status;
                }
                self.first_connect = false;
                return self.load_directory();
            }
            NodeEvent::Disconnected { reason, .. } => self.connection = Connection::Reconnecting(reason),
            NodeEvent::Plugin { plugin, state, reason } => {
                let why = reason.unwrap_or_default();
                match state.as_str() {
                    "restarting" => {
                        self.error = Some(format!("The plugin {plugin} failed and is being started again: {why}"))
                    }
                    "disabled" => {
                        self.error = Some(format!(
                            "The plugin {plugin} was turned off after failing repeatedly: {why}. Install it again to retry."
                        ))
                    }
                    _ => {}
                }
                return self.load_plugins();
            }
            NodeEvent::SessionEnded { message } => self.connection = Connection::Ended(message),
            NodeEvent::Presence { user, status, note } => self.directory.presence(&user, &status, note),
            NodeEvent::Message(m) => {
                self.find_app_icon(&m.conversation);
                let open = self.chat.as_ref().is_some_and(|c| c.id == m.conversation);
                let seen = open && self.focused;
                if let Some(g) = &m.group {
                    self.groups.insert(m.conversation.clone(), g.clone());
                }
                self.conversations.incoming(&m, &self.me, seen);
                let title = self.title_of(&m.conversation);
                self.conversations.set_title(&m.conversation, &title);
                if m.from != self.me && !self.focused && (!m.muted || m.mentions_me) {
                    let who = self.directory.display_name(&m.from);
                    let title = match &m.group {
                        Some(g) => format!("{who} in {g}"),
                        None => who,
                    };
                    self.notices.push(Notice { conversation: m.conversation.clone(), title, body: m.body.summary() });
                }
                if open {
                    let me = self.me.clone();
                    if let Some(c) = self.chat.as_mut() {
                        c.push(Msg::incoming(&m, &me));
                    }
                    self.cache_thumbs();
                    let read = if seen && m.from != self.me { self.mark_read(&m.conversation) } else { Task::none() };
                    let scroll = if self.at_bottom { to_latest() } else { Task::none() };
                    return Task::batch([read, scroll]);
                }
            }
            NodeEvent::Receipt { kind, ids, .. } => {
                if let Some(c) = self.chat.as_mut() {
                    c.receipt(&kind, &ids);
                }
            }
            NodeEvent::Reaction { id, by, emoji, removed } => {
                if let Some(c) = self.chat.as_mut() {
                    c.reaction(&id, &by, &emoji, removed);
                }
            }
            NodeEvent::Sent { conversation } => {
                // Sent here or by `skein send` on the same node: the list and
                // the open conversation show it.
                let open = self.chat.as_ref().is_some_and(|c| c.id == conversation);
                let page = if open { self.page(&conversation, None) } else { Task::none() };
                return Task::batch([self.load_conversations(), page]);
            }
            NodeEvent::Transfer(v) => {
                // An offer made elsewhere (`skein send-file`) shows up too.
                let unknown =
                    v["direction"] == "out" && v["id"].as_str().is_some_and(|id| self.transfers.get(id).is_none());
                self.transfers.apply(&v);
                if unknown {
                    let page = match self.chat.as_ref() {
                        Some(c) => self.page(&c.id.clone(), None),
                        None => Task::none(),
                    };
                    return Task::batch([self.load_conversations(), page]);
                }
            }
            NodeEvent::GroupChanged { .. } => {
                // The open group's line shows at once.
                let page = match self.chat.as_ref().filter(|c| c.id.starts_with('#')) {
                    Some(c) => self.page(&c.id.clone(), None),
                    None => Task::none(),
                };
                return Task::batch([self.load_directory(), page]);
            }
        }
        Task::none()
    }

    /// Shows a picked microphone or camera at once, and tells the node to
    /// use it from the next call on (its answer refreshes the panel).
    fn pick_devices(&mut self, microphone: Option<String>, camera: Option<String>) -> Task<Message> {
        use crate::model::devices::node_name;
        let (Some(node), Some(d)) = (self.node.clone(), self.devices.as_mut()) else { return Task::none() };
        if let Some(m) = &microphone {
            d.microphone.clone_from(m);
        }
        if let Some(c) = &camera {
            d.camera.clone_from(c);
        }
        let (microphone, camera) = (microphone.as_deref().map(node_name), camera.as_deref().map(node_name));
        Task::perform(
            async move { node.set_call_devices(microphone, camera).await.map_err(err) },
            Message::DevicesLoaded,
        )
    }

    /// The window.
    pub fn view(&self) -> Element<'_, Message> {
        // The banner's slot is always there, so everything below keeps its
        // place (and state) in the widget tree when it comes and goes.
        let banner: Element<'_, Message> = match &self.error {
            Some(e) => container(
                row![
                    text(e.clone()).size(13).width(Length::Fill),
                    button(text("Dismiss").size(12)).style(button::text).on_press(Message::Dismiss),
                ]
                .align_y(iced::Alignment::Center),
            )
            .padding([6, 16])
            .width(Length::Fill)
            .style(|t: &iced::Theme| container::Style {
                background: Some(t.extended_palette().danger.weak.color.into()),
                text_color: Some(t.extended_palette().danger.weak.text),
                ..Default::default()
            })
            .into(),
            None => iced::widget::space().height(0).into(),
        };
        let main = match (&self.call, &self.devices) {
            (Some(c), _) => call::view(self, c),
            (None, Some(d)) => devices::view(d),
            (None, None) => conversation::view(self),
        };
        iced::widget::column![banner, row![sidebar::view(self), main].height(Length::Fill)].into()
    }
}

/// Scrolls the message list to the latest message.
fn to_latest() -> Task<Message> {
    operation::snap_to(MESSAGES, scrollable::RelativeOffset::START)
}

/// Whether a dropped file is sent as an image message.
fn is_image(path: &std::path::Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    matches!(ext.as_str(), "png" | "jpg" | "jpeg" | "gif" | "webp")
}

/// Opens a file, a folder or a web link with the desktop's default application.
fn open_externally(target: std::ffi::OsString) -> Task<Message> {
    Task::perform(
        async move {
            tokio::process::Command::new("xdg-open")
                .arg(&target)
                .spawn()
                .map(|_| Value::Null)
                .map_err(|e| format!("cannot open {}: {e}", target.to_string_lossy()))
        },
        |r| match r {
            Ok(_) => Message::Dismiss,
            Err(e) => Message::Failed(e),
        },
    )
}

/// A conversation's picture: an app's own icon when the node kept one,
/// else the coloured initial.
fn conversation_avatar<'a>(w: &Workspace, id: &str, title: &str, size: f32) -> iced::Element<'a, Message> {
    match w.app_icons.get(id) {
        Some(icon) => iced::widget::image(icon.clone()).width(size).height(size).border_radius(size / 5.0).into(),
        None => crate::style::avatar(title, size),
    }
}
