//! The emulator versions and image names, in one dependency-free file: `xtask` includes it
//! with `#[path]` so the image it builds and the harness that starts it cannot disagree.

/// The MiniStack release installed from PyPI and run.
pub const MINISTACK_VERSION: &str = "1.5.33";

/// The SAM translator installed beside MiniStack (PyPI `aws-sam-translator`): MiniStack
/// expands the `AWS::Serverless-2016-10-31` transform with it (`infra/sam/template.yaml`).
pub const SAM_TRANSLATOR_VERSION: &str = "1.115.0";

/// The image `cargo xtask emulator-image` builds from Debian packages: the pinned MiniStack
/// on Debian 12's glibc, so the functions' `bootstrap` binaries run inside it.
pub const LOCAL_IMAGE: &str = "s3-pipeline/ministack:1.5.33-sam1.115.0-debian12";

/// The public MiniStack image of the pinned release (Alpine, musl: it cannot run the
/// glibc-linked `bootstrap` binaries in-process; see the README).
pub const PUBLIC_IMAGE: &str = "ministackorg/ministack:1.5.33";

/// Names the MiniStack image the `container` backend starts.
pub const ENV_IMAGE: &str = "PIPELINE_EMULATOR_IMAGE";
