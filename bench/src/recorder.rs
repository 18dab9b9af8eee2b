//! CloudFormation calls counted from moto's request recorder (`/moto-api/recorder/*`): one
//! JSON line per request the emulator served, with the request body (base64 when binary).
//! CloudFormation speaks the query protocol: `Action=DescribeStacks&Version=2010-05-15&...`.

use std::collections::BTreeMap;

/// CloudFormation calls of one run, by action. `DescribeStacks` is split by whether it named a
/// stack (deploy-stack, and check on waves of at most 10 stacks) or listed every stack (check on
/// larger waves, one call per page).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CfnCalls {
    pub by_action: BTreeMap<String, u64>,
    pub describe_stacks_named: u64,
    pub describe_stacks_listing: u64,
}

impl CfnCalls {
    pub fn get(&self, action: &str) -> u64 {
        self.by_action.get(action).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.by_action.values().sum()
    }
}

/// Parse a recording (JSON lines) and count its CloudFormation calls.
pub fn count(recording: &str) -> CfnCalls {
    let mut calls = CfnCalls::default();
    for line in recording.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let raw = entry["body"].as_str().unwrap_or_default();
        let body = if entry["body_encoded"].as_bool().unwrap_or(false) {
            match base64_decode(raw) {
                Some(b) => String::from_utf8_lossy(&b).into_owned(),
                None => continue,
            }
        } else {
            raw.to_string()
        };
        let form = parse_form(&body);
        if form.get("Version").map(String::as_str) != Some("2010-05-15") {
            continue;
        }
        let Some(action) = form.get("Action") else {
            continue;
        };
        *calls.by_action.entry(action.clone()).or_insert(0) += 1;
        if action == "DescribeStacks" {
            if form.get("StackName").is_some_and(|s| !s.is_empty()) {
                calls.describe_stacks_named += 1;
            } else {
                calls.describe_stacks_listing += 1;
            }
        }
    }
    calls
}

/// `a=1&b=x%20y` → {a: 1, b: "x y"} (`+` is a space).
pub fn parse_form(body: &str) -> BTreeMap<String, String> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 (with or without padding); `None` on a character outside the alphabet.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let clean: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= value(*c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        let n = match chunk.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return None,
        };
        out.extend_from_slice(&bytes[1..1 + n]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8h").unwrap(), b"hello!");
        assert_eq!(base64_decode("aGk").unwrap(), b"hi");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("a$==").is_none());
    }

    #[test]
    fn forms() {
        let f = parse_form("Action=DescribeStacks&StackName=a%2Db+c&Version=2010-05-15");
        assert_eq!(f["Action"], "DescribeStacks");
        assert_eq!(f["StackName"], "a-b c");
        assert_eq!(parse_form("x=%")["x"], "%");
    }

    #[test]
    fn counts_cloudformation_calls_only() {
        let enc = |s: &str| {
            // base64 of the body, as moto records bytes
            const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let b = s.as_bytes();
            let mut out = String::new();
            for c in b.chunks(3) {
                let n = c.len();
                let v = (u32::from(c[0]) << 16)
                    | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                    | u32::from(*c.get(2).unwrap_or(&0));
                for i in 0..4 {
                    if i <= n {
                        out.push(A[((v >> (18 - 6 * i)) & 63) as usize] as char);
                    } else {
                        out.push('=');
                    }
                }
            }
            out
        };
        let lines = [
            serde_json::json!({"method": "POST", "url": "/", "body": enc("Action=DescribeStacks&Version=2010-05-15"), "body_encoded": true}),
            serde_json::json!({"method": "POST", "url": "/", "body": enc("Action=DescribeStacks&Version=2010-05-15&StackName=x"), "body_encoded": true}),
            serde_json::json!({"method": "POST", "url": "/", "body": "Action=ExecuteChangeSet&Version=2010-05-15&StackName=x", "body_encoded": false}),
            serde_json::json!({"method": "POST", "url": "/", "body": enc("Action=Publish&Version=2010-03-31"), "body_encoded": true}),
            serde_json::json!({"method": "PUT", "url": "/bucket/key", "body": enc("{}"), "body_encoded": true}),
        ];
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let c = count(&text);
        assert_eq!(c.get("DescribeStacks"), 2);
        assert_eq!(c.get("ExecuteChangeSet"), 1);
        assert_eq!(c.get("Publish"), 0);
        assert_eq!(c.describe_stacks_listing, 1);
        assert_eq!(c.describe_stacks_named, 1);
        assert_eq!(c.total(), 3);
    }
}
