//! Releases: every deploy that changes something publishes a version of each function
//! and moves its [`LIVE_ALIAS`]; everything that invokes a function invokes that alias.
//! Rolling back moves the alias to an earlier version.

/// The alias the S3 notification, the state machine and the schedule invoke.
pub const LIVE_ALIAS: &str = "live";

/// Where a rollback moves the alias: `requested` when given (it must be a published
/// version other than the current one), otherwise the highest published version below
/// `current`. `versions` are Lambda's numbered versions (`$LATEST` excluded), any order.
pub fn rollback_target(
    versions: &[u64],
    current: u64,
    requested: Option<u64>,
) -> Result<u64, RollbackError> {
    match requested {
        Some(v) if v == current => Err(RollbackError::AlreadyLive { version: v }),
        Some(v) if versions.contains(&v) => Ok(v),
        Some(v) => Err(RollbackError::NoSuchVersion { version: v }),
        None => versions
            .iter()
            .copied()
            .filter(|v| *v < current)
            .max()
            .ok_or(RollbackError::NoEarlierVersion { current }),
    }
}

/// Why an alias cannot be moved back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackError {
    #[error(
        "version {current} is the earliest published version: there is nothing to roll back to"
    )]
    NoEarlierVersion { current: u64 },
    #[error("version {version} is not a published version of this function")]
    NoSuchVersion { version: u64 },
    #[error("version {version} is already live")]
    AlreadyLive { version: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_target_is_the_highest_version_below_the_live_one() {
        assert_eq!(rollback_target(&[1, 2, 3], 3, None), Ok(2));
        assert_eq!(rollback_target(&[3, 1, 5, 2], 5, None), Ok(3));
        // After a rollback to 2, the next one goes to 1.
        assert_eq!(rollback_target(&[1, 2, 3], 2, None), Ok(1));
    }

    #[test]
    fn rollback_target_without_an_earlier_version_is_an_error() {
        assert_eq!(
            rollback_target(&[1], 1, None),
            Err(RollbackError::NoEarlierVersion { current: 1 })
        );
        assert_eq!(
            rollback_target(&[], 1, None),
            Err(RollbackError::NoEarlierVersion { current: 1 })
        );
    }

    #[test]
    fn rollback_target_to_a_requested_version_must_exist_and_differ() {
        assert_eq!(rollback_target(&[1, 2, 3], 1, Some(3)), Ok(3));
        assert_eq!(
            rollback_target(&[1, 2, 3], 3, Some(3)),
            Err(RollbackError::AlreadyLive { version: 3 })
        );
        assert_eq!(
            rollback_target(&[1, 2, 3], 3, Some(7)),
            Err(RollbackError::NoSuchVersion { version: 7 })
        );
    }
}
