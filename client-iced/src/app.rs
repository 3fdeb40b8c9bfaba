//! The application: which screen shows, the node it drives, and what the
//! window tells it (focus, close, dropped files, keys, idleness).
//!
//! A profile with a saved session starts its node at once; one without
//! shows the sign-in screen. The node's events come in as a task that
//! drains its event stream for as long as it runs.

use crate::screen::login::{self, Login};
use crate::screen::workspace::{self, AWAY_AFTER, Workspace};
use crate::{notify, snapshot};
use iced::widget::{button, center, column, text};
use iced::{Element, Subscription, Task, Theme, event, keyboard, time, window};
use serde_json::Value;
use skein_node::daemon::DaemonOptions;
use skein_node::handle::NodeHandle;
use skein_node::profile::Profile;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What shows.
#[derive(Debug)]
pub enum Screen {
    /// The node is starting.
    Starting,
    /// Signing in.
    Login(Box<Login>),
    /// Signed in.
    Work(Box<Workspace>),
    /// The node could not start (the profile is in use, say).
    Failed(String),
}

/// Everything that happens.
#[derive(Debug, Clone)]
pub enum Message {
    /// On the sign-in screen.
    Login(login::Message),
    /// In the main window.
    Work(workspace::Message),
    /// The node started, or why not.
    Started(Result<NodeHandle, String>),
    /// An event of the node.
    Event(Value),
    /// The node stopped (signed out, or the session ended), with why.
    Stopped(String),
    /// Something happened to the window.
    Window(window::Id, window::Event),
    /// A shortcut was pressed.
    Key(Shortcut),
    /// The user did something (keys, pointer).
    Activity,
    /// Time passed (idleness is checked).
    Tick,
    /// How long the user has been idle.
    Idle(Duration),
    /// Time to write the state snapshot (with `SKEIN_DESK_SNAPSHOTS`).
    Snapshot,
    /// A notification was clicked: open its conversation.
    Clicked(Option<String>),
    /// Quit.
    Quit,
    /// Forget the saved session and sign in again (after a failed start).
    SignInAgain,
}

/// Keyboard shortcuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortcut {
    /// Ctrl+1…9: the nth conversation.
    Conversation(usize),
    /// Tab: the next field.
    Next,
    /// Escape: close the emoji picker.
    Escape,
    /// Shift+Tab: the previous field.
    Previous,
    /// Ctrl+K: search messages.
    Search,
    /// Ctrl+Shift+U: a video call to the open conversation's user;
    /// Ctrl+Shift+C: an audio call.
    Call { audio_only: bool },
    /// Ctrl+Shift+H: hang up (or decline).
    HangUp,
    /// Ctrl+comma: open or close the call devices panel.
    Devices,
}

/// The application's state.
#[derive(Debug)]
pub struct App {
    profile: PathBuf,
    /// What shows.
    pub screen: Screen,
    node: Option<NodeHandle>,
    stay: bool,
    window: Option<window::Id>,
    last_activity: Instant,
    /// Where what shows is written, if anywhere.
    snapshots: Option<PathBuf>,
    last_snapshot: Option<Value>,
    /// Where a call's pictures come from (the other side's, the self-view),
    /// until the window takes them.
    pictures: Option<Pictures>,
}

/// The receiving ends of a call's pictures.
type Pictures =
    (tokio::sync::mpsc::Receiver<skein_node::calls::RemoteFrame>, tokio::sync::mpsc::Receiver<skein_media::Frame>);

impl App {
    /// Starts on `profile`.
    pub fn boot(profile: PathBuf) -> (Self, Task<Message>) {
        let snapshots = std::env::var_os("SKEIN_DESK_SNAPSHOTS").map(PathBuf::from);
        let signed_in = Profile::new(&profile).session().is_ok();
        let mut app = Self {
            screen: Screen::Starting,
            profile: profile.clone(),
            node: None,
            stay: true,
            window: None,
            last_activity: Instant::now(),
            snapshots,
            last_snapshot: None,
            pictures: None,
        };
        if signed_in {
            let task = app.start_node();
            (app, task)
        } else {
            let login = Login::new(profile);
            let focus = login.focus().map(Message::Login);
            app.screen = Screen::Login(Box::new(login));
            (app, focus)
        }
    }

    /// The window title: unread messages first.
    pub fn title(&self) -> String {
        match &self.screen {
            Screen::Work(w) => match w.conversations.total_unread() {
                0 => format!("Skein — {}", w.directory.display_name(&w.me)),
                n => format!("({n}) Skein — {}", w.directory.display_name(&w.me)),
            },
            _ => "Skein".to_owned(),
        }
    }

    fn start_node(&mut self) -> Task<Message> {
        self.screen = Screen::Starting;
        let profile = Profile::new(&self.profile);
        let (remote_tx, remote) = tokio::sync::mpsc::channel(2);
        let (local_tx, local) = tokio::sync::mpsc::channel(2);
        self.pictures = Some((remote, local));
        let options = DaemonOptions {
            media: skein_node::calls::MediaConfig {
                // GStreamer's test tone and colour bars instead of the
                // microphone and camera: for demonstrations and tests.
                test_source: std::env::var("SKEIN_DESK_TEST_SOURCE").is_ok_and(|v| v == "1"),
                speaker: true,
                pictures: Some(skein_node::calls::Pictures { remote: remote_tx, local: local_tx }),
                ..Default::default()
            },
            ..Default::default()
        };
        Task::perform(
            async move {
                let (node, task) =
                    skein_node::handle::start(profile, options, "skein-desk").await.map_err(|e| e.to_string())?;
                // The node's end is watched by its own task.
                tokio::spawn(async move {
                    let _ = task.await;
                });
                Ok(node)
            },
            Message::Started,
        )
    }

    /// Handles a message.
    pub fn update(&mut self, message: Message) -> Task<Message> {
        match message {
            Message::Login(m) => {
                let Screen::Login(login) = &mut self.screen else { return Task::none() };
                match login.update(m) {
                    login::Action::None => {}
                    login::Action::Run(t) => return t.map(Message::Login),
                    login::Action::SignedIn { stay } => {
                        self.stay = stay;
                        return self.start_node();
                    }
                }
            }
            Message::Started(Ok(node)) => {
                let events = node.events();
                let mut work = Workspace::new(node.user(), Some(node.clone()));
                work.focused = true;
                let load = work.load();
                self.screen = Screen::Work(Box::new(work));
                let ended = node.clone();
                self.node = Some(node);
                let stream =
                    iced::futures::stream::unfold(events, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) });
                let pictures =
                    match self.pictures.take() {
                        Some((remote, local)) => {
                            fn frames<T: Send + 'static>(
                                rx: tokio::sync::mpsc::Receiver<T>,
                                to: impl Fn(T) -> workspace::Message + Send + 'static,
                            ) -> Task<Message> {
                                let s = iced::futures::stream::unfold(rx, |mut rx| async move {
                                    rx.recv().await.map(|f| (f, rx))
                                });
                                Task::run(s, move |f| Message::Work(to(f)))
                            }
                            Task::batch([
                                frames(remote, |r: skein_node::calls::RemoteFrame| {
                                    workspace::Message::Frame(Some(r.from), r.frame)
                                }),
                                frames(local, |f| workspace::Message::Frame(None, f)),
                            ])
                        }
                        None => Task::none(),
                    };
                return Task::batch([
                    load.map(Message::Work),
                    pictures,
                    Task::run(stream, Message::Event),
                    Task::perform(async move { ended.stopped().await }, Message::Stopped),
                ]);
            }
            Message::Started(Err(e)) => self.screen = Screen::Failed(e),
            Message::Stopped(why) => {
                self.node = None;
                let mut login = Login::new(self.profile.clone());
                if !why.is_empty() {
                    login.failure = Some(login::Failure { field: login::Field::Credentials, message: why });
                }
                let focus = login.focus().map(Message::Login);
                self.screen = Screen::Login(Box::new(login));
                return focus;
            }
            Message::Event(v) => return self.work(workspace::Message::Node(v)),
            Message::Work(m) => return self.work(m),
            Message::Window(id, e) => {
                self.window = Some(id);
                match e {
                    window::Event::Focused => return self.focus(true),
                    window::Event::Unfocused => return self.focus(false),
                    window::Event::FileDropped(path) => return self.work(workspace::Message::Dropped(path)),
                    window::Event::CloseRequested => return self.quit(),
                    _ => {}
                }
            }
            Message::Key(k) => return self.shortcut(k),
            Message::Activity => {
                self.last_activity = Instant::now();
                if let Screen::Work(w) = &mut self.screen
                    && w.auto_away
                {
                    return w.idle(false).map(Message::Work);
                }
            }
            Message::Tick => {
                let in_window = self.last_activity.elapsed();
                return Task::perform(
                    async move {
                        let desktop = tokio::task::spawn_blocking(crate::idle::desktop_idle).await.ok().flatten();
                        crate::idle::idle(desktop, in_window)
                    },
                    Message::Idle,
                );
            }
            Message::Idle(idle) => {
                if let Screen::Work(w) = &mut self.screen {
                    return w.idle(idle >= AWAY_AFTER).map(Message::Work);
                }
            }
            Message::Clicked(Some(conversation)) => {
                let open = self.work(workspace::Message::Open(conversation));
                let focus = self.window.map_or_else(Task::none, window::gain_focus);
                return Task::batch([open, focus]);
            }
            Message::Clicked(None) => {}
            Message::Snapshot => {
                let Some(dir) = self.snapshots.clone() else { return Task::none() };
                let state = snapshot::state(self);
                if self.last_snapshot.as_ref() == Some(&state) {
                    return Task::none();
                }
                self.last_snapshot = Some(state.clone());
                return Task::perform(async move { snapshot::save(&dir, state).await }, |r| match r {
                    Ok(()) => Message::Clicked(None),
                    Err(e) => Message::Work(workspace::Message::Failed(e)),
                });
            }
            Message::Quit => return iced::exit(),
            Message::SignInAgain => {
                let _ = Profile::new(&self.profile).clear_session();
                let login = Login::new(self.profile.clone());
                let focus = login.focus().map(Message::Login);
                self.screen = Screen::Login(Box::new(login));
                return focus;
            }
        }
        Task::none()
    }

    /// The screen's name, as snapshots are named: `login`, `main` or `conversation`.
    pub fn screen_name(&self) -> &'static str {
        match &self.screen {
            Screen::Login(_) => "login",
            Screen::Work(w) if w.chat.is_some() => "conversation",
            Screen::Work(_) => "main",
            Screen::Starting | Screen::Failed(_) => "starting",
        }
    }

    fn work(&mut self, m: workspace::Message) -> Task<Message> {
        let Screen::Work(w) = &mut self.screen else { return Task::none() };
        let task = w.update(m).map(Message::Work);
        let notices: Vec<_> = w.notices.drain(..).collect();
        let shown = notices.into_iter().map(|n| Task::perform(notify::show(n), Message::Clicked));
        Task::batch(std::iter::once(task).chain(shown))
    }

    fn focus(&mut self, focused: bool) -> Task<Message> {
        match &mut self.screen {
            Screen::Work(w) => w.set_focus(focused).map(Message::Work),
            _ => Task::none(),
        }
    }

    fn shortcut(&mut self, k: Shortcut) -> Task<Message> {
        match (k, &mut self.screen) {
            (Shortcut::Conversation(n), Screen::Work(w)) => w.open_nth(n).map(Message::Work),
            (Shortcut::Escape, Screen::Work(w)) if w.devices.is_some() => {
                w.update(workspace::Message::Devices(false)).map(Message::Work)
            }
            (Shortcut::Escape, Screen::Work(w)) => {
                w.picker = false;
                if w.query.is_empty() {
                    Task::none()
                } else {
                    w.update(workspace::Message::Query(String::new())).map(Message::Work)
                }
            }
            (Shortcut::Search, Screen::Work(_)) => iced::widget::operation::focus(workspace::SEARCH),
            (Shortcut::Call { audio_only }, Screen::Work(w)) if w.call.is_none() => {
                w.update(workspace::Message::CallStart(audio_only)).map(Message::Work)
            }
            (Shortcut::Devices, Screen::Work(w)) => {
                let open = w.devices.is_none();
                w.update(workspace::Message::Devices(open)).map(Message::Work)
            }
            (Shortcut::HangUp, Screen::Work(w)) if w.call.is_some() => {
                w.update(workspace::Message::CallHangUp).map(Message::Work)
            }
            (Shortcut::Next, Screen::Login(_)) => iced::widget::operation::focus_next(),
            (Shortcut::Previous, Screen::Login(_)) => iced::widget::operation::focus_previous(),
            _ => Task::none(),
        }
    }

    /// Quits: signs out first unless "stay signed in" was chosen.
    fn quit(&mut self) -> Task<Message> {
        match self.node.take() {
            Some(node) if !self.stay => Task::perform(
                async move {
                    let _ = node.logout().await;
                },
                |()| Message::Quit,
            ),
            Some(node) => {
                // The node says goodbye to the tracker (so the user shows
                // offline at once) and lets go of the profile first.
                node.stop();
                Task::perform(
                    async move {
                        let _ = tokio::time::timeout(Duration::from_secs(3), node.stopped()).await;
                    },
                    |()| Message::Quit,
                )
            }
            None => iced::exit(),
        }
    }

    /// The window's content.
    pub fn view(&self) -> Element<'_, Message> {
        match &self.screen {
            Screen::Starting => center(text("Connecting…").size(16)).into(),
            Screen::Login(l) => l.view().map(Message::Login),
            Screen::Work(w) => w.view().map(Message::Work),
            Screen::Failed(e) => center(
                column![
                    text("Skein cannot start").size(20),
                    text(e.clone()).size(14),
                    iced::widget::row![
                        button(text("Sign in again")).on_press(Message::SignInAgain),
                        button(text("Quit")).style(button::secondary).on_press(Message::Quit),
                    ]
                    .spacing(10),
                ]
                .spacing(12)
                .max_width(520),
            )
            .into(),
        }
    }

    /// What the app listens to.
    pub fn subscription(&self) -> Subscription<Message> {
        Subscription::batch([
            keyboard::listen().filter_map(shortcut),
            window::events().map(|(id, e)| Message::Window(id, e)),
            event::listen_with(|e, _status, _id| match e {
                iced::Event::Keyboard(keyboard::Event::KeyPressed { .. })
                | iced::Event::Mouse(iced::mouse::Event::ButtonPressed(_)) => Some(Message::Activity),
                _ => None,
            }),
            time::every(Duration::from_secs(30)).map(|_| Message::Tick),
            match self.snapshots {
                Some(_) => time::every(Duration::from_millis(200)).map(|_| Message::Snapshot),
                None => Subscription::none(),
            },
        ])
    }

    /// Light or dark as the desktop prefers (`None`: iced follows the
    /// system's colour scheme); `SKEIN_DESK_THEME=light|dark` overrides it.
    pub fn theme(&self) -> Option<Theme> {
        match std::env::var("SKEIN_DESK_THEME").as_deref() {
            Ok("dark") => Some(Theme::Dark),
            Ok("light") => Some(Theme::Light),
            _ => None,
        }
    }
}

fn shortcut(e: keyboard::Event) -> Option<Message> {
    let keyboard::Event::KeyPressed { key, modifiers, .. } = e else { return None };
    match key.as_ref() {
        keyboard::Key::Character("k") if modifiers.command() => Some(Message::Key(Shortcut::Search)),
        keyboard::Key::Character(",") if modifiers.command() => Some(Message::Key(Shortcut::Devices)),
        keyboard::Key::Character(c) if modifiers.command() && modifiers.shift() => {
            match c.to_ascii_lowercase().as_str() {
                "u" => Some(Message::Key(Shortcut::Call { audio_only: false })),
                "c" => Some(Message::Key(Shortcut::Call { audio_only: true })),
                "h" => Some(Message::Key(Shortcut::HangUp)),
                _ => None,
            }
        }
        keyboard::Key::Character(c) if modifiers.command() => {
            let n: usize = c.parse().ok().filter(|n| (1..=9).contains(n))?;
            Some(Message::Key(Shortcut::Conversation(n - 1)))
        }
        keyboard::Key::Named(keyboard::key::Named::Tab) if modifiers.shift() => Some(Message::Key(Shortcut::Previous)),
        keyboard::Key::Named(keyboard::key::Named::Tab) => Some(Message::Key(Shortcut::Next)),
        keyboard::Key::Named(keyboard::key::Named::Escape) => Some(Message::Key(Shortcut::Escape)),
        _ => None,
    }
}
