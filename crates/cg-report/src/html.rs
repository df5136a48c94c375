//! Building blocks of self-contained HTML documents: escaping, a page shell with inline CSS
//! (no scripts, no external resources) and bar charts as SVG with titles for screen readers
//! and tooltips.

use std::fmt::Write as _;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1f2328}\
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d0d7de}\
table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}code,.mono{font-family:ui-monospace,monospace;font-size:.9em;word-break:break-all}\
.muted{color:#59636e}.ok{color:#1a7f37}.bad{color:#cf222e}.legend span{margin-right:1rem}svg.chart{max-width:100%;height:auto}";

/// The Content-Security-Policy a document of this module needs when served over HTTP: nothing
/// from anywhere, no scripts, and only its own inline stylesheet (by hash).
pub fn content_security_policy() -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(STYLE));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; img-src data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// A complete page.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n",
        esc(title)
    )
}

/// One bar of a chart: a label and its stacked segments (name, value, colour).
#[derive(Debug)]
pub struct Bar<'a> {
    /// The label on the left.
    pub label: String,
    /// Segments, left to right.
    pub segments: Vec<(&'a str, u64, &'a str)>,
}

/// A horizontal (stacked) bar chart as SVG, scaled to the longest bar.
pub fn bar_chart(id: &str, title: &str, desc: &str, bars: &[Bar<'_>]) -> String {
    let max = bars
        .iter()
        .map(|b| b.segments.iter().map(|s| s.1).sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let (label_w, bar_w, row_h) = (150.0, 480.0, 26.0);
    let height = row_h * bars.len() as f64 + 10.0;
    let width = label_w + bar_w + 90.0;
    let mut svg = format!(
        r#"<svg class="chart" id="{id}" role="img" aria-labelledby="{id}-title {id}-desc" viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg"><title id="{id}-title">{title}</title><desc id="{id}-desc">{desc}</desc>"#,
        id = esc(id),
        title = esc(title),
        desc = esc(desc),
    );
    for (i, bar) in bars.iter().enumerate() {
        let y = 5.0 + row_h * i as f64;
        let _ = write!(
            svg,
            r#"<text x="0" y="{:.1}" font-size="13" dominant-baseline="middle">{}</text>"#,
            y + row_h / 2.0 - 2.0,
            esc(&bar.label)
        );
        let mut x = label_w;
        for (name, n, colour) in &bar.segments {
            let w = bar_w * *n as f64 / max as f64;
            if *n > 0 {
                let _ = write!(
                    svg,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="{colour}"><title>{}: {} {n}</title></rect>"#,
                    row_h - 6.0,
                    esc(&bar.label),
                    esc(name)
                );
            }
            x += w;
        }
        let total: u64 = bar.segments.iter().map(|s| s.1).sum();
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" dominant-baseline="middle">{total}</text>"#,
            x + 4.0,
            y + row_h / 2.0 - 2.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Colours of the decisions (distinguishable in greyscale too).
pub const DECISION_COLOURS: [(&str, &str); 3] = [
    ("include", "#1a7f37"),
    ("include_redacted", "#d4a72c"),
    ("exclude", "#6e7781"),
];

/// A legend of the decision colours.
pub fn decision_legend() -> String {
    let mut s = String::from(r#"<p class="legend">"#);
    for (d, c) in DECISION_COLOURS {
        let _ = write!(
            s,
            r#"<span><svg width="12" height="12" viewBox="0 0 12 12" aria-hidden="true"><rect width="12" height="12" fill="{c}"/></svg> {d}</span>"#
        );
    }
    s.push_str("</p>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_everywhere_it_lands() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let svg = bar_chart(
            "c",
            "T<",
            "D&",
            &[Bar {
                label: "<EU>".into(),
                segments: vec![("include", 3, "#000")],
            }],
        );
        assert!(svg.contains("T&lt;") && svg.contains("D&amp;") && svg.contains("&lt;EU&gt;"));
        assert!(!svg.contains("<EU>"));
    }

    #[test]
    fn bars_scale_to_the_longest_and_empty_segments_draw_nothing() {
        let svg = bar_chart(
            "c",
            "t",
            "d",
            &[
                Bar {
                    label: "a".into(),
                    segments: vec![("include", 10, "#1"), ("exclude", 0, "#2")],
                },
                Bar {
                    label: "b".into(),
                    segments: vec![("include", 5, "#1")],
                },
            ],
        );
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains(r#"width="480.0""#) && svg.contains(r#"width="240.0""#));
    }
}
