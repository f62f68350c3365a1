//! Reads the facts about an ELF64 little-endian executable that decide whether it starts on
//! Lambda: its machine, its program interpreter, the shared libraries it needs
//! (`DT_NEEDED`) and the symbol versions it requires from each (the `SHT_GNU_verneed`
//! table, found through `DT_VERNEED`).
//!
//! It reads what the dynamic loader reads, the program headers and the dynamic segment,
//! not the section headers, so it works on stripped binaries. Pure: bytes in, facts out.
//! Every offset is bounds-checked; a truncated or malformed file is an error, never a
//! panic, and every loop is bounded by a count the file states or by the file's length.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use anyhow::{bail, Context, Result};

/// The CPU an executable is built for (`e_machine`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Machine {
    X86_64,
    Aarch64,
    Other(u16),
}

impl Machine {
    const EM_X86_64: u16 = 0x3E;
    const EM_AARCH64: u16 = 0xB7;

    fn from_e_machine(value: u16) -> Machine {
        match value {
            Self::EM_X86_64 => Machine::X86_64,
            Self::EM_AARCH64 => Machine::Aarch64,
            other => Machine::Other(other),
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Machine::X86_64 => f.write_str("x86_64"),
            Machine::Aarch64 => f.write_str("aarch64"),
            Machine::Other(value) => write!(f, "ELF machine 0x{value:x}"),
        }
    }
}

/// What the dynamic loader needs to start an executable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadRequirements {
    pub machine: Machine,
    /// `PT_INTERP`, e.g. `/lib64/ld-linux-x86-64.so.2`; `None` for a static executable.
    pub interpreter: Option<String>,
    /// `DT_NEEDED`, in file order.
    pub needed: Vec<String>,
    /// Required symbol versions by library, e.g. `libc.so.6` -> {`GLIBC_2.2.5`, `GLIBC_2.34`}.
    pub versions: BTreeMap<String, BTreeSet<String>>,
}

const HEADER_LEN: u64 = 64;
const PHDR_LEN: u64 = 56;
const DYN_LEN: u64 = 16;
const VERNEED_LEN: u64 = 16;
const VERNAUX_LEN: u64 = 16;

const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;

const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
const DT_VERNEED: u64 = 0x6fff_fffe;
const DT_VERNEEDNUM: u64 = 0x6fff_ffff;

/// Reads an executable's load requirements.
pub fn read(file: &[u8]) -> Result<LoadRequirements> {
    if file.len() < 4 || file[..4] != *b"\x7fELF" {
        bail!("not an ELF file (no \\x7fELF magic)");
    }
    match file.get(4) {
        Some(2) => {}
        Some(1) => bail!("32-bit ELF: Lambda runs 64-bit executables only"),
        Some(other) => bail!("malformed ELF: unknown class {other}"),
        None => bail!("truncated ELF: {} bytes", file.len()),
    }
    match file.get(5) {
        Some(1) => {}
        Some(2) => bail!("big-endian ELF: Lambda's x86_64 and arm64 are little-endian"),
        Some(other) => bail!("malformed ELF: unknown data encoding {other}"),
        None => bail!("truncated ELF: {} bytes", file.len()),
    }
    if (file.len() as u64) < HEADER_LEN {
        bail!(
            "truncated ELF: {} bytes, shorter than the 64-byte ELF64 header",
            file.len()
        );
    }
    let e_type = u16_at(file, 16)?;
    if e_type != ET_EXEC && e_type != ET_DYN {
        bail!("not an executable (ELF type {e_type}; 2 or 3 expected)");
    }
    let machine = Machine::from_e_machine(u16_at(file, 18)?);
    let phoff = u64_at(file, 32)?;
    let phentsize = u64::from(u16_at(file, 54)?);
    let phnum = u64::from(u16_at(file, 56)?);
    if phnum == 0 {
        bail!("no program headers: not a loadable executable");
    }
    if phentsize < PHDR_LEN {
        bail!("malformed ELF: program header size {phentsize}, at least {PHDR_LEN} expected");
    }

    let mut loads = Vec::new();
    let mut dynamic = None;
    let mut interpreter = None;
    for index in 0..phnum {
        let at = index
            .checked_mul(phentsize)
            .and_then(|o| o.checked_add(phoff))
            .context("malformed ELF: program header offset overflows")?;
        let header = slice(file, at, PHDR_LEN)
            .with_context(|| format!("truncated ELF: program header {index} of {phnum}"))?;
        let segment = Segment {
            offset: u64_at(header, 8)?,
            vaddr: u64_at(header, 16)?,
            filesz: u64_at(header, 32)?,
        };
        match u32_at(header, 0)? {
            PT_LOAD => loads.push(segment),
            PT_DYNAMIC => dynamic = Some(segment),
            PT_INTERP => {
                let bytes = slice(file, segment.offset, segment.filesz)
                    .context("truncated ELF: the PT_INTERP segment is outside the file")?;
                let path = bytes.split(|b| *b == 0).next().unwrap_or_default();
                interpreter = Some(String::from_utf8_lossy(path).into_owned());
            }
            _ => {}
        }
    }

    let mut requirements = LoadRequirements {
        machine,
        interpreter,
        needed: Vec::new(),
        versions: BTreeMap::new(),
    };
    let Some(dynamic) = dynamic else {
        // A static executable: nothing to load besides itself.
        return Ok(requirements);
    };
    let entries = slice(file, dynamic.offset, dynamic.filesz)
        .context("truncated ELF: the PT_DYNAMIC segment is outside the file")?;

    let mut needed_names = Vec::new();
    let mut strtab_addr = None;
    let mut strsz = None;
    let mut verneed_addr = None;
    let mut verneed_count = None;
    for index in 0..(dynamic.filesz / DYN_LEN) {
        let at = index * DYN_LEN;
        let tag = u64_at(entries, at)?;
        let value = u64_at(entries, at + 8)?;
        match tag {
            DT_NULL => break,
            DT_NEEDED => needed_names.push(value),
            DT_STRTAB => strtab_addr = Some(value),
            DT_STRSZ => strsz = Some(value),
            DT_VERNEED => verneed_addr = Some(value),
            DT_VERNEEDNUM => verneed_count = Some(value),
            _ => {}
        }
    }
    if needed_names.is_empty() && verneed_addr.is_none() {
        return Ok(requirements);
    }

    let strtab_addr =
        strtab_addr.context("malformed ELF: DT_NEEDED or DT_VERNEED without DT_STRTAB")?;
    let strtab_offset = file_offset(&loads, strtab_addr).with_context(|| {
        format!("malformed ELF: DT_STRTAB 0x{strtab_addr:x} is outside every PT_LOAD segment")
    })?;
    let strtab_len = match strsz {
        Some(len) => len,
        None => (file.len() as u64).saturating_sub(strtab_offset),
    };
    let strtab = slice(file, strtab_offset, strtab_len)
        .context("truncated ELF: the dynamic string table is outside the file")?;

    for name in needed_names {
        requirements
            .needed
            .push(string_at(strtab, name).context("DT_NEEDED")?);
    }

    if let Some(verneed_addr) = verneed_addr {
        let count = verneed_count.context("malformed ELF: DT_VERNEED without DT_VERNEEDNUM")?;
        let mut at = file_offset(&loads, verneed_addr).with_context(|| {
            format!("malformed ELF: DT_VERNEED 0x{verneed_addr:x} is outside every PT_LOAD segment")
        })?;
        // Each entry takes 16 bytes, so a count larger than that is a lie; offsets only
        // move forward, so the walk ends either way.
        if count > file.len() as u64 / VERNEED_LEN {
            bail!("malformed ELF: DT_VERNEEDNUM {count} is larger than the file allows");
        }
        for index in 0..count {
            let entry = slice(file, at, VERNEED_LEN)
                .with_context(|| format!("truncated ELF: version requirement {index}"))?;
            let version = u16_at(entry, 0)?;
            if version != 1 {
                bail!("malformed ELF: version requirement {index} has vn_version {version}, 1 expected");
            }
            let aux_count = u16_at(entry, 2)?;
            let library = string_at(strtab, u64::from(u32_at(entry, 4)?))
                .context("version requirement file name")?;
            let mut aux_at = at
                .checked_add(u64::from(u32_at(entry, 8)?))
                .context("malformed ELF: vn_aux overflows")?;
            let names = requirements.versions.entry(library).or_default();
            for aux_index in 0..aux_count {
                let aux = slice(file, aux_at, VERNAUX_LEN).with_context(|| {
                    format!("truncated ELF: version {aux_index} of requirement {index}")
                })?;
                names
                    .insert(string_at(strtab, u64::from(u32_at(aux, 8)?)).context("version name")?);
                let next = u64::from(u32_at(aux, 12)?);
                if next == 0 {
                    break;
                }
                aux_at = aux_at
                    .checked_add(next)
                    .context("malformed ELF: vna_next overflows")?;
            }
            let next = u64::from(u32_at(entry, 12)?);
            if next == 0 {
                break;
            }
            at = at
                .checked_add(next)
                .context("malformed ELF: vn_next overflows")?;
        }
    }
    Ok(requirements)
}

/// The part of a program header this reader uses.
struct Segment {
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

/// The file offset of a virtual address, through the `PT_LOAD` segment that maps it
/// (dynamic-section pointers are addresses, as the loader sees them).
fn file_offset(loads: &[Segment], addr: u64) -> Option<u64> {
    loads.iter().find_map(|load| {
        let delta = addr.checked_sub(load.vaddr)?;
        (delta < load.filesz).then(|| load.offset.checked_add(delta))?
    })
}

/// The NUL-terminated string at `index` of a string table.
fn string_at(table: &[u8], index: u64) -> Result<String> {
    let start = usize::try_from(index).ok();
    let Some(rest) = start.and_then(|s| table.get(s..)) else {
        bail!(
            "malformed ELF: string offset {index} is outside the {}-byte string table",
            table.len()
        );
    };
    let Some(end) = rest.iter().position(|b| *b == 0) else {
        bail!("malformed ELF: unterminated string at offset {index} of the string table");
    };
    Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// `len` bytes at `offset`, or an error when any of them is outside `bytes`.
fn slice(bytes: &[u8], offset: u64, len: u64) -> Result<&[u8]> {
    let range = usize::try_from(offset)
        .ok()
        .zip(usize::try_from(len).ok())
        .and_then(|(start, len)| Some(start..start.checked_add(len)?));
    match range.and_then(|r| bytes.get(r)) {
        Some(found) => Ok(found),
        None => bail!(
            "{len} bytes at offset {offset} are outside the {} bytes available",
            bytes.len()
        ),
    }
}

fn array_at<const N: usize>(bytes: &[u8], offset: u64) -> Result<[u8; N]> {
    let found = slice(bytes, offset, N as u64)?;
    let mut out = [0u8; N];
    out.copy_from_slice(found);
    Ok(out)
}

fn u16_at(bytes: &[u8], offset: u64) -> Result<u16> {
    array_at(bytes, offset).map(u16::from_le_bytes)
}

fn u32_at(bytes: &[u8], offset: u64) -> Result<u32> {
    array_at(bytes, offset).map(u32::from_le_bytes)
}

fn u64_at(bytes: &[u8], offset: u64) -> Result<u64> {
    array_at(bytes, offset).map(u64::from_le_bytes)
}

/// Builds minimal ELF64 executables for tests: one `PT_LOAD` mapping the whole file at
/// 0x400000, an optional `PT_INTERP`, and a `PT_DYNAMIC` with `DT_NEEDED`, the string
/// table and a version-requirement table, laid out as a linker would (no section
/// headers: the reader does not use them).
#[cfg(test)]
pub mod synthetic {
    pub const BASE: u64 = 0x40_0000;

    pub struct SyntheticElf {
        pub e_machine: u16,
        pub interpreter: Option<String>,
        pub needed: Vec<String>,
        /// (library, [version names])
        pub versions: Vec<(String, Vec<String>)>,
    }

    impl SyntheticElf {
        /// An x86_64 executable needing libc and libgcc_s with the given glibc versions.
        pub fn x86_64(glibc_versions: &[&str]) -> SyntheticElf {
            SyntheticElf {
                e_machine: 0x3E,
                interpreter: Some("/lib64/ld-linux-x86-64.so.2".into()),
                needed: vec!["libgcc_s.so.1".into(), "libc.so.6".into()],
                versions: vec![
                    ("libgcc_s.so.1".into(), vec!["GCC_3.0".into()]),
                    (
                        "libc.so.6".into(),
                        glibc_versions.iter().map(|v| v.to_string()).collect(),
                    ),
                ],
            }
        }

        pub fn build(&self) -> Vec<u8> {
            let mut strtab = vec![0u8];
            let mut add = |s: &str| {
                let at = strtab.len() as u32;
                strtab.extend_from_slice(s.as_bytes());
                strtab.push(0);
                at
            };
            let needed: Vec<u32> = self.needed.iter().map(|n| add(n)).collect();
            let versions: Vec<(u32, Vec<u32>)> = self
                .versions
                .iter()
                .map(|(lib, names)| (add(lib), names.iter().map(|n| add(n)).collect()))
                .collect();

            let mut verneed = Vec::new();
            for (i, (file, names)) in versions.iter().enumerate() {
                let last = i + 1 == versions.len();
                let next = if last {
                    0
                } else {
                    16 + 16 * names.len() as u32
                };
                verneed.extend_from_slice(&1u16.to_le_bytes());
                verneed.extend_from_slice(&(names.len() as u16).to_le_bytes());
                verneed.extend_from_slice(&file.to_le_bytes());
                verneed.extend_from_slice(&16u32.to_le_bytes());
                verneed.extend_from_slice(&next.to_le_bytes());
                for (j, name) in names.iter().enumerate() {
                    let next = if j + 1 == names.len() { 0u32 } else { 16 };
                    verneed.extend_from_slice(&0u32.to_le_bytes()); // vna_hash
                    verneed.extend_from_slice(&0u16.to_le_bytes()); // vna_flags
                    verneed.extend_from_slice(&(2 + j as u16).to_le_bytes()); // vna_other
                    verneed.extend_from_slice(&name.to_le_bytes());
                    verneed.extend_from_slice(&next.to_le_bytes());
                }
            }

            let interp = self.interpreter.as_ref().map(|p| {
                let mut bytes = p.as_bytes().to_vec();
                bytes.push(0);
                bytes
            });
            let phnum: u64 = if interp.is_some() { 3 } else { 2 };
            let interp_at = 64 + 56 * phnum;
            let interp_len = interp.as_ref().map_or(0, |i| i.len() as u64);
            let strtab_at = interp_at + interp_len;
            let verneed_at = (strtab_at + strtab.len() as u64).next_multiple_of(8);
            let dynamic_at = (verneed_at + verneed.len() as u64).next_multiple_of(8);

            let mut dynamic = Vec::new();
            let mut entry = |tag: u64, value: u64| {
                dynamic.extend_from_slice(&tag.to_le_bytes());
                dynamic.extend_from_slice(&value.to_le_bytes());
            };
            for n in &needed {
                entry(1, u64::from(*n));
            }
            entry(5, BASE + strtab_at);
            entry(10, strtab.len() as u64);
            if !versions.is_empty() {
                entry(0x6fff_fffe, BASE + verneed_at);
                entry(0x6fff_ffff, versions.len() as u64);
            }
            entry(0, 0);
            let total = dynamic_at + dynamic.len() as u64;

            let mut file = vec![0u8; 64];
            file[..4].copy_from_slice(b"\x7fELF");
            file[4] = 2; // ELFCLASS64
            file[5] = 1; // little-endian
            file[6] = 1; // EV_CURRENT
            file[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN (PIE)
            file[18..20].copy_from_slice(&self.e_machine.to_le_bytes());
            file[20..24].copy_from_slice(&1u32.to_le_bytes());
            file[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
            file[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
            file[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
            file[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
            let mut phdr = |p_type: u32, offset: u64, len: u64| {
                file.extend_from_slice(&p_type.to_le_bytes());
                file.extend_from_slice(&4u32.to_le_bytes()); // PF_R
                file.extend_from_slice(&offset.to_le_bytes());
                file.extend_from_slice(&(BASE + offset).to_le_bytes());
                file.extend_from_slice(&(BASE + offset).to_le_bytes());
                file.extend_from_slice(&len.to_le_bytes());
                file.extend_from_slice(&len.to_le_bytes());
                file.extend_from_slice(&8u64.to_le_bytes());
            };
            if interp.is_some() {
                phdr(3, interp_at, interp_len);
            }
            phdr(1, 0, total);
            phdr(2, dynamic_at, dynamic.len() as u64);
            if let Some(interp) = interp {
                file.extend_from_slice(&interp);
            }
            file.extend_from_slice(&strtab);
            file.resize(verneed_at as usize, 0);
            file.extend_from_slice(&verneed);
            file.resize(dynamic_at as usize, 0);
            file.extend_from_slice(&dynamic);
            file
        }
    }
}

#[cfg(test)]
mod tests {
    use super::synthetic::SyntheticElf;
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn read_synthetic_executable_finds_everything() {
        let elf = SyntheticElf::x86_64(&["GLIBC_2.2.5", "GLIBC_2.34"]).build();
        let found = read(&elf).unwrap();
        assert_eq!(found.machine, Machine::X86_64);
        assert_eq!(
            found.interpreter.as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert_eq!(found.needed, ["libgcc_s.so.1", "libc.so.6"]);
        assert_eq!(
            found.versions["libc.so.6"],
            set(&["GLIBC_2.2.5", "GLIBC_2.34"])
        );
        assert_eq!(found.versions["libgcc_s.so.1"], set(&["GCC_3.0"]));
    }

    #[test]
    fn read_aarch64_machine_is_reported() {
        let mut elf = SyntheticElf::x86_64(&["GLIBC_2.17"]);
        elf.e_machine = 0xB7;
        assert_eq!(read(&elf.build()).unwrap().machine, Machine::Aarch64);
    }

    #[test]
    fn read_static_executable_needs_nothing() {
        let elf = SyntheticElf {
            e_machine: 0x3E,
            interpreter: None,
            needed: vec![],
            versions: vec![],
        };
        let found = read(&elf.build()).unwrap();
        assert_eq!(found.interpreter, None);
        assert!(found.needed.is_empty());
        assert!(found.versions.is_empty());
    }

    #[test]
    fn read_every_truncation_is_an_error_not_a_panic() {
        let elf = SyntheticElf::x86_64(&["GLIBC_2.2.5", "GLIBC_2.34"]).build();
        for len in 0..elf.len() {
            assert!(
                read(&elf[..len]).is_err(),
                "prefix of {len} bytes was accepted"
            );
        }
    }

    #[test]
    fn read_corrupted_bytes_never_panic() {
        let elf = SyntheticElf::x86_64(&["GLIBC_2.2.5", "GLIBC_2.34"]).build();
        // Deterministic xorshift: every byte position gets overwritten with many values.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut copy = elf.clone();
            let at = (state % copy.len() as u64) as usize;
            copy[at] = (state >> 32) as u8;
            let at = ((state >> 16) % copy.len() as u64) as usize;
            copy[at] = 0xFF;
            let _ = read(&copy);
        }
    }

    #[test]
    fn read_garbage_and_other_formats_are_clear_errors() {
        let mut elf32 = SyntheticElf::x86_64(&["GLIBC_2.34"]).build();
        elf32[4] = 1;
        let mut big_endian = elf32.clone();
        big_endian[4] = 2;
        big_endian[5] = 2;
        let cases: [(&[u8], &str); 5] = [
            (b"", "not an ELF file"),
            (b"#!/bin/sh\necho hi\n", "not an ELF file"),
            (b"\x7fELF\x02\x01", "truncated ELF"),
            (&elf32, "32-bit ELF"),
            (&big_endian, "big-endian ELF"),
        ];
        for (input, expected) in cases {
            let error = format!("{:#}", read(input).unwrap_err());
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        }
    }

    #[test]
    fn read_huge_verneed_count_is_an_error() {
        let mut elf = SyntheticElf::x86_64(&["GLIBC_2.34"]).build();
        // DT_VERNEEDNUM is the second-to-last dynamic entry; its value is 8 bytes before
        // the final DT_NULL entry.
        let at = elf.len() - 16 - 8;
        elf[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        let error = format!("{:#}", read(&elf).unwrap_err());
        assert!(error.contains("DT_VERNEEDNUM"), "{error}");
    }

    #[test]
    fn read_bin_ls_finds_libc_and_glibc_versions() {
        let ls = std::fs::read("/bin/ls").unwrap();
        let found = read(&ls).unwrap();
        assert!(found.needed.iter().any(|n| n == "libc.so.6"), "{found:?}");
        assert!(
            found.versions["libc.so.6"]
                .iter()
                .any(|v| v.starts_with("GLIBC_2.")),
            "{found:?}"
        );
    }
}
