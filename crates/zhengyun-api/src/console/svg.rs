//! Charts drawn on the server as SVG: no script, readable by screen readers through their
//! titles, and the same in every browser.

use maud::{Markup, html};

/// Horizontal bars, one per `(label, value)`, scaled to the largest; `unit` follows each value.
pub fn bars(title: &str, items: &[(String, f64)], unit: &str) -> Markup {
    let max = items.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max);
    let row = 26.0;
    let (label_width, bar_width) = (180.0, 420.0);
    let height = row * items.len() as f64 + 8.0;
    html! {
        svg.chart role="img" aria-label=(title) viewBox={ "0 0 " (label_width + bar_width + 120.0) " " (height) }
            xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            @for (i, (label, value)) in items.iter().enumerate() {
                @let y = row * i as f64 + 4.0;
                @let width = if max > 0.0 { bar_width * value / max } else { 0.0 };
                text x=(label_width - 8.0) y=(y + 16.0) text-anchor="end" { (label) }
                rect x=(label_width) y=(y + 3.0) width=(format!("{width:.1}")) height="16" rx="2" {}
                text x=(label_width + width + 6.0) y=(y + 16.0) { (format!("{value:.2}")) " " (unit) }
            }
        }
    }
}

/// One column of [`columns`]: its label and its two stacked parts.
#[derive(Clone, Debug)]
pub struct Column {
    /// Under the column (a day of the month).
    pub label: String,
    /// The lower part (the reservation charge).
    pub lower: f64,
    /// The upper part (the consumption charge).
    pub upper: f64,
}

/// Vertical columns of two stacked parts, scaled to the tallest, each with a tooltip giving
/// its parts; `legend` names the two parts.
pub fn columns(title: &str, items: &[Column], legend: [&str; 2], unit: &str) -> Markup {
    let max = items
        .iter()
        .map(|c| c.lower + c.upper)
        .fold(0.0_f64, f64::max);
    let (left, plot_height, step) = (56.0, 160.0, 20.0);
    let width = left + step * items.len().max(1) as f64 + 8.0;
    let scale = |v: f64| {
        if max > 0.0 {
            plot_height * v / max
        } else {
            0.0
        }
    };
    let base = plot_height + 10.0;
    html! {
        svg.chart.columns role="img" aria-label=(title) viewBox={ "0 0 " (width) " " (base + 44.0) }
            xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            text x=(left - 6.0) y="16" text-anchor="end" { (format!("{max:.2}")) }
            text x=(left - 6.0) y=(base) text-anchor="end" { "0" }
            line.axis x1=(left) y1=(base) x2=(width) y2=(base) {}
            @for (i, column) in items.iter().enumerate() {
                @let x = left + step * i as f64 + 3.0;
                @let (low, high) = (scale(column.lower), scale(column.upper));
                g {
                    title { (column.label) ": " (legend[0]) " " (format!("{:.2}", column.lower)) ", "
                        (legend[1]) " " (format!("{:.2}", column.upper)) " " (unit) }
                    rect.lower x=(x) y=(format!("{:.1}", base - low)) width="14" height=(format!("{low:.1}")) {}
                    rect.upper x=(x) y=(format!("{:.1}", base - low - high)) width="14" height=(format!("{high:.1}")) {}
                }
                @if i % 5 == 0 || i + 1 == items.len() {
                    text x=(x + 7.0) y=(base + 16.0) text-anchor="middle" { (column.label) }
                }
            }
            rect.lower x=(left) y=(base + 28.0) width="12" height="10" {}
            text x=(left + 16.0) y=(base + 37.0) { (legend[0]) }
            rect.upper x=(left + 120.0) y=(base + 28.0) width="12" height="10" {}
            text x=(left + 136.0) y=(base + 37.0) { (legend[1]) }
        }
    }
}

/// A gauge of `used` and `allocated` against `quota` (the same unit): two stacked bars.
pub fn gauge(label: &str, quota: f64, allocated: f64, used: f64) -> Markup {
    let share = |v: f64| {
        if quota > 0.0 {
            (v / quota).clamp(0.0, 1.0) * 300.0
        } else {
            0.0
        }
    };
    html! {
        svg.gauge role="img" aria-label=(label) viewBox="0 0 300 22" xmlns="http://www.w3.org/2000/svg" {
            title { (label) }
            rect.track x="0" y="3" width="300" height="16" rx="3" {}
            rect.allocated x="0" y="3" width=(format!("{:.1}", share(allocated))) height="16" rx="3" {}
            rect.used x="0" y="7" width=(format!("{:.1}", share(used))) height="8" rx="2" {}
        }
    }
}

/// A Kubernetes quantity as a plain number in its display unit: cores for CPU, GiB for memory
/// and storage; `None` when it is not one.
pub fn amount(quantity: &str) -> Option<f64> {
    let q = quantity.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let n: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 0.001,
        "Ki" => 1.0 / (1024.0 * 1024.0),
        "Mi" => 1.0 / 1024.0,
        "Gi" => 1.0,
        "Ti" => 1024.0,
        "k" => 1e3 / 1024f64.powi(3),
        "M" => 1e6 / 1024f64.powi(3),
        "G" => 1e9 / 1024f64.powi(3),
        "T" => 1e12 / 1024f64.powi(3),
        _ => return None,
    };
    Some(n * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_as_cores_or_gibibytes() {
        assert_eq!(amount("2"), Some(2.0));
        assert_eq!(amount("500m"), Some(0.5));
        assert_eq!(amount("512Mi"), Some(0.5));
        assert_eq!(amount("2Ti"), Some(2048.0));
        assert_eq!(amount("lots"), None);
    }

    #[test]
    fn columns_stack_their_parts_against_the_tallest() {
        let day = |label: &str, lower, upper| Column {
            label: label.to_owned(),
            lower,
            upper,
        };
        let svg = columns(
            "按日费用",
            &[day("1", 60.0, 20.0), day("2", 30.0, 10.0)],
            ["预留", "使用"],
            "元",
        )
        .into_string();
        // The tallest (80) fills the 160 points of the plot; the other is half as tall.
        assert!(
            svg.contains("height=\"120.0\"") && svg.contains("height=\"40.0\""),
            "{svg}"
        );
        assert!(
            svg.contains("height=\"60.0\"") && svg.contains("height=\"20.0\""),
            "{svg}"
        );
        assert!(svg.contains("1: 预留 60.00, 使用 20.00 元"), "{svg}");
    }

    #[test]
    fn bars_scale_to_the_largest_and_escape_their_labels() {
        let svg = bars(
            "费用",
            &[("<卫健委>".to_owned(), 100.0), ("人社局".to_owned(), 50.0)],
            "元",
        )
        .into_string();
        assert!(
            svg.contains("width=\"420.0\"") && svg.contains("width=\"210.0\""),
            "{svg}"
        );
        assert!(svg.contains("&lt;卫健委&gt;"));
    }
}
