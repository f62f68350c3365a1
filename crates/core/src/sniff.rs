//! Content sniffing: what an object really is, from its first bytes alone.
//!
//! File extensions and Content-Type headers are never trusted: an allowlist of image
//! signatures decides. Everything else gets a description for the quarantine report.

use crate::image_info::ImageFormat;

/// How many leading bytes sniffing needs (the ranged read in `inspect`).
pub const SNIFF_BYTES: usize = 64;

/// The verdict of sniffing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// An allowed image format.
    Image(ImageFormat),
    /// Anything else, with a short description of what it looks like.
    Other(&'static str),
}

impl Sniffed {
    pub fn description(&self) -> &'static str {
        match self {
            Sniffed::Image(f) => f.description(),
            Sniffed::Other(d) => d,
        }
    }
}

/// Decides what `head` (the first bytes of an object) is.
pub fn sniff(head: &[u8]) -> Sniffed {
    if head.is_empty() {
        return Sniffed::Other("empty object");
    }
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Sniffed::Image(ImageFormat::Jpeg);
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Sniffed::Image(ImageFormat::Png);
    }
    if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        return Sniffed::Image(ImageFormat::Gif);
    }
    if head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP" {
        return Sniffed::Image(ImageFormat::Webp);
    }
    Sniffed::Other(describe_other(head))
}

fn describe_other(head: &[u8]) -> &'static str {
    const SIGNATURES: &[(&[u8], &str)] = &[
        (b"%PDF-", "PDF document"),
        (b"PK\x03\x04", "ZIP archive"),
        (b"\x1f\x8b", "gzip archive"),
        (b"II*\x00", "TIFF image (not allowed)"),
        (b"MM\x00*", "TIFF image (not allowed)"),
        (b"BM", "BMP image (not allowed)"),
        (b"\x7fELF", "ELF executable"),
        (b"#!", "script"),
    ];
    for (sig, what) in SIGNATURES {
        if head.starts_with(sig) {
            return what;
        }
    }
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        return "ISO media file (HEIC/AVIF/MP4, not allowed)";
    }
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with("<svg") || (trimmed.starts_with("<?xml") && text.contains("<svg")) {
        return "SVG document";
    }
    if trimmed.starts_with("<!doctype html") || trimmed.starts_with("<html") {
        return "HTML document";
    }
    if trimmed.starts_with("<?xml") {
        return "XML document";
    }
    if head
        .iter()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        return "text";
    }
    "unrecognised binary data"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(head: &[u8], expected: Sniffed) {
        assert_eq!(sniff(head), expected, "sniffing {head:?}");
    }

    #[test]
    fn sniff_table() {
        use ImageFormat::*;
        check(b"\xFF\xD8\xFF\xE0\x00\x10JFIF", Sniffed::Image(Jpeg));
        check(b"\xFF\xD8\xFF\xE1\x00\x10Exif", Sniffed::Image(Jpeg));
        check(b"\x89PNG\r\n\x1a\n\x00\x00", Sniffed::Image(Png));
        check(b"GIF89a\x01\x00", Sniffed::Image(Gif));
        check(b"GIF87a\x01\x00", Sniffed::Image(Gif));
        check(b"RIFF\x24\x00\x00\x00WEBPVP8 ", Sniffed::Image(Webp));
        check(
            b"RIFF\x24\x00\x00\x00WAVEfmt ",
            Sniffed::Other("unrecognised binary data"),
        );
        check(b"", Sniffed::Other("empty object"));
        check(b"hello, this is not a jpeg\n", Sniffed::Other("text"));
        check(b"<!DOCTYPE html><html>", Sniffed::Other("HTML document"));
        check(b"  <html><body>", Sniffed::Other("HTML document"));
        check(
            b"<svg xmlns=\"http://www.w3.org/2000/svg\">",
            Sniffed::Other("SVG document"),
        );
        check(
            b"<?xml version=\"1.0\"?><svg>",
            Sniffed::Other("SVG document"),
        );
        check(b"#!/bin/sh\nrm -rf /", Sniffed::Other("script"));
        check(b"%PDF-1.7\n", Sniffed::Other("PDF document"));
        check(
            b"\x00\x00\x00\x18ftypheic",
            Sniffed::Other("ISO media file (HEIC/AVIF/MP4, not allowed)"),
        );
        check(b"\xFF\xD8", Sniffed::Other("unrecognised binary data"));
        check(b"\x89PNG", Sniffed::Other("unrecognised binary data"));
    }

    #[test]
    fn sniff_extension_is_irrelevant_only_bytes_count() {
        // The same bytes give the same answer whatever the object is called: sniff never sees a name.
        assert_eq!(sniff(b"GIF89a"), Sniffed::Image(ImageFormat::Gif));
    }
}
