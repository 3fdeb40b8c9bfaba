//! Making GStreamer elements, with an error that names the missing
//! element and the Debian package that brings it.

use gstreamer as gst;

/// Why media could not start or went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// GStreamer itself could not start.
    #[error("GStreamer could not start: {0}; install the package libgstreamer1.0-0")]
    Init(String),
    /// An element is not installed.
    #[error("the GStreamer element `{element}` is missing; install the package {package}")]
    MissingElement {
        /// The element.
        element: &'static str,
        /// The Debian package that has it.
        package: &'static str,
    },
    /// No such capture device.
    #[error("no {kind} named {name:?}; `skein devices` lists them")]
    NoDevice {
        /// `camera` or `microphone`.
        kind: &'static str,
        /// The name asked for.
        name: String,
    },
    /// The pipeline could not be built or started.
    #[error("the media pipeline failed: {0}")]
    Pipeline(String),
}

/// The Debian package that has `element`.
pub fn package_of(element: &str) -> &'static str {
    match element {
        "vp8enc" | "vp8dec" | "v4l2src" | "pulsesrc" | "autoaudiosrc" | "autoaudiosink" | "autovideosrc" => {
            "gstreamer1.0-plugins-good"
        }
        "x264enc" => "gstreamer1.0-plugins-ugly",
        "h264parse" => "gstreamer1.0-plugins-bad",
        "avdec_h264" => "gstreamer1.0-libav",
        "appsrc" | "appsink" | "opusenc" | "opusdec" | "audiotestsrc" | "videotestsrc" | "audioconvert"
        | "audioresample" | "videoconvert" | "videoscale" | "volume" => "gstreamer1.0-plugins-base",
        _ => "libgstreamer1.0-0 (core elements)",
    }
}

/// Makes `element`, or says which package is missing.
pub fn make(element: &'static str) -> Result<gst::Element, MediaError> {
    gst::ElementFactory::make(element)
        .build()
        .map_err(|_| MediaError::MissingElement { element, package: package_of(element) })
}

/// Checks that every element in `elements` is installed.
pub fn check(elements: &[&'static str]) -> Result<(), MediaError> {
    for e in elements {
        if gst::ElementFactory::find(e).is_none() {
            return Err(MediaError::MissingElement { element: e, package: package_of(e) });
        }
    }
    Ok(())
}

/// Starts GStreamer once per process.
pub fn init() -> Result<(), MediaError> {
    gst::init().map_err(|e| MediaError::Init(e.to_string()))
}

pub(crate) fn pipeline_err(e: impl std::fmt::Display) -> MediaError {
    MediaError::Pipeline(e.to_string())
}
