//! Who started an emulator: a process identity that survives pid reuse, so a later run can
//! tell an emulator left behind by a killed test process from one a live process still uses.

use std::fmt;
use std::path::Path;

/// A process as `<pid>:<start time in clock ticks since boot>` (field 22 of
/// `/proc/<pid>/stat`). A recycled pid has a different start time, so it never passes for
/// the original owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerId {
    pub pid: u32,
    pub start_ticks: u64,
}

impl OwnerId {
    /// This process.
    pub fn current() -> Option<OwnerId> {
        let pid = std::process::id();
        Some(OwnerId {
            pid,
            start_ticks: start_ticks_of(pid)?,
        })
    }

    /// Parses what [`fmt::Display`] wrote; `None` for anything else.
    pub fn parse(text: &str) -> Option<OwnerId> {
        let (pid, start) = text.trim().split_once(':')?;
        Some(OwnerId {
            pid: pid.parse().ok()?,
            start_ticks: start.parse().ok()?,
        })
    }

    /// Whether this exact process (same pid *and* start time) is still running.
    pub fn is_alive(&self) -> bool {
        start_ticks_of(self.pid) == Some(self.start_ticks)
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.pid, self.start_ticks)
    }
}

/// The start time of `pid`, or `None` when no such process exists.
pub(crate) fn start_ticks_of(pid: u32) -> Option<u64> {
    let stat =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    parse_start_ticks(&stat)
}

/// Field 22 of a `/proc/<pid>/stat` line. The command name (field 2) is in parentheses
/// and may itself hold spaces and parentheses, so fields are counted after the last `)`.
pub(crate) fn parse_start_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // After the name come field 3 (state) onwards; field 22 is the 20th of those.
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_start_ticks_name_with_spaces_and_parens_counts_after_last_paren() {
        let stat = "4242 (weird ) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_ticks(stat), Some(987654));
    }

    #[test]
    fn parse_start_ticks_short_line_is_none() {
        assert_eq!(parse_start_ticks("1 (init) S 0"), None);
        assert_eq!(parse_start_ticks("garbage"), None);
    }

    #[test]
    fn owner_current_is_alive_and_round_trips() {
        let me = OwnerId::current().unwrap();
        assert!(me.is_alive());
        assert_eq!(OwnerId::parse(&me.to_string()), Some(me));
    }

    #[test]
    fn owner_same_pid_other_start_time_is_not_alive() {
        let me = OwnerId::current().unwrap();
        let recycled = OwnerId {
            start_ticks: me.start_ticks + 1,
            ..me
        };
        assert!(!recycled.is_alive());
    }

    #[test]
    fn owner_parse_rejects_malformed_labels() {
        for bad in ["", "12", "a:b", "12:", ":34", "-1:5"] {
            assert_eq!(OwnerId::parse(bad), None, "{bad:?}");
        }
    }
}
