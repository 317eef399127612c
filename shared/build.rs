//! Serves `openapi.json` without its indentation: the committed file is pretty for review,
//! the copy compiled into each binary is compact (half the bytes).

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=openapi.json");
    let pretty = std::fs::read_to_string("openapi.json").expect("shared/openapi.json");
    let out = std::env::var("OUT_DIR").expect("OUT_DIR");
    std::fs::write(Path::new(&out).join("openapi.json"), compact(&pretty))
        .expect("write the compact document");
}

/// JSON without the whitespace between tokens (strings, escapes included, kept as they are).
fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if !c.is_whitespace() {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}
