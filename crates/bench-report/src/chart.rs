//! `BENCHMARKS.svg`: three grouped bar charts drawn with plotters' SVG backend (text is left to
//! the SVG viewer, so no fonts are needed here).

use plotters::coord::Shift;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::{Figures, Machine, RT_IMPS, Result, ratio};

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// A grouped bar chart: one bar per series in every group.
struct Chart {
    title: &'static str,
    /// The y axis label.
    unit: &'static str,
    groups: Vec<&'static str>,
    series: &'static [&'static str],
    /// `values[group][series]`.
    values: Vec<Vec<Option<f64>>>,
    log: bool,
    /// Dashed lines across the whole chart: value, legend text, colour.
    lines: Vec<(f64, &'static str, RGBColor)>,
    /// A target per group, marked in red over that group (legend: `target_label`).
    targets: Vec<Option<f64>>,
    target_label: &'static str,
}

const TARGET: RGBColor = RGBColor(214, 39, 40);

fn color(imp: &str) -> RGBColor {
    match imp {
        "floor" => RGBColor(158, 158, 158),
        "blocking" => RGBColor(140, 86, 75),
        "framed" => RGBColor(31, 119, 180),
        "interprocess" => RGBColor(255, 127, 14),
        "ours" => RGBColor(44, 160, 44),
        "ours-serve" => RGBColor(152, 223, 138),
        _ => RGBColor(85, 85, 85),
    }
}

/// A bar's value label: 3 significant digits, `k`/`M` for large numbers.
fn short(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e4 => format!("{:.0}k", v / 1e3),
        v if v >= 100.0 => format!("{v:.0}"),
        v if v >= 10.0 => format!("{v:.1}"),
        v => format!("{v:.2}"),
    }
}

impl Chart {
    fn draw(&self, area: &Area) -> Result {
        let (plot, legend) = area.split_horizontally(area.dim_in_pixel().0 - 150);
        let values = || self.values.iter().flatten().flatten().copied().filter(|v| *v > 0.0);
        let marks = self.lines.iter().map(|l| l.0).chain(self.targets.iter().flatten().copied());
        let max = values().chain(marks).fold(1e-9, f64::max);
        let n = self.groups.len() as f64;
        let mut builder = ChartBuilder::on(&plot);
        builder.caption(self.title, ("sans-serif", 15)).margin(6);
        builder.x_label_area_size(22).y_label_area_size(58);
        if self.log {
            let min = values().fold(max, f64::min);
            let (lo, hi) = (10f64.powf(min.log10().floor()), 10f64.powf(max.log10().ceil()));
            let mut cc = builder.build_cartesian_2d(-0.5..n - 0.5, (lo..hi).log_scale())?;
            self.plot(&mut cc, lo)?;
        } else {
            let mut cc = builder.build_cartesian_2d(-0.5..n - 0.5, 0.0..max * 1.12)?;
            self.plot(&mut cc, 0.0)?;
        }
        // The legend, right of the plot.
        let text = TextStyle::from(("sans-serif", 12).into_font());
        let mut y = 40;
        for name in self.series {
            legend.draw(&Rectangle::new([(8, y), (20, y + 12)], color(name).filled()))?;
            legend.draw_text(name, &text, (26, y))?;
            y += 18;
        }
        let mut line = |label: &str, color: RGBColor| -> Result {
            let path = vec![(4, y + 6), (22, y + 6)];
            legend.draw(&DashedPathElement::new(path, 4, 3, color.stroke_width(2)))?;
            legend.draw_text(label, &text, (26, y))?;
            y += 18;
            Ok(())
        };
        for (_, label, color) in &self.lines {
            line(label, *color)?;
        }
        if self.targets.iter().any(Option::is_some) {
            line(self.target_label, TARGET)?;
        }
        Ok(())
    }

    fn plot<Y>(
        &self,
        cc: &mut ChartContext<SVGBackend, Cartesian2d<RangedCoordf64, Y>>,
        bottom: f64,
    ) -> Result
    where
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let label = |x: &f64| self.groups.get(x.round() as usize).unwrap_or(&"").to_string();
        cc.configure_mesh()
            .disable_x_mesh()
            .x_labels(self.groups.len())
            .x_label_formatter(&label)
            .y_desc(self.unit)
            .y_label_formatter(&|v| short(*v))
            .label_style(("sans-serif", 12))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()?;
        let width = 0.8 / self.series.len() as f64;
        let value_style = TextStyle::from(("sans-serif", 9).into_font())
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        for (si, name) in self.series.iter().enumerate() {
            let bars: Vec<(f64, f64)> = (self.values.iter().enumerate())
                .filter_map(|(gi, v)| Some((gi as f64 - 0.4 + si as f64 * width, v[si]?)))
                .filter(|(_, v)| *v > 0.0)
                .collect();
            let rect = |&(x, v): &(f64, f64)| {
                Rectangle::new([(x, bottom), (x + width * 0.9, v)], color(name).filled())
            };
            cc.draw_series(bars.iter().map(rect))?;
            let text =
                |&(x, v): &(f64, f64)| Text::new(short(v), (x + width * 0.45, v), &value_style);
            cc.draw_series(bars.iter().map(text))?;
        }
        let n = self.groups.len() as f64;
        for &(v, _, color) in &self.lines {
            let path = vec![(-0.5, v), (n - 0.5, v)];
            cc.draw_series([DashedPathElement::new(path, 4, 3, color.stroke_width(2))])?;
        }
        for (gi, t) in self.targets.iter().enumerate() {
            if let Some(t) = *t {
                let path = vec![(gi as f64 - 0.45, t), (gi as f64 + 0.45, t)];
                cc.draw_series([DashedPathElement::new(path, 4, 3, TARGET.stroke_width(2))])?;
            }
        }
        Ok(())
    }
}

fn charts(f: &Figures) -> [Chart; 3] {
    let percentiles = ["p50", "p90", "p99"];
    let latency = Chart {
        title: "Round-trip latency, mt2 (lower is better)",
        unit: "µs",
        groups: percentiles.to_vec(),
        series: &RT_IMPS,
        values: percentiles
            .iter()
            .map(|p| RT_IMPS.iter().map(|imp| f.get("round-trip", "mt2", imp, p)).collect())
            .collect(),
        log: false,
        lines: Vec::new(),
        targets: vec![f.get("round-trip", "mt2", "framed", "p50"), None, None],
        target_label: "target: framed p50",
    };

    const THROUGHPUT: [&str; 5] = ["blocking", "framed", "interprocess", "ours", "ours-serve"];
    let groups = [
        ("pipelined", "pipelined", "mt2", "msg/s", Some(1.2)),
        ("64 KiB", "large", "64KiB", "MiB/s", None),
        ("1 MiB", "large", "1MiB", "MiB/s", Some(1.3)),
        ("8 MiB", "large", "8MiB", "MiB/s", Some(1.3)),
        ("fan-out ×100", "fanout", "100", "deliveries/s", None),
    ];
    let relative = |group: &str, case: &str, metric: &str, imp: &str| {
        let imp = if group == "pipelined" && imp == "ours" { "ours-sink" } else { imp };
        ratio(f.get(group, case, imp, metric), f.get(group, case, "framed", metric))
    };
    let throughput = Chart {
        title: "Throughput relative to hand-written Framed (higher is better)",
        unit: "× framed",
        groups: groups.iter().map(|g| g.0).collect(),
        series: &THROUGHPUT,
        values: (groups.iter())
            .map(|(_, g, c, m, _)| THROUGHPUT.iter().map(|imp| relative(g, c, m, imp)).collect())
            .collect(),
        log: false,
        lines: vec![(1.0, "framed = 1.0×", RGBColor(51, 51, 51))],
        targets: groups.iter().map(|g| g.4).collect(),
        target_label: "target (issue 7)",
    };

    const MEMORY: [&str; 4] = ["framed", "interprocess", "ours", "ours-serve"];
    let key = |imp: &str, side: &str| match (imp, side) {
        ("ours", "server") => "ours-conn/server".to_string(),
        ("ours-serve", "client") => String::new(),
        ("ours-serve", _) => "ours-serve/server".to_string(),
        (imp, side) => format!("{imp}/{side}"),
    };
    let groups = [
        ("server idle", "server", "idle"),
        ("server after 1 MiB", "server", "after-1MiB"),
        ("client idle", "client", "idle"),
        ("client after 1 MiB", "client", "after-1MiB"),
    ];
    let memory = Chart {
        title: "Heap per connection, 1,000 connections, incl. the object (log scale)",
        unit: "bytes",
        groups: groups.iter().map(|g| g.0).collect(),
        series: &MEMORY,
        values: (groups.iter())
            .map(|(_, side, m)| {
                MEMORY.iter().map(|imp| f.get("memory", "1000", &key(imp, side), m)).collect()
            })
            .collect(),
        log: true,
        lines: vec![(512.0, "target: 512 B", TARGET)],
        targets: Vec::new(),
        target_label: "",
    };
    [latency, throughput, memory]
}

/// The whole chart as an SVG document.
pub fn render(f: &Figures, m: &Machine) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 930)).into_drawing_area();
        root.fill(&WHITE)?;
        let (panels, footer) = root.split_vertically(906);
        for (area, chart) in panels.split_evenly((3, 1)).iter().zip(charts(f)) {
            chart.draw(area)?;
        }
        let style = ("sans-serif", 11).into_font().color(&RGBColor(85, 85, 85));
        let text = format!("{} · {} × {} · cargo xtask bench", m.date, m.cores, m.cpu);
        footer.draw_text(&text, &style, (8, 6))?;
        root.present()?;
    }
    Ok(svg)
}
