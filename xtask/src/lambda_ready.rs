//! Whether an executable starts on Lambda's `provided.al2023` runtime: the right machine,
//! no glibc (or libgcc) symbol version newer than Amazon Linux 2023 ships, and no shared
//! library beyond the runtime's base image. Pure: it judges what `elf::read` found.
//!
//! The runtime is built from the AL2023 *minimal* container image: glibc 2.34 (its
//! libraries: libc, libm, libpthread, libdl, librt, libutil, the loader) and libgcc (gcc
//! 11's `libgcc_s.so.1`, which Rust's standard library links for unwinding). Nothing
//! else is promised: no OpenSSL, no zlib, and no `libstdc++` (it comes with C++ programs,
//! not with the minimal image; our C codecs are C, so needing it means a dependency was
//! linked dynamically by mistake). Sources: the AL2023 user guide, "Using AL2023 in AWS
//! Lambda" (provided.al2023 is based on the minimal container image) and "Improved
//! toolchain: gcc, binutils, and glibc" (glibc 2.34, gcc 11).

use std::fmt;

use anyhow::{bail, Result};

use crate::elf::{LoadRequirements, Machine};

/// A Lambda instruction set, as the template's `Architecture` parameter names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Arch {
    #[default]
    X86_64,
    Arm64,
}

impl Arch {
    pub fn parse(name: &str) -> Result<Arch> {
        match name {
            "x86_64" => Ok(Arch::X86_64),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            other => bail!("unknown architecture {other:?}: x86_64 or arm64"),
        }
    }

    /// The value of the template's `Architecture` parameter.
    pub fn lambda_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Arm64 => "aarch64-unknown-linux-gnu",
        }
    }

    pub fn machine(self) -> Machine {
        match self {
            Arch::X86_64 => Machine::X86_64,
            Arch::Arm64 => Machine::Aarch64,
        }
    }

    /// The program interpreter glibc's ABI fixes for the machine (and AL2023 has).
    pub fn interpreter(self) -> &'static str {
        match self {
            Arch::X86_64 => "/lib64/ld-linux-x86-64.so.2",
            Arch::Arm64 => "/lib/ld-linux-aarch64.so.1",
        }
    }

    fn loader_soname(self) -> &'static str {
        match self {
            Arch::X86_64 => "ld-linux-x86-64.so.2",
            Arch::Arm64 => "ld-linux-aarch64.so.1",
        }
    }

    /// How to rebuild against glibc 2.34 whatever the build machine has.
    fn zig_fix(self) -> String {
        format!(
            "link with zig against glibc {}: `cargo xtask package --arch {} --zig` \
             (cargo zigbuild --release --target {}.{})",
            MAX_GLIBC.0,
            self.lambda_name(),
            self.rust_target(),
            MAX_GLIBC.0
        )
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.lambda_name())
    }
}

/// glibc in provided.al2023 (and the version zig is asked to link against).
pub const MAX_GLIBC: (&str, [u32; 2]) = ("2.34", [2, 34]);

/// Highest libgcc_s symbol version node in AL2023's gcc 11 libgcc (`GCC_<n>...` nodes are
/// named after the gcc release that added them).
const MAX_LIBGCC: [u32; 1] = [11];

/// glibc's libraries plus libgcc_s: what the AL2023 minimal image has (see the module
/// documentation). The loader's name depends on the machine and is added per arch.
const BASE_IMAGE_LIBRARIES: [&str; 8] = [
    "libc.so.6",
    "libm.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libutil.so.1",
    "libgcc_s.so.1",
    "libresolv.so.2",
];

/// One reason a binary would not start on Lambda, with what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub binary: String,
    pub found: String,
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}; fix: {}", self.binary, self.found, self.fix)
    }
}

/// A dotted version (`2.2.5`, `2.34`) compared numerically, trailing zeros ignored.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(Vec<u32>);

impl Version {
    /// The numeric part of a version node: `GLIBC_2.34` with prefix `GLIBC_` -> 2.34.
    /// `None` for a node that is not numeric (`GLIBC_PRIVATE`, `GLIBC_ABI_DT_RELR`).
    pub fn of_node(node: &str, prefix: &str) -> Option<Version> {
        let numbers = node.strip_prefix(prefix)?;
        let mut parts = numbers
            .split('.')
            .map(|p| p.parse::<u32>().ok())
            .collect::<Option<Vec<u32>>>()?;
        while parts.len() > 1 && parts.last() == Some(&0) {
            parts.pop();
        }
        Some(Version(parts))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

/// Every reason `binary` (described by `found`) would not start on `arch` Lambda.
pub fn check_lambda_ready(
    binary: &str,
    found: &LoadRequirements,
    arch: Arch,
) -> Result<(), Vec<Problem>> {
    let mut problems = Vec::new();
    let mut problem = |found: String, fix: String| {
        problems.push(Problem {
            binary: binary.to_owned(),
            found,
            fix,
        })
    };

    if found.machine != arch.machine() {
        problem(
            format!(
                "is built for {}, but the function's architecture is {} ({})",
                found.machine,
                arch,
                arch.machine()
            ),
            format!(
                "build for {} (`cargo xtask package --arch {}`), or deploy with Architecture={}",
                arch.rust_target(),
                arch,
                match found.machine {
                    Machine::Aarch64 => "arm64",
                    _ => "x86_64",
                }
            ),
        );
        // Nothing else about a binary for another machine is worth reporting.
        return Err(problems);
    }

    if let Some(interpreter) = &found.interpreter {
        if interpreter != arch.interpreter() {
            problem(
                format!(
                    "asks for program interpreter {interpreter}, provided.al2023 has {}",
                    arch.interpreter()
                ),
                arch.zig_fix(),
            );
        }
    }

    for library in &found.needed {
        if !is_in_base_image(library, arch) {
            let fix = if library.starts_with("libstdc++") {
                "link it statically (-static-libstdc++ for the C++ code) or drop the C++ \
                 dependency: provided.al2023 has no libstdc++"
                    .to_owned()
            } else if library.starts_with("libssl") || library.starts_with("libcrypto") {
                "use rustls instead of OpenSSL, or link OpenSSL statically (openssl's \
                 `vendored` feature)"
                    .to_owned()
            } else {
                "link it statically (its -sys crate's `static`/`vendored`/`bundled` feature)"
                    .to_owned()
            };
            problem(
                format!("needs {library}, which provided.al2023's base image does not have"),
                fix,
            );
        }
    }

    let max_glibc = Version(MAX_GLIBC.1.to_vec());
    let max_libgcc = Version(MAX_LIBGCC.to_vec());
    for (library, nodes) in &found.versions {
        let mut too_new = Vec::new();
        for node in nodes {
            if node.starts_with("GLIBC_") {
                match Version::of_node(node, "GLIBC_") {
                    Some(version) if version <= max_glibc => {}
                    Some(_) => too_new.push(node.clone()),
                    None if node == "GLIBC_ABI_DT_RELR" => problem(
                        format!(
                            "needs {node} from {library}: packed relative relocations \
                             (ld -z pack-relative-relocs) need glibc 2.36, provided.al2023 has {}",
                            MAX_GLIBC.0
                        ),
                        arch.zig_fix(),
                    ),
                    None => problem(
                        format!(
                            "needs {node} from {library}, a version node glibc {} does not \
                             export to programs",
                            MAX_GLIBC.0
                        ),
                        arch.zig_fix(),
                    ),
                }
            } else if library == "libgcc_s.so.1" {
                if let Some(version) = Version::of_node(node, "GCC_") {
                    if version > max_libgcc {
                        problem(
                            format!(
                                "needs {node} from {library}; provided.al2023's libgcc is gcc 11's"
                            ),
                            format!(
                                "link libgcc statically (-static-libgcc) or {}",
                                arch.zig_fix()
                            ),
                        );
                    }
                }
            }
        }
        if !too_new.is_empty() {
            problem(
                format!(
                    "needs {} from {library}; provided.al2023 has glibc {}",
                    too_new.join(", "),
                    MAX_GLIBC.0
                ),
                arch.zig_fix(),
            );
        }
    }

    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn is_in_base_image(library: &str, arch: Arch) -> bool {
    library == arch.loader_soname() || BASE_IMAGE_LIBRARIES.contains(&library)
}

/// The highest `GLIBC_x.y` any library is asked for, if any.
pub fn highest_glibc(found: &LoadRequirements) -> Option<Version> {
    found
        .versions
        .values()
        .flatten()
        .filter_map(|node| Version::of_node(node, "GLIBC_"))
        .max()
}

/// One line about a binary that passed: `x86_64, needs GLIBC_2.34 at most (libc.so.6 ...)`.
pub fn summary(found: &LoadRequirements) -> String {
    if found.needed.is_empty() {
        return format!("{}, static (needs no shared library)", found.machine);
    }
    let glibc = match highest_glibc(found) {
        Some(version) => format!("needs GLIBC_{version} at most"),
        None => "needs no versioned glibc symbol".to_owned(),
    };
    format!("{}, {glibc} ({})", found.machine, found.needed.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::{self, synthetic::SyntheticElf};

    fn check(elf: &SyntheticElf, arch: Arch) -> Result<(), Vec<Problem>> {
        let found = elf::read(&elf.build()).unwrap();
        check_lambda_ready("fn-test", &found, arch)
    }

    fn only_problem(elf: &SyntheticElf, arch: Arch) -> String {
        let problems = check(elf, arch).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        problems[0].to_string()
    }

    #[test]
    fn check_glibc_2_34_binary_is_ready() {
        let elf = SyntheticElf::x86_64(&["GLIBC_2.2.5", "GLIBC_2.9", "GLIBC_2.34"]);
        assert_eq!(check(&elf, Arch::X86_64), Ok(()));
        let found = elf::read(&elf.build()).unwrap();
        assert_eq!(
            summary(&found),
            "x86_64, needs GLIBC_2.34 at most (libgcc_s.so.1 libc.so.6)"
        );
    }

    #[test]
    fn check_glibc_2_35_names_version_library_and_zig() {
        let elf = SyntheticElf::x86_64(&["GLIBC_2.2.5", "GLIBC_2.35"]);
        let problem = only_problem(&elf, Arch::X86_64);
        assert!(
            problem.starts_with("fn-test: needs GLIBC_2.35 from libc.so.6"),
            "{problem}"
        );
        assert!(
            problem.contains("cargo zigbuild --release --target x86_64-unknown-linux-gnu.2.34"),
            "{problem}"
        );
    }

    #[test]
    fn check_libssl_is_not_in_the_base_image() {
        let mut elf = SyntheticElf::x86_64(&["GLIBC_2.34"]);
        elf.needed.push("libssl.so.3".into());
        let problem = only_problem(&elf, Arch::X86_64);
        assert!(problem.contains("needs libssl.so.3"), "{problem}");
        assert!(problem.contains("rustls"), "{problem}");
        let mut elf = SyntheticElf::x86_64(&["GLIBC_2.34"]);
        elf.needed.push("libz.so.1".into());
        assert!(only_problem(&elf, Arch::X86_64).contains("link it statically"));
    }

    #[test]
    fn check_libstdcxx_is_not_in_the_base_image() {
        let mut elf = SyntheticElf::x86_64(&["GLIBC_2.34"]);
        elf.needed.push("libstdc++.so.6".into());
        let problem = only_problem(&elf, Arch::X86_64);
        assert!(problem.contains("-static-libstdc++"), "{problem}");
    }

    #[test]
    fn check_aarch64_binary_for_x86_64_is_a_machine_problem() {
        let mut elf = SyntheticElf::x86_64(&["GLIBC_2.17"]);
        elf.e_machine = 0xB7;
        elf.interpreter = Some("/lib/ld-linux-aarch64.so.1".into());
        let problem = only_problem(&elf, Arch::X86_64);
        assert!(
            problem.contains("is built for aarch64, but the function's architecture is x86_64"),
            "{problem}"
        );
        assert_eq!(check(&elf, Arch::Arm64), Ok(()));
    }

    #[test]
    fn check_foreign_interpreter_is_a_problem() {
        let mut elf = SyntheticElf::x86_64(&["GLIBC_2.34"]);
        elf.interpreter = Some("/nix/store/abc-glibc/lib/ld-linux-x86-64.so.2".into());
        let problem = only_problem(&elf, Arch::X86_64);
        assert!(
            problem.contains("program interpreter /nix/store"),
            "{problem}"
        );
    }

    #[test]
    fn check_non_numeric_glibc_nodes_are_problems() {
        let elf = SyntheticElf::x86_64(&["GLIBC_2.34", "GLIBC_ABI_DT_RELR"]);
        assert!(only_problem(&elf, Arch::X86_64).contains("glibc 2.36"));
        let elf = SyntheticElf::x86_64(&["GLIBC_PRIVATE"]);
        assert!(only_problem(&elf, Arch::X86_64).contains("GLIBC_PRIVATE"));
    }

    #[test]
    fn check_libgcc_newer_than_gcc_11_is_a_problem() {
        let mut elf = SyntheticElf::x86_64(&["GLIBC_2.34"]);
        elf.versions[0].1 = vec!["GCC_3.0".into(), "GCC_4.2.0".into(), "GCC_7.0.0".into()];
        assert_eq!(check(&elf, Arch::X86_64), Ok(()));
        elf.versions[0].1.push("GCC_13.0.0".into());
        assert!(only_problem(&elf, Arch::X86_64).contains("GCC_13.0.0"));
    }

    #[test]
    fn check_reports_every_problem_at_once() {
        let mut elf = SyntheticElf::x86_64(&["GLIBC_2.36", "GLIBC_2.38"]);
        elf.needed.push("libz.so.1".into());
        elf.needed.push("libssl.so.3".into());
        let problems = check(&elf, Arch::X86_64).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(problems[2].found.contains("GLIBC_2.36, GLIBC_2.38"));
    }

    #[test]
    fn version_compares_numerically() {
        let v = |s: &str| Version::of_node(s, "GLIBC_").unwrap();
        assert!(v("GLIBC_2.9") < v("GLIBC_2.34"));
        assert!(v("GLIBC_2.34") < v("GLIBC_2.35"));
        assert_eq!(v("GLIBC_2.34"), v("GLIBC_2.34"));
        assert_eq!(v("GLIBC_2.34"), v("GLIBC_2.34.0"));
        assert!(v("GLIBC_2.2.5") < v("GLIBC_2.3"));
        assert!(v("GLIBC_2.3.4") > v("GLIBC_2.3"));
        assert_eq!(v("GLIBC_2.2.5").to_string(), "2.2.5");
        assert_eq!(Version::of_node("GLIBC_PRIVATE", "GLIBC_"), None);
        assert_eq!(Version::of_node("GCC_3.0", "GLIBC_"), None);
    }

    #[test]
    fn arch_parse_table() {
        assert_eq!(Arch::parse("x86_64").unwrap(), Arch::X86_64);
        assert_eq!(Arch::parse("arm64").unwrap(), Arch::Arm64);
        assert_eq!(Arch::parse("aarch64").unwrap(), Arch::Arm64);
        assert!(Arch::parse("amd64").is_err());
    }

    #[test]
    fn check_bin_ls_reports_libselinux() {
        let found = elf::read(&std::fs::read("/bin/ls").unwrap()).unwrap();
        assert!(highest_glibc(&found).is_some());
        let host = match found.machine {
            Machine::Aarch64 => Arch::Arm64,
            _ => Arch::X86_64,
        };
        let problems = check_lambda_ready("ls", &found, host).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.found.starts_with("needs libselinux.so.1")),
            "{problems:#?}"
        );
    }
}
