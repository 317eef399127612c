//! An execution's event log, live: a JSON long poll, or Server-Sent Events.

use crate::api::extract::{Call, ExecutionId, StrictQuery};
use crate::api::openapi::NotFound;
use crate::api::problem::Problem;
use crate::api::wire::EventPage;
use crate::domain::log::LogEntry;
use crate::engine::{LogQuery, LogReader, MAX_LOG_PAGE, MAX_LOG_WAIT};
use axum::Json;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;
use tokio::time::Instant;
use utoipa::IntoParams;

/// Entries a read returns when the query does not say.
const DEFAULT_PAGE: usize = 100;
/// A stream sends a comment line when it has had nothing else to send this long (the
/// contract asks for one at least every 15 s).
const KEEP_ALIVE: Duration = Duration::from_secs(10);
const EVENT_STREAM: &str = "text/event-stream";

/// The query of `GET /executions/{id}/events`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsParams {
    /// Entries after this `seq` (default 0: from the first). A stream's `Last-Event-ID`
    /// header says the same, and wins.
    #[param(value_type = Option<u64>, minimum = 0)]
    after: Option<String>,
    /// The long poll's wait for an entry, in seconds, 0..25 (default 0: answer at once).
    #[param(value_type = Option<u32>, minimum = 0, maximum = 25)]
    wait: Option<String>,
    /// Entries at most, 1..500 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
}

fn number(name: &str, text: Option<&str>, max: u64, default: u64) -> Result<u64, Problem> {
    match text {
        None => Ok(default),
        Some(text) => match text.trim().parse::<u64>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(Problem::field(name, format!("must be an integer 0..{max}"))),
        },
    }
}

/// Watch an execution: its event log, live
///
/// With `Accept: text/event-stream`, Server-Sent Events: each entry as `id: <seq>`,
/// `event: <type>`, `data: <entry>`; `: keep-alive` comments in between; `event: end` after
/// the entry that ends the execution. Otherwise a JSON long poll: entries after `after`, at
/// once if there are any, else as soon as one comes or after `wait` seconds.
#[utoipa::path(get, path = "/executions/{id}/events", tag = "executions",
    params(("id" = String, Path), EventsParams,
           ("Last-Event-ID" = Option<u64>, Header, description = "A stream resumes after this entry")),
    responses((status = 200, description = "Entries of the log",
               content((EventPage = "application/json"), (String = "text/event-stream"))),
              NotFound))]
pub async fn events(
    call: Call<StrictQuery<EventsParams>, ExecutionId>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let params = &call.query.0;
    let stream = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(EVENT_STREAM));
    // A `seq` is documented as an int64: larger values are refused, not wrapped or ignored.
    let max_seq = i64::MAX as u64;
    let mut after = number("after", params.after.as_deref(), max_seq, 0)?;
    if let Some(last) = headers.get("last-event-id") {
        let last = last.to_str().unwrap_or_default();
        let last = number("Last-Event-ID", Some(last), max_seq, 0)?;
        // Checked on a long poll too, but only a stream resumes from it.
        if stream {
            after = last;
        }
    }
    let wait = number("wait", params.wait.as_deref(), MAX_LOG_WAIT.as_secs(), 0)?;
    let limit = match params.limit.as_deref() {
        Some(_) => number("limit", params.limit.as_deref(), MAX_LOG_PAGE as u64, 0).and_then(
            |n| match n {
                0 => Err(Problem::field(
                    "limit",
                    format!("must be an integer 1..{MAX_LOG_PAGE}"),
                )),
                n => Ok(n as usize),
            },
        )?,
        None => DEFAULT_PAGE,
    };
    if stream && !call.api.streams {
        return Err(Problem::new(
            StatusCode::NOT_ACCEPTABLE,
            "stream_not_here",
            "this endpoint cannot stream here; ask the stream URL, or long-poll without `Accept: text/event-stream`",
        ));
    }
    let reader = call.api.engine.log_reader(&call.caller, &call.id).await?;
    if stream {
        return Ok(live(reader, after, call.api.max_stream).into_response());
    }
    let query = LogQuery {
        after,
        limit,
        wait: Duration::from_secs(wait),
    };
    let page = reader.read(query).await?;
    Ok(Json(EventPage {
        items: page.items,
        last_seq: page.last_seq,
        terminal: page.terminal,
    })
    .into_response())
}

/// Where a stream stands.
struct Stream {
    reader: LogReader,
    after: u64,
    pending: VecDeque<LogEntry>,
    /// The terminal entry is sent: `end` comes next, then nothing.
    ending: bool,
    ended: bool,
    /// When the stream closes at the latest (the host's limit), between two events.
    closes_at: Option<Instant>,
}

/// The log from `after` on as Server-Sent Events, until the execution's last entry (or
/// `max_stream`, after which the client resumes with `Last-Event-ID`).
fn live(
    reader: LogReader,
    after: u64,
    max_stream: Option<Duration>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let start = Stream {
        reader,
        after,
        pending: VecDeque::new(),
        ending: false,
        ended: false,
        // A limit too far off to be an instant is no limit.
        closes_at: max_stream.and_then(|limit| Instant::now().checked_add(limit)),
    };
    let events = futures_util::stream::unfold(start, |mut stream| async move {
        loop {
            if let Some(entry) = stream.pending.pop_front() {
                stream.after = entry.seq;
                if entry.event.is_terminal() {
                    stream.pending.clear();
                    stream.ending = true;
                }
                return Some((Ok(sse_event(&entry)), stream));
            }
            if stream.ending {
                stream.ending = false;
                stream.ended = true;
                let end = Event::default()
                    .event("end")
                    .data(format!("{{\"last_seq\":{}}}", stream.after));
                return Some((Ok(end), stream));
            }
            if stream.ended {
                return None;
            }
            // Past the host's limit nothing more is read: the stream ends cleanly here.
            let wait = match stream.closes_at {
                Some(at) => match at.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left.min(MAX_LOG_WAIT),
                    _ => return None,
                },
                None => MAX_LOG_WAIT,
            };
            let query = LogQuery {
                after: stream.after,
                limit: MAX_LOG_PAGE,
                wait,
            };
            match stream.reader.read(query).await {
                Ok(page) => {
                    stream.ending = page.items.is_empty() && page.terminal;
                    stream.pending.extend(page.items);
                }
                // The client reconnects with Last-Event-ID and misses nothing.
                Err(error) => {
                    tracing::warn!(%error, "event stream ended early");
                    return None;
                }
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
}

fn sse_event(entry: &LogEntry) -> Event {
    let event = Event::default()
        .id(entry.seq.to_string())
        .event(entry.event.kind());
    match serde_json::to_string(entry) {
        Ok(data) => event.data(data),
        Err(_) => event.data("{}"),
    }
}
