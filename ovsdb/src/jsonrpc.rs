//! JSON-RPC 1.0 framing as RFC 7047 uses it: a stream of concatenated JSON values.

use serde_json::{Value, json};

/// The largest message the decoder buffers before giving up on the peer.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Why the stream cannot be decoded any further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("syntax error: {0}")]
    Syntax(String),
    #[error("message larger than {MAX_MESSAGE_BYTES} bytes")]
    TooLarge,
}

/// Splits a byte stream into JSON values, across partial reads.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append bytes read from the peer.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete value, `Ok(None)` if more bytes are needed.
    pub fn next_value(&mut self) -> Result<Option<Value>, DecodeError> {
        let start = self
            .buf
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(self.buf.len());
        self.buf.drain(..start);
        if self.buf.is_empty() {
            return Ok(None);
        }
        let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
        match it.next() {
            Some(Ok(v)) => {
                let used = it.byte_offset();
                self.buf.drain(..used);
                Ok(Some(v))
            }
            Some(Err(e)) if e.is_eof() => {
                if self.buf.len() > MAX_MESSAGE_BYTES {
                    Err(DecodeError::TooLarge)
                } else {
                    Ok(None)
                }
            }
            Some(Err(e)) => Err(DecodeError::Syntax(e.to_string())),
            None => Ok(None),
        }
    }
}

/// A decoded JSON-RPC message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Request {
        method: String,
        params: Value,
        id: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
    Response {
        result: Value,
        error: Value,
        id: Value,
    },
}

impl Message {
    /// Classify a JSON value as a JSON-RPC message.
    pub fn from_value(v: Value) -> Result<Message, String> {
        let Value::Object(mut obj) = v else {
            return Err("message is not a JSON object".into());
        };
        let id = obj.remove("id").unwrap_or(Value::Null);
        if let Some(method) = obj.remove("method") {
            let method = method
                .as_str()
                .ok_or("\"method\" is not a string")?
                .to_owned();
            let params = obj.remove("params").unwrap_or(Value::Array(vec![]));
            if !params.is_array() {
                return Err("\"params\" is not an array".into());
            }
            if id.is_null() {
                Ok(Message::Notification { method, params })
            } else {
                Ok(Message::Request { method, params, id })
            }
        } else if obj.contains_key("result") || obj.contains_key("error") {
            Ok(Message::Response {
                result: obj.remove("result").unwrap_or(Value::Null),
                error: obj.remove("error").unwrap_or(Value::Null),
                id,
            })
        } else {
            Err("message is neither a request nor a response".into())
        }
    }
}

/// A successful reply.
pub fn reply(id: &Value, result: Value) -> Value {
    json!({"id": id, "result": result, "error": null})
}

/// An error reply.
pub fn error_reply(id: &Value, error: Value) -> Value {
    json!({"id": id, "result": null, "error": error})
}

/// A request.
pub fn request(method: &str, params: Value, id: Value) -> Value {
    json!({"method": method, "params": params, "id": id})
}

/// A notification.
pub fn notification(method: &str, params: Value) -> Value {
    json!({"method": method, "params": params, "id": null})
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decoder_joins_partial_reads_and_splits_concatenated_messages() {
        let mut d = Decoder::new();
        d.feed(br#"{"method":"echo","par"#);
        assert_eq!(d.next_value().unwrap(), None);
        d.feed(br#"ams":[],"id":1}{"method":"list_dbs","params":[],"id":2}  "#);
        let a = d.next_value().unwrap().unwrap();
        let b = d.next_value().unwrap().unwrap();
        assert_eq!(a["id"], 1);
        assert_eq!(b["method"], "list_dbs");
        assert_eq!(d.next_value().unwrap(), None);
    }

    #[test]
    fn decoder_reports_syntax_errors() {
        let mut d = Decoder::new();
        d.feed(b"{\"id\": ]");
        assert!(matches!(d.next_value(), Err(DecodeError::Syntax(_))));
    }

    #[test]
    fn message_classification_distinguishes_requests_notifications_and_replies() {
        let req = Message::from_value(json!({"method":"echo","params":[],"id":0})).unwrap();
        assert!(matches!(req, Message::Request { .. }));
        let note = Message::from_value(json!({"method":"update","params":[],"id":null})).unwrap();
        assert!(matches!(note, Message::Notification { .. }));
        let resp = Message::from_value(json!({"result":[],"error":null,"id":3})).unwrap();
        assert!(matches!(resp, Message::Response { .. }));
        assert!(Message::from_value(json!(5)).is_err());
        assert!(Message::from_value(json!({"method":"x","params":5,"id":1})).is_err());
    }

    proptest! {
        #[test]
        fn decoder_never_panics_on_arbitrary_bytes(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let mut d = Decoder::new();
            for c in &chunks {
                d.feed(c);
                for _ in 0..4 {
                    match d.next_value() {
                        Ok(Some(v)) => { let _ = Message::from_value(v); }
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
    }
}
