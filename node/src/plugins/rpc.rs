//! JSON-RPC 2.0 as plugins speak it: one JSON object per line on the
//! plugin's standard input and output, each line at most [`MAX_LINE`]
//! bytes. Encoding and telling apart what a plugin wrote; no IO.
//!
//! The node sends requests with numeric ids; a plugin answers them and may
//! send requests of its own (see [`super`]) and `log` notifications.
//! Anything else on its output is garbage, and costs the plugin a restart.

use serde_json::{Map, Value, json};

/// Longest line either side may write, in bytes.
pub const MAX_LINE: usize = 1024 * 1024;

/// The method is not one the node answers.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// The parameters are not what the method takes.
pub const INVALID_PARAMS: i64 = -32602;
/// The plugin was not granted the permission the method needs.
pub const NOT_PERMITTED: i64 = -32001;
/// No command or action of the plugin is under way with that invocation.
pub const NO_INVOCATION: i64 = -32002;
/// The plugin has too many requests under way.
pub const BUSY: i64 = -32003;
/// The request failed in the node.
pub const FAILED: i64 = -32004;

/// An error object from either side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    /// The JSON-RPC error code.
    pub code: i64,
    /// What went wrong.
    pub message: String,
}

/// One line a plugin wrote.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// An answer to the node's request `id`.
    Response {
        /// The node's request id.
        id: u64,
        /// The result, or the plugin's error.
        outcome: Result<Value, RpcError>,
    },
    /// A request the node must answer.
    Request {
        /// The plugin's id for it, echoed in the answer.
        id: Value,
        /// The method.
        method: String,
        /// Its parameters (`null` when absent).
        params: Value,
    },
    /// A notification: nothing is answered.
    Notification {
        /// The method.
        method: String,
        /// Its parameters (`null` when absent).
        params: Value,
    },
}

/// Reads one line. The error says why it is not JSON-RPC 2.0, quoting the
/// start of the line.
pub fn parse(line: &[u8]) -> Result<Incoming, String> {
    let quoted = || {
        let s = String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned();
        format!("{s:?}{}", if line.len() > 80 { "…" } else { "" })
    };
    let v: Value = serde_json::from_slice(line).map_err(|e| format!("{} is not JSON ({e})", quoted()))?;
    let Value::Object(mut o) = v else {
        return Err(format!("{} is not a JSON-RPC object", quoted()));
    };
    if o.get("jsonrpc") != Some(&json!("2.0")) {
        return Err(format!("{} lacks \"jsonrpc\": \"2.0\"", quoted()));
    }
    let params = o.remove("params").unwrap_or(Value::Null);
    match (o.remove("method"), o.remove("id")) {
        (Some(Value::String(method)), Some(id)) if id.is_string() || id.is_number() => {
            Ok(Incoming::Request { id, method, params })
        }
        (Some(Value::String(method)), None) => Ok(Incoming::Notification { method, params }),
        (Some(_), _) => {
            Err(format!("{} has a method that is not a string or an id that is not a string or number", quoted()))
        }
        (None, Some(id)) => {
            let id = id.as_u64().ok_or_else(|| format!("{} answers an id the node never used", quoted()))?;
            let outcome = match (o.remove("result"), o.remove("error")) {
                (Some(r), None) => Ok(r),
                (None, Some(Value::Object(e))) => {
                    Err(error_of(&e).ok_or_else(|| format!("{} has a malformed error", quoted()))?)
                }
                _ => return Err(format!("{} must hold exactly one of \"result\" and \"error\"", quoted())),
            };
            Ok(Incoming::Response { id, outcome })
        }
        (None, None) => Err(format!("{} is neither a request nor an answer", quoted())),
    }
}

fn error_of(e: &Map<String, Value>) -> Option<RpcError> {
    Some(RpcError { code: e.get("code")?.as_i64()?, message: e.get("message")?.as_str()?.to_owned() })
}

/// A request from the node, as a line (without its newline).
pub fn request(id: u64, method: &str, params: &Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

/// The node's answer to a plugin's request, as a line.
pub fn answer(id: &Value, outcome: Result<Value, RpcError>) -> String {
    match outcome {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(e) => json!({"jsonrpc": "2.0", "id": id, "error": {"code": e.code, "message": e.message}}),
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_answers_requests_and_notifications_apart() {
        let r = parse(br#"{"jsonrpc":"2.0","id":7,"result":{"reply":"ok"}}"#).expect("should succeed");
        assert_eq!(r, Incoming::Response { id: 7, outcome: Ok(json!({"reply": "ok"})) });
        let e = parse(br#"{"jsonrpc":"2.0","id":7,"error":{"code":-1,"message":"no"}}"#).expect("should succeed");
        assert_eq!(e, Incoming::Response { id: 7, outcome: Err(RpcError { code: -1, message: "no".into() }) });
        let q = parse(br#"{"jsonrpc":"2.0","id":"a","method":"message.post","params":{"text":"hi"}}"#)
            .expect("should succeed");
        assert!(matches!(q, Incoming::Request { ref method, .. } if method == "message.post"));
        let n = parse(br#"{"jsonrpc":"2.0","method":"log"}"#).expect("should succeed");
        assert_eq!(n, Incoming::Notification { method: "log".into(), params: Value::Null });
    }

    #[test]
    fn garbage_is_named() {
        for (line, want) in [
            (&b"hello there"[..], "not JSON"),
            (b"[1,2]", "not a JSON-RPC object"),
            (br#"{"id":1,"result":1}"#, "jsonrpc"),
            (br#"{"jsonrpc":"2.0","id":1}"#, "exactly one"),
            (br#"{"jsonrpc":"2.0","id":-1,"result":1}"#, "never used"),
            (br#"{"jsonrpc":"2.0"}"#, "neither"),
            (b"\xff\xfe", "not JSON"),
        ] {
            let e = parse(line).expect_err("should fail");
            assert!(e.contains(want), "{e:?} should say {want:?}");
        }
    }

    #[test]
    fn lines_round_trip() {
        let line = request(3, "command", &json!({"args": "x"}));
        assert!(!line.contains('\n'));
        let back = parse(answer(&json!(3), Ok(json!(1))).as_bytes()).expect("should succeed");
        assert_eq!(back, Incoming::Response { id: 3, outcome: Ok(json!(1)) });
        assert!(line.contains("\"method\":\"command\""));
    }
}
