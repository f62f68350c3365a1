//! JPEG through libjpeg-turbo: DCT-domain scaled decoding (so one decode serves every
//! thumbnail size), DC-only decoding of progressive files at 1/8 scale, and the encoder.
//!
//! CPU work over bytes in memory, like the rest of core. The C library is statically
//! linked by the `turbojpeg` crate, whose safe API is all this module calls.

use turbojpeg::{Colorspace, Compressor, Decompressor, Image, PixelFormat, ScalingFactor, Subsamp};

use crate::error::PipelineError;

/// Progressive files with more scans than this are rejected: each scan makes the decoder
/// walk every block, so thousands of tiny scans make a cheap file very slow to decode.
/// Encoders write at most a few dozen (libjpeg's default script has 10, mozjpeg's ~10-20).
pub const MAX_PROGRESSIVE_SCANS: u32 = 500;

/// What the JPEG header declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JpegHeader {
    pub width: u32,
    pub height: u32,
    pub progressive: bool,
    subsamp: Subsamp,
    colorspace: Colorspace,
}

impl JpegHeader {
    /// Bytes libjpeg holds while decoding: a multi-scan (progressive) file keeps every DCT
    /// coefficient of the image (2 bytes each) until the last scan; a baseline file only a
    /// few rows. An upper-bound estimate, checked against the allocation limit up front.
    pub fn decoder_bytes(&self) -> u64 {
        if !self.progressive {
            return 0;
        }
        let pixels = u64::from(self.width) * u64::from(self.height);
        // Coefficient samples per pixel, in quarters (luma = 4/4, each 4:2:0 chroma = 1/4).
        let quarters: u64 = match (self.colorspace, self.subsamp) {
            (Colorspace::Gray, _) => 4,
            (Colorspace::CMYK | Colorspace::YCCK, _) => 16,
            (_, Subsamp::Sub2x2) => 4 + 2,
            (_, Subsamp::Sub2x1 | Subsamp::Sub1x2) => 4 + 4,
            (_, Subsamp::Sub4x1 | Subsamp::Sub1x4) => 4 + 2,
            _ => 12,
        };
        // Round blocks up (an image is padded to whole MCUs of up to 16x16 pixels).
        let padded = (u64::from(self.width) + 16) * (u64::from(self.height) + 16);
        pixels.max(padded) * quarters * 2 / 4
    }
}

/// An RGB8 bitmap, rows packed (`width * 3` bytes each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RgbBitmap {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

fn tj_error(what: &str) -> impl Fn(turbojpeg::Error) -> PipelineError + '_ {
    move |e| PipelineError::invalid_image(format!("{what}: {e}"))
}

pub(crate) fn read_header(jpeg: &[u8]) -> Result<JpegHeader, PipelineError> {
    let header = Decompressor::new()
        .and_then(|mut d| d.read_header(jpeg))
        .map_err(tj_error("reading the JPEG header"))?;
    let dim =
        |v: usize| u32::try_from(v).map_err(|_| PipelineError::invalid_image("JPEG dimension"));
    Ok(JpegHeader {
        width: dim(header.width)?,
        height: dim(header.height)?,
        progressive: header.is_progressive,
        subsamp: header.subsamp,
        colorspace: header.colorspace,
    })
}

/// The scale `n/8`, `n` one of 1, 2, 4 or 8, with the smallest `n` whose decoded image
/// still covers `target` (width, height); libjpeg rounds scaled dimensions up. Never
/// upscales. Only powers of two: libjpeg-turbo has SIMD inverse DCTs for those, and
/// measured against a Lanczos reference its 3/8, 5/8, ... outputs resize worse than the
/// next power of two (and are slower to make).
pub fn scale_eighths(width: u32, height: u32, target: (u32, u32)) -> u32 {
    let scaled = |d: u32, n: u32| (u64::from(d) * u64::from(n)).div_ceil(8);
    [1, 2, 4]
        .into_iter()
        .find(|&n| {
            scaled(width, n) >= u64::from(target.0) && scaled(height, n) >= u64::from(target.1)
        })
        .unwrap_or(8)
}

/// Decodes `jpeg` at `n/8` of its size (`n` from [`scale_eighths`]) into RGB8. A
/// progressive file decoded at 1/8 reads only its DC scans (see [`dc_scans_only`]).
pub(crate) fn decode_scaled(
    jpeg: &[u8],
    header: &JpegHeader,
    eighths: u32,
) -> Result<RgbBitmap, PipelineError> {
    let n = eighths.clamp(1, 8) as usize;
    let g = gcd(n, 8);
    let factor = ScalingFactor::new(n / g, 8 / g);
    let pruned = if n == 1 && header.progressive {
        dc_scans_only(jpeg)
    } else {
        None
    };
    let data = pruned.as_deref().unwrap_or(jpeg);
    let mut decompressor = Decompressor::new().map_err(tj_error("JPEG decoder"))?;
    decompressor
        .set_scaling_factor(factor)
        .map_err(tj_error("JPEG scaling"))?;
    decompressor
        .set_scan_limit(MAX_PROGRESSIVE_SCANS)
        .map_err(tj_error("JPEG scan limit"))?;
    let width = factor.scale(header.width as usize);
    let height = factor.scale(header.height as usize);
    let len = width
        .checked_mul(height)
        .and_then(|p| p.checked_mul(3))
        .ok_or_else(|| PipelineError::invalid_image("JPEG dimensions overflow"))?;
    let mut pixels = vec![0u8; len];
    decompressor
        .decompress(
            data,
            Image {
                pixels: pixels.as_mut_slice(),
                width,
                pitch: width * 3,
                height,
                format: PixelFormat::RGB,
            },
        )
        .map_err(tj_error("decoding JPEG"))?;
    let dim =
        |v: usize| u32::try_from(v).map_err(|_| PipelineError::invalid_image("JPEG dimension"));
    Ok(RgbBitmap {
        width: dim(width)?,
        height: dim(height)?,
        pixels,
    })
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Encodes an RGB8 bitmap as a baseline 4:2:0 JPEG with a JFIF header and nothing else (no
/// EXIF or other metadata).
pub(crate) fn encode(
    pixels: &[u8],
    width: u32,
    height: u32,
    quality: u8,
) -> Result<Vec<u8>, PipelineError> {
    let (w, h) = (width as usize, height as usize);
    if pixels.len() < w * h * 3 {
        return Err(PipelineError::invalid_image("thumbnail buffer too small"));
    }
    let mut compressor = Compressor::new().map_err(tj_error("JPEG encoder"))?;
    compressor
        .set_quality(i32::from(quality.clamp(1, 100)))
        .map_err(tj_error("JPEG quality"))?;
    compressor
        .set_subsamp(Subsamp::Sub2x2)
        .map_err(tj_error("JPEG subsampling"))?;
    compressor
        .compress_to_vec(Image {
            pixels,
            width: w,
            pitch: w * 3,
            height: h,
            format: PixelFormat::RGB,
        })
        .map_err(tj_error("encoding thumbnail"))
}

/// A progressive JPEG reduced to what a 1/8-scale decode reads. At 1/8 libjpeg makes
/// one pixel per 8x8 block from its DC coefficient alone, so the AC scans of such
/// components (luma always; nearly all of the file) are dropped with their entropy-coded
/// data and need not be Huffman-decoded. Components whose 1/8 output does use AC
/// coefficients (4:2:0 chroma, see [`FrameComponent`]) keep all their scans. `None` if
/// `jpeg` is not a well-formed progressive JPEG (the caller then decodes it as it is).
///
/// In place of the dropped scans go tiny ones declaring those AC coefficients zero (see
/// [`zero_ac_scans`]). Without them libjpeg would see AC data as missing and run its block
/// smoothing, which guesses AC (and re-filters DC) from 5x5 neighbourhoods of blocks:
/// slower, and a different picture. With them the 1/8 output is exactly that of the
/// whole file (tested).
pub fn dc_scans_only(jpeg: &[u8]) -> Option<Vec<u8>> {
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut out = Vec::with_capacity(jpeg.len() / 4);
    out.extend_from_slice(&jpeg[..2]);
    let mut frame: Option<&[u8]> = None;
    let mut i = 2;
    loop {
        // A marker: 0xFF (fill bytes allowed), then its code.
        if *jpeg.get(i)? != 0xFF {
            return None;
        }
        while jpeg.get(i) == Some(&0xFF) {
            i += 1;
        }
        let marker = *jpeg.get(i)?;
        i += 1;
        match marker {
            0xD9 => {
                out.extend_from_slice(&zero_ac_scans(frame?)?);
                out.extend_from_slice(&[0xFF, 0xD9]);
                return Some(out);
            }
            0x01 | 0xD0..=0xD7 => {
                out.extend_from_slice(&[0xFF, marker]);
                continue;
            }
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([*jpeg.get(i)?, *jpeg.get(i + 1)?]));
        if len < 2 {
            return None;
        }
        let segment = jpeg.get(i..i + len)?;
        let end = i + len;
        match marker {
            // Progressive Huffman frame; any other frame type is not for us.
            0xC2 => frame = Some(segment),
            0xC0 | 0xC1 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return None,
            _ => {}
        }
        if marker != 0xDA {
            out.extend_from_slice(&[0xFF, marker]);
            out.extend_from_slice(segment);
            i = end;
            continue;
        }
        // SOS: length, component count, 2 bytes per component, then Ss, Se, Ah/Al.
        let components = frame_components(frame?)?;
        let count = usize::from(*segment.get(2)?);
        let spectral_start = *segment.get(3 + 2 * count)?;
        let needs_ac = (0..count).any(|c| {
            let id = segment.get(3 + 2 * c);
            components
                .iter()
                .any(|comp| Some(&comp.id) == id && comp.ac_used_at_one_eighth)
        });
        let data_end = entropy_data_end(jpeg, end)?;
        if spectral_start == 0 || needs_ac {
            out.extend_from_slice(&[0xFF, marker]);
            out.extend_from_slice(jpeg.get(i..data_end)?);
        }
        i = data_end;
    }
}

/// One component of a frame, as the SOF segment declares it.
struct FrameComponent {
    id: u8,
    /// Size of the component in 8x8 blocks (one block per MCU in a single-component scan).
    blocks: u64,
    /// Whether libjpeg's 1/8-scale output of this component uses AC coefficients. It
    /// scales a subsampled chroma component up in the IDCT instead of upsampling it when
    /// the sampling factors allow (4:2:0 chroma gets a 2x2 IDCT; jdmaster.c), and a 2x2
    /// IDCT reads the lowest AC coefficients.
    ac_used_at_one_eighth: bool,
}

/// The components of the frame `sof` (the SOF segment from its length on).
fn frame_components(sof: &[u8]) -> Option<Vec<FrameComponent>> {
    let height = u64::from(u16::from_be_bytes([*sof.get(3)?, *sof.get(4)?]));
    let width = u64::from(u16::from_be_bytes([*sof.get(5)?, *sof.get(6)?]));
    let count = usize::from(*sof.get(7)?);
    let raw: Vec<(u8, u64, u64)> = (0..count)
        .map(|c| {
            let at = 8 + 3 * c;
            let sampling = *sof.get(at + 1)?;
            Some((
                *sof.get(at)?,
                u64::from(sampling >> 4),
                u64::from(sampling & 15),
            ))
        })
        .collect::<Option<_>>()?;
    let h_max = raw.iter().map(|c| c.1).max()?;
    let v_max = raw.iter().map(|c| c.2).max()?;
    if raw.iter().any(|c| c.1 == 0 || c.2 == 0) {
        return None;
    }
    Some(
        raw.into_iter()
            .map(|(id, h, v)| FrameComponent {
                id,
                blocks: (width * h).div_ceil(h_max).div_ceil(8)
                    * (height * v).div_ceil(v_max).div_ceil(8),
                ac_used_at_one_eighth: h_max % (h * 2) == 0 && v_max % (v * 2) == 0,
            })
            .collect(),
    )
}

/// For the progressive frame `sof`: no restart interval, a Huffman table of end-of-band
/// runs, and for each component whose AC scans were dropped one AC scan (coefficients
/// 1-63, full precision) whose data is end-of-band runs covering every block: its AC
/// coefficients are declared known and zero.
fn zero_ac_scans(sof: &[u8]) -> Option<Vec<u8>> {
    const TABLE: u8 = 0x13; // class 1 (AC), id 3
    let mut out = vec![0xFF, 0xDD, 0x00, 0x04, 0x00, 0x00];
    // 15 symbols EOB0..EOB14 (run 2^r plus r extra bits), each a 4-bit code equal to r.
    out.extend_from_slice(&[0xFF, 0xC4, 0x00, 2 + 1 + 16 + 15, TABLE]);
    out.extend_from_slice(&[0, 0, 0, 15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend((0..15u8).map(|r| r << 4));
    for component in frame_components(sof)? {
        if component.ac_used_at_one_eighth {
            continue;
        }
        out.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 0x01, component.id, TABLE, 1, 63, 0]);
        let mut blocks = component.blocks;
        let mut bits = BitWriter::default();
        while blocks > 0 {
            let run = blocks.min(0x7FFF);
            let r = 63 - run.leading_zeros(); // floor(log2(run)), at most 14
            bits.put(r, 4);
            bits.put((run - (1 << r)) as u32, r);
            blocks -= run;
        }
        out.extend_from_slice(&bits.finish());
    }
    Some(out)
}

/// Entropy-coded bits, most significant first, 0xFF bytes stuffed with 0x00, padded with
/// one-bits.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    acc: u32,
    filled: u32,
}

impl BitWriter {
    fn put(&mut self, value: u32, count: u32) {
        for shift in (0..count).rev() {
            self.acc = (self.acc << 1) | ((value >> shift) & 1);
            self.filled += 1;
            if self.filled == 8 {
                self.push_byte();
            }
        }
    }

    fn push_byte(&mut self) {
        let byte = (self.acc & 0xFF) as u8;
        self.bytes.push(byte);
        if byte == 0xFF {
            self.bytes.push(0x00);
        }
        self.acc = 0;
        self.filled = 0;
    }

    fn finish(mut self) -> Vec<u8> {
        while self.filled != 0 {
            self.put(1, 1);
        }
        self.bytes
    }
}

/// The index of the marker that ends the entropy-coded data starting at `start`: the first
/// 0xFF not followed by a stuffed 0x00, a restart marker (RST0-7) or a fill byte.
fn entropy_data_end(jpeg: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    loop {
        let offset = jpeg.get(i..)?.iter().position(|&b| b == 0xFF)?;
        i += offset;
        let mut j = i + 1;
        while jpeg.get(j) == Some(&0xFF) {
            j += 1;
        }
        match *jpeg.get(j)? {
            0x00 | 0xD0..=0xD7 => i = j + 1,
            _ => return Some(i),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::tests::gradient;

    fn turbo_jpeg(w: u32, h: u32, progressive: bool, subsamp: Subsamp) -> Vec<u8> {
        let img = gradient(w, h);
        let mut c = Compressor::new().unwrap();
        c.set_quality(90).unwrap();
        c.set_subsamp(subsamp).unwrap();
        c.set_progressive(progressive).unwrap();
        c.compress_to_vec(Image {
            pixels: img.as_raw().as_slice(),
            width: w as usize,
            pitch: w as usize * 3,
            height: h as usize,
            format: PixelFormat::RGB,
        })
        .unwrap()
    }

    #[test]
    fn scale_eighths_table() {
        let cases = [
            // (image, target) -> smallest n/8 covering the target
            ((6000, 4000, (1024, 683)), 2),
            ((4224, 3168, (1024, 768)), 2),
            ((3840, 2400, (1024, 640)), 4),
            ((6000, 4000, (2048, 1365)), 4),
            ((6000, 4000, (256, 171)), 1),
            ((1000, 800, (1000, 800)), 8),
            ((1025, 1025, (1024, 1024)), 8),
            ((2048, 2048, (1024, 1024)), 4),
            ((8, 8, (1, 1)), 1),
        ];
        for ((w, h, target), expected) in cases {
            assert_eq!(
                scale_eighths(w, h, target),
                expected,
                "{w}x{h} -> {target:?}"
            );
        }
    }

    #[test]
    fn decode_scaled_every_eighth_covers_the_declared_size() {
        let jpeg = turbo_jpeg(203, 101, false, Subsamp::Sub2x2);
        let header = read_header(&jpeg).unwrap();
        for n in 1..=8 {
            let bitmap = decode_scaled(&jpeg, &header, n).unwrap();
            assert_eq!(
                (bitmap.width, bitmap.height),
                ((203 * n).div_ceil(8), (101 * n).div_ceil(8)),
                "{n}/8"
            );
            assert_eq!(
                bitmap.pixels.len(),
                (bitmap.width * bitmap.height * 3) as usize
            );
        }
    }

    fn decode_eighth(data: &[u8]) -> Vec<u8> {
        let mut d = Decompressor::new().unwrap();
        d.set_scaling_factor(ScalingFactor::ONE_EIGHTH).unwrap();
        let h = d
            .read_header(data)
            .unwrap()
            .scaled(ScalingFactor::ONE_EIGHTH);
        let mut out = vec![0u8; h.width * h.height * 3];
        d.decompress(
            data,
            Image {
                pixels: out.as_mut_slice(),
                width: h.width,
                pitch: h.width * 3,
                height: h.height,
                format: PixelFormat::RGB,
            },
        )
        .unwrap();
        out
    }

    #[test]
    fn dc_scans_only_decodes_at_one_eighth_exactly_like_the_whole_file() {
        // Odd sizes, every subsampling, and one image with more blocks than one
        // end-of-band run can cover (32767).
        let cases = [
            (640, 480, Subsamp::Sub2x2),
            (203, 101, Subsamp::Sub2x1),
            (333, 517, Subsamp::None),
            (100, 75, Subsamp::Gray),
            (2000, 1200, Subsamp::Sub2x2),
        ];
        for (w, h, subsamp) in cases {
            let jpeg = turbo_jpeg(w, h, true, subsamp);
            let dc = dc_scans_only(&jpeg).unwrap();
            assert!(dc.len() < jpeg.len(), "{w}x{h} {subsamp:?}");
            assert_eq!(read_header(&dc).unwrap(), read_header(&jpeg).unwrap());
            assert!(
                decode_eighth(&dc) == decode_eighth(&jpeg),
                "{w}x{h} {subsamp:?}: 1/8 pixels differ"
            );
        }
        // decode_scaled takes that path at 1/8.
        let jpeg = turbo_jpeg(640, 480, true, Subsamp::Sub2x2);
        let header = read_header(&jpeg).unwrap();
        let eighth = decode_scaled(&jpeg, &header, 1).unwrap();
        assert_eq!(eighth.pixels, decode_eighth(&jpeg));
    }

    #[test]
    fn dc_scans_only_baseline_or_garbage_is_none() {
        assert_eq!(
            dc_scans_only(&turbo_jpeg(64, 64, false, Subsamp::None)),
            None
        );
        assert_eq!(dc_scans_only(b"\xFF\xD8\xFF"), None);
        assert_eq!(dc_scans_only(b""), None);
        let jpeg = turbo_jpeg(64, 64, true, Subsamp::None);
        assert_eq!(dc_scans_only(&jpeg[..jpeg.len() - 10]), None);
    }

    #[test]
    fn decoder_bytes_progressive_420_is_three_bytes_per_pixel() {
        let jpeg = turbo_jpeg(64, 64, true, Subsamp::Sub2x2);
        let mut header = read_header(&jpeg).unwrap();
        header.width = 6000;
        header.height = 4000;
        let bytes = header.decoder_bytes();
        assert!((72_000_000..74_000_000).contains(&bytes), "{bytes}");
        header.progressive = false;
        assert_eq!(header.decoder_bytes(), 0);
    }

    #[test]
    fn encode_writes_no_metadata_beyond_jfif() {
        let img = gradient(64, 48);
        let jpeg = encode(img.as_raw(), 64, 48, 85).unwrap();
        assert!(jpeg.starts_with(&[0xFF, 0xD8, 0xFF, 0xE0]));
        assert!(!jpeg.windows(6).any(|w| w == b"Exif\0\0"));
        assert!(encode(&[0u8; 10], 64, 48, 85).is_err());
    }
}
