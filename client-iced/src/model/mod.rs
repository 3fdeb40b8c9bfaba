//! What the app shows, kept free of the UI toolkit and of the network so
//! it is tested as plain functions: the node's events parsed
//! ([`event`]), the conversation list ([`conversations`]), one
//! conversation's messages ([`chat`]), file transfers ([`transfers`]),
//! the directory ([`directory`]), emoji runs in text ([`emoji_runs`]),
//! the plugins' commands and actions ([`plugins`]), the call
//! ([`call`]) and the devices calls use ([`devices`]).

pub mod call;
pub mod chat;
pub mod conversations;
pub mod devices;
pub mod directory;
pub mod emoji_runs;
pub mod event;
pub mod plugins;
pub mod transfers;
