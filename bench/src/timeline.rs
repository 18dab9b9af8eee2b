//! The timeline picture of one run: one bar per stack from its CloudFormation start to its end,
//! seconds from the execution's start, stacks in plan order, each stage's span shaded and its
//! end marked by a dashed line.

use std::collections::HashMap;
use std::fmt::Write as _;

use stackwave_core::plan::Plan;

use crate::schedule::Window;

const ROW: f64 = 22.0;
const LABEL: f64 = 250.0;
const WIDTH: f64 = 900.0;
const TOP: f64 = 30.0;
const COLOURS: [&str; 5] = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2"];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The SVG of `windows` (epoch seconds) for `plan`, from `start` (the execution's start) to
/// `end` (its end). `title` heads the picture.
pub fn svg(
    plan: &Plan,
    windows: &HashMap<String, Window>,
    start: f64,
    end: f64,
    title: &str,
) -> String {
    let span = (end - start).max(1.0);
    let x = |t: f64| LABEL + (t - start).max(0.0) / span * (WIDTH - LABEL - 20.0);
    let rows = plan.stacks.len() as f64;
    let height = TOP + rows * ROW + 40.0;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        o,
        r#"<rect width="100%" height="100%" fill="white"/><text x="10" y="18" font-weight="bold">{}</text>"#,
        escape(title)
    );
    let mut row = 0usize;
    for stage in &plan.stages {
        let members: Vec<_> = plan
            .stacks
            .iter()
            .filter(|s| s.stage_index == stage.index)
            .collect();
        if members.is_empty() {
            continue;
        }
        let colour = COLOURS[stage.index as usize % COLOURS.len()];
        let y0 = TOP + row as f64 * ROW;
        let _ = writeln!(
            o,
            r#"<rect x="0" y="{y0}" width="{WIDTH}" height="{}" fill="{colour}" fill-opacity="0.06"/>"#,
            members.len() as f64 * ROW
        );
        let stage_end = members
            .iter()
            .filter_map(|s| windows.get(&s.name).map(|w| w.end))
            .reduce(f64::max);
        for s in &members {
            let y = TOP + row as f64 * ROW;
            let _ = writeln!(
                o,
                r#"<text x="6" y="{}">{} · {}</text>"#,
                y + 15.0,
                escape(&stage.name),
                escape(&s.name)
            );
            if let Some(w) = windows.get(&s.name) {
                let (a, b) = (x(w.start), x(w.end));
                let _ = writeln!(
                    o,
                    r#"<rect x="{a:.1}" y="{}" width="{:.1}" height="{}" fill="{colour}"><title>{}: {:.1} s → {:.1} s</title></rect>"#,
                    y + 4.0,
                    (b - a).max(1.0),
                    ROW - 8.0,
                    escape(&s.name),
                    w.start - start,
                    w.end - start
                );
            }
            row += 1;
        }
        if let Some(e) = stage_end {
            let _ = writeln!(
                o,
                r##"<line x1="{0:.1}" x2="{0:.1}" y1="{TOP}" y2="{1}" stroke="#555" stroke-dasharray="4 3"/>"##,
                x(e),
                TOP + rows * ROW
            );
        }
    }
    // The axis: a tick every tenth of the span.
    let axis = TOP + rows * ROW + 12.0;
    let step = nice_step(span / 10.0);
    let mut t = 0.0;
    while t <= span + 1e-9 {
        let _ = writeln!(
            o,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="{1}" y2="{2}" stroke="#999"/><text x="{0:.1}" y="{3}" text-anchor="middle">{t:.0} s</text>"##,
            x(start + t),
            axis - 6.0,
            axis,
            axis + 14.0
        );
        t += step;
    }
    let _ = writeln!(o, "</svg>");
    o
}

/// 1, 2 or 5 × a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let raw = raw.max(1e-3);
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bar_per_stack_with_a_window_and_a_line_per_stage() {
        let text = stackwave_core::synth::manifest_yaml(
            "t",
            2,
            2,
            stackwave_core::synth::Shape::FanIn,
            "t.yaml",
        );
        let plan = stackwave_core::plan::from_text(&text, "e", &|_| true).expect("plan");
        let windows: HashMap<String, Window> = plan
            .stacks
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let a = 100.0 + i as f64 * 2.0;
                (
                    s.name.clone(),
                    Window {
                        start: a,
                        end: a + 2.0,
                    },
                )
            })
            .collect();
        let svg = svg(&plan, &windows, 100.0, 110.0, "a & b");
        assert_eq!(svg.matches("<title>").count(), 4);
        assert_eq!(svg.matches("stroke-dasharray").count(), 2);
        assert!(svg.contains("a &amp; b"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(3.2), 5.0);
        assert_eq!(nice_step(12.0), 20.0);
    }
}
