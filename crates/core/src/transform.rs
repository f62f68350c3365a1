//! Thumbnails: decode once with limits, orient, resize to every configured size, encode.
//!
//! Pure CPU work over bytes in memory. Limits are checked on the declared dimensions
//! before any pixel buffer is allocated, and the decoder's allocation limit backs that up,
//! so a decompression bomb is a `TooLarge` error, never an out-of-memory kill.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageError, ImageReader, Limits, RgbImage};

use crate::error::PipelineError;
use crate::image_info::{check_complete, orientation_from_code, ImageFormat};

/// How thumbnails are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformSpec {
    /// Longest side of each thumbnail, largest first.
    pub sizes: Vec<u32>,
    /// Images declaring more pixels than this are rejected before decoding.
    pub max_pixels: u64,
    /// Upper bound on what the decoder may allocate.
    pub max_alloc_bytes: u64,
    pub jpeg_quality: u8,
}

pub const DEFAULT_SIZES: [u32; 2] = [1024, 256];
pub const DEFAULT_MAX_PIXELS: u64 = 50_000_000;

impl Default for TransformSpec {
    fn default() -> Self {
        TransformSpec {
            sizes: DEFAULT_SIZES.to_vec(),
            max_pixels: DEFAULT_MAX_PIXELS,
            max_alloc_bytes: 512 * 1024 * 1024,
            jpeg_quality: 85,
        }
    }
}

/// One encoded thumbnail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedThumbnail {
    /// The requested longest side.
    pub size: u32,
    pub width: u32,
    pub height: u32,
    pub bytes: Vec<u8>,
}

impl RenderedThumbnail {
    pub const CONTENT_TYPE: &'static str = "image/jpeg";
    pub const EXTENSION: &'static str = "jpg";
}

/// Decodes `encoded` once and renders every size in `spec`, in `spec.sizes` order.
pub fn render_thumbnails(
    encoded: &[u8],
    format: ImageFormat,
    spec: &TransformSpec,
) -> Result<Vec<RenderedThumbnail>, PipelineError> {
    let image = decode_oriented(encoded, format, spec)?;
    let image = flatten_to_rgb(image);
    let mut sizes = spec.sizes.clone();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    let mut rendered: Vec<(u32, RgbImage)> = Vec::with_capacity(sizes.len());
    for &size in &sizes {
        let (w, h) = fit_within(image.width(), image.height(), size);
        // Resize from the smallest already-rendered image that is still at least as large.
        let base = rendered
            .iter()
            .rev()
            .map(|(_, img)| img)
            .find(|img| img.width() >= w && img.height() >= h)
            .unwrap_or(&image);
        let resized = resize(base, w, h);
        rendered.push((size, resized));
    }
    let mut out = Vec::with_capacity(rendered.len());
    for (size, img) in rendered {
        let mut bytes = Vec::new();
        JpegEncoder::new_with_quality(&mut bytes, spec.jpeg_quality)
            .encode_image(&img)
            .map_err(|e| PipelineError::invalid_image(format!("encoding thumbnail: {e}")))?;
        out.push(RenderedThumbnail {
            size,
            width: img.width(),
            height: img.height(),
            bytes,
        });
    }
    // Report in the order the caller configured.
    out.sort_by_key(|t| spec.sizes.iter().position(|s| *s == t.size));
    Ok(out)
}

/// Decodes with limits and applies the EXIF orientation.
pub fn decode_oriented(
    encoded: &[u8],
    format: ImageFormat,
    spec: &TransformSpec,
) -> Result<DynamicImage, PipelineError> {
    check_complete(encoded, format)?;
    let mut reader = ImageReader::with_format(Cursor::new(encoded), format.to_image_crate());
    let mut limits = Limits::default();
    limits.max_alloc = Some(spec.max_alloc_bytes);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(classify)?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > spec.max_pixels {
        return Err(PipelineError::too_large(
            "pixel count",
            pixels,
            spec.max_pixels,
        ));
    }
    // `DynamicImage::from_decoder` allocates the whole output buffer without consulting
    // `Limits`, so the allocation limit is enforced here, before that buffer exists.
    if decoder.total_bytes() > spec.max_alloc_bytes {
        return Err(PipelineError::too_large(
            "decoded size in bytes",
            decoder.total_bytes(),
            spec.max_alloc_bytes,
        ));
    }
    let orientation = decoder.orientation().ok();
    let mut image = DynamicImage::from_decoder(decoder).map_err(classify)?;
    if let Some(o) = orientation {
        image.apply_orientation(o);
    }
    Ok(image)
}

/// Applies an orientation given as an EXIF code (1-8).
pub fn apply_orientation_code(image: &mut DynamicImage, code: u8) {
    image.apply_orientation(orientation_from_code(code));
}

fn classify(e: ImageError) -> PipelineError {
    match e {
        ImageError::Limits(l) => PipelineError::TooLarge {
            detail: format!("decoding needs more memory than allowed ({l})"),
        },
        other => PipelineError::invalid_image(other),
    }
}

/// Composites transparent pixels over white (JPEG has no alpha) and converts to RGB8.
fn flatten_to_rgb(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut rgb = RgbImage::new(w, h);
    for (src, dst) in rgba.pixels().zip(rgb.pixels_mut()) {
        let [r, g, b, a] = src.0;
        let a = u16::from(a);
        let blend = |c: u8| ((u16::from(c) * a + 255 * (255 - a) + 127) / 255) as u8;
        dst.0 = [blend(r), blend(g), blend(b)];
    }
    rgb
}

/// The largest dimensions with the same aspect ratio whose longest side is at most
/// `size`, never larger than the source (no upscaling) and never zero.
pub fn fit_within(width: u32, height: u32, size: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= size {
        return (width, height);
    }
    let scale = |d: u32| -> u32 {
        let v = (u64::from(d) * u64::from(size) + u64::from(longest) / 2) / u64::from(longest);
        u32::try_from(v).unwrap_or(size).clamp(1, size)
    };
    (scale(width), scale(height))
}

fn resize(image: &RgbImage, w: u32, h: u32) -> RgbImage {
    if image.width() == w && image.height() == h {
        return image.clone();
    }
    // A fast pre-shrink to about twice the target, then Lanczos3 for quality.
    if image.width() >= w.saturating_mul(4) && image.height() >= h.saturating_mul(4) {
        let pre = image::imageops::thumbnail(image, w * 2, h * 2);
        return image::imageops::resize(&pre, w, h, FilterType::Lanczos3);
    }
    image::imageops::resize(image, w, h, FilterType::Lanczos3)
}

/// Encodes `image` as a JPEG tagged with an EXIF orientation (1-8), the way cameras store
/// a rotated photo: pixels as captured, orientation in metadata. Used for demo samples.
pub fn encode_jpeg_with_orientation(
    image: &RgbImage,
    orientation: u8,
    quality: u8,
) -> Result<Vec<u8>, PipelineError> {
    use image::ImageEncoder;
    // A big-endian TIFF header and one IFD entry: tag 0x0112 (Orientation), SHORT, count 1.
    let mut exif = b"MM\x00\x2a\x00\x00\x00\x08\x00\x01".to_vec();
    exif.extend_from_slice(&[0x01, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00]);
    exif.extend_from_slice(&[orientation, 0x00, 0x00, 0, 0, 0, 0]);
    let mut out = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut out, quality);
    encoder
        .set_exif_metadata(exif)
        .map_err(|e| PipelineError::invalid_image(format!("EXIF: {e}")))?;
    encoder
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| PipelineError::invalid_image(format!("encoding JPEG: {e}")))?;
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use image::{Rgb, RgbaImage};

    /// A test photo: a gradient with a marker in the top-left corner (to check orientation).
    pub(crate) fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            if x < w / 8 && y < h / 8 {
                Rgb([255, 0, 0])
            } else {
                Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 128])
            }
        })
    }

    pub(crate) fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(img.clone())
            .write_to(&mut out, format.to_image_crate())
            .unwrap();
        out.into_inner()
    }

    pub(crate) fn jpeg_with_orientation(img: &RgbImage, code: u8) -> Vec<u8> {
        encode_jpeg_with_orientation(img, code, 90).unwrap()
    }

    fn spec(sizes: &[u32]) -> TransformSpec {
        TransformSpec {
            sizes: sizes.to_vec(),
            ..TransformSpec::default()
        }
    }

    #[test]
    fn fit_within_table() {
        let cases = [
            ((4000, 3000, 256), (256, 192)),
            ((3000, 4000, 256), (192, 256)),
            ((100, 50, 256), (100, 50)),
            ((256, 256, 256), (256, 256)),
            ((10000, 1, 256), (256, 1)),
            ((1, 10000, 1024), (1, 1024)),
        ];
        for ((w, h, s), expected) in cases {
            assert_eq!(fit_within(w, h, s), expected, "{w}x{h} in {s}");
        }
    }

    #[test]
    fn render_thumbnails_every_format_every_size() {
        let img = gradient(640, 480);
        for format in [
            ImageFormat::Jpeg,
            ImageFormat::Png,
            ImageFormat::Gif,
            ImageFormat::Webp,
        ] {
            let thumbs =
                render_thumbnails(&encode(&img, format), format, &spec(&[256, 64])).unwrap();
            let dims: Vec<_> = thumbs.iter().map(|t| (t.size, t.width, t.height)).collect();
            assert_eq!(dims, vec![(256, 256, 192), (64, 64, 48)], "{format:?}");
            for t in &thumbs {
                let decoded =
                    image::load_from_memory_with_format(&t.bytes, image::ImageFormat::Jpeg)
                        .unwrap();
                assert_eq!((decoded.width(), decoded.height()), (t.width, t.height));
            }
        }
    }

    #[test]
    fn render_thumbnails_small_image_is_not_upscaled() {
        let thumbs = render_thumbnails(
            &encode(&gradient(100, 80), ImageFormat::Png),
            ImageFormat::Png,
            &spec(&[1024, 256]),
        )
        .unwrap();
        assert!(thumbs.iter().all(|t| (t.width, t.height) == (100, 80)));
    }

    #[test]
    fn render_thumbnails_applies_exif_orientation() {
        // Orientation 6: the stored image must be rotated 90 degrees clockwise to display.
        let img = gradient(400, 200);
        let jpeg = jpeg_with_orientation(&img, 6);
        let thumbs = render_thumbnails(&jpeg, ImageFormat::Jpeg, &spec(&[100])).unwrap();
        assert_eq!((thumbs[0].width, thumbs[0].height), (50, 100));
        // The red marker (stored top-left) is now top-right.
        let out = image::load_from_memory(&thumbs[0].bytes)
            .unwrap()
            .into_rgb8();
        let top_right = out.get_pixel(47, 2).0;
        let top_left = out.get_pixel(2, 2).0;
        assert!(top_right[0] > 200 && top_right[1] < 60, "{top_right:?}");
        assert!(top_left[0] < 100, "{top_left:?}");
    }

    #[test]
    fn render_thumbnails_output_has_no_exif() {
        let jpeg = jpeg_with_orientation(&gradient(300, 200), 6);
        let thumbs = render_thumbnails(&jpeg, ImageFormat::Jpeg, &spec(&[100])).unwrap();
        let has_exif = thumbs[0].bytes.windows(6).any(|w| w == b"Exif\0\0");
        assert!(!has_exif);
        assert!(
            jpeg.windows(6).any(|w| w == b"Exif\0\0"),
            "fixture must carry EXIF"
        );
    }

    #[test]
    fn render_thumbnails_transparent_pixels_become_white() {
        let rgba = RgbaImage::from_pixel(64, 64, image::Rgba([0, 0, 0, 0]));
        let mut png = Cursor::new(Vec::new());
        DynamicImage::ImageRgba8(rgba)
            .write_to(&mut png, image::ImageFormat::Png)
            .unwrap();
        let thumbs = render_thumbnails(png.get_ref(), ImageFormat::Png, &spec(&[32])).unwrap();
        let px = image::load_from_memory(&thumbs[0].bytes)
            .unwrap()
            .into_rgb8()
            .get_pixel(16, 16)
            .0;
        assert!(px.iter().all(|c| *c > 245), "{px:?}");
    }

    #[test]
    fn render_thumbnails_pixel_limit_is_too_large_before_decoding() {
        let png = encode(&gradient(200, 200), ImageFormat::Png);
        let spec = TransformSpec {
            max_pixels: 10_000,
            ..spec(&[64])
        };
        let err = render_thumbnails(&png, ImageFormat::Png, &spec).unwrap_err();
        assert_eq!(err.name(), "TooLarge", "{err}");
    }

    #[test]
    fn render_thumbnails_truncated_files_are_invalid_image() {
        let img = gradient(320, 240);
        for format in [
            ImageFormat::Jpeg,
            ImageFormat::Png,
            ImageFormat::Gif,
            ImageFormat::Webp,
        ] {
            let full = encode(&img, format);
            for cut in [full.len() / 2, full.len() - 8] {
                let err = render_thumbnails(&full[..cut], format, &spec(&[64]));
                assert!(
                    matches!(&err, Err(e) if e.name() == "InvalidImage"),
                    "{format:?} cut at {cut}/{}: {err:?}",
                    full.len()
                );
            }
        }
    }

    #[test]
    fn render_thumbnails_garbage_is_invalid_image_not_panic() {
        for format in [
            ImageFormat::Jpeg,
            ImageFormat::Png,
            ImageFormat::Gif,
            ImageFormat::Webp,
        ] {
            for bytes in [
                &b""[..],
                b"\xFF\xD8\xFF",
                b"\x89PNG\r\n\x1a\n",
                b"GIF89a",
                b"RIFF\0\0\0\0WEBP",
            ] {
                let err = render_thumbnails(bytes, format, &spec(&[64])).unwrap_err();
                assert!(
                    ["InvalidImage", "TooLarge"].contains(&err.name()),
                    "{format:?} {bytes:?}: {err}"
                );
            }
        }
    }
}
