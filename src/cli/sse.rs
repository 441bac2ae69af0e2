//! Reads a server-sent events stream as it arrives: bytes in, whole events out.

use std::collections::VecDeque;

use futures::StreamExt;
use futures::stream::BoxStream;

/// An open event stream.
pub struct Events {
    body: BoxStream<'static, reqwest::Result<axum::body::Bytes>>,
    parser: Parser,
    ready: VecDeque<SseEvent>,
}

impl Events {
    pub fn new(body: BoxStream<'static, reqwest::Result<axum::body::Bytes>>) -> Events {
        Events {
            body,
            parser: Parser::default(),
            ready: VecDeque::new(),
        }
    }

    /// The next event; None when the server ended the stream.
    pub async fn next(&mut self) -> anyhow::Result<Option<SseEvent>> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Ok(Some(e));
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.ready.extend(self.parser.feed(&chunk)),
                Some(Err(e)) => anyhow::bail!("the event stream broke: {e}"),
                None => return Ok(None),
            }
        }
    }
}

/// One event as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// Collects lines across chunks; an event ends at a blank line.
#[derive(Default)]
pub struct Parser {
    buf: Vec<u8>,
    current: SseEvent,
    has_data: bool,
}

impl Parser {
    /// Feeds a chunk; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if self.has_data {
                    let mut done = std::mem::take(&mut self.current);
                    if done.event.is_empty() {
                        done.event = "message".into();
                    }
                    out.push(done);
                }
                self.current = SseEvent::default();
                self.has_data = false;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (&*line, ""),
            };
            match field {
                "id" => self.current.id = Some(value.to_string()),
                "event" => self.current.event = value.to_string(),
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_come_out_whole() {
        let mut p = Parser::default();
        assert!(p.feed(b": keep-alive\n\nid: 4\nevent: out").is_empty());
        let got = p.feed(b"put\ndata: {\"a\":1}\r\n\r\nid: 5\ndata: x\ndata: y\n\n");
        assert_eq!(
            got,
            vec![
                SseEvent {
                    id: Some("4".into()),
                    event: "output".into(),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    id: Some("5".into()),
                    event: "message".into(),
                    data: "x\ny".into()
                },
            ]
        );
    }
}
