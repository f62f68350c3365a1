//! Thumbnails carry no metadata: a photo with EXIF (orientation and GPS position) goes
//! through `render_thumbnails`, and no output holds an APP1 (EXIF/XMP) segment, nor any
//! APPn segment but JFIF, nor the GPS bytes. The orientation is applied to the pixels.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use image::codecs::jpeg::JpegEncoder;
use image::{ImageEncoder, RgbImage};
use pipeline_core::image_info::{read_header, ImageFormat};
use pipeline_core::transform::{render_thumbnails, TransformSpec};

/// Latitude 48° 51' 24.00" N as three big-endian RATIONALs: easy to find in a byte dump.
const LATITUDE: [u32; 6] = [48, 1, 51, 1, 2400, 100];
const LONGITUDE: [u32; 6] = [2, 1, 17, 1, 4000, 100];

/// A big-endian TIFF block as EXIF stores it: IFD0 with Orientation 6 and a pointer to a
/// GPS IFD holding latitude and longitude with their references.
fn exif_with_gps() -> Vec<u8> {
    fn entry(out: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]) {
        out.extend_from_slice(&tag.to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        out.extend_from_slice(&value);
    }
    const SHORT: u16 = 3;
    const LONG: u16 = 4;
    const ASCII: u16 = 2;
    const RATIONAL: u16 = 5;
    let gps_ifd: u32 = 8 + 2 + 2 * 12 + 4; // 38
    let lat_at: u32 = gps_ifd + 2 + 4 * 12 + 4; // 92
    let lon_at: u32 = lat_at + 24;
    let mut t = b"MM\x00\x2a\x00\x00\x00\x08".to_vec();
    t.extend_from_slice(&2u16.to_be_bytes());
    entry(&mut t, 0x0112, SHORT, 1, [0, 6, 0, 0]);
    entry(&mut t, 0x8825, LONG, 1, gps_ifd.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    assert_eq!(t.len() as u32, gps_ifd);
    t.extend_from_slice(&4u16.to_be_bytes());
    entry(&mut t, 0x0001, ASCII, 2, *b"N\0\0\0");
    entry(&mut t, 0x0002, RATIONAL, 3, lat_at.to_be_bytes());
    entry(&mut t, 0x0003, ASCII, 2, *b"E\0\0\0");
    entry(&mut t, 0x0004, RATIONAL, 3, lon_at.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    assert_eq!(t.len() as u32, lat_at);
    for v in LATITUDE.iter().chain(LONGITUDE.iter()) {
        t.extend_from_slice(&v.to_be_bytes());
    }
    t
}

fn latitude_bytes() -> Vec<u8> {
    LATITUDE.iter().flat_map(|v| v.to_be_bytes()).collect()
}

fn photo() -> RgbImage {
    RgbImage::from_fn(400, 200, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 100])
    })
}

fn jpeg_with_exif(exif: Vec<u8>) -> Vec<u8> {
    let img = photo();
    let mut out = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut out, 90);
    encoder.set_exif_metadata(exif).unwrap();
    encoder
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

/// A PNG with the same EXIF block in an `eXIf` chunk (after IHDR).
fn png_with_exif(exif: &[u8]) -> Vec<u8> {
    let mut png = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(photo())
        .write_to(&mut png, image::ImageFormat::Png)
        .unwrap();
    let png = png.into_inner();
    let mut chunk = (exif.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(b"eXIf");
    chunk.extend_from_slice(exif);
    let crc = crc32(&chunk[4..]);
    chunk.extend_from_slice(&crc.to_be_bytes());
    [&png[..33], &chunk[..], &png[33..]].concat()
}

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

/// The markers of a JPEG's segments before its scan (SOI to SOS).
fn header_markers(jpeg: &[u8]) -> Vec<u8> {
    assert_eq!(&jpeg[..2], [0xFF, 0xD8], "not a JPEG");
    let mut markers = Vec::new();
    let mut i = 2;
    while i + 4 <= jpeg.len() {
        assert_eq!(jpeg[i], 0xFF, "marker expected at {i}");
        let marker = jpeg[i + 1];
        markers.push(marker);
        if marker == 0xDA {
            break;
        }
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        i += 2 + len;
    }
    markers
}

fn assert_no_metadata(thumbnail: &[u8], what: &str) {
    let markers = header_markers(thumbnail);
    assert!(markers.contains(&0xDA), "{what}: no scan in {markers:02X?}");
    assert!(
        !markers.contains(&0xE1),
        "{what}: APP1 (EXIF/XMP) in {markers:02X?}"
    );
    assert!(
        markers.iter().all(|m| !(0xE1..=0xEF).contains(m)),
        "{what}: an APPn other than JFIF in {markers:02X?}"
    );
    assert!(
        !thumbnail.windows(6).any(|w| w == b"Exif\0\0"),
        "{what}: Exif bytes"
    );
    let lat = latitude_bytes();
    assert!(
        !thumbnail.windows(lat.len()).any(|w| w == lat),
        "{what}: GPS latitude bytes"
    );
}

fn spec() -> TransformSpec {
    TransformSpec {
        sizes: vec![256, 64],
        ..TransformSpec::default()
    }
}

#[test]
fn render_thumbnails_jpeg_with_exif_gps_outputs_carry_no_exif_or_gps() {
    let jpeg = jpeg_with_exif(exif_with_gps());
    // The fixture really carries the metadata, in an APP1 segment a decoder reads.
    assert!(header_markers(&jpeg).contains(&0xE1));
    assert!(jpeg
        .windows(latitude_bytes().len())
        .any(|w| w == latitude_bytes()));
    assert_eq!(
        read_header(&jpeg, ImageFormat::Jpeg).unwrap().orientation,
        6
    );

    let thumbs = render_thumbnails(&jpeg, ImageFormat::Jpeg, &spec()).unwrap();
    assert_eq!(thumbs.len(), 2);
    for t in &thumbs {
        assert_no_metadata(&t.bytes, &format!("{} px", t.size));
        // The orientation went into the pixels: 400x200 stored, displayed portrait.
        assert!(t.height > t.width, "{}x{}", t.width, t.height);
    }
}

#[test]
fn render_thumbnails_png_with_exif_chunk_outputs_carry_no_exif_or_gps() {
    let png = png_with_exif(&exif_with_gps());
    assert!(png.windows(4).any(|w| w == b"eXIf"));
    let thumbs = render_thumbnails(&png, ImageFormat::Png, &spec()).unwrap();
    for t in &thumbs {
        assert_no_metadata(&t.bytes, &format!("PNG -> {} px", t.size));
    }
}

#[test]
fn header_markers_sees_app1_when_present() {
    // The checker itself: a JPEG with EXIF must be reported, or the tests above prove nothing.
    let jpeg = jpeg_with_exif(exif_with_gps());
    let result = std::panic::catch_unwind(|| assert_no_metadata(&jpeg, "input"));
    assert!(result.is_err());
}
