//! The transform Lambda's image work on one local file, for `cargo xtask bench-transform`.
//!
//! `thumbnail render FILE OUTDIR SIZE...` runs exactly what the transform function runs
//! (`sniff`, then `render_thumbnails` with the default spec and the given sizes) and writes
//! `OUTDIR/<size>.jpg`; one process per file, so the caller can measure its time and peak
//! RSS. `thumbnail quality ORIGINAL CANDIDATE...` prints the PSNR of each candidate
//! thumbnail against a reference made independently of the pipeline's code path: a full
//! decode by the `image` crate, EXIF orientation applied, then the `image` crate's
//! Lanczos3 resize to the candidate's dimensions.

use std::collections::HashMap;
use std::error::Error;
use std::path::Path;

use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};
use pipeline_core::sniff::{sniff, Sniffed};
use pipeline_core::transform::{render_thumbnails, TransformSpec};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("render") if args.len() >= 4 => render(&args[1], &args[2], &args[3..]),
        Some("quality") if args.len() >= 3 => quality(&args[1], &args[2..]),
        _ => Err(
            "usage: thumbnail render FILE OUTDIR SIZE... | thumbnail quality ORIGINAL CANDIDATE..."
                .into(),
        ),
    }
}

fn render(file: &str, out_dir: &str, sizes: &[String]) -> Result<()> {
    let bytes = std::fs::read(file)?;
    let Sniffed::Image(format) = sniff(&bytes) else {
        return Err(format!("{file}: not a supported image").into());
    };
    let spec = TransformSpec {
        sizes: sizes
            .iter()
            .map(|s| s.parse())
            .collect::<std::result::Result<_, _>>()?,
        ..TransformSpec::default()
    };
    let thumbnails = render_thumbnails(&bytes, format, &spec)?;
    for t in thumbnails {
        let path = Path::new(out_dir).join(format!("{}.jpg", t.size));
        std::fs::write(&path, &t.bytes)?;
        println!(
            "{} {}x{} {} bytes",
            t.size,
            t.width,
            t.height,
            t.bytes.len()
        );
    }
    Ok(())
}

fn quality(original: &str, candidates: &[String]) -> Result<()> {
    let mut decoder = ImageReader::open(original)?
        .with_guessed_format()?
        .into_decoder()?;
    let orientation = decoder.orientation()?;
    let mut full = DynamicImage::from_decoder(decoder)?;
    full.apply_orientation(orientation);
    let full = full.into_rgb8();
    let mut references: HashMap<(u32, u32), RgbImage> = HashMap::new();
    for candidate in candidates {
        let thumb = image::open(candidate)?.into_rgb8();
        let dims = thumb.dimensions();
        let reference = references.entry(dims).or_insert_with(|| {
            image::imageops::resize(&full, dims.0, dims.1, FilterType::Lanczos3)
        });
        println!("{candidate} {:.2}", psnr(reference, &thumb));
    }
    Ok(())
}

/// PSNR over the RGB channels, in dB (99 for identical images).
fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    let (sum, n) = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .fold((0f64, 0usize), |(s, n), (x, y)| {
            let d = f64::from(*x) - f64::from(*y);
            (s + d * d, n + 1)
        });
    if sum == 0.0 || n == 0 {
        return 99.0;
    }
    10.0 * (255.0 * 255.0 / (sum / n as f64)).log10()
}
