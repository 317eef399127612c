//! Server-Sent Events for tests: parsing a stream's text, and reading a live stream from a
//! server event by event (to drop it at any point and resume with `Last-Event-ID`).

use std::time::Duration;

/// One event of a stream: its `id`, `event` and `data` fields.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Sent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// Splits complete events off the front of `buffer`; comment lines are counted in
/// `comments`. What is left is the start of an event still arriving.
pub fn take_events(buffer: &mut String, comments: &mut usize) -> Vec<Sent> {
    let mut sent = Vec::new();
    while let Some(end) = buffer.find("\n\n") {
        let block: String = buffer.drain(..end + 2).collect();
        let mut event = Sent::default();
        let mut fields = 0;
        for line in block.lines() {
            if line.starts_with(':') {
                *comments += 1;
                continue;
            }
            if line.is_empty() {
                continue;
            }
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            fields += 1;
            match name {
                "id" => event.id = Some(value.to_owned()),
                "event" => event.event = Some(value.to_owned()),
                "data" => {
                    if !event.data.is_empty() {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                }
                other => panic!("unexpected field `{other}` in {block:?}"),
            }
        }
        if fields > 0 {
            sent.push(event);
        }
    }
    sent
}

/// A whole stream's text as events, and how many comment lines it had.
pub fn parse(text: &str) -> (Vec<Sent>, usize) {
    let mut buffer = text.to_owned();
    if !buffer.ends_with("\n\n") {
        buffer.push_str("\n\n");
    }
    let mut comments = 0;
    let events = take_events(&mut buffer, &mut comments);
    (events, comments)
}

/// A live stream from a server.
pub struct EventStream {
    response: reqwest::Response,
    /// Bytes of an event still arriving (a chunk may end inside a character).
    raw: Vec<u8>,
    buffer: String,
    ready: std::collections::VecDeque<Sent>,
    /// Comment lines (keep-alives) seen so far.
    pub comments: usize,
}

impl EventStream {
    /// Opens `url` with `Accept: text/event-stream`, resuming after `last_event_id` if any.
    pub async fn open(
        client: &reqwest::Client,
        url: &str,
        token: &str,
        last_event_id: Option<u64>,
    ) -> Result<EventStream, String> {
        let mut request = client
            .get(url)
            .header("authorization", format!("Bearer {token}"))
            .header("accept", "text/event-stream");
        if let Some(last) = last_event_id {
            request = request.header("last-event-id", last.to_string());
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            let text = response.text().await.unwrap_or_default();
            return Err(format!("{status}: {text}"));
        }
        Ok(EventStream {
            response,
            raw: Vec::new(),
            buffer: String::new(),
            ready: Default::default(),
            comments: 0,
        })
    }

    /// The next event, `None` when the server closed the stream; an error after `within`
    /// without one.
    pub async fn next(&mut self, within: Duration) -> Result<Option<Sent>, String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(sent) = self.ready.pop_front() {
                return Ok(Some(sent));
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .map_err(|_| format!("no event within {within:?}"))?
                .map_err(|e| e.to_string())?;
            let Some(chunk) = chunk else {
                return Ok(None);
            };
            self.raw.extend_from_slice(&chunk);
            if let Some(end) = self.raw.windows(2).rposition(|w| w == b"\n\n") {
                let whole: Vec<u8> = self.raw.drain(..end + 2).collect();
                self.buffer.push_str(&String::from_utf8_lossy(&whole));
            }
            let events = take_events(&mut self.buffer, &mut self.comments);
            self.ready.extend(events);
        }
    }
}
