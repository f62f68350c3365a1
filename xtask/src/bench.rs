//! `cargo xtask bench-transform`: the transform's speed, memory and quality beside
//! vipsthumbnail and Pillow, side by side in one run; `cargo xtask bench-corpus`: the
//! documented corpus of real photos it is judged on.
//!
//! Every tool runs as its own process per image, as its users run it, wrapped in GNU
//! `time` for the peak RSS; wall time is measured here around the whole process. The
//! project side is `thumbnail render` (crates/core/examples/thumbnail.rs), which calls the
//! same `render_thumbnails` as the Lambda. vipsthumbnail is called once per size (its CLI
//! makes one size per call); Pillow opens once, `draft()`s to the largest size and
//! `thumbnail()`s each size from the previous one. All write JPEG quality 85 without
//! metadata. PSNR is against an independent reference: a full `image`-crate decode,
//! oriented, Lanczos3-resized to each thumbnail's dimensions.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// The Pillow venv, relative to the workspace root (ignored by git).
const VENV_DIR: &str = ".pipeline/venv-bench";
/// Pillow, pinned.
const PILLOW: &str = "pillow==12.0.0";
const QUALITY: u8 = 85;
const DEFAULT_SIZES: [u32; 2] = [1024, 256];
const MIN_REPEAT: usize = 5;

/// Pillow as its users make thumbnails: one open, `draft()` (JPEG DCT scaling) to the
/// largest size, EXIF orientation applied, then `thumbnail()` per size, largest first.
const PILLOW_SCRIPT: &str = r#"
import sys
from PIL import Image, ImageOps
src, out_dir, *sizes = sys.argv[1:]
sizes = sorted((int(s) for s in sizes), reverse=True)
with Image.open(src) as im:
    im.draft("RGB", (sizes[0], sizes[0]))
    im = ImageOps.exif_transpose(im).convert("RGB")
    for s in sizes:
        im.thumbnail((s, s))
        im.save(f"{out_dir}/{s}.jpg", quality=85)
"#;

pub const USAGE: &str = "  bench-transform --corpus DIR [--sizes 1024,256] [--repeat N]
                     time, peak RSS, bytes and PSNR of the transform beside vipsthumbnail
                     and Pillow on every image in DIR; ends with `ratio_vs_vips=.. ratio_vs_pillow=..`
  bench-corpus DIR   build the benchmark corpus (real photos from Debian packages) in DIR";

struct Options {
    corpus: PathBuf,
    sizes: Vec<u32>,
    repeat: usize,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut corpus = None;
    let mut sizes = DEFAULT_SIZES.to_vec();
    let mut repeat = MIN_REPEAT;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--corpus" => corpus = Some(PathBuf::from(value()?)),
            "--sizes" => {
                sizes = value()?
                    .split(',')
                    .map(|s| s.trim().parse::<u32>())
                    .collect::<Result<_, _>>()
                    .context("--sizes takes numbers like 1024,256")?;
            }
            "--repeat" => repeat = value()?.parse().context("--repeat takes a number")?,
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    let corpus = corpus.with_context(|| format!("--corpus DIR is required\n{USAGE}"))?;
    if sizes.is_empty() || sizes.contains(&0) || repeat == 0 {
        bail!("--sizes needs positive sizes and --repeat at least 1");
    }
    Ok(Options {
        corpus,
        sizes,
        repeat,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tool {
    Project,
    Vips,
    Pillow,
}

impl Tool {
    const ALL: [Tool; 3] = [Tool::Project, Tool::Vips, Tool::Pillow];
    fn name(self) -> &'static str {
        match self {
            Tool::Project => "project",
            Tool::Vips => "vips",
            Tool::Pillow => "pillow",
        }
    }
}

/// What one tool did on one file.
struct Run {
    times_ms: Vec<f64>,
    peak_rss_kb: u64,
    /// Per size: output bytes and PSNR.
    outputs: Vec<(u64, f64)>,
}

impl Run {
    fn median_ms(&self) -> f64 {
        median(&self.times_ms)
    }
}

struct Peers {
    thumbnail: PathBuf,
    python: PathBuf,
    script: PathBuf,
}

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let options = parse(args)?;
    let files = corpus_files(&options.corpus)?;
    let peers = prepare(root)?;
    let scratch = std::env::temp_dir().join(format!("bench-transform-{}", std::process::id()));
    let sizes: Vec<String> = options.sizes.iter().map(u32::to_string).collect();
    println!(
        "bench-transform: {} files from {}, sizes {}, {} runs per tool and file (wall time of each process, median; peak RSS from GNU time)",
        files.len(),
        options.corpus.display(),
        sizes.join(","),
        options.repeat
    );
    let mut report = String::new();
    let _ = writeln!(
        report,
        "{:<40} {:>6} {:<12} {:<8} {:>9} {:>7} {:>16} {:>14}",
        "file", "MP", "kind", "tool", "median_ms", "rss_MB", "bytes/size", "psnr_dB/size"
    );
    let mut ratios_vips = Vec::new();
    let mut ratios_pillow = Vec::new();
    let mut psnr_sums = [0f64; 3];
    let mut psnr_count = 0usize;
    for (index, file) in files.iter().enumerate() {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let (kind, megapixels) = describe(&bytes);
        let mut runs = Vec::new();
        for tool in Tool::ALL {
            let dir = scratch.join(format!("{index}")).join(tool.name());
            std::fs::create_dir_all(&dir)?;
            runs.push((
                tool,
                dir,
                Run {
                    times_ms: Vec::new(),
                    peak_rss_kb: 0,
                    outputs: Vec::new(),
                },
            ));
        }
        for rep in 0..options.repeat {
            eprint!(
                "\rbench-transform: [{}/{}] {name} run {}/{}   ",
                index + 1,
                files.len(),
                rep + 1,
                options.repeat
            );
            // Interleave the tools so that machine noise hits each alike.
            for (tool, dir, run) in &mut runs {
                let (ms, rss) = run_tool(*tool, &peers, file, dir, &sizes)?;
                run.times_ms.push(ms);
                run.peak_rss_kb = run.peak_rss_kb.max(rss);
            }
        }
        // Quality and size of the last run's outputs.
        let mut candidates = Vec::new();
        for (_, dir, _) in &runs {
            for s in &sizes {
                candidates.push(dir.join(format!("{s}.jpg")));
            }
        }
        let psnrs = quality(&peers, file, &candidates)?;
        for (i, (_, dir, run)) in runs.iter_mut().enumerate() {
            for (j, s) in sizes.iter().enumerate() {
                let out = dir.join(format!("{s}.jpg"));
                let len = std::fs::metadata(&out)
                    .with_context(|| format!("{} made no {}", Tool::ALL[i].name(), out.display()))?
                    .len();
                run.outputs.push((len, psnrs[i * sizes.len() + j]));
            }
        }
        for (i, (tool, _, run)) in runs.iter().enumerate() {
            let _ = writeln!(
                report,
                "{:<40} {:>6.1} {:<12} {:<8} {:>9.1} {:>7.1} {:>16} {:>14}",
                truncate(&name, 40),
                megapixels,
                kind,
                tool.name(),
                run.median_ms(),
                run.peak_rss_kb as f64 / 1024.0,
                run.outputs
                    .iter()
                    .map(|(b, _)| b.to_string())
                    .collect::<Vec<_>>()
                    .join("/"),
                run.outputs
                    .iter()
                    .map(|(_, p)| format!("{p:.2}"))
                    .collect::<Vec<_>>()
                    .join("/"),
            );
            psnr_sums[i] += run.outputs.iter().map(|(_, p)| p).sum::<f64>();
        }
        psnr_count += sizes.len();
        let project = runs[0].2.median_ms();
        let (vips, pillow) = (runs[1].2.median_ms(), runs[2].2.median_ms());
        let _ = writeln!(
            report,
            "{:<40} ratio project/vips {:.2}, project/pillow {:.2}",
            "",
            project / vips,
            project / pillow
        );
        ratios_vips.push(project / vips);
        ratios_pillow.push(project / pillow);
        std::fs::remove_dir_all(scratch.join(format!("{index}"))).ok();
    }
    eprintln!();
    std::fs::remove_dir_all(&scratch).ok();
    print!("{report}");
    let count = psnr_count.max(1) as f64;
    println!(
        "mean PSNR over all thumbnails: project {:.2} dB, vips {:.2} dB, pillow {:.2} dB",
        psnr_sums[0] / count,
        psnr_sums[1] / count,
        psnr_sums[2] / count
    );
    println!(
        "ratio_vs_vips={:.2} ratio_vs_pillow={:.2}",
        geometric_mean(&ratios_vips),
        geometric_mean(&ratios_pillow)
    );
    Ok(())
}

/// Runs one tool on one file, all sizes; returns wall milliseconds and peak RSS (KiB, the
/// largest of its processes).
fn run_tool(
    tool: Tool,
    peers: &Peers,
    file: &Path,
    out_dir: &Path,
    sizes: &[String],
) -> Result<(f64, u64)> {
    let file = file.to_string_lossy().into_owned();
    let out = out_dir.to_string_lossy().into_owned();
    let commands: Vec<Vec<String>> = match tool {
        Tool::Project => {
            let mut c = vec![
                peers.thumbnail.display().to_string(),
                "render".into(),
                file,
                out,
            ];
            c.extend(sizes.iter().cloned());
            vec![c]
        }
        Tool::Vips => sizes
            .iter()
            .map(|s| {
                vec![
                    "vipsthumbnail".to_string(),
                    file.clone(),
                    "--size".into(),
                    s.clone(),
                    "-o".into(),
                    format!("{out}/{s}.jpg[Q={QUALITY},strip]"),
                ]
            })
            .collect(),
        Tool::Pillow => {
            let mut c = vec![
                peers.python.display().to_string(),
                peers.script.display().to_string(),
                file,
                out,
            ];
            c.extend(sizes.iter().cloned());
            vec![c]
        }
    };
    let mut total_ms = 0.0;
    let mut peak_kb = 0;
    let rss_file = out_dir.join("rss.txt");
    for command in commands {
        let started = Instant::now();
        let output = Command::new("/usr/bin/time")
            .arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(&rss_file)
            .args(&command)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("running {}", command.join(" ")))?;
        total_ms += started.elapsed().as_secs_f64() * 1000.0;
        if !output.status.success() {
            bail!(
                "{} failed ({}): {}",
                command.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let rss = std::fs::read_to_string(&rss_file).unwrap_or_default();
        let kb = rss
            .lines()
            .filter_map(|l| l.trim().parse::<u64>().ok())
            .next_back()
            .context("GNU time printed no maximum RSS")?;
        peak_kb = peak_kb.max(kb);
    }
    Ok((total_ms, peak_kb))
}

fn quality(peers: &Peers, original: &Path, candidates: &[PathBuf]) -> Result<Vec<f64>> {
    let output = Command::new(&peers.thumbnail)
        .arg("quality")
        .arg(original)
        .args(candidates)
        .output()
        .context("running thumbnail quality")?;
    if !output.status.success() {
        bail!(
            "thumbnail quality failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let psnrs: Vec<f64> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    if psnrs.len() != candidates.len() {
        bail!(
            "thumbnail quality printed {} values for {} thumbnails",
            psnrs.len(),
            candidates.len()
        );
    }
    Ok(psnrs)
}

/// Every JPEG, PNG, GIF or WebP directly in `dir`, sorted by name.
fn corpus_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if path.is_file() && ["jpg", "jpeg", "png", "gif", "webp"].contains(&ext.as_str()) {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        bail!(
            "no images in {} (make a corpus with `cargo xtask bench-corpus DIR`)",
            dir.display()
        );
    }
    Ok(files)
}

/// "progressive"/"baseline" (with chroma subsampling) for a JPEG, else the container, and
/// the megapixels the header declares.
fn describe(bytes: &[u8]) -> (String, f64) {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        let mut i = 2;
        while i + 9 < bytes.len() {
            if bytes[i] != 0xFF {
                i += 1;
                continue;
            }
            let marker = bytes[i + 1];
            if marker == 0xFF || marker == 0x01 || (0xD0..=0xD8).contains(&marker) {
                i += if marker == 0xFF { 1 } else { 2 };
                continue;
            }
            let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
            if matches!(marker, 0xC0..=0xC2) {
                let h = u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]);
                let w = u16::from_be_bytes([bytes[i + 7], bytes[i + 8]]);
                let sampling = match bytes.get(i + 11) {
                    Some(0x22) => "420",
                    Some(0x21) => "422",
                    Some(0x11) => "444",
                    _ => "",
                };
                let kind = if marker == 0xC2 { "prog" } else { "base" };
                return (
                    format!("jpeg-{kind}{sampling}"),
                    f64::from(w) * f64::from(h) / 1e6,
                );
            }
            i += 2 + len;
        }
        return ("jpeg".into(), 0.0);
    }
    if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        let mp = webp_dimensions(bytes).map_or(0.0, |(w, h)| f64::from(w) * f64::from(h) / 1e6);
        return ("webp".into(), mp);
    }
    if bytes.starts_with(b"\x89PNG") && bytes.len() > 24 {
        let w = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
        let h = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
        return ("png".into(), f64::from(w) * f64::from(h) / 1e6);
    }
    ("other".into(), 0.0)
}

fn webp_dimensions(b: &[u8]) -> Option<(u32, u32)> {
    let chunk = b.get(12..16)?;
    let le16 = |i: usize| -> Option<u32> {
        Some(u32::from(u16::from_le_bytes([*b.get(i)?, *b.get(i + 1)?])))
    };
    let le24 = |i: usize| -> Option<u32> {
        Some(
            u32::from(*b.get(i)?)
                | u32::from(*b.get(i + 1)?) << 8
                | u32::from(*b.get(i + 2)?) << 16,
        )
    };
    match chunk {
        b"VP8 " => Some((le16(26)? & 0x3FFF, le16(28)? & 0x3FFF)),
        b"VP8L" => {
            let v = u32::from_le_bytes([*b.get(21)?, *b.get(22)?, *b.get(23)?, *b.get(24)?]);
            Some(((v & 0x3FFF) + 1, ((v >> 14) & 0x3FFF) + 1))
        }
        b"VP8X" => Some((le24(24)? + 1, le24(27)? + 1)),
        _ => None,
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn geometric_mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    (values.iter().map(|v| v.ln()).sum::<f64>() / values.len() as f64).exp()
}

/// Builds the release `thumbnail` example, and installs vipsthumbnail, GNU time and the
/// Pillow venv when missing.
fn prepare(root: &Path) -> Result<Peers> {
    let mut missing = Vec::new();
    if !tool_works("vipsthumbnail", &["--version"]) {
        missing.push("libvips-tools");
    }
    if !Path::new("/usr/bin/time").is_file() {
        missing.push("time");
    }
    if !tool_works("python3", &["-c", "import venv, ensurepip"]) {
        missing.push("python3-venv");
    }
    if !missing.is_empty() {
        apt_install(&missing)?;
    }
    let venv = root.join(VENV_DIR);
    let python = venv.join("bin").join("python");
    if !tool_works(&python.to_string_lossy(), &["-c", "import PIL.Image"]) {
        eprintln!("bench-transform: installing {PILLOW} into {VENV_DIR}...");
        run_ok(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        run_ok(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "-q",
            PILLOW,
        ]))
        .with_context(|| format!("installing {PILLOW} from PyPI into {VENV_DIR}"))?;
    }
    let script = venv.join("bench_pillow.py");
    std::fs::write(&script, PILLOW_SCRIPT)
        .with_context(|| format!("writing {}", script.display()))?;
    eprintln!("bench-transform: building the thumbnail example (release)...");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run_ok(Command::new(cargo).current_dir(root).args([
        "build",
        "--release",
        "--locked",
        "-p",
        "pipeline-core",
        "--example",
        "thumbnail",
    ]))?;
    Ok(Peers {
        thumbnail: crate::target_dir(root)
            .join("release")
            .join("examples")
            .join("thumbnail"),
        python,
        script,
    })
}

fn tool_works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn run_ok(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}

/// `apt-get install` as root; otherwise an error naming the packages.
pub fn apt_install(packages: &[&str]) -> Result<()> {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let list = packages.join(" ");
    if !is_root {
        bail!("Debian packages {list} are needed: run `apt-get install {list}` as root");
    }
    eprintln!("xtask: installing {list} (apt-get)...");
    run_ok(Command::new("sh").args([
        "-c",
        &format!(
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends {list}"
        ),
    ]))
    .with_context(|| format!("installing {list}"))
}

/// Real photos from Debian's `lomiri-wallpapers-16.04` / `-20.04` (Ubuntu photo-contest
/// wallpapers, 8-20 MP, six of seven progressive), two 24 MP 4:2:0 encodes of the largest
/// one (enlarged 1.0835x with vips' Lanczos3, then `cjpeg -quality 92 -sample 2x2`,
/// progressive and baseline), and WebP encodes of them all (`cwebp -q 80`).
const CORPUS_PHOTOS: [&str; 7] = [
    "Bridge_by_Sander_Klootwijk.jpg",
    "Dragonfly_by_Bolly.jpg",
    "Kleiber_by_Lukas_Baubkus.jpg",
    "Wine_by_Jakkub_Mede.jpg",
    "picosdeeuropa_by_Aitzol_Berasategi.jpg",
    "seeding_by_Clements_Engelhardt.jpg",
    "sunset_by_Aitzol_Berasategi.jpg",
];

pub fn corpus(args: &[String]) -> Result<()> {
    let [dir] = args else {
        bail!("usage: cargo xtask bench-corpus DIR");
    };
    let dir = PathBuf::from(dir);
    let mut missing = Vec::new();
    for (tool, package) in [
        ("cjpeg", "libjpeg-turbo-progs"),
        ("cwebp", "webp"),
        ("vips", "libvips-tools"),
    ] {
        if !tool_works("sh", &["-c", &format!("command -v {tool}")]) {
            missing.push(package);
        }
    }
    if !missing.is_empty() {
        apt_install(&missing)?;
    }
    let jpeg_dir = dir.join("jpeg");
    let webp_dir = dir.join("webp");
    let debs = dir.join("debs");
    for d in [&jpeg_dir, &webp_dir, &debs] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    eprintln!("bench-corpus: downloading lomiri-wallpapers-16.04 and -20.04 (apt-get download)...");
    run_ok(Command::new("apt-get").current_dir(&debs).args([
        "download",
        "lomiri-wallpapers-16.04",
        "lomiri-wallpapers-20.04",
    ]))
    .context("apt-get download (run `apt-get update` first if the package is not found)")?;
    let extracted = debs.join("root");
    for entry in std::fs::read_dir(&debs)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "deb") {
            run_ok(
                Command::new("dpkg-deb")
                    .arg("-x")
                    .arg(&path)
                    .arg(&extracted),
            )?;
        }
    }
    let backgrounds = extracted.join("usr/share/backgrounds");
    for photo in CORPUS_PHOTOS {
        std::fs::copy(backgrounds.join(photo), jpeg_dir.join(photo))
            .with_context(|| format!("copying {photo}"))?;
    }
    eprintln!("bench-corpus: making the 24 MP 4:2:0 encodes...");
    let ppm = debs.join("kleiber-24mp.ppm");
    run_ok(
        Command::new("vips")
            .arg("resize")
            .arg(jpeg_dir.join("Kleiber_by_Lukas_Baubkus.jpg"))
            .arg(&ppm)
            .args(["1.0835", "--kernel", "lanczos3"]),
    )?;
    for (name, extra) in [
        ("Kleiber-24MP-progressive-420.jpg", Some("-progressive")),
        ("Kleiber-24MP-baseline-420.jpg", None),
    ] {
        let mut cjpeg = Command::new("cjpeg");
        cjpeg.args(["-quality", "92", "-sample", "2x2"]);
        cjpeg.args(extra);
        run_ok(cjpeg.arg("-outfile").arg(jpeg_dir.join(name)).arg(&ppm))?;
    }
    eprintln!("bench-corpus: WebP encodes (cwebp -q 80)...");
    for photo in CORPUS_PHOTOS
        .iter()
        .chain(["Kleiber-24MP-baseline-420.jpg"].iter())
    {
        let stem = photo.trim_end_matches(".jpg").replace("-baseline-420", "");
        run_ok(
            Command::new("cwebp")
                .args(["-quiet", "-q", "80"])
                .arg(jpeg_dir.join(photo))
                .arg("-o")
                .arg(webp_dir.join(format!("{stem}.webp"))),
        )?;
    }
    std::fs::remove_dir_all(&debs).ok();
    println!(
        "bench-corpus: {} (JPEG) and {} (WebP) ready",
        jpeg_dir.display(),
        webp_dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_geometric_mean() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!((geometric_mean(&[0.25, 1.0]) - 0.5).abs() < 1e-12);
        assert!(geometric_mean(&[]).is_nan());
    }

    #[test]
    fn describe_jpeg_kinds_and_webp() {
        // SOI, SOF2 for 4000x3000 with 3 components, luma sampled 2x2.
        let mut jpeg = vec![
            0xFF, 0xD8, 0xFF, 0xC2, 0x00, 0x11, 0x08, 0x0B, 0xB8, 0x0F, 0xA0,
        ];
        jpeg.extend_from_slice(&[0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01]);
        let (kind, mp) = describe(&jpeg);
        assert_eq!(kind, "jpeg-prog420");
        assert!((mp - 12.0).abs() < 1e-9);
        let mut riff = b"RIFF\0\0\0\0WEBPVP8X".to_vec();
        riff.extend_from_slice(&[10, 0, 0, 0, 0, 0, 0, 0]);
        riff.extend_from_slice(&[0x9F, 0x0F, 0x00, 0xB7, 0x0B, 0x00]); // 4000 x 3000
        assert_eq!(describe(&riff).0, "webp");
        assert_eq!(webp_dimensions(&riff), Some((4000, 3000)));
    }

    #[test]
    fn parse_defaults_and_errors() {
        let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let o = parse(&args("--corpus /c")).unwrap();
        assert_eq!((o.sizes, o.repeat), (vec![1024, 256], 5));
        let o = parse(&args("--corpus /c --sizes 512,128 --repeat 7")).unwrap();
        assert_eq!((o.sizes, o.repeat), (vec![512, 128], 7));
        assert!(parse(&args("--sizes 256")).is_err());
        assert!(parse(&args("--corpus /c --sizes 0")).is_err());
        assert!(parse(&args("--corpus /c --bogus")).is_err());
    }
}
