//! JSON-RPC 1.0 as RFC 7047 uses it: a stream of concatenated JSON values
//! ([`Decoder`] splits it) carrying requests, notifications and replies
//! ([`Message`]).

use serde_json::{Value, json};

mod framer;

pub use framer::{DecodeError, Decoder, MAX_MESSAGE_BYTES};

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
}
