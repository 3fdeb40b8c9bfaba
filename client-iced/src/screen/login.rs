//! The sign-in screen: the tracker's address, the organisation's CA file,
//! user name and password, and "stay signed in". A failure is shown under
//! the field it concerns: an unreachable tracker under the address, a
//! certificate the CA does not vouch for under the CA file, a wrong
//! password or a disabled account under the password.
//!
//! Without a CA file, the tracker is asked for the organisation CA, and its
//! fingerprint is shown for the user to compare with the administrator's;
//! only once confirmed is it kept in the profile and used.

use crate::style;
use iced::widget::{button, checkbox, column, container, operation, row, space, text, text_input};
use iced::{Element, Length, Task, Theme};
use skein_node::profile::Profile;
use skein_node::session::SessionError;
use skein_node::tracker_client::ClientError;
use skein_proto::ErrorCode;
use std::path::PathBuf;

/// The address field's id (focused first).
pub const TRACKER: &str = "login-tracker";
const CA: &str = "login-ca";
const USER: &str = "login-user";
const PASSWORD: &str = "login-password";

/// Which field a failure concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The tracker address.
    Tracker,
    /// The CA file.
    Ca,
    /// User name and password, or the account.
    Credentials,
}

/// A failed sign-in: where to show it, and what to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The field it concerns.
    pub field: Field,
    /// What went wrong and what to do.
    pub message: String,
}

/// What the user does on this screen.
#[derive(Debug, Clone)]
pub enum Message {
    /// The tracker address changed.
    Tracker(String),
    /// The CA file path changed.
    Ca(String),
    /// The user name changed.
    User(String),
    /// The password changed.
    Password(String),
    /// "Stay signed in" was toggled.
    Stay(bool),
    /// Enter in a field: on to the next, or sign in from the last.
    Next(&'static str),
    /// Sign in.
    Submit,
    /// The tracker answered.
    Done(Result<(), Failure>),
    /// The tracker presented the organisation CA (no CA file was given).
    Presented(Result<skein_node::first_contact::PresentedCa, Failure>),
    /// The user confirmed the CA's fingerprint: trust it and sign in.
    Trust,
    /// The user did not recognise the fingerprint.
    Distrust,
}

/// What the app does after an update.
#[derive(Debug)]
pub enum Action {
    /// Nothing more.
    None,
    /// Run this.
    Run(Task<Message>),
    /// Signed in: start the node.
    SignedIn {
        /// Keep the session when the app quits.
        stay: bool,
    },
}

/// The screen's state.
#[derive(Debug, Clone)]
pub struct Login {
    profile: PathBuf,
    /// Tracker address.
    pub tracker: String,
    /// CA file path.
    pub ca: String,
    /// User name.
    pub user: String,
    password: String,
    /// Keep the session when the app quits.
    pub stay: bool,
    /// Waiting for the tracker.
    pub busy: bool,
    /// The last failure.
    pub failure: Option<Failure>,
    /// A CA the tracker presented, waiting for the user's confirmation.
    pub presented: Option<skein_node::first_contact::PresentedCa>,
}

impl Login {
    /// The screen for `profile`, filled in from what it remembers.
    pub fn new(profile: PathBuf) -> Self {
        let p = Profile::new(&profile);
        let saved = p.session().ok();
        let ca = if p.ca_path().exists() {
            p.ca_path().display().to_string()
        } else {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".local/share/skein-tracker/ca.pem"))
                .filter(|c| c.exists())
                .map(|c| c.display().to_string())
                .unwrap_or_default()
        };
        Self {
            profile,
            tracker: saved.as_ref().map_or_else(|| "127.0.0.1:7400".to_owned(), |s| s.tracker.clone()),
            ca,
            user: saved.map(|s| s.user).unwrap_or_default(),
            password: String::new(),
            stay: true,
            busy: false,
            failure: None,
            presented: None,
        }
    }

    /// Focuses the first empty field.
    pub fn focus(&self) -> Task<Message> {
        let first = [(TRACKER, &self.tracker), (CA, &self.ca), (USER, &self.user)]
            .into_iter()
            .find(|(_, v)| v.is_empty())
            .map_or(PASSWORD, |(id, _)| id);
        operation::focus(first)
    }

    /// Handles a message.
    pub fn update(&mut self, message: Message) -> Action {
        match message {
            Message::Tracker(v) => self.tracker = v,
            Message::Ca(v) => self.ca = v,
            Message::User(v) => self.user = v,
            Message::Password(v) => self.password = v,
            Message::Stay(v) => self.stay = v,
            Message::Next(PASSWORD) | Message::Submit => return self.submit(),
            Message::Trust => return self.confirm(true),
            Message::Distrust => return self.confirm(false),
            Message::Next(id) => {
                let next = match id {
                    TRACKER => CA,
                    CA => USER,
                    _ => PASSWORD,
                };
                return Action::Run(operation::focus(next));
            }
            Message::Done(Ok(())) => {
                self.busy = false;
                self.password.clear();
                return Action::SignedIn { stay: self.stay };
            }
            Message::Presented(Ok(ca)) => {
                self.busy = false;
                self.presented = Some(ca);
            }
            Message::Presented(Err(f)) | Message::Done(Err(f)) => {
                self.busy = false;
                let focus = match f.field {
                    Field::Tracker => TRACKER,
                    Field::Ca => CA,
                    Field::Credentials => PASSWORD,
                };
                self.failure = Some(f);
                return Action::Run(operation::focus(focus));
            }
        }
        Action::None
    }

    fn confirm(&mut self, trusted: bool) -> Action {
        let Some(ca) = self.presented.take() else { return Action::None };
        if !trusted {
            self.failure = Some(Failure {
                field: Field::Ca,
                message:
                    "Not trusted. Ask your administrator for the organisation's CA file (ca.pem) and enter its path."
                        .into(),
            });
            return Action::Run(operation::focus(CA));
        }
        let profile = Profile::new(&self.profile);
        match profile.create().and_then(|()| profile.save_ca(ca.pem.as_bytes())) {
            Ok(()) => {
                self.ca = profile.ca_path().display().to_string();
                self.submit()
            }
            Err(e) => {
                self.failure = Some(Failure { field: Field::Ca, message: e.to_string() });
                Action::None
            }
        }
    }

    fn submit(&mut self) -> Action {
        if self.busy {
            return Action::None;
        }
        let missing = [
            (
                self.tracker.trim().is_empty(),
                Field::Tracker,
                "Enter the tracker's address, such as tracker.example.com:7400.",
            ),
            (
                self.user.trim().is_empty() || self.password.is_empty(),
                Field::Credentials,
                "Enter your user name and password.",
            ),
        ];
        if let Some((_, field, message)) = missing.into_iter().find(|m| m.0) {
            self.failure = Some(Failure { field, message: message.to_owned() });
            return Action::None;
        }
        self.busy = true;
        self.failure = None;
        if self.ca.trim().is_empty() {
            // No CA file: ask the tracker for the CA, to be confirmed.
            let tracker = self.tracker.trim().to_owned();
            return Action::Run(Task::perform(
                async move {
                    skein_node::first_contact::fetch_ca(&tracker).await.map_err(|e| {
                        let unreachable = matches!(e, ClientError::Unreachable { .. } | ClientError::Address { .. });
                        let mut f = explain(&SessionError::Client(e));
                        if !unreachable {
                            // Whatever else went wrong concerns the CA.
                            f.field = Field::Ca;
                        }
                        f
                    })
                },
                Message::Presented,
            ));
        }
        let profile = Profile::new(&self.profile);
        let (tracker, ca, user, password) = (
            self.tracker.trim().to_owned(),
            PathBuf::from(self.ca.trim()),
            self.user.trim().to_owned(),
            self.password.clone(),
        );
        Action::Run(Task::perform(
            async move {
                let conn = skein_node::session::login(&profile, &tracker, &ca, &user, password).await;
                match conn {
                    Ok(c) => {
                        c.client.close();
                        Ok(())
                    }
                    Err(e) => Err(explain(&e)),
                }
            },
            Message::Done,
        ))
    }

    /// The screen.
    pub fn view(&self) -> Element<'_, Message> {
        if let Some(ca) = &self.presented {
            return self.confirmation(ca);
        }
        let failure = |field: Field| -> Element<'_, Message> {
            match &self.failure {
                Some(f) if f.field == field => text(f.message.as_str())
                    .size(13)
                    .style(|t: &Theme| text::Style { color: Some(style::error_text(t)) })
                    .into(),
                _ => space().height(0).into(),
            }
        };
        let label = |s: &'static str| text(s).size(13).font(style::BOLD);
        let input = |id: &'static str, placeholder: &str, value: &str, on: fn(String) -> Message| {
            let mut i = text_input(placeholder, value).id(id).padding(10).size(15);
            if !self.busy {
                i = i.on_input(on).on_submit(Message::Next(id));
            }
            i
        };
        let sign_in = button(
            container(text(if self.busy { "Signing in…" } else { "Sign in" }).size(15).font(style::BOLD))
                .center_x(Length::Fill),
        )
        .padding(10)
        .width(Length::Fill)
        .on_press_maybe((!self.busy).then_some(Message::Submit));
        let form = column![
            row![
                style::avatar::<Message>("Skein", 44.0),
                column![
                    text("Skein").size(26).font(style::BOLD),
                    text("Sign in to your organisation")
                        .size(14)
                        .style(|t: &Theme| text::Style { color: Some(style::muted(t)) })
                ]
            ]
            .spacing(12)
            .align_y(iced::Alignment::Center),
            space().height(8),
            label("Tracker"),
            input(TRACKER, "tracker.example.com:7400", &self.tracker, Message::Tracker),
            failure(Field::Tracker),
            label("Organisation CA file"),
            input(CA, "Empty: confirm the tracker's fingerprint", &self.ca, Message::Ca),
            failure(Field::Ca),
            label("User name"),
            input(USER, "alice", &self.user, Message::User),
            label("Password"),
            input(PASSWORD, "Password", &self.password, Message::Password).secure(true),
            failure(Field::Credentials),
            checkbox(self.stay).label("Stay signed in").on_toggle_maybe((!self.busy).then_some(Message::Stay)).size(16),
            space().height(4),
            sign_in,
        ]
        .spacing(8)
        .width(380);
        // Anchored near the top, so an error line grows the card downwards
        // and nothing above it moves.
        container(container(form).padding(28).style(style::card))
            .center_x(Length::Fill)
            .padding(iced::Padding { top: 60.0, ..iced::Padding::new(20.0) })
            .height(Length::Fill)
            .into()
    }
}

impl Login {
    fn confirmation<'a>(&'a self, ca: &'a skein_node::first_contact::PresentedCa) -> Element<'a, Message> {
        // The fingerprint in four lines of eight pairs, easy to compare.
        let pairs: Vec<&str> = ca.fingerprint.split(':').collect();
        let lines = pairs.chunks(8).map(|c| text(c.join(":")).size(15).font(iced::Font::MONOSPACE).into());
        let panel = column![
            text("Is this your organisation?").size(20).font(style::BOLD),
            text(format!(
                "This is the first time this device signs in to {}. Compare the fingerprint of the organisation's \
                 certificate with the one your administrator gave you (`skein-tracker run` prints it).",
                self.tracker.trim()
            ))
            .size(14),
            text(format!("It names itself: {}", ca.subject)).size(13),
            container(column(lines).spacing(4)).padding(12).width(Length::Fill).style(|t: &Theme| container::Style {
                background: Some(t.extended_palette().background.base.color.into()),
                border: iced::border::rounded(8),
                ..Default::default()
            }),
            row![
                button(text("They match: trust and sign in").size(14)).padding([8, 14]).on_press(Message::Trust),
                button(text("They differ").size(14))
                    .padding([8, 14])
                    .style(button::secondary)
                    .on_press(Message::Distrust),
            ]
            .spacing(10),
        ]
        .spacing(14)
        .max_width(460);
        container(container(panel).padding(28).style(style::card))
            .center_x(Length::Fill)
            .padding(iced::Padding { top: 60.0, ..iced::Padding::new(20.0) })
            .height(Length::Fill)
            .into()
    }
}

/// Where a sign-in failure belongs and what to tell the user.
pub fn explain(e: &SessionError) -> Failure {
    let (field, message) = match e {
        SessionError::Client(
            ClientError::Address { .. } | ClientError::Unreachable { .. } | ClientError::Timeout(_),
        ) => (Field::Tracker, e.to_string()),
        SessionError::Client(ClientError::Ca(_) | ClientError::UntrustedTracker { .. }) => (Field::Ca, e.to_string()),
        SessionError::Client(ClientError::Refused(b)) => match b.code {
            ErrorCode::BadCredentials => (Field::Credentials, "Wrong user name or password.".to_owned()),
            ErrorCode::AccountDisabled => {
                (Field::Credentials, "This account is disabled. Ask an administrator to enable it.".to_owned())
            }
            _ => (Field::Credentials, b.message.clone()),
        },
        SessionError::Profile(p) => (Field::Credentials, p.to_string()),
        _ => (Field::Tracker, e.to_string()),
    };
    Failure { field, message }
}
