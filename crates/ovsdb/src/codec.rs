//! Framing of JSON-RPC over a raw byte stream: OVSDB sends one JSON value after another with no
//! length prefix or delimiter, so the decoder finds where each top-level value ends by scanning
//! brackets and strings once per byte.
use bytes::{Buf, BytesMut};
use serde_json::Value;
use tokio_util::codec::{Decoder, Encoder};

/// Largest single message accepted; a Northbound with 100k ports is still far below this.
pub const MAX_MESSAGE: usize = 256 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct JsonCodec {
    /// Bytes of the current message already scanned.
    scanned: usize,
    depth: usize,
    in_string: bool,
    escape: bool,
    started: bool,
}

impl JsonCodec {
    fn reset(&mut self) {
        *self = JsonCodec::default();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Malformed(String),
}

impl Decoder for JsonCodec {
    type Item = Value;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Value>, CodecError> {
        if !self.started {
            // Skip whitespace between messages.
            let skip = src.iter().take_while(|b| b.is_ascii_whitespace()).count();
            src.advance(skip);
            match src.first() {
                None => return Ok(None),
                Some(b'{') | Some(b'[') => self.started = true,
                Some(&b) => {
                    let shown = String::from_utf8_lossy(&src[..src.len().min(40)]).into_owned();
                    return Err(CodecError::Malformed(format!(
                        "expected a JSON object, got byte 0x{b:02x} at {shown:?}"
                    )));
                }
            }
        }
        let mut end = None;
        for (i, &b) in src.iter().enumerate().skip(self.scanned) {
            if self.in_string {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    if self.depth == 0 {
                        return Err(CodecError::Malformed("unbalanced closing bracket".into()));
                    }
                    self.depth -= 1;
                    if self.depth == 0 {
                        end = Some(i + 1);
                        break;
                    }
                }
                _ => {}
            }
        }
        match end {
            Some(end) => {
                let frame = src.split_to(end);
                self.reset();
                serde_json::from_slice(&frame)
                    .map(Some)
                    .map_err(|e| CodecError::Malformed(format!("invalid JSON: {e}")))
            }
            None => {
                self.scanned = src.len();
                if src.len() > MAX_MESSAGE {
                    return Err(CodecError::Malformed(format!(
                        "message larger than {MAX_MESSAGE} bytes"
                    )));
                }
                Ok(None)
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Value>, CodecError> {
        match self.decode(src)? {
            Some(v) => Ok(Some(v)),
            None if src.iter().all(|b| b.is_ascii_whitespace()) => Ok(None),
            None => Err(CodecError::Malformed(format!(
                "connection closed in the middle of a message ({} bytes unfinished)",
                src.len()
            ))),
        }
    }
}

impl Encoder<Value> for JsonCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Value, dst: &mut BytesMut) -> Result<(), CodecError> {
        let bytes = serde_json::to_vec(&item).map_err(|e| CodecError::Malformed(e.to_string()))?;
        dst.extend_from_slice(&bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn feed(chunks: &[&[u8]]) -> Result<Vec<Value>, CodecError> {
        let mut codec = JsonCodec::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(v) = codec.decode(&mut buf)? {
                out.push(v);
            }
        }
        if let Some(v) = codec.decode_eof(&mut buf)? {
            out.push(v);
        }
        Ok(out)
    }

    #[test]
    fn splits_back_to_back_messages() {
        let got = feed(&[br#"{"id":1}{"id":2} {"id":3}"#]).unwrap();
        assert_eq!(got, vec![json!({"id":1}), json!({"id":2}), json!({"id":3})]);
    }

    #[test]
    fn reassembles_a_message_split_at_every_byte() {
        let msg = br#"{"method":"echo","params":["a}\"{[",{"k":[1,2]}],"id":"x"}"#;
        let chunks: Vec<&[u8]> = msg.chunks(1).collect();
        let got = feed(&chunks).unwrap();
        assert_eq!(
            got,
            vec![json!({"method":"echo","params":["a}\"{[",{"k":[1,2]}],"id":"x"})]
        );
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let got = feed(&[br#"{"a":"}}}]]]","b":"\\"}"#]).unwrap();
        assert_eq!(got, vec![json!({"a":"}}}]]]","b":"\\"})]);
    }

    #[test]
    fn truncated_message_at_eof_is_an_error() {
        let err = feed(&[br#"{"id":1,"result":[{"uuid""#]).unwrap_err();
        assert!(err.to_string().contains("middle of a message"), "{err}");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b"hello"[..],
            b"}",
            b"{\"a\":tru}",
            b"{\"a\":1]",
            b"\x00\xff",
        ] {
            assert!(
                feed(&[bad]).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
