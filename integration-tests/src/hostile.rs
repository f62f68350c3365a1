//! Hostile and broken input, built in memory: decompression bombs, headers declaring huge
//! dimensions, truncated and corrupt files of every supported format, disguised content,
//! hostile keys. Shared by the fast handler-chain tests (`tests/hostile_handlers.rs`) and
//! the end-to-end run (`tests/hostile.rs`), which also uses Pillow's own test images
//! ([`pillow_images`]).

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use image::{DynamicImage, ImageFormat, RgbImage};

/// The Pillow release whose sdist provides `Tests/images` (decompression bombs, truncated
/// and broken files). Downloaded at test-prep time into `.pipeline/cache/`, never committed.
pub const PILLOW_VERSION: &str = "13.0.0";

/// How a hostile object must end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// Quarantined with this error name.
    Quarantined(&'static str),
    /// Processed: the content is a valid image whatever its name says.
    Processed,
}

/// One hostile object.
#[derive(Debug, Clone)]
pub struct HostileCase {
    /// What the case is, for messages.
    pub what: &'static str,
    pub key: String,
    pub body: Vec<u8>,
    pub expected: Expected,
}

impl HostileCase {
    fn new(what: &'static str, key: impl Into<String>, body: Vec<u8>, expected: Expected) -> Self {
        HostileCase {
            what,
            key: key.into(),
            body,
            expected,
        }
    }
}

/// A small photo-like picture.
pub fn picture(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([
            (x * 7 % 256) as u8,
            (y * 13 % 256) as u8,
            ((x + y) % 256) as u8,
        ])
    })
}

/// `picture(width, height)` encoded in `format` by the `image` crate.
pub fn encoded(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    // Encoding an in-memory RGB picture into a Vec cannot fail for these formats.
    let _ = DynamicImage::ImageRgb8(picture(width, height)).write_to(&mut out, format);
    out.into_inner()
}

/// A PNG chunk with its CRC.
fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 12);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
    out
}

fn png_ihdr(width: u32, height: u32, bit_depth: u8, color_type: u8) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[bit_depth, color_type, 0, 0, 0]);
    png_chunk(b"IHDR", &ihdr)
}

/// A real decompression bomb: a 1-bit greyscale PNG of `width` x `height` black pixels.
/// 8,000 x 8,000 (64 MP) is about 8 KB on disk and 64 MB decoded to 8-bit grey.
pub fn png_bomb(width: u32, height: u32) -> Vec<u8> {
    let row = 1 + (width as usize).div_ceil(8);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; row * 1024];
    let mut left = row * height as usize;
    while left > 0 {
        let n = left.min(zeros.len());
        // Writing into a Vec cannot fail.
        let _ = z.write_all(&zeros[..n]);
        left -= n;
    }
    let idat = z.finish().unwrap_or_default();
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(png_ihdr(width, height, 1, 0));
    out.extend(png_chunk(b"IDAT", &idat));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

/// A valid small PNG whose IHDR declares `width` x `height` (CRC fixed up), so the header
/// promises a huge image and the data holds a tiny one.
pub fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let small = encoded(8, 8, ImageFormat::Png);
    // Signature (8) + IHDR chunk (25): replace the IHDR, keep the rest.
    let mut out = small[..8].to_vec();
    out.extend(png_ihdr(width, height, 8, 2));
    out.extend_from_slice(&small[33..]);
    out
}

/// A valid small baseline JPEG whose SOF0 declares `width` x `height`.
pub fn jpeg_declaring(width: u16, height: u16) -> Vec<u8> {
    let mut jpeg = encoded(16, 16, ImageFormat::Jpeg);
    if let Some(sof) = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]) {
        // FFC0, length (2), precision (1), height (2), width (2)
        jpeg[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
        jpeg[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    }
    jpeg
}

/// A GIF with a `screen` logical screen and one frame of `frame` size holding a single
/// pixel of data. With a small screen and a huge frame this is the shape of Pillow's
/// `decompression_bomb.gif`.
pub fn gif_declaring(screen: (u16, u16), frame: (u16, u16)) -> Vec<u8> {
    let mut out = b"GIF89a".to_vec();
    out.extend_from_slice(&screen.0.to_le_bytes());
    out.extend_from_slice(&screen.1.to_le_bytes());
    // Global colour table of 2 entries; background 0; aspect 0; black and white.
    out.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF]);
    out.push(0x2C);
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&frame.0.to_le_bytes());
    out.extend_from_slice(&frame.1.to_le_bytes());
    out.push(0);
    // LZW minimum code size 2, one sub-block: clear, pixel 0, end.
    out.extend_from_slice(&[0x02, 0x02, 0x44, 0x01, 0x00]);
    out.push(0x3B);
    out
}

/// A valid small lossless WebP whose VP8L header declares `width` x `height`
/// (each at most 16,384).
pub fn webp_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut webp = encoded(8, 8, ImageFormat::WebP);
    // RIFF(4) size(4) WEBP(4) VP8L(4) size(4) signature 0x2F(1), then 14 bits width-1,
    // 14 bits height-1, 1 bit alpha, 3 bits version, little-endian.
    if webp.get(12..16) == Some(b"VP8L") && webp.len() > 25 {
        let old = u32::from_le_bytes([webp[21], webp[22], webp[23], webp[24]]);
        let flags = old & 0xF000_0000;
        let packed = (width - 1) & 0x3FFF | ((height - 1) & 0x3FFF) << 14 | flags;
        webp[21..25].copy_from_slice(&packed.to_le_bytes());
    }
    webp
}

/// An extended WebP (VP8X) whose canvas is `width` x `height` (each at most 2^24), holding
/// one small lossless frame.
pub fn webp_extended_canvas(width: u32, height: u32) -> Vec<u8> {
    let simple = encoded(8, 8, ImageFormat::WebP);
    let frame = simple.get(12..).unwrap_or_default();
    let mut vp8x = b"VP8X".to_vec();
    vp8x.extend_from_slice(&10u32.to_le_bytes());
    vp8x.extend_from_slice(&[0, 0, 0, 0]);
    vp8x.extend_from_slice(&(width - 1).to_le_bytes()[..3]);
    vp8x.extend_from_slice(&(height - 1).to_le_bytes()[..3]);
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&((4 + vp8x.len() + frame.len()) as u32).to_le_bytes());
    out.extend_from_slice(b"WEBP");
    out.extend_from_slice(&vp8x);
    out.extend_from_slice(frame);
    out
}

/// `bytes` with a run of garbage written over the middle (the structure around it kept).
pub fn corrupted(bytes: &[u8], from: usize, len: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for (i, b) in out.iter_mut().skip(from).take(len).enumerate() {
        *b = 0xA5 ^ (i as u8).wrapping_mul(31);
    }
    out
}

/// Every hostile object the pipeline must survive, with how each must end. Keys are
/// under `hostile/`; `max_object_bytes` is the configured limit (one case exceeds it).
pub fn cases(max_object_bytes: u64) -> Vec<HostileCase> {
    use Expected::{Processed, Quarantined};
    let jpeg = encoded(320, 240, ImageFormat::Jpeg);
    let png = encoded(320, 240, ImageFormat::Png);
    let gif = encoded(320, 240, ImageFormat::Gif);
    let webp = encoded(320, 240, ImageFormat::WebP);
    let half = |b: &[u8]| b[..b.len() / 2].to_vec();
    let mut cases = vec![
        // Decompression bombs and lying headers.
        HostileCase::new("PNG bomb, 64 MP of 1-bit zeros", "hostile/bomb.png", png_bomb(8000, 8000), Quarantined("TooLarge")),
        HostileCase::new("PNG declaring 100,000 x 100,000", "hostile/huge-header.png", png_declaring(100_000, 100_000), Quarantined("TooLarge")),
        HostileCase::new("PNG declaring 2^31-1 x 2^31-1", "hostile/max-header.png", png_declaring(0x7FFF_FFFF, 0x7FFF_FFFF), Quarantined("TooLarge")),
        HostileCase::new("JPEG declaring 65,535 x 65,535", "hostile/huge-header.jpg", jpeg_declaring(65_535, 65_535), Quarantined("TooLarge")),
        HostileCase::new("GIF declaring a 65,535 x 65,535 screen", "hostile/huge-screen.gif", gif_declaring((65_535, 65_535), (65_535, 65_535)), Quarantined("TooLarge")),
        HostileCase::new("GIF with a 32 x 32 screen and a 65,535 x 65,535 frame", "hostile/frame-bomb.gif", gif_declaring((32, 32), (65_535, 65_535)), Quarantined("TooLarge")),
        // 16,383 and not VP8L's maximum 16,384: image-webp 0.2.4 reads 16,384 as 0.
        HostileCase::new("WebP declaring 16,383 x 16,383", "hostile/huge-header.webp", webp_declaring(16_383, 16_383), Quarantined("TooLarge")),
        HostileCase::new("WebP declaring a 60,000 x 60,000 canvas", "hostile/huge-canvas.webp", webp_extended_canvas(60_000, 60_000), Quarantined("TooLarge")),
        // Over the format's own limit (canvas width x height < 2^32): malformed, not large.
        HostileCase::new("WebP declaring a 1,000,000 x 1,000,000 canvas", "hostile/impossible-canvas.webp", webp_extended_canvas(1_000_000, 1_000_000), Quarantined("InvalidImage")),
        // Truncated files of every format.
        HostileCase::new("JPEG cut in half", "hostile/truncated.jpg", half(&jpeg), Quarantined("InvalidImage")),
        HostileCase::new("JPEG cut inside its headers", "hostile/truncated-header.jpg", jpeg[..40].to_vec(), Quarantined("InvalidImage")),
        HostileCase::new("PNG cut in half", "hostile/truncated.png", half(&png), Quarantined("InvalidImage")),
        HostileCase::new("PNG cut after its signature", "hostile/truncated-header.png", png[..12].to_vec(), Quarantined("InvalidImage")),
        HostileCase::new("GIF cut in half", "hostile/truncated.gif", half(&gif), Quarantined("InvalidImage")),
        HostileCase::new("GIF cut inside its header", "hostile/truncated-header.gif", gif[..10].to_vec(), Quarantined("InvalidImage")),
        HostileCase::new("WebP cut in half", "hostile/truncated.webp", half(&webp), Quarantined("InvalidImage")),
        HostileCase::new("WebP cut inside its header", "hostile/truncated-header.webp", webp[..20].to_vec(), Quarantined("InvalidImage")),
        // Corrupt files of every format: garbage over the headers after the signature.
        HostileCase::new("JPEG with garbage over its headers", "hostile/corrupt.jpg", corrupted(&jpeg, 4, 64), Quarantined("InvalidImage")),
        HostileCase::new("PNG with garbage over IHDR", "hostile/corrupt.png", corrupted(&png, 12, 16), Quarantined("InvalidImage")),
        HostileCase::new("GIF with garbage over its image data", "hostile/corrupt.gif", corrupted(&gif, 13, gif.len() - 14), Quarantined("InvalidImage")),
        HostileCase::new("WebP with garbage over its bitstream", "hostile/corrupt.webp", corrupted(&webp, 20, webp.len() - 20), Quarantined("InvalidImage")),
        // Content that is not what its name says.
        HostileCase::new("PNG named .jpg", "hostile/really-a-png.jpg", png.clone(), Processed),
        HostileCase::new("JPEG named .gif", "hostile/really-a-jpeg.gif", jpeg.clone(), Processed),
        HostileCase::new("SVG named .jpg", "hostile/drawing.jpg", br#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>"#.to_vec(), Quarantined("UnsupportedType")),
        HostileCase::new("HTML named .jpg", "hostile/page.jpg", b"<!DOCTYPE html><html><script>alert(1)</script></html>".to_vec(), Quarantined("UnsupportedType")),
        HostileCase::new("shell script named .jpg", "hostile/script.jpg", b"#!/bin/sh\ncurl http://127.0.0.1/x | sh\n".to_vec(), Quarantined("UnsupportedType")),
        HostileCase::new("polyglot: JPEG signature then HTML", "hostile/polyglot.jpg", [&[0xFF, 0xD8, 0xFF, 0xE0][..], b"<html><script>alert(1)</script></html>"].concat(), Quarantined("InvalidImage")),
        // Empty and oversized objects.
        HostileCase::new("zero-byte object", "hostile/empty.jpg", Vec::new(), Quarantined("EmptyObject")),
        HostileCase::new("object over the size limit", "hostile/too-big.jpg", [jpeg.clone(), vec![0; max_object_bytes as usize]].concat(), Quarantined("TooLarge")),
    ];
    // Legal but hostile keys: processed or quarantined, outputs never outside their prefix.
    for (what, key, body, expected) in hostile_keys(&jpeg) {
        cases.push(HostileCase::new(what, key, body, expected));
    }
    cases
}

/// Keys that are legal in S3 but dangerous to mirror: `..`, `./`, a leading `/`,
/// backslashes, control characters, and the longest key S3 allows.
pub fn hostile_keys(jpeg: &[u8]) -> Vec<(&'static str, String, Vec<u8>, Expected)> {
    use Expected::{Processed, Quarantined};
    let max = format!(
        "hostile/{}.jpg",
        "k".repeat(pipeline_core::key::MAX_KEY_BYTES - 12)
    );
    vec![
        (
            "key with ..",
            "hostile/../../escape.jpg".to_owned(),
            jpeg.to_vec(),
            Processed,
        ),
        (
            "key with ./",
            "hostile/./dot.jpg".to_owned(),
            jpeg.to_vec(),
            Processed,
        ),
        (
            "key with a leading /",
            "/hostile/absolute.jpg".to_owned(),
            jpeg.to_vec(),
            Processed,
        ),
        (
            "key with backslashes",
            "hostile\\..\\..\\windows.jpg".to_owned(),
            jpeg.to_vec(),
            Processed,
        ),
        (
            "key with control characters",
            "hostile/ctl\u{1}\u{1b}[31m\u{7f}.jpg".to_owned(),
            jpeg.to_vec(),
            Processed,
        ),
        (
            "key with .. and a broken body",
            "hostile/../broken.jpg".to_owned(),
            jpeg[..jpeg.len() / 2].to_vec(),
            Quarantined("InvalidImage"),
        ),
        ("1,024-byte key", max, jpeg.to_vec(), Processed),
    ]
}

/// Where Pillow's test images are unpacked: `.pipeline/cache/pillow-<version>/images`.
pub fn pillow_cache(workspace: &Path) -> PathBuf {
    workspace
        .join(".pipeline/cache")
        .join(format!("pillow-{PILLOW_VERSION}"))
}

/// Pillow's `Tests/images`, downloaded (its PyPI sdist, `pip download --no-binary :all:`)
/// and unpacked into the cache on first use. Returns the images folder.
pub fn pillow_images(workspace: &Path) -> Result<PathBuf> {
    let cache = pillow_cache(workspace);
    let images = cache.join("images");
    if images.join("decompression_bomb.gif").is_file() {
        return Ok(images);
    }
    std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let sdist = cache.join(format!("pillow-{PILLOW_VERSION}.tar.gz"));
    if !sdist.is_file() {
        let python = std::env::var("PIPELINE_PYTHON").unwrap_or_else(|_| "python3".into());
        eprintln!("hostile: downloading the Pillow {PILLOW_VERSION} sdist for its test images...");
        let status = Command::new(&python)
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(["--no-binary", ":all:", "--no-deps", "--dest"])
            .arg(&cache)
            .arg(format!("pillow=={PILLOW_VERSION}"))
            .status()
            .with_context(|| format!("running {python} -m pip download"))?;
        if !status.success() || !sdist.is_file() {
            bail!("`pip download --no-binary :all: --no-deps pillow=={PILLOW_VERSION}` failed ({status})");
        }
    }
    let unpacked = cache.join("unpacked");
    std::fs::create_dir_all(&unpacked)?;
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&sdist)
        .arg("-C")
        .arg(&unpacked)
        .arg("--wildcards")
        .arg(format!("pillow-{PILLOW_VERSION}/Tests/images/*"))
        .status()
        .context("running tar")?;
    if !status.success() {
        bail!("unpacking {} failed ({status})", sdist.display());
    }
    let from = unpacked.join(format!("pillow-{PILLOW_VERSION}/Tests/images"));
    std::fs::rename(&from, &images)
        .with_context(|| format!("moving {} to {}", from.display(), images.display()))?;
    let _ = std::fs::remove_dir_all(&unpacked);
    Ok(images)
}

/// Pillow's hostile images the end-to-end run uploads, with how each must end.
pub const PILLOW_CASES: [(&str, Expected); 8] = [
    // A 32 x 32 screen with a 65,535 x 65,535 frame whose data is cut short: Pillow
    // refuses it from the header; the GIF decoder here reaches the end of the file before
    // allocating the frame (the intact variant, `gif_declaring`, is TooLarge).
    (
        "decompression_bomb.gif",
        Expected::Quarantined("InvalidImage"),
    ),
    // A frame reaching outside its 100 x 100 screen: clipped to the screen, so bounded.
    ("decompression_bomb_extents.gif", Expected::Processed),
    ("broken.png", Expected::Quarantined("InvalidImage")),
    (
        "broken_data_stream.png",
        Expected::Quarantined("InvalidImage"),
    ),
    ("truncated_image.png", Expected::Quarantined("InvalidImage")),
    (
        "truncated_end_chunk.png",
        Expected::Quarantined("InvalidImage"),
    ),
    ("truncated_jpeg.jpg", Expected::Quarantined("InvalidImage")),
    ("exif_gps.jpg", Expected::Processed),
];
