//! Fuzz target: header reading and thumbnail rendering of arbitrary bytes, each format.
//!
//! The format is the sniffed one when the bytes carry an image signature, otherwise the
//! first byte picks one, so every decoder also sees input without a valid signature.
//! Limits are small (1 MP, 64 MiB decoder allocations) so a run explores many inputs; the
//! invariants are: no panic, no allocation past libFuzzer's limit, no hang (libFuzzer's
//! timeout), and every thumbnail fits its size and is a JPEG.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipeline_core::image_info::{read_header, ImageFormat};
use pipeline_core::sniff::{sniff, Sniffed};
use pipeline_core::transform::{render_thumbnails, TransformSpec};

const FORMATS: [ImageFormat; 4] = [
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::Gif,
    ImageFormat::Webp,
];

fuzz_target!(|data: &[u8]| {
    let format = match sniff(data) {
        Sniffed::Image(format) => format,
        Sniffed::Other(_) => match data.first() {
            Some(b) => FORMATS[usize::from(*b) % FORMATS.len()],
            None => return,
        },
    };
    let spec = TransformSpec {
        sizes: vec![64, 16],
        max_pixels: 1_000_000,
        max_alloc_bytes: 64 * 1024 * 1024,
        jpeg_quality: 75,
    };
    let header = read_header(data, format);
    if let Ok(thumbnails) = render_thumbnails(data, format, &spec) {
        assert!(
            header.is_ok(),
            "rendered what read_header rejected: {header:?}"
        );
        for t in thumbnails {
            assert!(t.width >= 1 && t.height >= 1, "{}x{}", t.width, t.height);
            assert!(
                t.width.max(t.height) <= t.size,
                "{}x{} for {}",
                t.width,
                t.height,
                t.size
            );
            assert!(t.bytes.starts_with(&[0xFF, 0xD8, 0xFF]), "not a JPEG");
        }
    }
});
