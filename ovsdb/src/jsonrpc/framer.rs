//! Incremental framing of a JSON-RPC byte stream (RFC 7047 section 4: a
//! stream of concatenated JSON texts, with no length prefix).
//!
//! [`Decoder`] is the one splitter every ferrovs peer uses: the OVSDB
//! server and client, the appctl server in vswitchd and the `appctl` CLI.
//!
//! It looks at every byte once. A small scanner tracks the nesting depth of
//! `{}`/`[]`, whether it is inside a string and whether the previous byte
//! was a backslash, and keeps its position across [`Decoder::feed`] calls.
//! Only when a top-level value closes is exactly that slice handed to
//! serde_json, once. Reading a message of `n` bytes in any number of pieces
//! therefore costs O(n), where re-parsing the buffer on every read cost
//! O(n²). [`Decoder::scanned_bytes`] exposes the work done so tests can
//! prove it.
//!
//! Rules of the stream:
//! - Whitespace between messages is skipped.
//! - A message must be an object or an array, as in Open vSwitch; anything
//!   else at the start of a message ("3", "true", "\"x\"", "}") is the
//!   syntax error "syntax error at beginning of input". An array is framed
//!   like any value; classifying it (not a JSON-RPC message) is
//!   [`super::Message::from_value`]'s job.
//! - Outside strings a message may only contain the bytes JSON allows there;
//!   any other byte is a syntax error as soon as it is seen, without waiting
//!   for the message to end.
//! - A message longer than the decoder's limit ([`MAX_MESSAGE_BYTES`] unless
//!   [`Decoder::with_limit`] says otherwise) is an error as soon as its
//!   first byte past the limit arrives.
//! - Errors are final: the stream cannot be resynchronised, so every later
//!   call returns the same error and further input is discarded. The caller
//!   reports it to the peer and closes the connection.

use serde_json::Value;

/// The largest JSON-RPC message any ferrovs socket accepts (db.sock,
/// vswitchd.ctl) or any ferrovs client reads: 64 MiB.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Consumed bytes are dropped from the front of the buffer only once they
/// are at least as many as the bytes kept, so each byte is moved at most once
/// on average. A buffer bigger than this that is mostly unused after such a
/// compaction gives its memory back.
const KEEP_CAPACITY: usize = 1 << 20;

/// Why the stream cannot be decoded any further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("syntax error: {0}")]
    Syntax(String),
    #[error("message exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
}

/// Where the scanner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Between messages: skipping whitespace.
    Between,
    /// Inside a message, outside strings.
    Value,
    /// Inside a string.
    Str,
    /// Inside a string, just after a backslash.
    Escape,
}

/// Splits a byte stream into JSON values, across partial reads.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    /// First byte not yet consumed: the start of the current message, or of
    /// the unscanned input between messages.
    start: usize,
    /// Next byte to scan.
    pos: usize,
    /// Open `{`/`[` in the current message.
    depth: usize,
    state: Scan,
    limit: usize,
    scanned: u64,
    failed: Option<DecodeError>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::with_limit(MAX_MESSAGE_BYTES)
    }
}

impl Decoder {
    /// A decoder accepting messages of up to [`MAX_MESSAGE_BYTES`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder accepting messages of up to `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Decoder {
            buf: Vec::new(),
            start: 0,
            pos: 0,
            depth: 0,
            state: Scan::Between,
            limit,
            scanned: 0,
            failed: None,
        }
    }

    /// Append bytes read from the peer.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        let kept = self.buf.len() - self.start;
        if self.start > 0 && self.start >= kept {
            self.buf.copy_within(self.start.., 0);
            self.buf.truncate(kept);
            self.scanned += kept as u64;
            self.pos -= self.start;
            self.start = 0;
            if self.buf.capacity() > KEEP_CAPACITY && kept < self.buf.capacity() / 4 {
                // A big message has gone: give most of its memory back.
                self.buf.shrink_to(kept.max(KEEP_CAPACITY / 16));
            }
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete value, `Ok(None)` if more bytes are needed.
    pub fn next_value(&mut self) -> Result<Option<Value>, DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        loop {
            let end = match self.state {
                Scan::Between => self.buf.len(),
                _ => self.buf.len().min(self.start.saturating_add(self.limit)),
            };
            if self.pos >= end {
                if self.state != Scan::Between && self.buf.len() > end {
                    return Err(self.fail(DecodeError::TooLarge { limit: self.limit }));
                }
                return Ok(None);
            }
            if self.state == Scan::Str {
                // Fast path through string contents.
                let rest = &self.buf[self.pos..end];
                let skip = rest
                    .iter()
                    .position(|&b| b == b'"' || b == b'\\')
                    .unwrap_or(rest.len());
                self.pos += skip;
                self.scanned += skip as u64;
                if self.pos == end {
                    continue;
                }
            }
            let b = self.buf[self.pos];
            self.pos += 1;
            self.scanned += 1;
            match self.state {
                Scan::Between => match b {
                    b' ' | b'\t' | b'\n' | b'\r' => self.start = self.pos,
                    b'{' | b'[' => {
                        self.state = Scan::Value;
                        self.depth = 1;
                    }
                    _ => {
                        return Err(self.fail(DecodeError::Syntax(
                            "syntax error at beginning of input".into(),
                        )));
                    }
                },
                Scan::Str => {
                    self.state = if b == b'"' { Scan::Value } else { Scan::Escape };
                }
                Scan::Escape => self.state = Scan::Str,
                Scan::Value => match b {
                    b'"' => self.state = Scan::Str,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        self.depth -= 1;
                        if self.depth == 0 {
                            return self.complete();
                        }
                    }
                    _ if allowed_outside_strings(b) => {}
                    _ => return Err(self.invalid_byte(b)),
                },
            }
        }
    }

    /// Bytes examined so far: by the scanner, by the JSON parser and by
    /// buffer compaction together. Linear framing keeps this within a small
    /// constant factor of the bytes fed.
    pub fn scanned_bytes(&self) -> u64 {
        self.scanned
    }

    /// Parses the message that just closed, `buf[start..pos]`.
    fn complete(&mut self) -> Result<Option<Value>, DecodeError> {
        let msg = &self.buf[self.start..self.pos];
        self.scanned += msg.len() as u64;
        let parsed = serde_json::from_slice::<Value>(msg);
        self.start = self.pos;
        self.state = Scan::Between;
        match parsed {
            Ok(v) => Ok(Some(v)),
            Err(e) => Err(self.fail(DecodeError::Syntax(e.to_string()))),
        }
    }

    /// A byte JSON never allows outside strings: let serde_json describe
    /// the problem in the message so far, where it can.
    fn invalid_byte(&mut self, b: u8) -> DecodeError {
        let msg = &self.buf[self.start..self.pos];
        let text = match serde_json::from_slice::<Value>(msg) {
            Err(e) if !e.is_eof() => e.to_string(),
            _ => format!(
                "invalid byte 0x{b:02x} at offset {} of message",
                msg.len() - 1
            ),
        };
        self.fail(DecodeError::Syntax(text))
    }

    fn fail(&mut self, e: DecodeError) -> DecodeError {
        self.failed = Some(e.clone());
        self.buf = Vec::new();
        self.start = 0;
        self.pos = 0;
        e
    }
}

/// Whitespace, structure, numbers and the letters of `true`, `false`, `null`.
fn allowed_outside_strings(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t' | b'\n' | b'\r' | b':' | b',' | b'0'
            ..=b'9'
                | b'-'
                | b'+'
                | b'.'
                | b'e'
                | b'E'
                | b't'
                | b'r'
                | b'u'
                | b'f'
                | b'a'
                | b'l'
                | b's'
                | b'n'
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// Feeds `input` whole and collects every value until more bytes are needed.
    fn decode_all(d: &mut Decoder, input: &[u8]) -> Result<Vec<Value>, DecodeError> {
        d.feed(input);
        let mut out = Vec::new();
        while let Some(v) = d.next_value()? {
            out.push(v);
        }
        Ok(out)
    }

    #[test]
    fn partial_reads_are_joined_byte_by_byte() {
        let msg = br#"{"method":"echo","params":["a",{"b":[1,2.5e3,true,null]}],"id":1}"#;
        let mut d = Decoder::new();
        for (i, b) in msg.iter().enumerate() {
            d.feed(std::slice::from_ref(b));
            let v = d.next_value().unwrap();
            if i + 1 < msg.len() {
                assert_eq!(v, None, "complete too early at byte {i}");
            } else {
                assert_eq!(v.unwrap()["params"][1]["b"][1], json!(2500.0));
            }
        }
    }

    #[test]
    fn concatenated_messages_and_whitespace_between_them_are_split() {
        let mut d = Decoder::new();
        let got = decode_all(&mut d, b" \n{\"id\":1}{\"id\":2}\r\n\t[3] {\"id\":4}  ").unwrap();
        assert_eq!(
            got,
            vec![
                json!({"id":1}),
                json!({"id":2}),
                json!([3]),
                json!({"id":4})
            ]
        );
        assert_eq!(d.next_value().unwrap(), None);
    }

    #[test]
    fn braces_brackets_and_escaped_quotes_inside_strings_do_not_count() {
        let mut d = Decoder::new();
        let input = br#"{"a":"}]{[","b":"\"}","c":"\\","d":"\\\"]"}{"e":1}"#;
        let got = decode_all(&mut d, input).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0]["a"], "}]{[");
        assert_eq!(got[0]["b"], "\"}");
        assert_eq!(got[0]["c"], "\\");
        assert_eq!(got[0]["d"], "\\\"]");
        assert_eq!(got[1]["e"], 1);
    }

    #[test]
    fn escape_split_across_reads_is_remembered() {
        let mut d = Decoder::new();
        d.feed(br#"{"a":"x\"#);
        assert_eq!(d.next_value().unwrap(), None);
        d.feed(br#""}"#);
        assert_eq!(
            d.next_value().unwrap(),
            None,
            "escaped quote closed the string"
        );
        d.feed(br#""}"#);
        assert_eq!(d.next_value().unwrap(), Some(json!({"a":"x\"}"})));
    }

    #[test]
    fn nested_values_complete_only_at_depth_zero() {
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let mut d = Decoder::new();
        d.feed(&deep.as_bytes()[..150]);
        assert_eq!(d.next_value().unwrap(), None);
        d.feed(&deep.as_bytes()[150..]);
        let v = d.next_value().unwrap().unwrap();
        let mut depth = 0;
        let mut cur = &v;
        while let Some(inner) = cur.as_array().and_then(|a| a.first()) {
            cur = inner;
            depth += 1;
        }
        assert_eq!(depth, 99);
    }

    #[test]
    fn top_level_scalars_are_syntax_errors() {
        for input in [&b"3 "[..], b"true", b"\"x\"", b"}", b"null"] {
            let mut d = Decoder::new();
            d.feed(input);
            assert_eq!(
                d.next_value(),
                Err(DecodeError::Syntax(
                    "syntax error at beginning of input".into()
                )),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn malformed_message_is_a_syntax_error_and_stays_one() {
        let mut d = Decoder::new();
        d.feed(b"{\"id\": ]");
        let e = d.next_value().unwrap_err();
        assert!(
            matches!(&e, DecodeError::Syntax(s) if s.contains("expected value")),
            "{e}"
        );
        d.feed(br#"{"id":1}"#);
        assert_eq!(d.next_value(), Err(e));
    }

    #[test]
    fn invalid_byte_is_reported_before_the_message_closes() {
        let mut d = Decoder::new();
        d.feed(br#"{"method": garbage"#);
        let e = d.next_value().unwrap_err();
        assert!(matches!(e, DecodeError::Syntax(_)), "{e}");
    }

    #[test]
    fn oversize_message_is_rejected_before_it_completes() {
        let mut d = Decoder::with_limit(1000);
        d.feed(br#"{"params":[""#);
        d.feed(&[b'x'; 980]);
        assert_eq!(d.next_value().unwrap(), None, "still within the limit");
        d.feed(&[b'x'; 100]);
        assert_eq!(d.next_value(), Err(DecodeError::TooLarge { limit: 1000 }));
        assert!(d.buf.is_empty(), "buffer released after the error");
    }

    #[test]
    fn buffer_memory_is_given_back_after_a_big_message() {
        // The big message arrives with the start of the next one.
        let mut input = serde_json::to_vec(&json!(["x".repeat(8 << 20)])).unwrap();
        input.extend_from_slice(br#"{"id":"#);
        let mut d = Decoder::new();
        assert_eq!(decode_all(&mut d, &input).unwrap().len(), 1);
        d.feed(b"2}");
        assert!(d.buf.capacity() <= KEEP_CAPACITY, "{}", d.buf.capacity());
        assert_eq!(d.next_value().unwrap(), Some(json!({"id":2})));
    }

    #[test]
    fn message_of_exactly_the_limit_is_accepted() {
        let msg = br#"{"id":12345}"#;
        let mut d = Decoder::with_limit(msg.len());
        let got = decode_all(&mut d, &[&msg[..], b"  ", &msg[..]].concat()).unwrap();
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn whitespace_between_messages_does_not_count_toward_the_limit() {
        let mut d = Decoder::with_limit(16);
        for _ in 0..10 {
            d.feed(&[b' '; 100]);
            assert_eq!(d.next_value().unwrap(), None);
        }
        d.feed(br#"{"id":1}"#);
        assert_eq!(d.next_value().unwrap(), Some(json!({"id":1})));
    }

    #[test]
    fn large_message_in_small_reads_is_scanned_linearly() {
        // One ~1 MB message arriving in 1 KiB reads, each followed by a
        // decode attempt as a server does. Re-parsing the buffer on every
        // read examines ~500 MB here.
        let big = "x".repeat(1 << 20);
        let msg =
            serde_json::to_vec(&json!({"method":"echo","params":[big, {"k":"}]\"{["}],"id":7}))
                .unwrap();
        let mut d = Decoder::new();
        let mut got = None;
        for chunk in msg.chunks(1024) {
            d.feed(chunk);
            if let Some(v) = d.next_value().unwrap() {
                got = Some(v);
            }
        }
        assert_eq!(got.unwrap()["id"], 7);
        let input = msg.len() as u64;
        assert!(
            d.scanned_bytes() <= 2 * input,
            "examined {} bytes for {input} bytes of input",
            d.scanned_bytes()
        );
    }

    #[test]
    fn many_pipelined_messages_are_framed_linearly() {
        // 20,000 small messages in one stream, read in 4000-byte pieces:
        // dropping each message from the front of the buffer as it is
        // decoded would move the rest of the buffer every time.
        let one = br#"{"method":"echo","params":[],"id":1} "#;
        let stream: Vec<u8> = one.repeat(20_000);
        let mut d = Decoder::new();
        let mut n = 0;
        for chunk in stream.chunks(4000) {
            d.feed(chunk);
            while d.next_value().unwrap().is_some() {
                n += 1;
            }
        }
        assert_eq!(n, 20_000);
        let input = stream.len() as u64;
        assert!(
            d.scanned_bytes() <= 3 * input,
            "examined {} bytes for {input} bytes of input",
            d.scanned_bytes()
        );
    }

    /// A JSON-RPC-shaped value with strings full of framing characters.
    fn arb_message() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| json!(i)),
            "[a-z{}\\[\\]\"\\\\ \n\t/é\u{1F600}]{0,12}".prop_map(Value::String),
        ];
        let inner = leaf.prop_recursive(4, 32, 6, |v| {
            prop_oneof![
                proptest::collection::vec(v.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z\"{]{1,5}", v, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        (inner, any::<bool>()).prop_map(|(v, as_array)| {
            if as_array {
                json!([v])
            } else {
                json!({"method":"m","params":[v],"id":1})
            }
        })
    }

    proptest! {
        #[test]
        fn splitting_a_stream_anywhere_yields_the_same_values(
            msgs in proptest::collection::vec(arb_message(), 1..6),
            seps in proptest::collection::vec(prop_oneof![Just(""), Just(" "), Just("\n"), Just(" \r\n\t ")], 6),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let mut stream = Vec::new();
            for (m, sep) in msgs.iter().zip(&seps) {
                stream.extend_from_slice(&serde_json::to_vec(m).unwrap());
                stream.extend_from_slice(sep.as_bytes());
            }
            let whole = decode_all(&mut Decoder::new(), &stream).unwrap();
            prop_assert_eq!(&whole, &msgs);

            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
            points.sort_unstable();
            let mut d = Decoder::new();
            let mut pieces = Vec::new();
            let mut last = 0;
            for p in points.into_iter().chain([stream.len()]) {
                pieces.extend(decode_all(&mut d, &stream[last..p]).unwrap());
                last = p;
            }
            prop_assert_eq!(pieces, msgs);
        }

        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let mut d = Decoder::with_limit(200);
            for c in &chunks {
                d.feed(c);
                while let Ok(Some(_)) = d.next_value() {}
            }
        }
    }
}
