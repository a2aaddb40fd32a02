//! Charts as SVG, drawn on the server: no JavaScript library, nothing from a CDN, and the
//! points are elements a test (or a screen reader, through their titles) can find.

use maud::{Markup, html};

/// One point: where it is, what its title says, how it is marked, where it links.
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub title: String,
    /// CSS classes beside `point` (`blessed`, `rejected`, `served`, …).
    pub class: String,
    pub href: Option<String>,
    /// The x value as the axis shows it.
    pub x_label: String,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 34.0;

/// A line chart of `points` (in the order given), its y axis between the values' least and
/// greatest (a flat series gets a band around its value).
pub fn line(title: &str, x_axis: &str, points: &[Point]) -> Markup {
    let (ymin, ymax) = bounds(points.iter().map(|p| p.y));
    let (xmin, xmax) = bounds(points.iter().map(|p| p.x));
    let sx = |x: f64| LEFT + (x - xmin) / (xmax - xmin) * (WIDTH - LEFT - RIGHT);
    let sy = |y: f64| TOP + (ymax - y) / (ymax - ymin) * (HEIGHT - TOP - BOTTOM);
    let path: Vec<String> = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", sx(p.x), sy(p.y)))
        .collect();
    // At most about ten x labels, however many points.
    let every = points.len().div_ceil(10).max(1);
    html! {
        figure.chart {
            figcaption { (title) }
            svg viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(title) {
                line.axis x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH - RIGHT) y2=(HEIGHT - BOTTOM) {}
                line.axis x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(HEIGHT - BOTTOM) {}
                text.tick x=(LEFT - 6.0) y=(sy(ymax) + 4.0) text-anchor="end" { (number(ymax)) }
                text.tick x=(LEFT - 6.0) y=(sy(ymin) + 4.0) text-anchor="end" { (number(ymin)) }
                text.tick x=((LEFT + WIDTH - RIGHT) / 2.0) y=(HEIGHT - 4.0) text-anchor="middle" { (x_axis) }
                polyline.series points=(path.join(" ")) {}
                @for (i, p) in points.iter().enumerate() {
                    @if i % every == 0 || i + 1 == points.len() {
                        text.tick x=(sx(p.x)) y=(HEIGHT - BOTTOM + 14.0) text-anchor="middle" { (p.x_label) }
                    }
                    @let dot = html! {
                        circle class=(format!("point {}", p.class)) cx=(format!("{:.1}", sx(p.x))) cy=(format!("{:.1}", sy(p.y))) r="5" {
                            title { (p.title) }
                        }
                    };
                    @match &p.href {
                        Some(href) => a href=(href) { (dot) },
                        None => (dot),
                    }
                }
            }
        }
    }
}

/// One bar of a bar chart: its height, the label under it, its title (what a hover or a
/// screen reader says).
pub struct Bar {
    pub value: f64,
    pub label: String,
    pub title: String,
}

/// A bar chart of `bars` side by side (a histogram's bins, a column's most frequent values),
/// each a `rect.bar` from zero up to its value.
pub fn bars(title: &str, bars: &[Bar]) -> Markup {
    const H: f64 = 150.0;
    let top = bars.iter().map(|b| b.value).fold(0.0_f64, f64::max);
    let top = if top > 0.0 { top } else { 1.0 };
    let n = bars.len().max(1) as f64;
    let slot = (WIDTH - LEFT - RIGHT) / n;
    let gap = (slot * 0.15).min(4.0);
    let sy = |y: f64| TOP + (top - y) / top * (H - TOP - BOTTOM);
    let every = bars.len().div_ceil(8).max(1);
    html! {
        figure.chart.bars {
            figcaption { (title) }
            svg viewBox=(format!("0 0 {WIDTH} {H}")) role="img" aria-label=(title) {
                line.axis x1=(LEFT) y1=(H - BOTTOM) x2=(WIDTH - RIGHT) y2=(H - BOTTOM) {}
                text.tick x=(LEFT - 6.0) y=(sy(top) + 4.0) text-anchor="end" { (number(top)) }
                text.tick x=(LEFT - 6.0) y=(H - BOTTOM + 4.0) text-anchor="end" { "0" }
                @for (i, b) in bars.iter().enumerate() {
                    @let x = LEFT + i as f64 * slot;
                    rect.bar x=(format!("{:.1}", x + gap / 2.0)) y=(format!("{:.1}", sy(b.value))) width=(format!("{:.1}", (slot - gap).max(1.0))) height=(format!("{:.1}", H - BOTTOM - sy(b.value))) {
                        title { (b.title) }
                    }
                    @if i % every == 0 {
                        text.tick x=(format!("{:.1}", x + slot / 2.0)) y=(H - BOTTOM + 14.0) text-anchor="middle" { (b.label) }
                    }
                }
            }
        }
    }
}

/// The least and greatest of `values`, apart (a single value gets a band around it).
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < f64::EPSILON * lo.abs().max(1.0) {
        let pad = lo.abs().max(1.0) * 0.05;
        return (lo - pad, hi + pad);
    }
    (lo, hi)
}

/// A value as the axis shows it: up to four significant decimals.
fn number(v: f64) -> String {
    crate::get::summary::number(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(x: f64, y: f64) -> Point {
        Point {
            x,
            y,
            title: format!("version {x}"),
            class: "blessed".into(),
            href: None,
            x_label: format!("{x}"),
        }
    }

    #[test]
    fn every_point_is_drawn_inside_the_chart() {
        let svg = line(
            "accuracy",
            "version",
            &[point(1.0, 0.9), point(2.0, 0.95), point(3.0, 0.93)],
        )
        .into_string();
        assert_eq!(
            svg.matches("<circle class=\"point blessed\"").count(),
            3,
            "{svg}"
        );
        // The best value at the top, the worst at the bottom of the plot area.
        assert!(svg.contains(&format!("cy=\"{:.1}\"", TOP)), "{svg}");
        assert!(
            svg.contains(&format!("cy=\"{:.1}\"", HEIGHT - BOTTOM)),
            "{svg}"
        );
        assert!(svg.contains("<title>version 2</title>"));
    }

    #[test]
    fn a_bar_per_value_none_above_the_chart_and_empty_ones_flat() {
        let bar = |value: f64, label: &str| Bar {
            value,
            label: label.into(),
            title: format!("{label}: {value}"),
        };
        let svg = bars("age", &[bar(3.0, "0"), bar(0.0, "10"), bar(6.0, "20")]).into_string();
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 3, "{svg}");
        // The tallest bar reaches the top of the plot area; an empty bin has no height.
        assert!(svg.contains(&format!("y=\"{TOP:.1}\"")), "{svg}");
        assert!(svg.contains("height=\"0.0\""), "{svg}");
        assert!(svg.contains("<title>20: 6</title>"), "{svg}");
        let none = bars("empty", &[]).into_string();
        assert!(!none.contains("NaN") && !none.contains("inf"), "{none}");
    }

    #[test]
    fn one_point_or_a_flat_series_still_draws() {
        let one = line("loss", "version", &[point(4.0, 0.5)]).into_string();
        assert_eq!(one.matches("<circle").count(), 1);
        assert!(!one.contains("NaN"), "{one}");
        let flat = line("loss", "version", &[point(1.0, 2.0), point(2.0, 2.0)]).into_string();
        assert!(!flat.contains("NaN") && !flat.contains("inf"), "{flat}");
    }
}
