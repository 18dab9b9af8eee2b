//! Reading the state machine definitions.

use serde_json::Value;
use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `statemachine/*.asl.json`, parsed, with its file name.
pub fn definitions() -> Vec<(String, Value)> {
    let dir = repo_root().join("statemachine");
    let mut out = Vec::new();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name.ends_with(".asl.json") {
            let text =
                std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {name}: {e}"));
            let value: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
            out.push((name, value));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every state of a definition, nested ones (Map, Parallel) included: (name, state).
pub fn all_states(def: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    collect(def, &mut out);
    out
}

fn collect(machine: &Value, out: &mut Vec<(String, Value)>) {
    let Some(states) = machine.get("States").and_then(Value::as_object) else {
        return;
    };
    for (name, state) in states {
        out.push((name.clone(), state.clone()));
        for key in ["ItemProcessor", "Iterator"] {
            if let Some(inner) = state.get(key) {
                collect(inner, out);
            }
        }
        if let Some(branches) = state.get("Branches").and_then(Value::as_array) {
            for b in branches {
                collect(b, out);
            }
        }
    }
}

/// `${Name}` placeholders in a text.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                out.push(after[..end].to_string());
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out.sort();
    out.dedup();
    out
}
