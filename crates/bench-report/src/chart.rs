//! `BENCHMARKS.svg`: three grouped bar charts drawn with plotters' SVG backend (text is left to
//! the SVG viewer, so no fonts are needed here).

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::{Figures, RT_IMPS, Result, ratio};

/// A grouped bar chart: one bar per series in every group.
struct Panel {
    title: &'static str,
    /// The y axis label.
    unit: &'static str,
    groups: Vec<&'static str>,
    series: &'static [&'static str],
    /// `values[group][series]`.
    values: Vec<Vec<Option<f64>>>,
    log: bool,
    /// A dashed line across the whole chart: value, legend text, colour.
    line: Option<(f64, &'static str, RGBColor)>,
    /// A target per group, marked in red over that group, and the legend text for them.
    targets: (Vec<Option<f64>>, &'static str),
}

const TARGET: RGBColor = RGBColor(214, 39, 40);

fn color(imp: &str) -> RGBColor {
    match imp {
        "floor" => RGBColor(158, 158, 158),
        "blocking" => RGBColor(140, 86, 75),
        "framed" => RGBColor(31, 119, 180),
        "interprocess" => RGBColor(255, 127, 14),
        "ours" => RGBColor(44, 160, 44),
        _ => RGBColor(152, 223, 138),
    }
}

/// A value label: 3 significant digits, `k`/`M` for large numbers.
fn short(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e4 => format!("{:.0}k", v / 1e3),
        v if v >= 100.0 => format!("{v:.0}"),
        v if v >= 10.0 => format!("{v:.1}"),
        v => format!("{v:.2}"),
    }
}

fn dashed<C: Clone>(
    points: Vec<C>,
    color: RGBColor,
) -> DashedPathElement<std::vec::IntoIter<C>, i32> {
    DashedPathElement::new(points, 4, 3, color.stroke_width(2))
}

impl Panel {
    fn draw(&self, area: &DrawingArea<SVGBackend, Shift>) -> Result {
        let (plot, legend) = area.split_horizontally(area.dim_in_pixel().0 - 150);
        // A log scale is drawn linear in log10 of the values.
        let y = |v: f64| if self.log { v.log10() } else { v };
        let bars = self.values.iter().flatten().flatten().copied().filter(|v| *v > 0.0);
        let (targets, target_label) = &self.targets;
        let marks = self.line.iter().map(|l| l.0).chain(targets.iter().flatten().copied());
        let max = bars.clone().chain(marks).map(y).fold(f64::MIN, f64::max);
        let (lo, hi) = match self.log {
            true => (bars.map(y).fold(max, f64::min).floor(), max.ceil()),
            false => (0.0, max * 1.12),
        };
        let n = self.groups.len() as f64;
        let mut cc = ChartBuilder::on(&plot)
            .caption(self.title, ("sans-serif", 15))
            .margin(6)
            .x_label_area_size(22)
            .y_label_area_size(58)
            .build_cartesian_2d(-0.5..n - 0.5, lo..hi)?;
        let label = |x: &f64| self.groups.get(x.round() as usize).unwrap_or(&"").to_string();
        let y_label = |v: &f64| short(if self.log { 10f64.powf(*v) } else { *v });
        cc.configure_mesh()
            .disable_x_mesh()
            .x_labels(self.groups.len())
            .x_label_formatter(&label)
            .y_labels(if self.log { (hi - lo) as usize + 1 } else { 10 })
            .y_desc(self.unit)
            .y_label_formatter(&y_label)
            .label_style(("sans-serif", 12))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()?;
        let width = 0.8 / self.series.len() as f64;
        let text = TextStyle::from(("sans-serif", 9).into_font())
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        for (si, name) in self.series.iter().enumerate() {
            let bars = (self.values.iter().enumerate())
                .filter_map(|(gi, v)| Some((gi as f64 - 0.4 + si as f64 * width, v[si]?)))
                .filter(|(_, v)| *v > 0.0);
            for (x, v) in bars {
                cc.draw_series([Rectangle::new(
                    [(x, lo), (x + width * 0.9, y(v))],
                    color(name).filled(),
                )])?;
                cc.draw_series([Text::new(short(v), (x + width * 0.45, y(v)), &text)])?;
            }
        }
        if let Some((v, _, color)) = self.line {
            cc.draw_series([dashed(vec![(-0.5, y(v)), (n - 0.5, y(v))], color)])?;
        }
        for (gi, t) in targets.iter().enumerate() {
            if let Some(t) = *t {
                cc.draw_series([dashed(
                    vec![(gi as f64 - 0.45, y(t)), (gi as f64 + 0.45, y(t))],
                    TARGET,
                )])?;
            }
        }
        // The legend, right of the plot: the series, then the dashed lines.
        let style = TextStyle::from(("sans-serif", 12).into_font());
        let lines = self.line.map(|l| (l.1, l.2));
        let targets = targets.iter().any(Option::is_some).then_some((*target_label, TARGET));
        for (i, name) in self.series.iter().enumerate() {
            let y = 40 + 18 * i as i32;
            legend.draw(&Rectangle::new([(8, y), (20, y + 12)], color(name).filled()))?;
            legend.draw_text(name, &style, (26, y))?;
        }
        for (i, (label, color)) in lines.into_iter().chain(targets).enumerate() {
            let y = 40 + 18 * (self.series.len() + i) as i32;
            legend.draw(&dashed(vec![(4, y + 6), (22, y + 6)], color))?;
            legend.draw_text(label, &style, (26, y))?;
        }
        Ok(())
    }
}

fn panels(f: &Figures) -> [Panel; 3] {
    let percentiles = ["p50", "p90", "p99"];
    let rt = |p: &str| RT_IMPS.iter().map(|imp| f.get("round-trip", "mt2", imp, p)).collect();
    let latency = Panel {
        title: "Round-trip latency, mt2 (lower is better)",
        unit: "µs",
        groups: percentiles.to_vec(),
        series: &RT_IMPS,
        values: percentiles.iter().map(|p| rt(p)).collect(),
        log: false,
        line: None,
        targets: (
            vec![f.get("round-trip", "mt2", "framed", "p50"), None, None],
            "target: framed p50",
        ),
    };

    const THROUGHPUT: [&str; 5] = ["blocking", "framed", "interprocess", "ours", "ours-serve"];
    let groups = [
        ("pipelined", "pipelined", "mt2", "msg/s", Some(1.2)),
        ("64 KiB", "large", "64KiB", "MiB/s", None),
        ("1 MiB", "large", "1MiB", "MiB/s", Some(1.3)),
        ("8 MiB", "large", "8MiB", "MiB/s", Some(1.3)),
        ("fan-out ×100", "fanout", "100", "deliveries/s", None),
    ];
    let relative = |(_, group, case, metric, _): &(&str, &str, &str, &str, _)| {
        let imp = |imp| if *group == "pipelined" && imp == "ours" { "ours-sink" } else { imp };
        let framed = f.get(group, case, "framed", metric);
        THROUGHPUT.iter().map(|i| ratio(f.get(group, case, imp(i), metric), framed)).collect()
    };
    let throughput = Panel {
        title: "Throughput relative to hand-written Framed (higher is better)",
        unit: "× framed",
        groups: groups.iter().map(|g| g.0).collect(),
        series: &THROUGHPUT,
        values: groups.iter().map(relative).collect(),
        log: false,
        line: Some((1.0, "framed = 1.0×", RGBColor(51, 51, 51))),
        targets: (groups.iter().map(|g| g.4).collect(), "target (issue 7)"),
    };

    const MEMORY: [&str; 4] = ["framed", "interprocess", "ours", "ours-serve"];
    let key = |imp: &str, side: &str| match (imp, side) {
        ("ours", "server") => "ours-conn/server".to_string(),
        ("ours-serve", "client") => String::new(),
        (imp, side) => format!("{imp}/{side}"),
    };
    let groups = [
        ("server idle", "server", "idle"),
        ("server after 1 MiB", "server", "after-1MiB"),
        ("client idle", "client", "idle"),
        ("client after 1 MiB", "client", "after-1MiB"),
    ];
    let heap = |(_, side, m): &(_, &str, &str)| {
        MEMORY.iter().map(|imp| f.get("memory", "1000", &key(imp, side), m)).collect()
    };
    let memory = Panel {
        title: "Heap per connection, 1,000 connections, incl. the object (log scale)",
        unit: "bytes",
        groups: groups.iter().map(|g| g.0).collect(),
        series: &MEMORY,
        values: groups.iter().map(heap).collect(),
        log: true,
        line: Some((512.0, "target: 512 B", TARGET)),
        targets: (Vec::new(), ""),
    };
    [latency, throughput, memory]
}

/// The whole chart as an SVG document.
pub fn render(f: &Figures, machine: &[(&str, String)]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 930)).into_drawing_area();
        root.fill(&WHITE)?;
        let (panels_area, footer) = root.split_vertically(906);
        for (area, panel) in panels_area.split_evenly((3, 1)).iter().zip(panels(f)) {
            panel.draw(area)?;
        }
        let style = ("sans-serif", 11).into_font().color(&RGBColor(85, 85, 85));
        let text = format!("{} · {} · cargo xtask bench", machine[0].1, machine[1].1);
        footer.draw_text(&text, &style, (8, 6))?;
        root.present()?;
    }
    Ok(svg)
}
