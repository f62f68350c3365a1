//! Allowed image formats and what their headers say (dimensions, EXIF orientation).

use std::io::Cursor;

use image::{ImageDecoder, ImageReader};
use serde::{Deserialize, Serialize};

use crate::error::PipelineError;

/// The allowlist of formats the pipeline processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Jpeg,
    Png,
    Gif,
    Webp,
}

impl ImageFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Png => "image/png",
            ImageFormat::Gif => "image/gif",
            ImageFormat::Webp => "image/webp",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "JPEG image",
            ImageFormat::Png => "PNG image",
            ImageFormat::Gif => "GIF image",
            ImageFormat::Webp => "WebP image",
        }
    }

    pub(crate) fn to_image_crate(self) -> image::ImageFormat {
        match self {
            ImageFormat::Jpeg => image::ImageFormat::Jpeg,
            ImageFormat::Png => image::ImageFormat::Png,
            ImageFormat::Gif => image::ImageFormat::Gif,
            ImageFormat::Webp => image::ImageFormat::WebP,
        }
    }
}

/// What an image's header declares, read without decoding pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    pub width: u32,
    pub height: u32,
    /// EXIF orientation 1-8; 1 when absent.
    pub orientation: u8,
}

impl ImageHeader {
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// Reads dimensions and EXIF orientation from an encoded image of the given format, after
/// checking that the file is structurally complete.
pub fn read_header(bytes: &[u8], format: ImageFormat) -> Result<ImageHeader, PipelineError> {
    check_complete(bytes, format)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.to_image_crate());
    reader.no_limits();
    let mut decoder = reader.into_decoder().map_err(header_error)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(PipelineError::invalid_image(format!(
            "declared dimensions {width}x{height}"
        )));
    }
    let orientation = decoder.orientation().map(orientation_code).unwrap_or(1);
    Ok(ImageHeader {
        width,
        height,
        orientation,
    })
}

/// A decoder refusing a header for its size (the PNG decoder has a memory limit of its own
/// even without ours) is `TooLarge`, like every other size limit; the rest is `InvalidImage`.
fn header_error(e: image::ImageError) -> PipelineError {
    match e {
        image::ImageError::Limits(l) => PipelineError::TooLarge {
            detail: format!("the declared image is larger than the decoder allows ({l})"),
        },
        other => PipelineError::invalid_image(other),
    }
}

pub(crate) fn orientation_code(o: image::metadata::Orientation) -> u8 {
    use image::metadata::Orientation::*;
    match o {
        NoTransforms => 1,
        FlipHorizontal => 2,
        Rotate180 => 3,
        FlipVertical => 4,
        Rotate90FlipH => 5,
        Rotate90 => 6,
        Rotate270FlipH => 7,
        Rotate270 => 8,
    }
}

/// The inverse of `orientation_code`; unknown codes mean "as stored".
pub(crate) fn orientation_from_code(code: u8) -> image::metadata::Orientation {
    image::metadata::Orientation::from_exif(code)
        .unwrap_or(image::metadata::Orientation::NoTransforms)
}

/// Whether an orientation swaps width and height when applied.
pub fn orientation_swaps_axes(code: u8) -> bool {
    matches!(code, 5..=8)
}

/// Rejects files that end early. Decoders are lenient (the JPEG decoder fills a truncated
/// scan with grey and reports success), so truncation is checked on the structure itself.
pub fn check_complete(bytes: &[u8], format: ImageFormat) -> Result<(), PipelineError> {
    match format {
        ImageFormat::Jpeg => check_jpeg_complete(bytes),
        // The PNG, GIF and WebP decoders report a truncated file as an error themselves.
        ImageFormat::Png | ImageFormat::Gif | ImageFormat::Webp => Ok(()),
    }
}

/// Walks the JPEG marker structure from SOI to EOI, skipping segment payloads and
/// entropy-coded data; trailing bytes after EOI (camera trailers) are allowed.
fn check_jpeg_complete(bytes: &[u8]) -> Result<(), PipelineError> {
    let truncated = |what: &str| PipelineError::invalid_image(format!("truncated JPEG: {what}"));
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Err(PipelineError::invalid_image("JPEG does not start with SOI"));
    }
    let mut i = 2;
    loop {
        // Find the next marker, skipping fill bytes.
        if bytes.get(i) != Some(&0xFF) {
            return Err(match bytes.get(i) {
                None => truncated("ends before the end-of-image marker"),
                Some(b) => PipelineError::invalid_image(format!(
                    "corrupt JPEG: expected a marker at byte {i}, found 0x{b:02X}"
                )),
            });
        }
        while bytes.get(i) == Some(&0xFF) {
            i += 1;
        }
        let Some(&marker) = bytes.get(i) else {
            return Err(truncated("ends inside a marker"));
        };
        i += 1;
        match marker {
            0xD9 => return Ok(()),
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let (Some(&hi), Some(&lo)) = (bytes.get(i), bytes.get(i + 1)) else {
            return Err(truncated("ends inside a segment header"));
        };
        let len = usize::from(hi) << 8 | usize::from(lo);
        if len < 2 {
            return Err(PipelineError::invalid_image(format!(
                "corrupt JPEG: segment 0x{marker:02X} has length {len}"
            )));
        }
        i += len;
        if i > bytes.len() {
            return Err(truncated("ends inside a segment"));
        }
        if marker == 0xDA {
            // Entropy-coded data runs until a marker other than a stuffed 0x00 or a restart.
            loop {
                match bytes.get(i) {
                    None => return Err(truncated("ends inside the image data")),
                    Some(0xFF) => match bytes.get(i + 1) {
                        None => return Err(truncated("ends inside the image data")),
                        Some(0x00) | Some(0xD0..=0xD7) | Some(0xFF) => i += 1,
                        Some(_) => break,
                    },
                    Some(_) => i += 1,
                }
            }
        }
    }
}

/// The EXIF orientation (1-8) of a JPEG, read from its APP1 `Exif` segment without
/// decoding anything else; 1 when absent or unreadable.
pub fn jpeg_exif_orientation(bytes: &[u8]) -> u8 {
    let mut i = 2;
    while bytes.get(i) == Some(&0xFF) {
        let Some(&marker) = bytes.get(i + 1) else {
            break;
        };
        // Metadata precedes the first scan; standalone markers carry no length.
        if matches!(marker, 0xDA | 0xD9) {
            break;
        }
        if marker == 0xFF || matches!(marker, 0x01 | 0xD0..=0xD7) {
            i += 1;
            continue;
        }
        let (Some(&hi), Some(&lo)) = (bytes.get(i + 2), bytes.get(i + 3)) else {
            break;
        };
        let len = usize::from(hi) << 8 | usize::from(lo);
        let payload = bytes.get(i + 4..i + 2 + len).unwrap_or_default();
        if marker == 0xE1 {
            if let Some(tiff) = payload.strip_prefix(b"Exif\0\0") {
                return image::metadata::Orientation::from_exif_chunk(tiff)
                    .map(orientation_code)
                    .unwrap_or(1);
            }
        }
        i += 2 + len.max(2);
    }
    1
}

/// Lowercase hex SHA-256 of the object's bytes, recorded in manifests.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::tests::{encode, gradient, jpeg_with_orientation};

    #[test]
    fn read_header_every_format() {
        let img = gradient(120, 90);
        for format in [
            ImageFormat::Jpeg,
            ImageFormat::Png,
            ImageFormat::Gif,
            ImageFormat::Webp,
        ] {
            let h = read_header(&encode(&img, format), format).unwrap();
            assert_eq!(
                (h.width, h.height, h.orientation),
                (120, 90, 1),
                "{format:?}"
            );
        }
    }

    #[test]
    fn read_header_reports_exif_orientation() {
        for code in 1..=8 {
            let h = read_header(
                &jpeg_with_orientation(&gradient(40, 20), code),
                ImageFormat::Jpeg,
            )
            .unwrap();
            assert_eq!(h.orientation, code);
        }
    }

    #[test]
    fn jpeg_exif_orientation_matches_read_header() {
        for code in 1..=8 {
            let jpeg = jpeg_with_orientation(&gradient(40, 20), code);
            assert_eq!(jpeg_exif_orientation(&jpeg), code);
        }
        let plain = encode(&gradient(40, 20), ImageFormat::Jpeg);
        assert_eq!(jpeg_exif_orientation(&plain), 1);
        assert_eq!(jpeg_exif_orientation(b"\xFF\xD8\xFF\xE1\x00"), 1);
        assert_eq!(jpeg_exif_orientation(b""), 1);
    }

    #[test]
    fn check_complete_jpeg_table() {
        let full = encode(&gradient(64, 64), ImageFormat::Jpeg);
        let mut trailer = full.clone();
        trailer.extend_from_slice(b"camera trailer bytes");
        let cases: Vec<(&str, Vec<u8>, bool)> = vec![
            ("complete", full.clone(), true),
            ("trailer after EOI", trailer, true),
            ("cut in scan", full[..full.len() - 10].to_vec(), false),
            ("cut before EOI", full[..full.len() - 2].to_vec(), false),
            ("cut in header", full[..30].to_vec(), false),
            ("only SOI", vec![0xFF, 0xD8], false),
            ("no SOI", b"hello".to_vec(), false),
        ];
        for (name, bytes, ok) in cases {
            assert_eq!(
                check_complete(&bytes, ImageFormat::Jpeg).is_ok(),
                ok,
                "{name}"
            );
        }
    }

    #[test]
    fn read_header_png_declaring_2_pow_31_pixels_a_side_is_too_large() {
        // The PNG decoder refuses this header with its own memory limit: a size limit,
        // so TooLarge like the others, not InvalidImage.
        fn crc32(bytes: &[u8]) -> u32 {
            let mut crc = 0xFFFF_FFFFu32;
            for &b in bytes {
                crc ^= u32::from(b);
                for _ in 0..8 {
                    crc = if crc & 1 != 0 {
                        (crc >> 1) ^ 0xEDB8_8320
                    } else {
                        crc >> 1
                    };
                }
            }
            !crc
        }
        let small = encode(&gradient(8, 8), ImageFormat::Png);
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
        ihdr.extend_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let crc = crc32(&ihdr);
        let mut png = small[..8].to_vec();
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(&ihdr);
        png.extend_from_slice(&crc.to_be_bytes());
        png.extend_from_slice(&small[33..]);
        let err = read_header(&png, ImageFormat::Png).unwrap_err();
        assert_eq!(err.name(), "TooLarge", "{err}");
    }

    #[test]
    fn read_header_zero_or_garbage_is_invalid_image() {
        for format in [
            ImageFormat::Jpeg,
            ImageFormat::Png,
            ImageFormat::Gif,
            ImageFormat::Webp,
        ] {
            let err = read_header(b"not an image at all", format).unwrap_err();
            assert_eq!(err.name(), "InvalidImage");
        }
    }
}
