//! Thumbnails: decode once with limits, resize to every configured size, orient, encode.
//!
//! Pure CPU work over bytes in memory. Limits are checked on the declared dimensions
//! before any pixel buffer is allocated, and the decoders' allocation limits back that up,
//! so a decompression bomb is a `TooLarge` error, never an out-of-memory kill.
//!
//! JPEG goes through libjpeg-turbo ([`crate::jpeg`]), decoded once in the DCT domain at the
//! smallest scale `n/8` that still covers the largest thumbnail. PNG, GIF and WebP go
//! through the `image` crate at full size. Every size is then resized from that one bitmap
//! (Lanczos3, SIMD, `fast_image_resize`), oriented and encoded by libjpeg-turbo.

use std::io::Cursor;

use fast_image_resize::images::{Image as ResizeImage, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageDecoder, ImageError, ImageReader, Limits, RgbImage};

use crate::error::PipelineError;
use crate::image_info::{
    check_complete, jpeg_exif_orientation, orientation_code, orientation_from_code, ImageFormat,
};
use crate::jpeg::{self, RgbBitmap};

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

/// A decoded image ready for resizing: pixels as stored (not yet oriented), possibly
/// already shrunk by the decoder, plus what is needed to size and orient the thumbnails.
struct Decoded {
    bitmap: RgbBitmap,
    /// The full stored dimensions the file declares.
    width: u32,
    height: u32,
    /// EXIF orientation 1-8, applied to each thumbnail after resizing.
    orientation: u8,
}

/// Decodes `encoded` once and renders every size in `spec`, in `spec.sizes` order.
pub fn render_thumbnails(
    encoded: &[u8],
    format: ImageFormat,
    spec: &TransformSpec,
) -> Result<Vec<RenderedThumbnail>, PipelineError> {
    check_complete(encoded, format)?;
    let largest = spec.sizes.iter().copied().max().unwrap_or(u32::MAX);
    let decoded = match format {
        ImageFormat::Jpeg => decode_jpeg(encoded, largest, spec)?,
        ImageFormat::Webp => decode_webp(encoded, spec)?,
        ImageFormat::Png | ImageFormat::Gif => decode_with_image_crate(encoded, format, spec)?,
    };
    let mut sizes = spec.sizes.clone();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    let mut rendered: Vec<(u32, RgbBitmap)> = Vec::with_capacity(sizes.len());
    for &size in &sizes {
        // Thumbnail dimensions follow from the full image (as stored: fit_within is
        // symmetric in its axes), whatever scale the decoder used.
        let (w, h) = fit_within(decoded.width, decoded.height, size);
        // Resize from the smallest already-rendered bitmap that is still at least as large
        // (measured: the same PSNR as resizing every size from the decoded bitmap).
        let base = rendered
            .iter()
            .rev()
            .map(|(_, b)| b)
            .find(|b| b.width >= w && b.height >= h)
            .unwrap_or(&decoded.bitmap);
        let resized = resize(base, w, h)?;
        rendered.push((size, resized));
    }
    let mut out = Vec::with_capacity(rendered.len());
    for (size, bitmap) in rendered {
        let bitmap = orient(bitmap, decoded.orientation)?;
        let bytes = jpeg::encode(
            &bitmap.pixels,
            bitmap.width,
            bitmap.height,
            spec.jpeg_quality,
        )?;
        out.push(RenderedThumbnail {
            size,
            width: bitmap.width,
            height: bitmap.height,
            bytes,
        });
    }
    // Report in the order the caller configured.
    out.sort_by_key(|t| spec.sizes.iter().position(|s| *s == t.size));
    Ok(out)
}

/// The JPEG decoder's output is at least twice the largest thumbnail (where the image
/// is that large), as vipsthumbnail does: DCT-domain scaling is a blocky filter of its
/// own, and the Lanczos3 pass needs room to smooth it out. With less (decoding at 1/4 for
/// a 1024 thumbnail of a 4352-pixel photo), PSNR against a full-decode Lanczos
/// reference dropped by up to 1 dB below vipsthumbnail's.
const DECODE_MARGIN: u32 = 2;

fn check_pixels(width: u32, height: u32, spec: &TransformSpec) -> Result<(), PipelineError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > spec.max_pixels {
        return Err(PipelineError::too_large(
            "pixel count",
            pixels,
            spec.max_pixels,
        ));
    }
    Ok(())
}

/// JPEG: libjpeg-turbo at the smallest DCT scale covering the largest thumbnail. A file
/// libjpeg-turbo rejects (a CMYK conversion it does not do, a recoverable corruption it
/// reports as a warning) gets a second chance with the `image` crate's lenient decoder.
fn decode_jpeg(
    encoded: &[u8],
    largest: u32,
    spec: &TransformSpec,
) -> Result<Decoded, PipelineError> {
    let Ok(header) = jpeg::read_header(encoded) else {
        return decode_with_image_crate(encoded, ImageFormat::Jpeg, spec);
    };
    check_pixels(header.width, header.height, spec)?;
    let (w, h) = fit_within(header.width, header.height, largest);
    let target = (
        w.saturating_mul(DECODE_MARGIN).min(header.width),
        h.saturating_mul(DECODE_MARGIN).min(header.height),
    );
    let eighths = jpeg::scale_eighths(header.width, header.height, target);
    let output_bytes = u64::from(header.width.div_ceil(8) * eighths)
        * u64::from(header.height.div_ceil(8) * eighths)
        * 3;
    let needed = header.decoder_bytes() + output_bytes;
    if needed > spec.max_alloc_bytes {
        return Err(PipelineError::TooLarge {
            detail: format!(
                "decoding needs about {needed} bytes, more than the {} allowed",
                spec.max_alloc_bytes
            ),
        });
    }
    match jpeg::decode_scaled(encoded, &header, eighths) {
        Ok(bitmap) => Ok(Decoded {
            bitmap,
            width: header.width,
            height: header.height,
            orientation: jpeg_exif_orientation(encoded),
        }),
        Err(_) => decode_with_image_crate(encoded, ImageFormat::Jpeg, spec),
    }
}

/// Still WebP: libwebp at full size (it has no DCT-domain scaling), limits checked on
/// the declared dimensions first. Animations, and anything libwebp declines, go to the
/// `image` crate, which decodes the first frame or explains the failure.
fn decode_webp(encoded: &[u8], spec: &TransformSpec) -> Result<Decoded, PipelineError> {
    let Some(header) = crate::webp::read_header(encoded).filter(|h| !h.animated) else {
        return decode_with_image_crate(encoded, ImageFormat::Webp, spec);
    };
    check_pixels(header.width, header.height, spec)?;
    let bytes_per_pixel = if header.has_alpha { 4 + 3 } else { 3 };
    let needed = u64::from(header.width) * u64::from(header.height) * bytes_per_pixel;
    if needed > spec.max_alloc_bytes {
        return Err(PipelineError::TooLarge {
            detail: format!(
                "decoding needs about {needed} bytes, more than the {} allowed",
                spec.max_alloc_bytes
            ),
        });
    }
    match crate::webp::decode(encoded) {
        Some(bitmap) => Ok(Decoded {
            bitmap,
            width: header.width,
            height: header.height,
            orientation: crate::webp::exif_orientation(encoded),
        }),
        None => decode_with_image_crate(encoded, ImageFormat::Webp, spec),
    }
}

/// PNG, GIF (and the JPEG and WebP fallbacks): a full decode with the `image` crate, with its
/// allocation limit, alpha flattened over white.
fn decode_with_image_crate(
    encoded: &[u8],
    format: ImageFormat,
    spec: &TransformSpec,
) -> Result<Decoded, PipelineError> {
    let mut reader = ImageReader::with_format(Cursor::new(encoded), format.to_image_crate());
    let mut limits = Limits::default();
    limits.max_alloc = Some(spec.max_alloc_bytes);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(classify)?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, spec)?;
    // `DynamicImage::from_decoder` allocates the whole output buffer without consulting
    // `Limits`, so the allocation limit is enforced here, before that buffer exists.
    if decoder.total_bytes() > spec.max_alloc_bytes {
        return Err(PipelineError::too_large(
            "decoded size in bytes",
            decoder.total_bytes(),
            spec.max_alloc_bytes,
        ));
    }
    let orientation = decoder.orientation().map(orientation_code).unwrap_or(1);
    let image = DynamicImage::from_decoder(decoder).map_err(classify)?;
    let rgb = flatten_to_rgb(image);
    Ok(Decoded {
        bitmap: RgbBitmap {
            width: rgb.width(),
            height: rgb.height(),
            pixels: rgb.into_raw(),
        },
        width,
        height,
        orientation,
    })
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

/// Lanczos3 convolution (SIMD) from `src` to exactly `w` x `h`; never upscales because
/// callers pass a target no larger than `src` (a decoder scale rounds up, never down).
fn resize(src: &RgbBitmap, w: u32, h: u32) -> Result<RgbBitmap, PipelineError> {
    if (src.width, src.height) == (w, h) {
        return Ok(src.clone());
    }
    let resize_error = |e: &dyn std::fmt::Display| {
        PipelineError::invalid_image(format!("resizing to {w}x{h}: {e}"))
    };
    let view = ImageRef::new(src.width, src.height, &src.pixels, PixelType::U8x3)
        .map_err(|e| resize_error(&e))?;
    let mut dst = ResizeImage::new(w, h, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    Resizer::new()
        .resize(&view, &mut dst, &options)
        .map_err(|e| resize_error(&e))?;
    Ok(RgbBitmap {
        width: w,
        height: h,
        pixels: dst.into_vec(),
    })
}

/// Applies an EXIF orientation (1-8) to a (small, already resized) bitmap.
fn orient(bitmap: RgbBitmap, orientation: u8) -> Result<RgbBitmap, PipelineError> {
    if orientation <= 1 || orientation > 8 {
        return Ok(bitmap);
    }
    let image = RgbImage::from_raw(bitmap.width, bitmap.height, bitmap.pixels)
        .ok_or_else(|| PipelineError::invalid_image("thumbnail buffer size"))?;
    let mut image = DynamicImage::ImageRgb8(image);
    image.apply_orientation(orientation_from_code(orientation));
    let rgb = image.into_rgb8();
    Ok(RgbBitmap {
        width: rgb.width(),
        height: rgb.height(),
        pixels: rgb.into_raw(),
    })
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
