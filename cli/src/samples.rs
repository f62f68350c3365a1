//! Built-in demo samples, generated in memory: one per supported format, an EXIF-rotated
//! photo, and one corrupt file that must end in quarantine.

use std::io::Cursor;

use anyhow::Result;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use pipeline_core::transform::encode_jpeg_with_orientation;

/// `(key, bytes)` for every sample.
pub fn samples() -> Result<Vec<(String, Vec<u8>)>> {
    let landscape = scene(1600, 1000);
    let sunset = encode(
        &DynamicImage::ImageRgb8(landscape.clone()),
        ImageFormat::Jpeg,
    )?;
    let mut broken = sunset.clone();
    broken.truncate(sunset.len() / 2);
    Ok(vec![
        ("samples/sunset.jpg".into(), sunset),
        (
            "samples/portrait (rotated).jpg".into(),
            encode_jpeg_with_orientation(&scene(1200, 800), 6, 88)?,
        ),
        (
            "samples/logo+alpha.png".into(),
            encode(&DynamicImage::ImageRgba8(logo(512)), ImageFormat::Png)?,
        ),
        (
            "samples/pattern.webp".into(),
            encode(&DynamicImage::ImageRgb8(scene(800, 600)), ImageFormat::WebP)?,
        ),
        (
            "samples/frame.gif".into(),
            encode(&DynamicImage::ImageRgb8(scene(320, 240)), ImageFormat::Gif)?,
        ),
        ("samples/broken.jpg".into(), broken),
    ])
}

fn scene(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let sky = y < h * 3 / 5;
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        if sky {
            Rgb([
                (255.0 * (0.6 + 0.4 * fy)) as u8,
                (120.0 + 100.0 * fx) as u8,
                (180.0 * (1.0 - fy)) as u8,
            ])
        } else {
            Rgb([
                (30.0 + 40.0 * fx) as u8,
                (90.0 + 60.0 * (1.0 - fy)) as u8,
                40,
            ])
        }
    })
}

fn logo(size: u32) -> RgbaImage {
    let c = size as f32 / 2.0;
    RgbaImage::from_fn(size, size, |x, y| {
        let d = ((x as f32 - c).powi(2) + (y as f32 - c).powi(2)).sqrt();
        if d < c * 0.8 {
            Rgba([20, 110, 220, 255])
        } else {
            Rgba([0, 0, 0, 0])
        }
    })
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Result<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format)?;
    Ok(out.into_inner())
}

/// One version of a load run's object `index`: a 320x200 JPEG whose red channel is
/// `shade` everywhere (so a thumbnail shows which version it came from), or that JPEG cut
/// in half, which must end in quarantine.
pub fn load_image(index: usize, shade: u8, truncated: bool) -> Result<Vec<u8>> {
    let mark = (index % 251) as u8;
    let img = RgbImage::from_fn(320, 200, |x, y| {
        Rgb([
            shade,
            (x * 255 / 320) as u8,
            (y as u8).wrapping_mul(3) ^ mark,
        ])
    });
    let mut jpeg = encode(&DynamicImage::ImageRgb8(img), ImageFormat::Jpeg)?;
    if truncated {
        jpeg.truncate(jpeg.len() / 2);
    }
    Ok(jpeg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline_core::sniff::{sniff, Sniffed};

    #[test]
    fn samples_have_one_of_each_format_and_one_broken_file() {
        let s = samples().unwrap();
        assert_eq!(s.len(), 6);
        let images = s
            .iter()
            .filter(|(_, b)| matches!(sniff(b), Sniffed::Image(_)))
            .count();
        assert_eq!(
            images, 6,
            "the broken file still sniffs as JPEG: it fails at decoding"
        );
        let broken = &s.iter().find(|(k, _)| k.ends_with("broken.jpg")).unwrap().1;
        let err = pipeline_core::image_info::read_header(
            broken,
            pipeline_core::image_info::ImageFormat::Jpeg,
        )
        .unwrap_err();
        assert_eq!(
            err.name(),
            "InvalidImage",
            "the demo counts on exactly one quarantine"
        );
    }

    #[test]
    fn load_image_keeps_its_shade_and_truncated_ones_are_invalid() {
        for (index, shade) in [(0, 16), (7, 111), (7, 239), (250, 144)] {
            let img = image::load_from_memory(&load_image(index, shade, false).unwrap())
                .unwrap()
                .to_rgb8();
            assert_eq!(img.dimensions(), (320, 200));
            let mean = img.pixels().map(|p| f64::from(p.0[0])).sum::<f64>() / f64::from(320 * 200);
            assert!((mean - f64::from(shade)).abs() < 8.0, "{shade}: {mean}");
            let broken = load_image(index, shade, true).unwrap();
            let err = pipeline_core::image_info::read_header(
                &broken,
                pipeline_core::image_info::ImageFormat::Jpeg,
            )
            .unwrap_err();
            assert_eq!(err.name(), "InvalidImage");
        }
        assert_ne!(
            load_image(1, 20, false).unwrap(),
            load_image(2, 20, false).unwrap()
        );
    }
}
