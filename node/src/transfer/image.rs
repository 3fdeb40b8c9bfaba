//! Image messages: recognising an image, making the thumbnail that travels
//! inline with the message, and checking a thumbnail that arrived.
//!
//! Decoding untrusted bytes is bounded: the format must be one we show
//! (PNG, JPEG, GIF, WebP), dimensions and decoder memory are capped, so a
//! truncated file or a decompression bomb is an error naming the problem,
//! never a crash or a runaway allocation.

use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use skein_proto::file::MAX_THUMBNAIL;
use std::io::Cursor;

/// Largest image file sent as an image message (bigger ones go as files).
pub const MAX_IMAGE_FILE: u64 = 64 << 20;
/// Widest and tallest image decoded.
pub const MAX_EDGE: u32 = 16_384;
/// Most decoder memory for a full image.
pub const MAX_DECODE_ALLOC: u64 = 512 << 20;
/// Longest edge of a thumbnail.
pub const THUMB_EDGE: u32 = 320;
/// Widest and tallest thumbnail accepted from a peer.
const MAX_THUMB_EDGE: u32 = 1024;

/// What is wrong with an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// Not a format Skein shows.
    #[error("not an image Skein can show: send PNG, JPEG, GIF or WebP, or send it as a file")]
    Unsupported,
    /// The bytes do not decode.
    #[error("the image is damaged or truncated: {0}")]
    Malformed(String),
    /// Too many pixels, or too much memory to decode.
    #[error("the image is too large to show ({0}); send it as a file instead")]
    TooLarge(String),
}

/// An image's thumbnail and what the message says about the full image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    /// `png`, `jpeg`, `gif` or `webp`.
    pub format: &'static str,
    /// Full width.
    pub width: u32,
    /// Full height.
    pub height: u32,
    /// JPEG bytes, at most [`MAX_THUMBNAIL`].
    pub jpeg: Vec<u8>,
}

fn format_name(f: ImageFormat) -> Option<&'static str> {
    match f {
        ImageFormat::Png => Some("png"),
        ImageFormat::Jpeg => Some("jpeg"),
        ImageFormat::Gif => Some("gif"),
        ImageFormat::WebP => Some("webp"),
        _ => None,
    }
}

fn decode(bytes: &[u8], edge: u32, alloc: u64) -> Result<(ImageFormat, DynamicImage), ImageError> {
    let format = image::guess_format(bytes).map_err(|_| ImageError::Unsupported)?;
    format_name(format).ok_or(ImageError::Unsupported)?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(edge);
    limits.max_image_height = Some(edge);
    limits.max_alloc = Some(alloc);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(l) => ImageError::TooLarge(format!("{l}; at most {edge}×{edge} pixels")),
        other => ImageError::Malformed(other.to_string()),
    })?;
    Ok((format, img))
}

/// Decodes an image file's bytes and makes its thumbnail.
pub fn thumbnail(bytes: &[u8]) -> Result<Thumbnail, ImageError> {
    if bytes.len() as u64 > MAX_IMAGE_FILE {
        return Err(ImageError::TooLarge(format!("{} bytes, over {} MiB", bytes.len(), MAX_IMAGE_FILE >> 20)));
    }
    let (format, img) = decode(bytes, MAX_EDGE, MAX_DECODE_ALLOC)?;
    let small = img.thumbnail(THUMB_EDGE, THUMB_EDGE).to_rgb8();
    // Lower the quality until it fits; a 320 px JPEG fits long before 30.
    for quality in [80u8, 65, 50, 35] {
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, quality)
            .encode_image(&small)
            .map_err(|e| ImageError::Malformed(e.to_string()))?;
        if jpeg.len() <= MAX_THUMBNAIL {
            let format = format_name(format).ok_or(ImageError::Unsupported)?;
            return Ok(Thumbnail { format, width: img.width(), height: img.height(), jpeg });
        }
    }
    Err(ImageError::TooLarge("its thumbnail does not fit in a message".into()))
}

/// Checks a thumbnail a peer sent: a small image that decodes.
pub fn check_thumbnail(bytes: &[u8]) -> Result<(u32, u32), ImageError> {
    if bytes.len() > MAX_THUMBNAIL {
        return Err(ImageError::TooLarge(format!("a {}-byte thumbnail", bytes.len())));
    }
    let (_, img) = decode(bytes, MAX_THUMB_EDGE, 16 << 20)?;
    Ok((img.width(), img.height()))
}

/// Whether `format` is one an image message may name.
pub fn known_format(format: &str) -> bool {
    ["png", "jpeg", "gif", "webp"].contains(&format)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(img).write_to(&mut out, ImageFormat::Png).expect("png");
        out.into_inner()
    }

    #[test]
    fn a_png_gets_a_small_jpeg_thumbnail_that_checks() {
        let t = thumbnail(&png(1200, 800)).expect("thumbnail");
        assert_eq!((t.format, t.width, t.height), ("png", 1200, 800));
        assert!(t.jpeg.len() <= MAX_THUMBNAIL);
        assert_eq!(check_thumbnail(&t.jpeg).expect("valid"), (THUMB_EDGE, 213));
    }

    #[test]
    fn a_truncated_image_is_malformed() {
        let bytes = png(300, 300);
        let err = thumbnail(&bytes[..bytes.len() / 2]).expect_err("truncated");
        assert!(matches!(err, ImageError::Malformed(_)), "{err:?}");
    }

    /// CRC-32 as PNG chunks use it.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in bytes {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 == 1 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }

    #[test]
    fn a_decompression_bomb_is_refused_before_it_is_decoded() {
        // A well-formed PNG header (valid checksum) claiming 100,000 ×
        // 100,000 pixels, 30 GB once decoded, in a few dozen bytes.
        let mut bytes = png(1, 1);
        bytes[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        let err = thumbnail(&bytes).expect_err("bomb");
        assert!(matches!(err, ImageError::TooLarge(_)), "{err:?}");
        assert!(matches!(check_thumbnail(&bytes), Err(ImageError::TooLarge(_))));
    }

    #[test]
    fn an_image_wider_than_the_limit_is_too_large() {
        let err = thumbnail(&png(MAX_EDGE + 1, 1)).expect_err("too wide");
        assert!(matches!(err, ImageError::TooLarge(_)), "{err:?}");
    }

    #[test]
    fn other_files_are_not_images() {
        assert_eq!(thumbnail(b"%PDF-1.7 not an image"), Err(ImageError::Unsupported));
        assert_eq!(check_thumbnail(b""), Err(ImageError::Unsupported));
    }
}
