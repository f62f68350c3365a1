//! What a load run does, decided from each key's index alone (no I/O): which keys get a
//! second version and what each version holds, and which of the recorded events are
//! delivered to ingest again, in which order and in what shape.

use pipeline_core::event::object_created_notification;
use pipeline_core::key::KeyError;
use pipeline_core::payload::ExecutionInput;
use serde_json::Value;

/// Every fifth key is written twice.
pub const SECOND_VERSION_EVERY: usize = 5;

/// One key in ten (among those written once) has its event delivered a second time.
pub const REDELIVER_EVERY: usize = 10;

/// What a version's bytes are, and so how its execution must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// A whole JPEG: processed, with thumbnails.
    Jpeg,
    /// A JPEG cut in half: quarantined (`InvalidImage`).
    Truncated,
}

impl Content {
    fn other(self) -> Content {
        match self {
            Content::Jpeg => Content::Truncated,
            Content::Truncated => Content::Jpeg,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Content::Jpeg => "a whole JPEG",
            Content::Truncated => "a truncated JPEG",
        }
    }
}

/// One version to upload: the `ordinal`-th write (0, 1) of key `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionPlan {
    pub index: usize,
    pub ordinal: usize,
    pub content: Content,
    /// The red channel of every pixel of the image (see `samples::load_image`): versions
    /// of one key differ by 128, so a thumbnail shows which version it was made from.
    pub shade: u8,
}

/// The key of the `index`-th object.
pub fn key_of(index: usize) -> String {
    format!("load/{index:06}.jpg")
}

/// The versions of key `index`, in upload order. The first is truncated for every tenth
/// key (`i % 10 == 9`); every fifth key (`i % 5 == 4`) gets a second version, which
/// changes class for half of them, so all four pairs occur every 20 keys:
/// `i % 20 == 4` whole -> truncated, `9` truncated -> whole, `14` whole -> whole,
/// `19` truncated -> truncated.
pub fn versions(index: usize) -> Vec<VersionPlan> {
    let first = VersionPlan {
        index,
        ordinal: 0,
        content: if index % 10 == 9 {
            Content::Truncated
        } else {
            Content::Jpeg
        },
        shade: 16 + (index % 96) as u8,
    };
    let mut out = vec![first];
    if index % SECOND_VERSION_EVERY == SECOND_VERSION_EVERY - 1 {
        out.push(VersionPlan {
            ordinal: 1,
            content: if index % 20 < 10 {
                first.content.other()
            } else {
                first.content
            },
            shade: first.shade + 128,
            ..first
        });
    }
    out
}

/// How many versions the first `objects` keys have in all.
pub fn version_count(objects: usize) -> usize {
    (0..objects).map(|i| versions(i).len()).sum()
}

/// The events delivered again, as `(index, ordinal)` groups: each group is sent in order,
/// groups concurrently. A key written twice gets its second version's event and then its
/// first version's (an older event after a newer one, as S3 may deliver them); one key in
/// ten of the others gets its one event again (a duplicate).
pub fn redeliveries(objects: usize) -> Vec<Vec<(usize, usize)>> {
    (0..objects)
        .filter_map(|i| match versions(i).len() {
            2 => Some(vec![(i, 1), (i, 0)]),
            _ if i % REDELIVER_EVERY == 3 => Some(vec![(i, 0)]),
            _ => None,
        })
        .collect()
}

/// The S3 `ObjectCreated:Put` notification that produced `input` (an execution ingest
/// started), as AWS sent it.
pub fn recorded_event(input: &ExecutionInput) -> Result<Value, KeyError> {
    object_created_notification(&input.source, input.event_time.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Content::{Jpeg, Truncated};

    #[test]
    fn versions_table() {
        let check = |index: usize, expected: &[Content]| {
            let got: Vec<_> = versions(index).iter().map(|v| v.content).collect();
            assert_eq!(got, expected, "key {index}");
        };
        check(0, &[Jpeg]);
        check(3, &[Jpeg]);
        check(4, &[Jpeg, Truncated]);
        check(9, &[Truncated, Jpeg]);
        check(14, &[Jpeg, Jpeg]);
        check(19, &[Truncated, Truncated]);
        check(24, &[Jpeg, Truncated]);
        check(29, &[Truncated, Jpeg]);
    }

    #[test]
    fn versions_of_one_key_look_different() {
        for i in 0..1000 {
            let v = versions(i);
            assert_eq!(v[0].ordinal, 0);
            assert!((16..112).contains(&v[0].shade), "{i}");
            if let Some(second) = v.get(1) {
                assert_eq!((second.index, second.ordinal), (i, 1));
                assert_eq!(second.shade - v[0].shade, 128, "{i}");
            }
        }
    }

    #[test]
    fn version_count_and_classes_for_the_ci_run() {
        // `cargo xtask load --objects 200`: 40 keys written twice; the newest version of
        // 20 keys (i % 20 in {4, 19}) is truncated.
        assert_eq!(version_count(200), 240);
        let quarantined = (0..200)
            .filter(|&i| versions(i).last().map(|v| v.content) == Some(Truncated))
            .count();
        assert_eq!(quarantined, 20);
        assert_eq!(version_count(1), 1);
        assert_eq!(version_count(5), 6);
    }

    #[test]
    fn redeliveries_table() {
        type Groups = Vec<Vec<(usize, usize)>>;
        let cases: [(usize, Groups); 4] = [
            (0, vec![]),
            (3, vec![]),
            (5, vec![vec![(3, 0)], vec![(4, 1), (4, 0)]]),
            (
                14,
                vec![
                    vec![(3, 0)],
                    vec![(4, 1), (4, 0)],
                    vec![(9, 1), (9, 0)],
                    vec![(13, 0)],
                ],
            ),
        ];
        for (objects, expected) in cases {
            assert_eq!(redeliveries(objects), expected, "{objects} objects");
        }
        let events: usize = redeliveries(200).iter().map(Vec::len).sum();
        assert_eq!(events, 40 * 2 + 20);
    }

    #[test]
    fn redeliveries_send_the_older_event_after_the_newer() {
        for group in redeliveries(1000) {
            let ordinals: Vec<_> = group.iter().map(|(_, o)| *o).collect();
            assert!(ordinals == [0] || ordinals == [1, 0], "{group:?}");
            let i = group[0].0;
            assert_eq!(group.len(), versions(i).len(), "{group:?}");
        }
    }
}
