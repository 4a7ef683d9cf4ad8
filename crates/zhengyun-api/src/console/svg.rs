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
