//! Capture devices: the microphones and cameras GStreamer's device
//! monitor sees, for `skein devices` and the desktop app's pickers.

use crate::elements::{MediaError, init, pipeline_err};
use gstreamer as gst;
use gstreamer::prelude::*;

/// One capture device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// `microphone` or `camera`.
    pub kind: &'static str,
    /// Its name, as `--microphone` and `--camera` take it.
    pub name: String,
}

/// Every microphone and camera present now.
pub fn list() -> Result<Vec<Device>, MediaError> {
    init()?;
    let monitor = gst::DeviceMonitor::new();
    monitor.add_filter(Some("Audio/Source"), None);
    monitor.add_filter(Some("Video/Source"), None);
    monitor.start().map_err(pipeline_err)?;
    let found = monitor
        .devices()
        .iter()
        .map(|d| Device {
            kind: if d.has_classes("Video") { "camera" } else { "microphone" },
            name: d.display_name().to_string(),
        })
        .collect();
    monitor.stop();
    Ok(found)
}

/// Whether a device of GStreamer class `class` (`Audio/Sink`,
/// `Video/Source`…) is present.
fn present(class: &str) -> bool {
    if init().is_err() {
        return false;
    }
    let monitor = gst::DeviceMonitor::new();
    monitor.add_filter(Some(class), None);
    if monitor.start().is_err() {
        return false;
    }
    let found = !monitor.devices().is_empty();
    monitor.stop();
    found
}

/// Whether there is a speaker (an audio output) to play a call on.
pub fn has_speaker() -> bool {
    present("Audio/Sink")
}

/// Whether there is a microphone.
pub fn has_microphone() -> bool {
    present("Audio/Source")
}

/// Whether there is a camera.
pub fn has_camera() -> bool {
    present("Video/Source")
}

/// The source element of the device named `name` of `kind`.
pub(crate) fn source(kind: &'static str, name: &str) -> Result<gst::Element, MediaError> {
    init()?;
    let monitor = gst::DeviceMonitor::new();
    let class = if kind == "camera" { "Video/Source" } else { "Audio/Source" };
    monitor.add_filter(Some(class), None);
    monitor.start().map_err(pipeline_err)?;
    let device = monitor.devices().into_iter().find(|d| d.display_name() == name);
    monitor.stop();
    let device = device.ok_or_else(|| MediaError::NoDevice { kind, name: name.to_owned() })?;
    device.create_element(None).map_err(pipeline_err)
}
