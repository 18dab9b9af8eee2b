//! BENCHMARKS.md is shared: `scripts/measure-functions.sh` writes the section "Functions: package
//! size and cold start" into it. The generator rewrites everything else and keeps that section
//! verbatim: from its heading (with any HTML comment lines just above it) up to the next heading
//! of the same or a higher level outside code fences, or the end of the file.

/// The heading text that marks the preserved section (any heading level).
pub const PRESERVED_HEADING: &str = "Functions: package size and cold start";

/// The level of a Markdown ATX heading line (`## x` → 2), if it is one.
fn heading_level(line: &str) -> Option<usize> {
    let trimmed = line.trim_start_matches(' ');
    if line.len() - trimmed.len() > 3 {
        return None;
    }
    let level = trimmed.chars().take_while(|c| *c == '#').count();
    if (1..=6).contains(&level) {
        let rest = &trimmed[level..];
        if rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\t') {
            return Some(level);
        }
    }
    None
}

fn is_fence(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("```") || t.starts_with("~~~")
}

/// The preserved section of `text`, verbatim (ending with a newline), if present.
pub fn extract(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut in_fence = false;
    let mut start: Option<(usize, usize)> = None;
    let mut end = lines.len();
    for (i, line) in lines.iter().enumerate() {
        if is_fence(line) {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let Some(level) = heading_level(line.trim_end_matches(['\n', '\r'])) else {
            continue;
        };
        match start {
            None => {
                let title = line.trim().trim_start_matches('#').trim();
                if title.starts_with(PRESERVED_HEADING) {
                    start = Some((i, level));
                }
            }
            Some((_, l)) if level <= l => {
                end = i;
                break;
            }
            Some(_) => {}
        }
    }
    let (mut first, _) = start?;
    // HTML comment lines (markers) right above the heading belong to the section.
    while first > 0 && lines[first - 1].trim_start().starts_with("<!--") {
        first -= 1;
    }
    // Trailing blank lines are layout, not content.
    let mut last = end;
    while last > first + 1 && lines[last - 1].trim().is_empty() {
        last -= 1;
    }
    let mut out: String = lines[first..last].concat();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_section_up_to_the_next_heading_of_its_level() {
        let text = "# stackwave benchmarks\n\nold figures\n\n<!-- measure-functions -->\n## Functions: package size and cold start\n\n| fn | size |\n|---|---|\n| plan | 3 MB |\n\n### Cold start\n\n```sh\n# not a heading\nscripts/measure-functions.sh\n```\n\n## The three figures\n\nold\n";
        let s = extract(text).expect("section");
        assert!(s.starts_with("<!-- measure-functions -->\n## Functions: package size"));
        assert!(s.contains("### Cold start"));
        assert!(s.contains("# not a heading"));
        assert!(s.ends_with("```\n"));
        assert!(!s.contains("The three figures"));
    }

    #[test]
    fn to_the_end_and_absent() {
        let text = "intro\n## Functions: package size and cold start (arm64)\nbody";
        assert_eq!(
            extract(text).as_deref(),
            Some("## Functions: package size and cold start (arm64)\nbody\n")
        );
        assert_eq!(extract("# x\n## Other\n"), None);
        // A heading inside a code fence does not count.
        assert_eq!(
            extract("```\n## Functions: package size and cold start\n```\n"),
            None
        );
    }
}
