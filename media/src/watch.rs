//! A pipeline's bus, watched from a thread of its own: an error (a device
//! unplugged, a decoder given garbage it cannot skip) is handed to the
//! owner, who ends the call; the node itself carries on.

use crate::elements::MediaError;
use gstreamer as gst;
use gstreamer::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Watches a pipeline's bus until dropped.
#[derive(Debug)]
pub(crate) struct BusWatch {
    stop: Arc<AtomicBool>,
    first: Arc<Mutex<Option<String>>>,
}

impl BusWatch {
    pub(crate) fn start(
        pipeline: &gst::Pipeline,
        on_error: impl Fn(String) + Send + 'static,
    ) -> Result<Self, MediaError> {
        let bus = pipeline.bus().ok_or_else(|| MediaError::Pipeline("the pipeline has no bus".into()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let first = Arc::new(Mutex::new(None));
        let (stop2, first2) = (stop.clone(), first.clone());
        std::thread::Builder::new()
            .name("media-bus".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else { continue };
                    if let gst::MessageView::Error(e) = msg.view() {
                        let from = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
                        let why = format!("{from}: {}", e.error());
                        tracing::warn!(error = %why, debug = ?e.debug(), "media pipeline error");
                        first2.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(why.clone());
                        on_error(why);
                    }
                }
            })
            .map_err(|e| MediaError::Pipeline(e.to_string()))?;
        Ok(Self { stop, first })
    }

    /// The first error seen, if any.
    pub(crate) fn first_error(&self) -> Option<String> {
        // Give an error posted as the state change failed a moment to arrive.
        std::thread::sleep(std::time::Duration::from_millis(150));
        self.first.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for BusWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
