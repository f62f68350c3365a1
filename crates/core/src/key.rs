//! Object keys as S3 event notifications encode them: `+` is a space, then `%XX` escapes of UTF-8 bytes.

use std::fmt;
use thiserror::Error;

/// S3's limit on the length of an object key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// Why an encoded key from an event could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    #[error("invalid percent-escape at byte {position} of the encoded key")]
    InvalidEscape { position: usize },
    #[error("decoded key is not valid UTF-8 (first bad byte at {position})")]
    InvalidUtf8 { position: usize },
    #[error("the key is empty")]
    Empty,
    #[error("the key is {bytes} bytes long; S3 keys are at most {MAX_KEY_BYTES}")]
    TooLong { bytes: usize },
}

/// A decoded S3 object key, exactly as stored in the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Decodes a key as it appears in an S3 event notification (`object.key`).
    ///
    /// AWS form-encodes keys in notifications: a space becomes `+`, and every byte outside
    /// the unreserved set becomes `%XX` (so a literal `+` arrives as `%2B`). Decoding is
    /// therefore `+` -> space first, then percent-decoding of the UTF-8 bytes.
    pub fn decode_from_event(encoded: &str) -> Result<Self, KeyError> {
        if encoded.is_empty() {
            return Err(KeyError::Empty);
        }
        let input = encoded.as_bytes();
        let mut bytes = Vec::with_capacity(input.len());
        let mut i = 0;
        while i < input.len() {
            match input[i] {
                b'+' => {
                    bytes.push(b' ');
                    i += 1;
                }
                b'%' => {
                    let hi = input.get(i + 1).and_then(|b| hex_value(*b));
                    let lo = input.get(i + 2).and_then(|b| hex_value(*b));
                    match (hi, lo) {
                        (Some(hi), Some(lo)) => bytes.push(hi << 4 | lo),
                        _ => return Err(KeyError::InvalidEscape { position: i }),
                    }
                    i += 3;
                }
                other => {
                    bytes.push(other);
                    i += 1;
                }
            }
        }
        let key = String::from_utf8(bytes).map_err(|e| KeyError::InvalidUtf8 {
            position: e.utf8_error().valid_up_to(),
        })?;
        Self::from_decoded(key)
    }

    /// Wraps a key that is already decoded (from a listing, a state payload, a CLI argument).
    pub fn from_decoded(key: impl Into<String>) -> Result<Self, KeyError> {
        let key = key.into();
        if key.is_empty() {
            return Err(KeyError::Empty);
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(KeyError::TooLong { bytes: key.len() });
        }
        Ok(ObjectKey(key))
    }

    /// Encodes the key the way S3 notifications do; the inverse of [`Self::decode_from_event`].
    pub fn encode_for_event(&self) -> String {
        let mut out = String::with_capacity(self.0.len());
        for &b in self.0.as_bytes() {
            match b {
                b' ' => out.push('+'),
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' | b'/' => {
                    out.push(b as char)
                }
                _ => {
                    out.push('%');
                    out.push(HEX[usize::from(b >> 4)] as char);
                    out.push(HEX[usize::from(b & 0xF)] as char);
                }
            }
        }
        out
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// A folder marker: the console's "create folder" writes a zero-byte key ending in `/`.
    pub fn is_folder_marker(&self) -> bool {
        self.0.ends_with('/')
    }

    /// The last path segment (after the final `/`), or the whole key.
    pub fn file_name(&self) -> &str {
        self.0
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(&self.0)
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(encoded: &str, expected: Result<&str, KeyError>) {
        let got = ObjectKey::decode_from_event(encoded);
        assert_eq!(
            got.as_ref().map(ObjectKey::as_str).map_err(Clone::clone),
            expected,
            "decoding {encoded:?}"
        );
    }

    #[test]
    fn decode_key_table() {
        check("photo.jpg", Ok("photo.jpg"));
        check("My+Photo.jpg", Ok("My Photo.jpg"));
        check("a%2Bb.jpg", Ok("a+b.jpg"));
        check("100%25+real.png", Ok("100% real.png"));
        check("caf%C3%A9%2F%C3%BC.jpg", Ok("café/ü.jpg"));
        check("%E6%97%A5%E6%9C%AC%E8%AA%9E.png", Ok("日本語.png"));
        check("%F0%9F%93%B7+snap.webp", Ok("📷 snap.webp"));
        check("dir/sub+dir/x.gif", Ok("dir/sub dir/x.gif"));
        check("lower%c3%a9.jpg", Ok("loweré.jpg"));
        check("folder/", Ok("folder/"));
        check("%2B%2B", Ok("++"));
    }

    #[test]
    fn decode_key_invalid_escapes_are_named_errors() {
        check("bad%", Err(KeyError::InvalidEscape { position: 3 }));
        check("bad%4", Err(KeyError::InvalidEscape { position: 3 }));
        check("bad%zz.jpg", Err(KeyError::InvalidEscape { position: 3 }));
        check("%G0", Err(KeyError::InvalidEscape { position: 0 }));
        check("", Err(KeyError::Empty));
    }

    #[test]
    fn decode_key_invalid_utf8_is_named_error() {
        check("ok%FF.jpg", Err(KeyError::InvalidUtf8 { position: 2 }));
        check("%C3", Err(KeyError::InvalidUtf8 { position: 0 }));
        check("%C3%28", Err(KeyError::InvalidUtf8 { position: 0 }));
    }

    #[test]
    fn decode_key_multibyte_char_split_by_escape_boundary_does_not_panic() {
        // A raw (unescaped) non-ASCII char next to escapes must still work.
        check("é%20x", Ok("é x"));
    }

    #[test]
    fn decode_key_1024_byte_key_round_trips() {
        let raw = format!("{}/{}.jpg", "d".repeat(501), "é".repeat(259));
        assert_eq!(raw.len(), MAX_KEY_BYTES);
        let key = ObjectKey::from_decoded(raw.clone()).unwrap();
        let encoded = key.encode_for_event();
        check(&encoded, Ok(&raw));
    }

    #[test]
    fn decode_key_1025_bytes_is_too_long() {
        let raw = "k".repeat(MAX_KEY_BYTES + 1);
        check(&raw, Err(KeyError::TooLong { bytes: 1025 }));
        // The limit is on the decoded bytes: 342 escaped 3-byte characters are 1,026 bytes.
        check(
            &"%E2%82%AC".repeat(342),
            Err(KeyError::TooLong { bytes: 1026 }),
        );
        check(&"%E2%82%AC".repeat(341), Ok(&"€".repeat(341)));
        assert_eq!(
            ObjectKey::from_decoded(raw),
            Err(KeyError::TooLong { bytes: 1025 })
        );
    }

    #[test]
    fn decode_key_hostile_but_legal_keys_decode_exactly() {
        check("..%2F..%2Fetc%2Fpasswd", Ok("../../etc/passwd"));
        check("%2Fabs.jpg", Ok("/abs.jpg"));
        check("a%5Cb.jpg", Ok("a\\b.jpg"));
        check("ctl%0A%00%1B.jpg", Ok("ctl\n\0\u{1b}.jpg"));
        check("./x.jpg", Ok("./x.jpg"));
    }

    #[test]
    fn encode_for_event_matches_aws_examples() {
        let cases = [
            ("My Photo ü.jpg", "My+Photo+%C3%BC.jpg"),
            ("a+b.jpg", "a%2Bb.jpg"),
            ("100%.png", "100%25.png"),
            ("x/y z/w.gif", "x/y+z/w.gif"),
        ];
        for (raw, encoded) in cases {
            let key = ObjectKey::from_decoded(raw).unwrap();
            assert_eq!(key.encode_for_event(), encoded);
            check(encoded, Ok(raw));
        }
    }

    #[test]
    fn file_name_table() {
        for (key, name) in [("a/b/c.jpg", "c.jpg"), ("c.jpg", "c.jpg"), ("a/b/", "b")] {
            assert_eq!(ObjectKey::from_decoded(key).unwrap().file_name(), name);
        }
    }

    #[test]
    fn is_folder_marker_table() {
        assert!(ObjectKey::from_decoded("photos/")
            .unwrap()
            .is_folder_marker());
        assert!(!ObjectKey::from_decoded("photos/a.jpg")
            .unwrap()
            .is_folder_marker());
    }
}
