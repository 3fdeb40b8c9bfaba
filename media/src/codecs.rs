//! Which video codecs this machine's GStreamer can encode and decode.
//!
//! VP8 is always there (a call needs it: [`crate::NEEDED`]); H.264 is
//! used where x264 encodes it and libav decodes it, and names what is
//! missing when it is asked for and not there.

use crate::elements::{MediaError, check};
pub use skein_proto::media::VideoCodec;

/// The elements that encode and decode `codec`.
fn elements(codec: VideoCodec) -> &'static [&'static str] {
    match codec {
        VideoCodec::Vp8 => &["vp8enc", "vp8dec"],
        VideoCodec::H264 => &["x264enc", "h264parse", "avdec_h264"],
    }
}

/// Whether `codec` can be encoded and decoded here, or the element that
/// is missing.
pub fn can_use(codec: VideoCodec) -> Result<(), MediaError> {
    crate::elements::init()?;
    check(elements(codec))
}

/// Of `wanted`, the codecs this machine both encodes and decodes, in
/// `wanted`'s order. A codec asked for on its own that is not there is an
/// error naming what is missing; among several, it is left out.
pub fn usable(wanted: &[VideoCodec]) -> Result<Vec<VideoCodec>, MediaError> {
    if let [only] = wanted {
        can_use(*only)?;
        return Ok(vec![*only]);
    }
    Ok(wanted.iter().copied().filter(|c| can_use(*c).is_ok()).collect())
}

/// The codecs a pipeline runs: `configured`, or VP8 when it names none.
pub fn or_vp8(configured: &[VideoCodec]) -> &[VideoCodec] {
    if configured.is_empty() { &[VideoCodec::Vp8] } else { configured }
}

/// The codec to send to receivers that decode `theirs`, of the codecs
/// `ours` (best last, VP8 first): the best both have, or VP8. A receiver
/// that decodes none takes no video, and has no say.
pub fn choose(ours: &[VideoCodec], theirs: &[&[VideoCodec]]) -> VideoCodec {
    let takers = theirs.iter().filter(|t| !t.is_empty());
    ours.iter().copied().filter(|c| takers.clone().all(|t| t.contains(c))).max().unwrap_or(VideoCodec::Vp8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use VideoCodec::*;

    #[test]
    fn the_best_codec_everyone_decodes_wins() {
        assert_eq!(choose(&[Vp8, H264], &[&[Vp8, H264]]), H264);
        assert_eq!(choose(&[Vp8, H264], &[&[Vp8, H264], &[Vp8]]), Vp8, "one VP8-only receiver holds all to VP8");
        assert_eq!(choose(&[Vp8], &[&[Vp8, H264]]), Vp8, "we cannot encode H.264");
        assert_eq!(choose(&[H264], &[&[Vp8]]), Vp8, "nothing in common falls back to VP8");
        assert_eq!(choose(&[Vp8, H264], &[]), H264, "no receiver yet");
        assert_eq!(choose(&[Vp8, H264], &[&[], &[Vp8, H264]]), H264, "an audio-only receiver has no say");
    }
}
