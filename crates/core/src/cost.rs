//! The monthly AWS cost of the pipeline for a workload, under Step Functions STANDARD and
//! EXPRESS, and what EXPRESS would cost the pipeline in idempotency (`pipeline cost`).
//!
//! Pure arithmetic over four inputs: a [`Workload`] (objects per month, their size), a
//! [`DurationProfile`] (how long each function runs, fitted from measured executions with
//! [`DurationProfile::fit`]), the [`Prices`] and the functions' [`MemorySizes`]; plus the
//! [`ExecutionPaths`] walked from the state machine definition, which say which states an
//! object passes through (and so how many transitions STANDARD bills).
//!
//! Assumptions, each documented where it is used:
//! - us-east-1 list prices from the AWS public pricing pages, as of 2026; the free tier is
//!   ignored (it is per account, not per pipeline), so every cost is proportional to the
//!   number of objects and the volume never changes which workflow type is cheaper.
//! - One ingest invocation and one execution per object (S3 sends one record per event).
//! - Durations are the average object's (the model is linear in megapixels, so the mean
//!   of the durations is the duration at the mean size; only the rounding is per object).
//! - A retry re-runs Transform (the longest task and the only one that writes several
//!   objects): an upper bound for a retry of any step.
//! - Not counted: the user's own upload PUT and input storage, the reconcile function
//!   (a few thousand invocations and listings a month, independent of the object count),
//!   KMS (the buckets use SSE-S3), data transfer (same region), log storage (14 days),
//!   and the catalog: per object two on-demand DynamoDB writes (its version item and the
//!   latest item, 1 write request unit each) and one counters transaction of two items
//!   (2 units per item), so 6 units, about $3.75 per million objects at us-east-1's
//!   $0.625 per million write request units; the stream reads are free for a Lambda
//!   consumer, and the counters function runs once per batch of up to 100 changes.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{json, Value};
use thiserror::Error;

// ------------------------------------------------------------------------------ prices

/// Lambda duration on x86_64, $ per GB-second (AWS Lambda pricing, us-east-1, 2026).
pub const LAMBDA_X86_64_PER_GB_SECOND: f64 = 0.000_016_666_7;
/// Lambda duration on arm64 (Graviton), $ per GB-second (us-east-1, 2026).
pub const LAMBDA_ARM64_PER_GB_SECOND: f64 = 0.000_013_333_4;
/// Lambda requests, $ per million (us-east-1, 2026).
pub const LAMBDA_PER_MILLION_REQUESTS: f64 = 0.20;
/// Step Functions STANDARD, $ per 1,000 state transitions (us-east-1, 2026).
pub const SFN_STANDARD_PER_THOUSAND_TRANSITIONS: f64 = 0.025;
/// Step Functions EXPRESS, $ per million executions (requests) (us-east-1, 2026).
pub const SFN_EXPRESS_PER_MILLION_EXECUTIONS: f64 = 1.00;
/// Step Functions EXPRESS duration, $ per GB-second: the first tier (first 1,000
/// GB-hours a month; later tiers are cheaper, so this is an upper bound).
pub const SFN_EXPRESS_PER_GB_SECOND: f64 = 0.000_016_67;
/// S3 Standard PUT, COPY, POST and LIST requests, $ per 1,000 (us-east-1, 2026).
pub const S3_PER_THOUSAND_WRITES: f64 = 0.005;
/// S3 Standard GET, HEAD (and other) requests, $ per 1,000 (us-east-1, 2026).
pub const S3_PER_THOUSAND_READS: f64 = 0.000_4;
/// S3 Standard storage, $ per GB-month (first 50 TB, us-east-1, 2026).
pub const S3_STANDARD_PER_GB_MONTH: f64 = 0.023;
/// CloudWatch Logs ingestion (standard log class), $ per GB (us-east-1, 2026).
pub const LOGS_PER_GB_INGESTED: f64 = 0.50;

/// EXPRESS bills duration in increments of this many milliseconds.
pub const EXPRESS_BILLING_INCREMENT_MS: u64 = 100;
/// EXPRESS bills memory in blocks of this many MB.
pub const EXPRESS_MEMORY_BLOCK_MB: u32 = 64;
/// The longest an EXPRESS execution may run.
pub const EXPRESS_MAX_DURATION_MS: u64 = 5 * 60 * 1000;

/// Bytes in a GB as AWS bills storage, logs and Lambda memory (2^30).
const BYTES_PER_GB: f64 = 1_073_741_824.0;
/// Bytes in an MB (2^20), for object sizes.
const BYTES_PER_MB: f64 = 1_048_576.0;

/// The CPU architecture of the functions (it sets Lambda's GB-second price).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    X86_64,
    Arm64,
}

impl Architecture {
    /// What `infra/template.yaml` deploys (`Architectures: [x86_64]` on every function).
    pub const DEPLOYED: Architecture = Architecture::X86_64;
}

/// Unit prices, in the units AWS quotes them. Build with [`Prices::us_east_1`]; the fields
/// are public so another region's prices can be filled in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    pub lambda_per_gb_second: f64,
    pub lambda_per_million_requests: f64,
    pub sfn_standard_per_thousand_transitions: f64,
    pub sfn_express_per_million_executions: f64,
    pub sfn_express_per_gb_second: f64,
    pub s3_per_thousand_writes: f64,
    pub s3_per_thousand_reads: f64,
    pub s3_standard_per_gb_month: f64,
    pub logs_per_gb_ingested: f64,
}

impl Prices {
    /// us-east-1 list prices from the AWS public pricing pages (Lambda, Step Functions,
    /// S3, CloudWatch), as of 2026. The free tier is ignored.
    pub fn us_east_1(architecture: Architecture) -> Self {
        Prices {
            lambda_per_gb_second: match architecture {
                Architecture::X86_64 => LAMBDA_X86_64_PER_GB_SECOND,
                Architecture::Arm64 => LAMBDA_ARM64_PER_GB_SECOND,
            },
            lambda_per_million_requests: LAMBDA_PER_MILLION_REQUESTS,
            sfn_standard_per_thousand_transitions: SFN_STANDARD_PER_THOUSAND_TRANSITIONS,
            sfn_express_per_million_executions: SFN_EXPRESS_PER_MILLION_EXECUTIONS,
            sfn_express_per_gb_second: SFN_EXPRESS_PER_GB_SECOND,
            s3_per_thousand_writes: S3_PER_THOUSAND_WRITES,
            s3_per_thousand_reads: S3_PER_THOUSAND_READS,
            s3_standard_per_gb_month: S3_STANDARD_PER_GB_MONTH,
            logs_per_gb_ingested: LOGS_PER_GB_INGESTED,
        }
    }
}

// ------------------------------------------------------------------------------ errors

/// Why a cost could not be estimated.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CostError {
    /// The definition is not a walkable state machine (no StartAt, a missing state...).
    #[error("state machine definition: {reason}")]
    InvalidDefinition { reason: String },
    /// A state type the walk does not model (Wait, Parallel, Map).
    #[error("state {state:?}: type {kind:?} is not supported by the cost model")]
    UnsupportedState { state: String, kind: String },
    /// A Choice rule the walk cannot evaluate.
    #[error("choice state {state:?}: {reason}")]
    UnsupportedChoice { state: String, reason: String },
    /// No Choice rule matched and the state has no Default (`States.NoChoiceMatched`).
    #[error("choice state {state:?}: no rule matches and there is no Default")]
    NoChoiceMatched { state: String },
    /// The walk came back to a state it had already entered: it would never end.
    #[error("the path enters state {state:?} twice: a cycle the cost model cannot bound")]
    Cycle { state: String },
    /// A Task state that is none of the pipeline's functions.
    #[error("task state {state:?} is not one of the pipeline's functions")]
    UnknownTask { state: String },
    /// A step the fit needs has no measured sample.
    #[error("no measured samples for the {step} step")]
    MissingSamples { step: Step },
    /// A measured sample that is not a duration.
    #[error("{step} sample: {reason}")]
    InvalidSample { step: Step, reason: String },
    /// A workload field out of range.
    #[error("workload: {reason}")]
    InvalidWorkload { reason: String },
}

// ------------------------------------------------------------------------------- steps

/// The pipeline's Lambda functions, in the order an object meets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    Ingest,
    Inspect,
    Transform,
    Load,
    Quarantine,
}

impl Step {
    pub const ALL: [Step; 5] = [
        Step::Ingest,
        Step::Inspect,
        Step::Transform,
        Step::Load,
        Step::Quarantine,
    ];

    /// Steps [`DurationProfile::fit`] cannot do without: every processed object runs them.
    /// Ingest runs outside the state machine (its durations come from its own logs, not
    /// from execution histories) and a history may have no quarantined object, so those two
    /// keep their [`DurationProfile::measured_default`] line when they have no sample.
    pub const REQUIRED_FOR_FIT: [Step; 3] = [Step::Inspect, Step::Transform, Step::Load];

    pub fn name(self) -> &'static str {
        match self {
            Step::Ingest => "ingest",
            Step::Inspect => "inspect",
            Step::Transform => "transform",
            Step::Load => "load",
            Step::Quarantine => "quarantine",
        }
    }

    /// The step a Task state of `state-machine/pipeline.asl.json` runs (ingest has none).
    pub fn from_state_name(state: &str) -> Option<Step> {
        match state {
            "Inspect" => Some(Step::Inspect),
            "Transform" => Some(Step::Transform),
            "Load" => Some(Step::Load),
            "Quarantine" => Some(Step::Quarantine),
            _ => None,
        }
    }

    /// Whether the step's duration grows with the image: inspect hashes and parses the
    /// whole object, transform decodes it. The others move a few small JSON objects.
    pub fn scales_with_megapixels(self) -> bool {
        matches!(self, Step::Inspect | Step::Transform)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Each function's configured memory, and the memory an EXPRESS execution is billed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemorySizes {
    pub ingest_mb: u32,
    pub inspect_mb: u32,
    pub transform_mb: u32,
    pub load_mb: u32,
    pub quarantine_mb: u32,
    /// EXPRESS bills the memory the workflow itself uses, in 64 MB blocks. It is not
    /// published per execution; our payloads are a few KB (S3 references, never image
    /// bytes), so one block is assumed.
    pub express_mb: u32,
}

impl MemorySizes {
    /// `MemorySize` of each function in `infra/template.yaml` (reconcile, 256 MB, is not
    /// per object and not counted).
    pub const DEPLOYED: MemorySizes = MemorySizes {
        ingest_mb: 256,
        inspect_mb: 512,
        transform_mb: 1024,
        load_mb: 256,
        quarantine_mb: 256,
        express_mb: EXPRESS_MEMORY_BLOCK_MB,
    };

    pub fn of(&self, step: Step) -> u32 {
        match step {
            Step::Ingest => self.ingest_mb,
            Step::Inspect => self.inspect_mb,
            Step::Transform => self.transform_mb,
            Step::Load => self.load_mb,
            Step::Quarantine => self.quarantine_mb,
        }
    }

    /// The EXPRESS memory rounded up to whole 64 MB blocks, in GB.
    fn express_gb(&self) -> f64 {
        let blocks = self.express_mb.div_ceil(EXPRESS_MEMORY_BLOCK_MB).max(1);
        f64::from(blocks * EXPRESS_MEMORY_BLOCK_MB) / 1024.0
    }
}

// --------------------------------------------------------------------------- durations

/// Tolerance for float noise when rounding durations up (1 ns).
const ROUNDING_SLACK_MS: f64 = 1e-6;

/// Lambda bills an invocation's duration rounded up to the next 1 ms (at least 1 ms).
pub fn lambda_billed_ms(duration_ms: f64) -> u64 {
    ((duration_ms - ROUNDING_SLACK_MS).ceil().max(1.0)) as u64
}

/// EXPRESS bills an execution's duration rounded up to the next 100 ms (at least 100 ms).
pub fn express_billed_ms(duration_ms: f64) -> u64 {
    let increments = ((duration_ms - ROUNDING_SLACK_MS) / EXPRESS_BILLING_INCREMENT_MS as f64)
        .ceil()
        .max(1.0) as u64;
    increments * EXPRESS_BILLING_INCREMENT_MS
}

/// One step's duration: `fixed_ms + ms_per_megapixel * megapixels`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepDuration {
    pub fixed_ms: f64,
    pub ms_per_megapixel: f64,
    /// How many measured samples the line was fitted from; 0 for a placeholder.
    pub samples: usize,
}

impl StepDuration {
    /// A placeholder line (no samples).
    pub const fn placeholder(fixed_ms: f64, ms_per_megapixel: f64) -> Self {
        StepDuration {
            fixed_ms,
            ms_per_megapixel,
            samples: 0,
        }
    }

    pub fn duration_ms(&self, megapixels: f64) -> f64 {
        self.fixed_ms + self.ms_per_megapixel * megapixels
    }
}

/// How long each function runs, and what Step Functions adds per state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DurationProfile {
    pub ingest: StepDuration,
    pub inspect: StepDuration,
    pub transform: StepDuration,
    pub load: StepDuration,
    pub quarantine: StepDuration,
    /// Time an execution spends per state entered outside the functions (scheduling the
    /// Lambda invoke, passing the payload). EXPRESS bills it; Lambda does not. Measured as
    /// (execution duration - sum of task durations) / states entered.
    pub state_overhead_ms: f64,
}

/// One measured duration of one step, e.g. a Task state's entered-to-exited time from an
/// execution history (which slightly overstates the Lambda billed duration, by the invoke
/// latency) or a `REPORT` line's `Duration` from a function's logs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepSample {
    pub step: Step,
    /// The object's width * height / 1e6.
    pub megapixels: f64,
    pub duration_ms: f64,
}

impl DurationProfile {
    /// PLACEHOLDERS: replace with measured numbers ([`DurationProfile::fit`] over real
    /// executions). Nothing here was measured on AWS Lambda. Where they come from:
    /// - transform 250 ms + 10 ms/MP: the README benchmark (`render_thumbnails`, 9 JPEG
    ///   photos of 8-24 MP, whole process on one development core) fits 104 ms +
    ///   3.3 ms/MP; a 1,024 MB function gets 1024/1769 of a vCPU, so about 180 ms +
    ///   5.7 ms/MP, plus a guess of 70 ms for the source GET and two PUTs and 4 ms/MP to
    ///   read the bigger source (about 0.2 MB per megapixel);
    /// - inspect 45 ms + 5 ms/MP: a guess for HEAD, a ranged GET, the full GET and the
    ///   SHA-256 of about 0.2 MB per megapixel at 512 MB;
    /// - ingest 25 ms (one StartExecution), load 50 ms (a GET and a conditional PUT),
    ///   quarantine 80 ms (COPY, GET, PUT): guesses of one S3 or Step Functions round trip
    ///   of 20-30 ms each;
    /// - 30 ms per state for Step Functions itself: a guess.
    pub fn measured_default() -> Self {
        DurationProfile {
            ingest: StepDuration::placeholder(25.0, 0.0),
            inspect: StepDuration::placeholder(45.0, 5.0),
            transform: StepDuration::placeholder(250.0, 10.0),
            load: StepDuration::placeholder(50.0, 0.0),
            quarantine: StepDuration::placeholder(80.0, 0.0),
            state_overhead_ms: 30.0,
        }
    }

    pub fn of(&self, step: Step) -> &StepDuration {
        match step {
            Step::Ingest => &self.ingest,
            Step::Inspect => &self.inspect,
            Step::Transform => &self.transform,
            Step::Load => &self.load,
            Step::Quarantine => &self.quarantine,
        }
    }

    fn of_mut(&mut self, step: Step) -> &mut StepDuration {
        match step {
            Step::Ingest => &mut self.ingest,
            Step::Inspect => &mut self.inspect,
            Step::Transform => &mut self.transform,
            Step::Load => &mut self.load,
            Step::Quarantine => &mut self.quarantine,
        }
    }

    /// Fits each step's line to measured samples: a least-squares line for the steps that
    /// scale with megapixels, the mean for the others. The slope is never negative (a
    /// negative fit becomes the mean) and neither is the fixed part (a negative intercept
    /// becomes the least-squares line through the origin); when every sample of a step has
    /// the same size the slope is unknowable and the mean is used.
    ///
    /// [`Step::REQUIRED_FOR_FIT`] must each have a sample; ingest and quarantine keep
    /// their placeholder line (`samples == 0`) when they have none, and
    /// `state_overhead_ms` always keeps its placeholder (set it from execution durations).
    pub fn fit(samples: &[StepSample]) -> Result<Self, CostError> {
        for sample in samples {
            let bad = |reason: String| CostError::InvalidSample {
                step: sample.step,
                reason,
            };
            if !sample.megapixels.is_finite() || sample.megapixels < 0.0 {
                return Err(bad(format!("megapixels {}", sample.megapixels)));
            }
            if !sample.duration_ms.is_finite() || sample.duration_ms < 0.0 {
                return Err(bad(format!("duration {} ms", sample.duration_ms)));
            }
        }
        let mut profile = Self::measured_default();
        for step in Step::ALL {
            let points: Vec<(f64, f64)> = samples
                .iter()
                .filter(|s| s.step == step)
                .map(|s| (s.megapixels, s.duration_ms))
                .collect();
            if points.is_empty() {
                if Step::REQUIRED_FOR_FIT.contains(&step) {
                    return Err(CostError::MissingSamples { step });
                }
                continue;
            }
            *profile.of_mut(step) = fit_line(&points, step.scales_with_megapixels());
        }
        Ok(profile)
    }
}

/// Least squares of `points` (megapixels, ms), clamped as [`DurationProfile::fit`] says.
/// `points` is not empty.
fn fit_line(points: &[(f64, f64)], scales: bool) -> StepDuration {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let mean = StepDuration {
        fixed_ms: mean_y,
        ms_per_megapixel: 0.0,
        samples: points.len(),
    };
    let (min_x, max_x) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.0), hi.max(p.0))
        });
    if !scales || max_x - min_x <= 1e-9 * max_x.max(1.0) {
        return mean;
    }
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let slope = sxy / sxx;
    if slope <= 0.0 {
        return mean;
    }
    let fixed = mean_y - slope * mean_x;
    if fixed >= 0.0 {
        return StepDuration {
            fixed_ms: fixed,
            ms_per_megapixel: slope,
            samples: points.len(),
        };
    }
    // The best line with a fixed part of zero: through the origin. Some x is > 0 here.
    let through_origin = points.iter().map(|p| p.0 * p.1).sum::<f64>()
        / points.iter().map(|p| p.0 * p.0).sum::<f64>();
    StepDuration {
        fixed_ms: 0.0,
        ms_per_megapixel: through_origin.max(0.0),
        samples: points.len(),
    }
}

// ---------------------------------------------------------------------- state machine

/// The state types the walk models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    Task,
    Choice,
    Pass,
    Succeed,
    Fail,
}

impl StateKind {
    fn parse(kind: &str) -> Option<Self> {
        match kind {
            "Task" => Some(StateKind::Task),
            "Choice" => Some(StateKind::Choice),
            "Pass" => Some(StateKind::Pass),
            "Succeed" => Some(StateKind::Succeed),
            "Fail" => Some(StateKind::Fail),
            _ => None,
        }
    }
}

/// One state a path enters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitedState {
    pub name: String,
    pub kind: StateKind,
}

/// The states an execution enters, from `StartAt` to its end, when every Task succeeds and
/// every Choice is decided against `facts` (a JSON document standing for the state input
/// at that point: `{"inspection": {"supported": true}}`). Data flow is not modelled (Pass
/// and ResultPath do not change `facts`). Choice rules may use `BooleanEquals`,
/// `StringEquals`, `NumericEquals`, `IsPresent` on `$.a.b` paths, and `And`/`Or`/`Not`.
///
/// Every state entered is one STANDARD state transition (the first included), as Step
/// Functions counts them. The walk is deterministic, so entering a state twice means it
/// would never end: that is a [`CostError::Cycle`], so the walk is bounded by the number of
/// states.
pub fn walk(definition: &Value, facts: &Value) -> Result<Vec<VisitedState>, CostError> {
    let invalid = |reason: String| CostError::InvalidDefinition { reason };
    let states = definition
        .get("States")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("no States object".into()))?;
    let mut name = definition
        .get("StartAt")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("no StartAt".into()))?
        .to_string();
    let mut entered = BTreeSet::new();
    let mut path = Vec::new();
    loop {
        if !entered.insert(name.clone()) {
            return Err(CostError::Cycle { state: name });
        }
        let state = states
            .get(&name)
            .ok_or_else(|| invalid(format!("state {name:?} is not defined")))?;
        let kind_name = state
            .get("Type")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("state {name:?} has no Type")))?;
        let kind = StateKind::parse(kind_name).ok_or_else(|| CostError::UnsupportedState {
            state: name.clone(),
            kind: kind_name.to_string(),
        })?;
        let next = match kind {
            StateKind::Task | StateKind::Pass => {
                if state.get("End").and_then(Value::as_bool) == Some(true) {
                    None
                } else {
                    Some(
                        state
                            .get("Next")
                            .and_then(Value::as_str)
                            .ok_or_else(|| invalid(format!("state {name:?} has no Next or End")))?
                            .to_string(),
                    )
                }
            }
            StateKind::Choice => Some(choose(&name, state, facts)?),
            StateKind::Succeed | StateKind::Fail => None,
        };
        path.push(VisitedState { name, kind });
        match next {
            Some(next) => name = next,
            None => return Ok(path),
        }
    }
}

/// The state a Choice goes to: the first matching rule's Next, else Default.
fn choose(name: &str, state: &Value, facts: &Value) -> Result<String, CostError> {
    let rules = state
        .get("Choices")
        .and_then(Value::as_array)
        .ok_or_else(|| CostError::InvalidDefinition {
            reason: format!("choice state {name:?} has no Choices"),
        })?;
    for rule in rules {
        if rule_matches(name, rule, facts)? {
            return rule
                .get("Next")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| CostError::InvalidDefinition {
                    reason: format!("a rule of choice state {name:?} has no Next"),
                });
        }
    }
    state
        .get("Default")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| CostError::NoChoiceMatched { state: name.into() })
}

fn rule_matches(name: &str, rule: &Value, facts: &Value) -> Result<bool, CostError> {
    let unsupported = |reason: String| CostError::UnsupportedChoice {
        state: name.into(),
        reason,
    };
    if let Some(all) = rule.get("And").and_then(Value::as_array) {
        for r in all {
            if !rule_matches(name, r, facts)? {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    if let Some(any) = rule.get("Or").and_then(Value::as_array) {
        for r in any {
            if rule_matches(name, r, facts)? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    if let Some(not) = rule.get("Not") {
        return Ok(!rule_matches(name, not, facts)?);
    }
    let variable = rule
        .get("Variable")
        .and_then(Value::as_str)
        .ok_or_else(|| unsupported("a rule without Variable (e.g. JSONata Condition)".into()))?;
    let fields = variable
        .strip_prefix("$.")
        .filter(|rest| {
            !rest.is_empty()
                && rest
                    .split('.')
                    .all(|f| !f.is_empty() && !f.contains(['[', ']', '*', '$']))
        })
        .ok_or_else(|| unsupported(format!("Variable {variable:?} is not a plain $.a.b path")))?;
    let value = fields.split('.').try_fold(facts, |v, field| v.get(field));
    if let Some(present) = rule.get("IsPresent").and_then(Value::as_bool) {
        return Ok(value.is_some() == present);
    }
    let value = value.ok_or_else(|| unsupported(format!("the facts have no {variable}")))?;
    if let Some(expected) = rule.get("BooleanEquals").and_then(Value::as_bool) {
        return Ok(value.as_bool() == Some(expected));
    }
    if let Some(expected) = rule.get("StringEquals").and_then(Value::as_str) {
        return Ok(value.as_str() == Some(expected));
    }
    if let Some(expected) = rule.get("NumericEquals").and_then(Value::as_f64) {
        return Ok(value.as_f64().is_some_and(|v| (v - expected).abs() < 1e-12));
    }
    Err(unsupported(format!(
        "the rule on {variable} uses a comparison other than BooleanEquals, StringEquals, \
         NumericEquals or IsPresent"
    )))
}

/// Which way an object goes through the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// Inspect finds a supported image: thumbnails and a manifest.
    Processed,
    /// Inspect finds unsupported content: copied to quarantine with a report.
    Quarantined,
}

/// The states one kind of object enters and the functions it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionPath {
    pub states: Vec<VisitedState>,
    /// The Task states' functions, in order.
    pub tasks: Vec<Step>,
}

impl ExecutionPath {
    fn new(states: Vec<VisitedState>) -> Result<Self, CostError> {
        let tasks = states
            .iter()
            .filter(|s| s.kind == StateKind::Task)
            .map(|s| {
                Step::from_state_name(&s.name).ok_or_else(|| CostError::UnknownTask {
                    state: s.name.clone(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(ExecutionPath { states, tasks })
    }

    /// STANDARD state transitions: one per state entered.
    pub fn transitions(&self) -> u32 {
        u32::try_from(self.states.len()).unwrap_or(u32::MAX)
    }
}

/// The two paths the estimate charges: processed and quarantined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionPaths {
    pub processed: ExecutionPath,
    pub quarantined: ExecutionPath,
}

impl ExecutionPaths {
    /// Walks `definition` for an object Inspect supports (`IsSupported` tests
    /// `$.inspection.supported`, `BooleanEquals true` -> Transform) and for one it does not
    /// (the Default: Unsupported -> Quarantine). A caught failure also ends in Quarantine,
    /// after one to three tasks; the unsupported path stands for all quarantines.
    pub fn from_definition(definition: &Value) -> Result<Self, CostError> {
        let supported = json!({"inspection": {"supported": true}});
        let unsupported = json!({"inspection": {"supported": false}});
        Ok(ExecutionPaths {
            processed: ExecutionPath::new(walk(definition, &supported)?)?,
            quarantined: ExecutionPath::new(walk(definition, &unsupported)?)?,
        })
    }

    pub fn of(&self, kind: PathKind) -> &ExecutionPath {
        match kind {
            PathKind::Processed => &self.processed,
            PathKind::Quarantined => &self.quarantined,
        }
    }
}

/// STANDARD state transitions per object, by outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transitions {
    pub processed: u32,
    pub quarantined: u32,
}

/// The state transitions STANDARD bills for one processed and one quarantined object
/// (see [`ExecutionPaths::from_definition`]); retries add one each.
pub fn transitions_per_object(definition: &Value) -> Result<Transitions, CostError> {
    let paths = ExecutionPaths::from_definition(definition)?;
    Ok(Transitions {
        processed: paths.processed.transitions(),
        quarantined: paths.quarantined.transitions(),
    })
}

// -------------------------------------------------------------------------- S3 requests

/// S3 requests one invocation of a step makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct S3RequestRow {
    pub step: Step,
    /// `None`: the same on both paths.
    pub path: Option<PathKind>,
    /// GET and HEAD (billed at the read price; a GET of a missing key is billed too).
    pub reads: u32,
    /// PUT and COPY (billed at the write price), besides the thumbnails.
    pub writes: u32,
    /// PUTs per configured thumbnail size.
    pub writes_per_thumbnail: u32,
    pub what: &'static str,
}

/// What each function asks of S3 per object, counted from `functions/*/src/handler.rs`
/// and `crates/lambda/src/publish.rs` (`publish_result`: one read of the current result,
/// one conditional PUT; a lost race repeats both, not counted). DELETEs (a superseded
/// version's outputs) are free.
///
/// | step       | path        | GET/HEAD | PUT/COPY            |
/// |------------|-------------|----------|---------------------|
/// | ingest     | both        | 0        | 0                   |
/// | inspect    | processed   | 3        | 0                   |
/// | inspect    | quarantined | 2        | 0                   |
/// | transform  | both        | 1        | 1 per thumbnail     |
/// | load       | both        | 1        | 1                   |
/// | quarantine | both        | 1        | 2                   |
pub const S3_REQUESTS: [S3RequestRow; 6] = [
    S3RequestRow {
        step: Step::Ingest,
        path: None,
        reads: 0,
        writes: 0,
        writes_per_thumbnail: 0,
        what: "StartExecution only",
    },
    S3RequestRow {
        step: Step::Inspect,
        path: Some(PathKind::Processed),
        reads: 3,
        writes: 0,
        writes_per_thumbnail: 0,
        what: "HEAD, ranged GET to sniff, full GET to hash and read the header",
    },
    S3RequestRow {
        step: Step::Inspect,
        path: Some(PathKind::Quarantined),
        reads: 2,
        writes: 0,
        writes_per_thumbnail: 0,
        what: "HEAD, ranged GET to sniff (unsupported content stops there)",
    },
    S3RequestRow {
        step: Step::Transform,
        path: None,
        reads: 1,
        writes: 0,
        writes_per_thumbnail: 1,
        what: "GET the source, PUT each thumbnail",
    },
    S3RequestRow {
        step: Step::Load,
        path: None,
        reads: 1,
        writes: 1,
        writes_per_thumbnail: 0,
        what: "GET the current manifest, conditional PUT of the manifest",
    },
    S3RequestRow {
        step: Step::Quarantine,
        path: None,
        reads: 1,
        writes: 2,
        writes_per_thumbnail: 0,
        what: "COPY the source aside, GET the current report, conditional PUT of the report",
    },
];

/// GET/HEAD and PUT/COPY requests of one invocation of `step` on `path`.
pub fn s3_requests(step: Step, path: PathKind, thumbnail_sizes: u32) -> (u32, u32) {
    S3_REQUESTS
        .iter()
        .find(|row| row.step == step && row.path.is_none_or(|p| p == path))
        .map_or((0, 0), |row| {
            (
                row.reads,
                row.writes + row.writes_per_thumbnail * thumbnail_sizes,
            )
        })
}

// ----------------------------------------------------------------------------- workload

/// Size of a manifest as load writes it (pretty JSON with two thumbnails), in bytes.
pub const MANIFEST_BYTES: u64 = 2_048;
/// Size of a quarantine report, in bytes.
pub const REPORT_BYTES: u64 = 1_024;
/// CloudWatch Logs bytes per Lambda invocation: START, END and REPORT lines plus our
/// one or two JSON `tracing` lines.
pub const LOG_BYTES_PER_INVOCATION: u64 = 1_024;
/// CloudWatch Logs bytes per state an EXPRESS execution enters, logged at level ALL with
/// execution data (its only history): the entered, scheduled, started, succeeded and
/// exited events, each carrying the state's payload of a few hundred bytes. STANDARD
/// keeps its history in the service; the template configures no execution logs.
pub const EXPRESS_LOG_BYTES_PER_STATE: u64 = 4_096;
/// The wait before a retry: our Retry rules start at `IntervalSeconds` 1 with
/// `JitterStrategy` FULL, so the first wait averages 500 ms. EXPRESS bills it.
pub const RETRY_WAIT_MS: f64 = 500.0;

/// What the pipeline is asked to do in a month.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workload {
    pub objects_per_month: u64,
    /// Average width * height / 1e6 of the supported images.
    pub avg_megapixels: f64,
    /// Average size of an uploaded object, in MB (2^20 bytes).
    pub avg_object_mb: f64,
    /// Share of objects that end in quarantine, 0-1.
    pub quarantined_fraction: f64,
    /// How many thumbnail sizes are configured (`THUMBNAIL_SIZES`).
    pub thumbnail_sizes: u32,
    /// Average bytes of one thumbnail.
    pub avg_thumbnail_bytes: u64,
    /// Average task retries per object (each charged as a Transform retry).
    pub retries_per_object: f64,
}

impl Workload {
    /// The template's default `ThumbnailSizes` ("256,1024").
    pub const DEFAULT_THUMBNAIL_SIZES: u32 = 2;
    /// The mean of the README benchmark's JPEG thumbnails at quality 85: 96,906 bytes
    /// at 1024 px and 10,489 bytes at 256 px over its 9 photos of 8-24 MP.
    pub const DEFAULT_AVG_THUMBNAIL_BYTES: u64 = 53_698;
    /// MB per megapixel of an uploaded photo (a 12 MP JPEG is about 2.4 MB).
    pub const DEFAULT_MB_PER_MEGAPIXEL: f64 = 0.2;

    /// A workload with the defaults above, nothing quarantined and no retries.
    pub fn new(objects_per_month: u64, avg_megapixels: f64) -> Self {
        Workload {
            objects_per_month,
            avg_megapixels,
            avg_object_mb: avg_megapixels * Self::DEFAULT_MB_PER_MEGAPIXEL,
            quarantined_fraction: 0.0,
            thumbnail_sizes: Self::DEFAULT_THUMBNAIL_SIZES,
            avg_thumbnail_bytes: Self::DEFAULT_AVG_THUMBNAIL_BYTES,
            retries_per_object: 0.0,
        }
    }

    pub fn validate(&self) -> Result<(), CostError> {
        let check = |ok: bool, what: &str, value: f64| {
            if ok {
                Ok(())
            } else {
                Err(CostError::InvalidWorkload {
                    reason: format!("{what} {value} is out of range"),
                })
            }
        };
        let m = self.avg_megapixels;
        check(m.is_finite() && m >= 0.0, "average megapixels", m)?;
        let mb = self.avg_object_mb;
        check(mb.is_finite() && mb >= 0.0, "average object MB", mb)?;
        let q = self.quarantined_fraction;
        check((0.0..=1.0).contains(&q), "quarantined fraction (0-1)", q)?;
        let r = self.retries_per_object;
        check(r.is_finite() && r >= 0.0, "retries per object", r)?;
        Ok(())
    }
}

// ----------------------------------------------------------------------------- estimate

/// Which total a line item is part of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BilledIn {
    Both,
    Standard,
    Express,
}

/// The unit of a line item's quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Requests,
    Transitions,
    Executions,
    GbSeconds,
    GbMonths,
    Gb,
}

impl Unit {
    pub fn label(self) -> &'static str {
        match self {
            Unit::Requests => "requests",
            Unit::Transitions => "transitions",
            Unit::Executions => "executions",
            Unit::GbSeconds => "GB-s",
            Unit::GbMonths => "GB-month",
            Unit::Gb => "GB",
        }
    }

    fn decimals(self) -> usize {
        match self {
            Unit::Requests | Unit::Transitions | Unit::Executions => 0,
            Unit::GbSeconds => 1,
            Unit::GbMonths | Unit::Gb => 2,
        }
    }
}

/// One row of the bill.
#[derive(Debug, Clone, PartialEq)]
pub struct LineItem {
    pub label: String,
    pub quantity: f64,
    pub unit: Unit,
    pub dollars: f64,
    pub billed_in: BilledIn,
}

/// A month of the pipeline, both ways.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub workload: Workload,
    pub items: Vec<LineItem>,
    pub standard_total: f64,
    pub express_total: f64,
    /// STANDARD transitions per object, averaged over outcomes and retries.
    pub transitions_per_object: f64,
    /// EXPRESS billed duration per execution, averaged over outcomes, in ms.
    pub express_billed_ms_per_execution: f64,
    /// The longest path's billed EXPRESS duration, in ms.
    pub express_longest_billed_ms: u64,
    /// The average EXPRESS billed duration (in seconds) at which both cost the same; `None`
    /// when EXPRESS costs more even at zero duration.
    pub break_even_seconds: Option<f64>,
    /// The average megapixels at which the break-even duration is reached with this
    /// profile; `None` when durations do not grow with megapixels (or no break-even).
    pub break_even_megapixels: Option<f64>,
}

/// Estimates a month of `workload` under STANDARD and under EXPRESS.
pub fn estimate(
    workload: &Workload,
    profile: &DurationProfile,
    prices: &Prices,
    memory: &MemorySizes,
    paths: &ExecutionPaths,
) -> Result<Estimate, CostError> {
    workload.validate()?;
    let objects = workload.objects_per_month as f64;
    let mp = workload.avg_megapixels;
    let q = workload.quarantined_fraction;
    let retries = workload.retries_per_object;
    let shares = [(PathKind::Processed, 1.0 - q), (PathKind::Quarantined, q)];
    let mut items = Vec::new();

    // Lambda: invocations per object of each step, then GB-s at the rounded duration.
    let invocations_per_object = |step: Step| -> f64 {
        let on_paths: f64 = shares
            .iter()
            .map(|&(kind, share)| {
                share * paths.of(kind).tasks.iter().filter(|&&t| t == step).count() as f64
            })
            .sum();
        let outside = if step == Step::Ingest { 1.0 } else { 0.0 };
        let retried = if step == Step::Transform {
            retries
        } else {
            0.0
        };
        on_paths + outside + retried
    };
    let requests: f64 = Step::ALL
        .iter()
        .map(|&s| invocations_per_object(s) * objects)
        .sum();
    items.push(LineItem {
        label: "Lambda requests".into(),
        quantity: requests,
        unit: Unit::Requests,
        dollars: requests / 1e6 * prices.lambda_per_million_requests,
        billed_in: BilledIn::Both,
    });
    for step in Step::ALL {
        let invocations = invocations_per_object(step) * objects;
        if invocations <= 0.0 {
            continue;
        }
        let billed_ms = lambda_billed_ms(profile.of(step).duration_ms(mp));
        let gb_seconds =
            invocations * billed_ms as f64 / 1000.0 * f64::from(memory.of(step)) / 1024.0;
        items.push(LineItem {
            label: format!("Lambda {step} ({} MB, {billed_ms} ms)", memory.of(step)),
            quantity: gb_seconds,
            unit: Unit::GbSeconds,
            dollars: gb_seconds * prices.lambda_per_gb_second,
            billed_in: BilledIn::Both,
        });
    }

    // Step Functions STANDARD: one transition per state entered, one more per retry.
    let transitions_per_object: f64 = shares
        .iter()
        .map(|&(kind, share)| share * f64::from(paths.of(kind).transitions()))
        .sum::<f64>()
        + retries;
    let transitions = transitions_per_object * objects;
    let standard_per_object =
        transitions_per_object / 1000.0 * prices.sfn_standard_per_thousand_transitions;
    items.push(LineItem {
        label: "Step Functions STANDARD".into(),
        quantity: transitions,
        unit: Unit::Transitions,
        dollars: standard_per_object * objects,
        billed_in: BilledIn::Standard,
    });

    // Step Functions EXPRESS: per execution, plus memory x duration rounded to 100 ms.
    let retry_ms =
        retries * (profile.transform.duration_ms(mp) + profile.state_overhead_ms + RETRY_WAIT_MS);
    let path_ms = |kind: PathKind| -> f64 {
        let path = paths.of(kind);
        path.tasks
            .iter()
            .map(|&t| profile.of(t).duration_ms(mp))
            .sum::<f64>()
            + f64::from(path.transitions()) * profile.state_overhead_ms
            + retry_ms
    };
    let express_billed_ms_per_execution: f64 = shares
        .iter()
        .map(|&(kind, share)| share * express_billed_ms(path_ms(kind)) as f64)
        .sum();
    let express_longest_billed_ms = shares
        .iter()
        .filter(|(_, share)| *share > 0.0)
        .map(|&(kind, _)| express_billed_ms(path_ms(kind)))
        .max()
        .unwrap_or(0);
    let express_gb = memory.express_gb();
    let express_executions = objects;
    items.push(LineItem {
        label: "Step Functions EXPRESS executions".into(),
        quantity: express_executions,
        unit: Unit::Executions,
        dollars: express_executions / 1e6 * prices.sfn_express_per_million_executions,
        billed_in: BilledIn::Express,
    });
    let express_gb_seconds = objects * express_billed_ms_per_execution / 1000.0 * express_gb;
    items.push(LineItem {
        label: format!(
            "Step Functions EXPRESS duration ({} MB, {:.0} ms)",
            (express_gb * 1024.0).round(),
            express_billed_ms_per_execution
        ),
        quantity: express_gb_seconds,
        unit: Unit::GbSeconds,
        dollars: express_gb_seconds * prices.sfn_express_per_gb_second,
        billed_in: BilledIn::Express,
    });

    // S3 requests, from the table.
    let (mut reads, mut writes) = (0.0, 0.0);
    for &(kind, share) in &shares {
        for &task in &paths.of(kind).tasks {
            let (r, w) = s3_requests(task, kind, workload.thumbnail_sizes);
            reads += share * f64::from(r);
            writes += share * f64::from(w);
        }
    }
    let (r, w) = s3_requests(
        Step::Transform,
        PathKind::Processed,
        workload.thumbnail_sizes,
    );
    reads = (reads + retries * f64::from(r)) * objects;
    writes = (writes + retries * f64::from(w)) * objects;
    items.push(LineItem {
        label: "S3 GET/HEAD requests".into(),
        quantity: reads,
        unit: Unit::Requests,
        dollars: reads / 1000.0 * prices.s3_per_thousand_reads,
        billed_in: BilledIn::Both,
    });
    items.push(LineItem {
        label: "S3 PUT/COPY requests".into(),
        quantity: writes,
        unit: Unit::Requests,
        dollars: writes / 1000.0 * prices.s3_per_thousand_writes,
        billed_in: BilledIn::Both,
    });

    // S3 storage: this month's outputs, kept for one month (each later month they are
    // kept adds the same again).
    let processed_bytes = f64::from(workload.thumbnail_sizes) * workload.avg_thumbnail_bytes as f64
        + MANIFEST_BYTES as f64;
    let quarantined_bytes = workload.avg_object_mb * BYTES_PER_MB + REPORT_BYTES as f64;
    let stored_gb = objects * ((1.0 - q) * processed_bytes + q * quarantined_bytes) / BYTES_PER_GB;
    items.push(LineItem {
        label: "S3 storage of this month's outputs".into(),
        quantity: stored_gb,
        unit: Unit::GbMonths,
        dollars: stored_gb * prices.s3_standard_per_gb_month,
        billed_in: BilledIn::Both,
    });

    // CloudWatch Logs ingestion.
    let lambda_log_gb = requests * LOG_BYTES_PER_INVOCATION as f64 / BYTES_PER_GB;
    items.push(LineItem {
        label: "CloudWatch Logs, Lambda".into(),
        quantity: lambda_log_gb,
        unit: Unit::Gb,
        dollars: lambda_log_gb * prices.logs_per_gb_ingested,
        billed_in: BilledIn::Both,
    });
    let express_log_gb_per_object =
        transitions_per_object * EXPRESS_LOG_BYTES_PER_STATE as f64 / BYTES_PER_GB;
    let express_log_gb = express_log_gb_per_object * objects;
    items.push(LineItem {
        label: "CloudWatch Logs, EXPRESS executions".into(),
        quantity: express_log_gb,
        unit: Unit::Gb,
        dollars: express_log_gb * prices.logs_per_gb_ingested,
        billed_in: BilledIn::Express,
    });

    let total = |billed: BilledIn| -> f64 {
        items
            .iter()
            .filter(|i| i.billed_in == BilledIn::Both || i.billed_in == billed)
            .map(|i| i.dollars)
            .sum()
    };
    let standard_total = total(BilledIn::Standard);
    let express_total = total(BilledIn::Express);

    // Break-even: only the Step Functions items differ. Per object, STANDARD costs
    // `standard_per_object`; EXPRESS costs a fixed part plus a price per billed second.
    let express_fixed_per_object = prices.sfn_express_per_million_executions / 1e6
        + express_log_gb_per_object * prices.logs_per_gb_ingested;
    let express_per_second = express_gb * prices.sfn_express_per_gb_second;
    let break_even_seconds = (express_per_second > 0.0
        && standard_per_object > express_fixed_per_object)
        .then(|| (standard_per_object - express_fixed_per_object) / express_per_second);
    let ms_per_megapixel: f64 = shares
        .iter()
        .map(|&(kind, share)| {
            share
                * paths
                    .of(kind)
                    .tasks
                    .iter()
                    .map(|&t| profile.of(t).ms_per_megapixel)
                    .sum::<f64>()
        })
        .sum::<f64>()
        + retries * profile.transform.ms_per_megapixel;
    let average_ms: f64 = shares
        .iter()
        .map(|&(kind, share)| share * path_ms(kind))
        .sum();
    let break_even_megapixels = break_even_seconds
        .filter(|_| ms_per_megapixel > 0.0)
        .map(|s| mp + (s * 1000.0 - average_ms) / ms_per_megapixel)
        .filter(|m| *m >= 0.0);

    Ok(Estimate {
        workload: *workload,
        items,
        standard_total,
        express_total,
        transitions_per_object,
        express_billed_ms_per_execution,
        express_longest_billed_ms,
        break_even_seconds,
        break_even_megapixels,
    })
}

impl Estimate {
    /// Whether EXPRESS costs less this month (and can run every execution at all).
    pub fn express_is_cheaper(&self) -> bool {
        self.express_total < self.standard_total && self.express_fits()
    }

    /// Whether every execution stays under EXPRESS's 5-minute limit.
    pub fn express_fits(&self) -> bool {
        self.express_longest_billed_ms <= EXPRESS_MAX_DURATION_MS
    }

    fn item_dollars(&self, billed_in: BilledIn) -> f64 {
        self.items
            .iter()
            .filter(|i| i.billed_in == billed_in)
            .map(|i| i.dollars)
            .sum()
    }

    /// Which workflow type is cheaper, where that changes, and what EXPRESS gives up.
    pub fn explanation(&self) -> String {
        let objects = group_digits(self.workload.objects_per_month as f64, 0);
        let (standard, express) = (dollars(self.standard_total), dollars(self.express_total));
        let mut text = String::new();
        let verdict = if !self.express_fits() {
            format!(
                "EXPRESS cannot run this workload: an execution would be billed {:.1} s, over \
                 its 5-minute limit. STANDARD: {standard} a month for {objects} objects.",
                self.express_longest_billed_ms as f64 / 1000.0
            )
        } else if self.express_is_cheaper() {
            format!(
                "At {objects} objects a month EXPRESS is cheaper: {express} against {standard} \
                 for STANDARD ({} less).",
                dollars(self.standard_total - self.express_total)
            )
        } else {
            format!(
                "At {objects} objects a month STANDARD is cheaper (or equal): {standard} against \
                 {express} for EXPRESS."
            )
        };
        text.push_str(&verdict);
        text.push_str(&format!(
            "\nOnly Step Functions differs: STANDARD bills {:.2} transitions per object ({}); \
             EXPRESS bills each execution, its billed duration ({:.0} ms on average, rounded \
             up to 100 ms) and the execution logs that are its only history ({}).",
            self.transitions_per_object,
            dollars(self.item_dollars(BilledIn::Standard)),
            self.express_billed_ms_per_execution,
            dollars(self.item_dollars(BilledIn::Express)),
        ));
        let break_even = match self.break_even_seconds {
            None => "Break-even: none. EXPRESS costs more per object than STANDARD even at \
                     zero duration."
                .to_string(),
            Some(seconds) => {
                let mut s = format!(
                    "Break-even: both grow in proportion to the number of objects (the free \
                     tier is ignored), so the volume never changes which is cheaper; duration \
                     does. STANDARD's cost does not depend on duration, EXPRESS's grows with \
                     it: EXPRESS stays cheaper while an execution is billed under {seconds:.1} s \
                     on average (here {:.1} s).",
                    self.express_billed_ms_per_execution / 1000.0
                );
                match self.break_even_megapixels {
                    Some(m) => {
                        s.push_str(&format!(
                            " With this duration profile that is about {m:.0} megapixels per \
                             object (here {:.1}).",
                            self.workload.avg_megapixels
                        ));
                        let limit = crate::transform::DEFAULT_MAX_PIXELS as f64 / 1e6;
                        if m > limit {
                            s.push_str(&format!(
                                " Inspect rejects images over {limit:.0} MP by default \
                                 (MAX_PIXELS), so size alone does not get there."
                            ));
                        }
                    }
                    None => s.push_str(" With this duration profile no image size reaches it."),
                }
                if seconds * 1000.0 > EXPRESS_MAX_DURATION_MS as f64 {
                    s.push_str(" That is beyond EXPRESS's 5-minute limit, so it never binds.");
                }
                s
            }
        };
        text.push('\n');
        text.push_str(&break_even);
        text.push_str(
            "\nWhat EXPRESS loses:\n\
             - Deduplication. EXPRESS runs at least once, and StartExecution does not \
             deduplicate by name. STANDARD rejects a second execution with the same name \
             (ExecutionAlreadyExists, for 90 days): that is how ingest makes a duplicate S3 \
             event process an object once.\n\
             - History. EXPRESS has no execution history in the API (DescribeExecution, \
             GetExecutionHistory), only CloudWatch Logs, so the reconciler and \
             `pipeline retry` cannot read an execution's status by its name.\n\
             - Time. An EXPRESS execution stops after 5 minutes; the definition allows 15 \
             (TimeoutSeconds 900), and a Transform attempt alone up to 3.\n\
             What still holds: outputs are deterministic (same keys, same bytes) and \
             manifests and reports are written with conditional puts ordered by the S3 \
             sequencer, so a duplicate execution under EXPRESS costs extra work but cannot \
             corrupt a result.",
        );
        text
    }
}

impl fmt::Display for Estimate {
    /// The bill as a table: item, quantity, unit, STANDARD and EXPRESS dollars.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dash = "-".to_string();
        let mut rows: Vec<[String; 5]> = vec![[
            "item".into(),
            "quantity".into(),
            "unit".into(),
            "STANDARD".into(),
            "EXPRESS".into(),
        ]];
        for item in &self.items {
            let amount = dollars(item.dollars);
            let (standard, express) = match item.billed_in {
                BilledIn::Both => (amount.clone(), amount),
                BilledIn::Standard => (amount, dash.clone()),
                BilledIn::Express => (dash.clone(), amount),
            };
            rows.push([
                item.label.clone(),
                group_digits(item.quantity, item.unit.decimals()),
                item.unit.label().into(),
                standard,
                express,
            ]);
        }
        rows.push([
            "total per month".into(),
            String::new(),
            String::new(),
            dollars(self.standard_total),
            dollars(self.express_total),
        ]);
        let mut widths = [0usize; 5];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in &rows {
            let line = format!(
                "{:<w0$}  {:>w1$} {:<w2$}  {:>w3$}  {:>w4$}",
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3],
                w4 = widths[4],
            );
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// `1234567.891` with 2 decimals -> `1,234,567.89`.
fn group_digits(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    let (sign, unsigned) = text
        .strip_prefix('-')
        .map_or(("", text.as_str()), |rest| ("-", rest));
    let (whole, fraction) = unsigned
        .split_once('.')
        .map_or((unsigned, None), |(w, f)| (w, Some(f)));
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    match fraction {
        Some(fraction) => format!("{sign}{grouped}.{fraction}"),
        None => format!("{sign}{grouped}"),
    }
}

/// `$1,234.57`.
fn dollars(value: f64) -> String {
    format!("${}", group_digits(value, 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIPELINE: &str = include_str!("../../../state-machine/pipeline.asl.json");

    fn pipeline() -> Value {
        serde_json::from_str(PIPELINE).unwrap()
    }

    fn paths() -> ExecutionPaths {
        ExecutionPaths::from_definition(&pipeline()).unwrap()
    }

    fn cents(dollars: f64) -> i64 {
        (dollars * 100.0).round() as i64
    }

    fn item<'a>(estimate: &'a Estimate, label: &str) -> &'a LineItem {
        estimate
            .items
            .iter()
            .find(|i| i.label.starts_with(label))
            .unwrap_or_else(|| panic!("no line item {label:?} in {:#?}", estimate.items))
    }

    /// Round numbers: ingest 20 ms, inspect 100 ms, transform 400 + 50/MP, load 50 ms,
    /// quarantine 80 ms, no Step Functions overhead.
    fn simple_profile() -> DurationProfile {
        DurationProfile {
            ingest: StepDuration::placeholder(20.0, 0.0),
            inspect: StepDuration::placeholder(100.0, 0.0),
            transform: StepDuration::placeholder(400.0, 50.0),
            load: StepDuration::placeholder(50.0, 0.0),
            quarantine: StepDuration::placeholder(80.0, 0.0),
            state_overhead_ms: 0.0,
        }
    }

    fn million_at_4mp() -> Workload {
        Workload {
            avg_thumbnail_bytes: 50_000,
            ..Workload::new(1_000_000, 4.0)
        }
    }

    fn run(workload: &Workload, profile: &DurationProfile) -> Estimate {
        estimate(
            workload,
            profile,
            &Prices::us_east_1(Architecture::X86_64),
            &MemorySizes::DEPLOYED,
            &paths(),
        )
        .unwrap()
    }

    fn chain(states: Value) -> Value {
        json!({"StartAt": "A", "States": states})
    }

    fn names(path: &[VisitedState]) -> Vec<&str> {
        path.iter().map(|s| s.name.as_str()).collect()
    }

    // ---- the state machine

    #[test]
    fn transitions_per_object_real_definition_counts_every_state_entered() {
        let t = transitions_per_object(&pipeline()).unwrap();
        assert_eq!(
            t,
            Transitions {
                processed: 4,
                quarantined: 4
            }
        );
    }

    #[test]
    fn from_definition_real_paths_follow_is_supported() {
        let paths = paths();
        assert_eq!(
            names(&paths.processed.states),
            ["Inspect", "IsSupported", "Transform", "Load"]
        );
        assert_eq!(
            paths.processed.tasks,
            [Step::Inspect, Step::Transform, Step::Load]
        );
        assert_eq!(
            names(&paths.quarantined.states),
            ["Inspect", "IsSupported", "Unsupported", "Quarantine"]
        );
        assert_eq!(paths.quarantined.tasks, [Step::Inspect, Step::Quarantine]);
    }

    #[test]
    fn walk_pass_succeed_chain_counts_each_state() {
        let def = chain(json!({
            "A": {"Type": "Pass", "Next": "B"},
            "B": {"Type": "Pass", "Next": "C"},
            "C": {"Type": "Succeed"}
        }));
        let path = walk(&def, &json!({})).unwrap();
        assert_eq!(names(&path), ["A", "B", "C"]);
        assert_eq!(path[2].kind, StateKind::Succeed);
    }

    #[test]
    fn walk_choice_table() {
        let def = chain(json!({
            "A": {"Type": "Choice", "Choices": [
                {"Variable": "$.kind", "StringEquals": "photo", "Next": "Photo"},
                {"And": [
                    {"Variable": "$.size", "NumericEquals": 3},
                    {"Not": {"Variable": "$.flag", "IsPresent": true}}
                ], "Next": "Three"},
                {"Or": [
                    {"Variable": "$.a.b", "BooleanEquals": true},
                    {"Variable": "$.missing", "IsPresent": true}
                ], "Next": "Nested"}
            ], "Default": "Other"},
            "Photo": {"Type": "Succeed"},
            "Three": {"Type": "Succeed"},
            "Nested": {"Type": "Succeed"},
            "Other": {"Type": "Fail", "Error": "X"}
        }));
        let cases = [
            (json!({"kind": "photo"}), "Photo"),
            (json!({"kind": "text", "size": 3}), "Three"),
            (
                json!({"kind": "text", "size": 3, "flag": 1, "a": {"b": true}}),
                "Nested",
            ),
            (
                json!({"kind": "text", "size": 4, "a": {"b": false}}),
                "Other",
            ),
        ];
        for (facts, expected) in cases {
            let path = walk(&def, &facts).unwrap();
            assert_eq!(names(&path), ["A", expected], "{facts}");
        }
    }

    #[test]
    fn walk_cycle_is_an_error_not_a_hang() {
        let def = chain(json!({
            "A": {"Type": "Pass", "Next": "B"},
            "B": {"Type": "Task", "Resource": "x", "Next": "A"}
        }));
        assert_eq!(
            walk(&def, &json!({})),
            Err(CostError::Cycle { state: "A".into() })
        );
        let self_loop = chain(json!({
            "A": {"Type": "Choice", "Choices": [], "Default": "A"}
        }));
        assert_eq!(
            walk(&self_loop, &json!({})),
            Err(CostError::Cycle { state: "A".into() })
        );
    }

    #[test]
    fn walk_error_table() {
        let cases = [
            (json!({"States": {}}), "no StartAt"),
            (
                chain(json!({"A": {"Type": "Pass", "Next": "Z"}})),
                "\"Z\" is not defined",
            ),
            (chain(json!({"A": {"Type": "Pass"}})), "no Next or End"),
            (
                chain(json!({"A": {"Type": "Wait", "Seconds": 1, "End": true}})),
                "Wait",
            ),
            (chain(json!({"A": {"Type": "Map", "End": true}})), "Map"),
            (
                chain(json!({"A": {"Type": "Choice", "Choices": [
                    {"Variable": "$.x", "BooleanEquals": true, "Next": "A"}]}})),
                "no rule matches",
            ),
            (
                chain(json!({"A": {"Type": "Choice", "Choices": [
                    {"Variable": "$.items[0]", "BooleanEquals": true, "Next": "A"}],
                    "Default": "A"}})),
                "plain $.a.b path",
            ),
            (
                chain(json!({"A": {"Type": "Choice", "Choices": [
                    {"Variable": "$.x", "NumericGreaterThan": 1, "Next": "A"}],
                    "Default": "A"}})),
                "comparison other than",
            ),
            (
                chain(json!({"A": {"Type": "Choice", "Choices": [
                    {"Condition": "{% true %}", "Next": "A"}], "Default": "A"}})),
                "without Variable",
            ),
        ];
        for (def, expected) in cases {
            let err = walk(&def, &json!({"x": false})).unwrap_err().to_string();
            assert!(err.contains(expected), "{def}: {err}");
        }
    }

    #[test]
    fn from_definition_unknown_task_is_an_error() {
        let def = chain(json!({"A": {"Type": "Task", "Resource": "x", "End": true}}));
        assert_eq!(
            ExecutionPaths::from_definition(&def),
            Err(CostError::UnknownTask { state: "A".into() })
        );
    }

    // ---- rounding

    #[test]
    fn lambda_billed_ms_rounds_up_to_1_ms() {
        for (duration, billed) in [(100.0, 100), (100.2, 101), (100.9, 101), (0.3, 1), (0.0, 1)] {
            assert_eq!(lambda_billed_ms(duration), billed, "{duration}");
        }
        // Float noise does not add a millisecond.
        assert_eq!(lambda_billed_ms(0.1 + 0.2 + 99.7), 100);
    }

    #[test]
    fn express_billed_ms_rounds_up_to_100_ms() {
        for (duration, billed) in [
            (1.0, 100),
            (100.0, 100),
            (100.5, 200),
            (750.0, 800),
            (800.0, 800),
            (801.0, 900),
            (0.0, 100),
        ] {
            assert_eq!(express_billed_ms(duration), billed, "{duration}");
        }
    }

    #[test]
    fn estimate_lambda_duration_is_rounded_per_invocation() {
        let mut profile = simple_profile();
        profile.load = StepDuration::placeholder(50.2, 0.0);
        let e = run(&million_at_4mp(), &profile);
        // 1,000,000 x 51 ms x 0.25 GB = 12,750 GB-s (not 12,550).
        assert!((item(&e, "Lambda load").quantity - 12_750.0).abs() < 1e-6);
        assert_eq!(item(&e, "Lambda load").label, "Lambda load (256 MB, 51 ms)");
    }

    // ---- the estimate, hand-computed

    #[test]
    fn estimate_million_objects_hand_computed() {
        let e = run(&million_at_4mp(), &simple_profile());
        let expect = |label: &str, quantity: f64, dollars_cents: i64| {
            let i = item(&e, label);
            assert!(
                (i.quantity - quantity).abs() < 1e-6 * quantity.max(1.0),
                "{label}: {} != {quantity}",
                i.quantity
            );
            assert_eq!(cents(i.dollars), dollars_cents, "{label}: ${}", i.dollars);
        };
        // Ingest, inspect, transform, load: 4 invocations per object at $0.20 per million.
        expect("Lambda requests", 4_000_000.0, 80);
        // 1e6 x 20 ms x 256/1024 GB = 5,000 GB-s x $0.0000166667 = $0.0833.
        expect("Lambda ingest", 5_000.0, 8);
        // 1e6 x 100 ms x 0.5 GB = 50,000 GB-s = $0.8333.
        expect("Lambda inspect", 50_000.0, 83);
        // 1e6 x (400 + 50 x 4) ms x 1 GB = 600,000 GB-s = $10.0000.
        expect("Lambda transform", 600_000.0, 1_000);
        // 1e6 x 50 ms x 0.25 GB = 12,500 GB-s = $0.2083.
        expect("Lambda load", 12_500.0, 21);
        // 4 transitions per object x $0.025 per 1,000.
        expect("Step Functions STANDARD", 4_000_000.0, 10_000);
        expect("Step Functions EXPRESS executions", 1_000_000.0, 100);
        // 100 + 600 + 50 = 750 ms, billed 800 ms x 64 MB: 1e6 x 0.8 x 0.0625 = 50,000 GB-s
        // x $0.00001667 = $0.8335.
        expect("Step Functions EXPRESS duration", 50_000.0, 83);
        // Inspect 3 + transform 1 + load 1 reads; 2 thumbnails + 1 manifest writes.
        expect("S3 GET/HEAD", 5_000_000.0, 200);
        expect("S3 PUT/COPY", 3_000_000.0, 1_500);
        // (2 x 50,000 + 2,048) B x 1e6 = 95.0398 GB x $0.023 = $2.1859.
        expect("S3 storage", 102_048_000_000.0 / 1_073_741_824.0, 219);
        // 4e6 invocations x 1,024 B = 3.8147 GB x $0.50 = $1.9073.
        expect(
            "CloudWatch Logs, Lambda",
            4.0e9 * 1.024 / 1_073_741_824.0,
            191,
        );
        // 4e6 states x 4,096 B = 15.2588 GB x $0.50 = $7.6294.
        expect(
            "CloudWatch Logs, EXPRESS",
            4.0e6 * 4096.0 / 1_073_741_824.0,
            763,
        );
        // Shared: 0.80 + 11.1250 (GB-s) + 2.00 + 15.00 + 2.1859 + 1.9073 = 33.0183.
        assert_eq!(cents(e.standard_total), 13_302);
        assert_eq!(cents(e.express_total), 4_248);
        assert!(e.express_is_cheaper());
        assert_eq!(e.express_billed_ms_per_execution, 800.0);
        assert_eq!(e.transitions_per_object, 4.0);
    }

    #[test]
    fn estimate_arm64_is_cheaper_lambda_only() {
        let x86 = run(&million_at_4mp(), &simple_profile());
        let arm = estimate(
            &million_at_4mp(),
            &simple_profile(),
            &Prices::us_east_1(Architecture::Arm64),
            &MemorySizes::DEPLOYED,
            &paths(),
        )
        .unwrap();
        // 667,500 GB-s x $0.0000133334 = $8.9000 (x86_64: $11.1250).
        let gb_s = |e: &Estimate| -> f64 {
            e.items
                .iter()
                .filter(|i| i.label.starts_with("Lambda ") && i.unit == Unit::GbSeconds)
                .map(|i| i.dollars)
                .sum()
        };
        assert_eq!(cents(gb_s(&x86)), 1_113);
        assert_eq!(cents(gb_s(&arm)), 890);
        assert_eq!(
            cents(x86.standard_total - arm.standard_total),
            cents(gb_s(&x86) - gb_s(&arm))
        );
    }

    #[test]
    fn estimate_quarantined_and_retried_objects_hand_computed() {
        let workload = Workload {
            quarantined_fraction: 0.25,
            retries_per_object: 0.5,
            avg_object_mb: 2.0,
            ..million_at_4mp()
        };
        let e = run(&workload, &simple_profile());
        // Per object: ingest 1, inspect 1, transform 0.75 + 0.5, load 0.75, quarantine 0.25.
        assert!((item(&e, "Lambda requests").quantity - 4_250_000.0).abs() < 1e-6);
        assert!((item(&e, "Lambda transform").quantity - 750_000.0).abs() < 1e-6);
        assert!((item(&e, "Lambda quarantine").quantity - 5_000.0).abs() < 1e-6);
        // Transitions: 4 on either path + 0.5 retries.
        assert_eq!(e.transitions_per_object, 4.5);
        assert_eq!(cents(item(&e, "Step Functions STANDARD").dollars), 11_250);
        // Reads: 0.75 x (3 + 1 + 1) + 0.25 x (2 + 1) + 0.5 x 1 = 5.0 per object.
        assert!((item(&e, "S3 GET/HEAD").quantity - 5_000_000.0).abs() < 1e-6);
        // Writes: 0.75 x (2 + 1) + 0.25 x 2 + 0.5 x 2 = 3.75 per object.
        assert!((item(&e, "S3 PUT/COPY").quantity - 3_750_000.0).abs() < 1e-6);
        // Storage: 0.75 x 102,048 B + 0.25 x (2 MB + 1,024 B) per object.
        let bytes = 0.75 * 102_048.0 + 0.25 * (2.0 * 1_048_576.0 + 1_024.0);
        assert!((item(&e, "S3 storage").quantity - 1e6 * bytes / 1_073_741_824.0).abs() < 1e-9);
        // EXPRESS: processed 750 + 0.5 x (600 + 500) = 1,300 ms -> 1,300; quarantined
        // 100 + 80 + 550 = 730 -> 800. Average 0.75 x 1,300 + 0.25 x 800 = 1,175 ms.
        assert_eq!(e.express_billed_ms_per_execution, 1_175.0);
        assert_eq!(e.express_longest_billed_ms, 1_300);
    }

    #[test]
    fn estimate_scales_linearly_with_objects_and_the_cheaper_type_never_changes() {
        let profile = DurationProfile::measured_default();
        let base = run(&Workload::new(1_000, 12.0), &profile);
        for objects in [1, 1_000_000, 1_000_000_000] {
            let e = run(&Workload::new(objects, 12.0), &profile);
            let ratio = objects as f64 / 1_000.0;
            assert!((e.standard_total - base.standard_total * ratio).abs() < 1e-6 * ratio);
            assert!((e.express_total - base.express_total * ratio).abs() < 1e-6 * ratio);
            assert_eq!(e.express_is_cheaper(), base.express_is_cheaper());
            assert_eq!(e.break_even_seconds, base.break_even_seconds);
        }
    }

    #[test]
    fn estimate_break_even_duration_separates_the_cheaper_type() {
        let base = run(&million_at_4mp(), &simple_profile());
        // STANDARD $0.0001 per object; EXPRESS $0.000001 + 4 x 4,096 B of logs
        // ($0.00000763) + $0.00000104 per billed second (64 MB): 87.70 s.
        let seconds = base.break_even_seconds.unwrap();
        assert!((seconds - 87.70).abs() < 0.01, "{seconds}");
        // Everything but transform at 0 ms: the execution lasts the transform.
        let only_transform = |ms: f64| DurationProfile {
            ingest: StepDuration::placeholder(0.0, 0.0),
            inspect: StepDuration::placeholder(0.0, 0.0),
            transform: StepDuration::placeholder(ms, 0.0),
            load: StepDuration::placeholder(0.0, 0.0),
            quarantine: StepDuration::placeholder(0.0, 0.0),
            state_overhead_ms: 0.0,
        };
        let below = run(&million_at_4mp(), &only_transform(seconds * 1000.0 - 200.0));
        let above = run(&million_at_4mp(), &only_transform(seconds * 1000.0 + 200.0));
        assert!(below.express_total < below.standard_total);
        assert!(above.express_total > above.standard_total);
        assert!(!above.express_is_cheaper());
    }

    #[test]
    fn estimate_express_cost_grows_with_megapixels_standard_step_functions_does_not() {
        let profile = DurationProfile::measured_default();
        let mut last: Option<(f64, f64)> = None;
        // At least 7 MP apart: 15 ms/MP moves the duration past a 100 ms increment.
        for mp in [0.5, 8.0, 16.0, 24.0, 100.0, 1_000.0, 5_000.0] {
            let e = run(&Workload::new(1_000_000, mp), &profile);
            let express = e.item_dollars(BilledIn::Express);
            let standard = e.item_dollars(BilledIn::Standard);
            if let Some((last_express, last_standard)) = last {
                assert!(express > last_express, "{mp} MP");
                assert_eq!(standard, last_standard, "{mp} MP");
            }
            last = Some((express, standard));
        }
    }

    #[test]
    fn estimate_break_even_megapixels_matches_the_duration() {
        let profile = DurationProfile::measured_default();
        let e = run(&Workload::new(1_000_000, 12.0), &profile);
        let mp = e.break_even_megapixels.unwrap();
        let at = |m: f64| run(&Workload::new(1_000_000, m), &profile);
        // The 100 ms rounding moves the crossing by less than 100 ms of duration.
        let margin =
            0.2 / (profile.inspect.ms_per_megapixel + profile.transform.ms_per_megapixel) * 1000.0;
        assert!(at(mp - margin).express_is_cheaper());
        assert!(!at(mp + margin).express_is_cheaper());
    }

    #[test]
    fn estimate_over_five_minutes_express_cannot_run() {
        let mut profile = simple_profile();
        profile.transform = StepDuration::placeholder(301_000.0, 0.0);
        let e = run(&million_at_4mp(), &profile);
        assert!(!e.express_fits());
        assert!(!e.express_is_cheaper());
        assert!(e.explanation().contains("EXPRESS cannot run this workload"));
    }

    #[test]
    fn estimate_invalid_workload_is_an_error() {
        let cases = [
            Workload {
                quarantined_fraction: 1.5,
                ..million_at_4mp()
            },
            Workload {
                avg_megapixels: f64::NAN,
                ..million_at_4mp()
            },
            Workload {
                retries_per_object: -1.0,
                ..million_at_4mp()
            },
        ];
        for w in cases {
            let err = estimate(
                &w,
                &simple_profile(),
                &Prices::us_east_1(Architecture::X86_64),
                &MemorySizes::DEPLOYED,
                &paths(),
            )
            .unwrap_err();
            assert!(matches!(err, CostError::InvalidWorkload { .. }), "{err}");
        }
    }

    #[test]
    fn estimate_break_even_none_when_express_costs_more_at_zero_duration() {
        let prices = Prices {
            sfn_express_per_million_executions: 1_000.0,
            ..Prices::us_east_1(Architecture::X86_64)
        };
        let e = estimate(
            &million_at_4mp(),
            &simple_profile(),
            &prices,
            &MemorySizes::DEPLOYED,
            &paths(),
        )
        .unwrap();
        assert_eq!(e.break_even_seconds, None);
        assert!(!e.express_is_cheaper());
        assert!(e.explanation().contains("Break-even: none"));
    }

    #[test]
    fn estimate_flat_durations_have_no_break_even_size() {
        let mut profile = simple_profile();
        profile.transform = StepDuration::placeholder(600.0, 0.0);
        let e = run(&million_at_4mp(), &profile);
        assert!(e.break_even_seconds.is_some());
        assert_eq!(e.break_even_megapixels, None);
        assert!(e.explanation().contains("no image size reaches it"));
    }

    #[test]
    fn s3_requests_table_lookups() {
        let cases = [
            (Step::Ingest, PathKind::Processed, (0, 0)),
            (Step::Inspect, PathKind::Processed, (3, 0)),
            (Step::Inspect, PathKind::Quarantined, (2, 0)),
            (Step::Transform, PathKind::Processed, (1, 3)),
            (Step::Load, PathKind::Processed, (1, 1)),
            (Step::Quarantine, PathKind::Quarantined, (1, 2)),
        ];
        for (step, path, expected) in cases {
            assert_eq!(s3_requests(step, path, 3), expected, "{step} {path:?}");
        }
    }

    #[test]
    fn measured_default_is_marked_as_placeholders() {
        let p = DurationProfile::measured_default();
        assert!(Step::ALL.iter().all(|&s| p.of(s).samples == 0));
    }

    // ---- rendering

    #[test]
    fn display_aligns_columns_and_shows_dollars_with_cents() {
        let text = run(&million_at_4mp(), &simple_profile()).to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("item"), "{text}");
        let width = lines[0].len();
        // Every row ends at the same column (right-aligned EXPRESS).
        assert!(lines.iter().all(|l| l.len() == width), "{text}");
        let row = |label: &str| *lines.iter().find(|l| l.starts_with(label)).unwrap();
        assert!(
            row("Step Functions STANDARD").contains("4,000,000 transitions"),
            "{text}"
        );
        assert!(row("Step Functions STANDARD").contains("$100.00"), "{text}");
        assert!(row("Step Functions STANDARD").ends_with('-'), "{text}");
        assert!(row("Lambda transform (1024 MB, 600 ms)").contains("600,000.0 GB-s"));
        assert!(row("total per month").contains("$133.02"), "{text}");
        assert!(row("total per month").ends_with("$42.48"), "{text}");
    }

    #[test]
    fn explanation_names_the_cheaper_type_break_even_and_what_express_loses() {
        let text = run(&million_at_4mp(), &simple_profile()).explanation();
        for expected in [
            "At 1,000,000 objects a month EXPRESS is cheaper: $42.48 against $133.02",
            "billed under 87.7 s on average (here 0.8 s)",
            "ExecutionAlreadyExists",
            "at least once",
            "`pipeline retry`",
            "5 minutes",
            "conditional puts ordered by the S3",
        ] {
            assert!(text.contains(expected), "{expected:?} not in:\n{text}");
        }
        // 4 MP + (87,700 - 750 ms) / 50 ms per MP.
        assert!(
            text.contains("about 1743 megapixels per object (here 4.0)"),
            "{text}"
        );
    }

    #[test]
    fn group_digits_table() {
        for (value, decimals, expected) in [
            (0.0, 2, "0.00"),
            (999.994, 2, "999.99"),
            (1_234_567.891, 2, "1,234,567.89"),
            (1_000_000.0, 0, "1,000,000"),
            (-1234.5, 1, "-1,234.5"),
        ] {
            assert_eq!(group_digits(value, decimals), expected);
        }
    }

    // ---- fitting measured durations

    fn sample(step: Step, megapixels: f64, duration_ms: f64) -> StepSample {
        StepSample {
            step,
            megapixels,
            duration_ms,
        }
    }

    fn required(extra: Vec<StepSample>) -> Vec<StepSample> {
        let mut samples = vec![
            sample(Step::Inspect, 1.0, 10.0),
            sample(Step::Transform, 1.0, 100.0),
            sample(Step::Load, 1.0, 50.0),
        ];
        samples.extend(extra);
        samples
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn fit_exact_line_is_recovered() {
        // transform = 100 + 20 x MP, inspect = 5 + 2.5 x MP, exactly.
        let mut samples = Vec::new();
        for mp in [1.0, 2.0, 3.0, 4.0, 12.0] {
            samples.push(sample(Step::Transform, mp, 100.0 + 20.0 * mp));
            samples.push(sample(Step::Inspect, mp, 5.0 + 2.5 * mp));
        }
        samples.push(sample(Step::Load, 3.0, 40.0));
        samples.push(sample(Step::Load, 9.0, 60.0));
        let p = DurationProfile::fit(&samples).unwrap();
        assert!(close(p.transform.fixed_ms, 100.0), "{:?}", p.transform);
        assert!(
            close(p.transform.ms_per_megapixel, 20.0),
            "{:?}",
            p.transform
        );
        assert!(close(p.inspect.fixed_ms, 5.0) && close(p.inspect.ms_per_megapixel, 2.5));
        assert_eq!(p.transform.samples, 5);
        // Load does not scale: the mean, whatever the sizes.
        assert_eq!(
            (p.load.fixed_ms, p.load.ms_per_megapixel, p.load.samples),
            (50.0, 0.0, 2)
        );
        // No ingest or quarantine samples: the placeholders stay, marked as such.
        let default = DurationProfile::measured_default();
        assert_eq!(p.ingest, default.ingest);
        assert_eq!(p.quarantine.samples, 0);
    }

    #[test]
    fn fit_same_size_falls_back_to_the_mean() {
        let samples = vec![
            sample(Step::Inspect, 0.1, 10.0),
            sample(Step::Load, 1.0, 50.0),
            sample(Step::Transform, 0.1, 300.0),
            sample(Step::Transform, 0.1, 500.0),
            sample(Step::Transform, 0.1, 400.0),
        ];
        let p = DurationProfile::fit(&samples).unwrap();
        assert!(close(p.transform.fixed_ms, 400.0), "{:?}", p.transform);
        assert_eq!(p.transform.ms_per_megapixel, 0.0);
        assert_eq!(p.transform.samples, 3);
        // One sample is the same case.
        assert_eq!(
            (p.inspect.fixed_ms, p.inspect.ms_per_megapixel),
            (10.0, 0.0)
        );
    }

    #[test]
    fn fit_negative_slope_is_clamped_to_the_mean() {
        let samples = vec![
            sample(Step::Inspect, 1.0, 10.0),
            sample(Step::Load, 1.0, 50.0),
            sample(Step::Transform, 1.0, 300.0),
            sample(Step::Transform, 3.0, 100.0),
        ];
        let p = DurationProfile::fit(&samples).unwrap();
        assert!(close(p.transform.fixed_ms, 200.0));
        assert_eq!(p.transform.ms_per_megapixel, 0.0);
    }

    #[test]
    fn fit_negative_intercept_goes_through_the_origin() {
        // y = 10x - 50 at 10 and 20 MP: the line through the origin has slope
        // (10 x 50 + 20 x 150) / (10^2 + 20^2) = 3,500 / 500 = 7.
        let samples = vec![
            sample(Step::Inspect, 1.0, 10.0),
            sample(Step::Load, 1.0, 50.0),
            sample(Step::Transform, 10.0, 50.0),
            sample(Step::Transform, 20.0, 150.0),
        ];
        let p = DurationProfile::fit(&samples).unwrap();
        assert_eq!(p.transform.fixed_ms, 0.0);
        assert!(close(p.transform.ms_per_megapixel, 7.0));
    }

    #[test]
    fn fit_missing_required_step_is_an_error() {
        let samples = vec![
            sample(Step::Inspect, 1.0, 10.0),
            sample(Step::Load, 1.0, 50.0),
            sample(Step::Quarantine, 1.0, 50.0),
        ];
        assert_eq!(
            DurationProfile::fit(&samples),
            Err(CostError::MissingSamples {
                step: Step::Transform
            })
        );
        assert_eq!(
            DurationProfile::fit(&[]),
            Err(CostError::MissingSamples {
                step: Step::Inspect
            })
        );
    }

    #[test]
    fn fit_invalid_sample_is_an_error() {
        for bad in [
            sample(Step::Load, f64::NAN, 1.0),
            sample(Step::Load, 1.0, -5.0),
            sample(Step::Load, 1.0, f64::INFINITY),
        ] {
            let err = DurationProfile::fit(&required(vec![bad])).unwrap_err();
            assert!(
                matches!(
                    err,
                    CostError::InvalidSample {
                        step: Step::Load,
                        ..
                    }
                ),
                "{err}"
            );
        }
    }

    #[test]
    fn fit_output_feeds_the_estimate() {
        let mut samples = Vec::new();
        for mp in [2.0, 4.0] {
            samples.push(sample(Step::Inspect, mp, 100.0));
            samples.push(sample(Step::Transform, mp, 400.0 + 50.0 * mp));
            samples.push(sample(Step::Load, mp, 50.0));
        }
        samples.push(sample(Step::Ingest, 0.0, 20.0));
        let mut profile = DurationProfile::fit(&samples).unwrap();
        profile.state_overhead_ms = 0.0;
        let e = run(&million_at_4mp(), &profile);
        assert_eq!(cents(e.standard_total), 13_302);
        assert_eq!(cents(e.express_total), 4_248);
    }

    #[test]
    fn memory_deployed_matches_the_template() {
        let template = include_str!("../../../infra/template.yaml");
        for step in Step::ALL {
            let resource = format!("FunctionName: !Sub \"${{AWS::StackName}}-{}\"", step.name());
            let at = template.find(&resource).unwrap();
            let rest = &template[at..];
            let line = rest
                .lines()
                .find(|l| l.trim_start().starts_with("MemorySize:"))
                .unwrap();
            let mb: u32 = line.split(':').nth(1).unwrap().trim().parse().unwrap();
            assert_eq!(MemorySizes::DEPLOYED.of(step), mb, "{step}");
        }
        // The template's Architecture parameter defaults to x86_64, priced by default.
        let parameter = &template[template.find("  Architecture:\n").unwrap()..];
        let default = parameter
            .lines()
            .find(|l| l.trim_start().starts_with("Default:"))
            .unwrap();
        assert_eq!(default.trim(), "Default: x86_64");
        assert_eq!(Architecture::DEPLOYED, Architecture::X86_64);
    }
}
