//! Decoded pictures for people: a branch that turns video into RGBA
//! frames of a given size, for the desktop app's call window.

use crate::Frame;
use crate::elements::{MediaError, make, pipeline_err};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::mpsc;

/// Adds `queue ! videoconvert ! videoscale ! RGBA W×H ! appsink` to
/// `pipeline`, sending each frame to `frames` (dropped when it is full:
/// only the newest picture matters) and each buffer's running time to
/// `on_pts`. Returns the branch's first element, to link into.
pub(crate) fn rgba_branch(
    pipeline: &gst::Pipeline,
    width: u32,
    height: u32,
    frames: mpsc::Sender<Frame>,
    on_pts: impl Fn(Option<gst::ClockTime>) + Send + Sync + 'static,
) -> Result<gst::Element, MediaError> {
    let queue = make("queue")?;
    queue.set_property_from_str("leaky", "downstream");
    queue.set_property("max-size-buffers", 2u32);
    let convert = make("videoconvert")?;
    let scale = make("videoscale")?;
    let caps = make("capsfilter")?;
    caps.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", "RGBA")
            .field("width", width as i32)
            .field("height", height as i32)
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build(),
    );
    // Not async: pictures may never come (a peer without a camera), and a
    // sink waiting for its first would hold the pipeline's audio.
    let sink = gst_app::AppSink::builder()
        .sync(false)
        .async_(false)
        .max_buffers(2)
        .drop(true)
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let Some(buffer) = sample.buffer() else { return Ok(gst::FlowSuccess::Ok) };
                    on_pts(buffer.pts());
                    let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                    let _ = frames.try_send(Frame { width, height, rgba: map.as_slice().to_vec() });
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        )
        .build();
    let chain = [&queue, &convert, &scale, &caps, sink.upcast_ref()];
    pipeline.add_many(chain).map_err(pipeline_err)?;
    gst::Element::link_many(chain).map_err(pipeline_err)?;
    Ok(queue)
}
