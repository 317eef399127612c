//! What one `http` step may render and capture.
//!
//! Templating multiplies: a variable placed n times renders n copies, so a test case of a
//! few KiB could otherwise ask for gigabytes. Each cap is checked while rendering, before the
//! bytes are allocated; a step that would exceed one ends as `error`, naming it.

/// A rendered URL (what most servers accept at most).
pub const MAX_RENDERED_URL_BYTES: usize = 8 * 1024;
/// One rendered header value.
pub const MAX_RENDERED_HEADER_BYTES: usize = 64 * 1024;
/// Every rendered header value of a step together.
pub const MAX_RENDERED_HEADERS_BYTES: usize = 64 * 1024;
/// A rendered body, as sent (a JSON body once encoded): as much as a response may be read.
pub const MAX_RENDERED_BODY_BYTES: usize = 1024 * 1024;
/// A step's rendered URL, header values and body together.
pub const MAX_RENDERED_STEP_BYTES: usize = 2 * 1024 * 1024;
/// The variables (names and values) a run holds once a step's captures are added. Captures
/// are what a step could otherwise pile up: each may copy the whole response body, and under
/// new names they add up from step to step. A definition's and a start's variables, each
/// bounded by the API's 1 MiB request body, always fit.
pub const MAX_VARIABLES_BYTES: usize = 4 * 1024 * 1024;

// One header is a part of all of them, and the parts fit in the step's cap, which is there
// as a backstop for whatever a step renders next.
const _: () = assert!(MAX_RENDERED_HEADER_BYTES <= MAX_RENDERED_HEADERS_BYTES);
const _: () = assert!(
    MAX_RENDERED_URL_BYTES + MAX_RENDERED_HEADERS_BYTES + MAX_RENDERED_BODY_BYTES
        <= MAX_RENDERED_STEP_BYTES
);

/// `bytes` for messages: `8 KiB`, `1 MiB`, `1000 bytes`.
pub fn size(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_written() {
        assert_eq!(size(MAX_RENDERED_URL_BYTES), "8 KiB");
        assert_eq!(size(MAX_RENDERED_HEADER_BYTES), "64 KiB");
        assert_eq!(size(MAX_RENDERED_BODY_BYTES), "1 MiB");
        assert_eq!(size(MAX_RENDERED_STEP_BYTES), "2 MiB");
        assert_eq!(size(1000), "1000 bytes");
        assert_eq!(size(1536), "1536 bytes");
        assert_eq!(size(0), "0 bytes");
    }
}
