//! `BENCHMARKS.svg`: three grouped bar charts drawn with plotters' SVG backend (text is left to
//! the SVG viewer, so no fonts are needed here).

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::{Figures, RT_IMPS, Result, cell};

/// A grouped bar chart: one bar per series in every group, `values[group][series]`; on a log
/// scale if `log`; dashed marks `(legend, colour, value per group)` across their groups.
struct Panel<'a> {
    title: &'a str,
    unit: &'a str,
    groups: Vec<&'a str>,
    series: &'a [&'a str],
    values: Vec<Vec<Option<f64>>>,
    log: bool,
    marks: Vec<(&'a str, RGBColor, Vec<Option<f64>>)>,
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

impl Panel<'_> {
    fn draw(&self, area: &DrawingArea<SVGBackend, Shift>) -> Result {
        // A log scale is drawn linear in log10 of the values.
        let y = |v: f64| if self.log { v.log10() } else { v };
        let bars = self.values.iter().flatten().flatten().copied().filter(|v| *v > 0.0);
        let marks = self.marks.iter().flat_map(|m| m.2.iter().flatten().copied());
        let max = bars.clone().chain(marks).map(y).fold(f64::MIN, f64::max);
        let (lo, hi) = match self.log {
            true => (bars.map(y).fold(max, f64::min).floor(), max.ceil()),
            false => (0.0, max * 1.12),
        };
        let n = self.groups.len();
        let mut cc = ChartBuilder::on(area)
            .caption(self.title, ("sans-serif", 15))
            .margin(6)
            .margin_right(150)
            .x_label_area_size(22)
            .y_label_area_size(58)
            .build_cartesian_2d(-0.5..n as f64 - 0.5, lo..hi)?;
        let label = |x: &f64| self.groups.get(x.round() as usize).unwrap_or(&"").to_string();
        cc.configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&label)
            .y_labels(if self.log { (hi - lo) as usize + 1 } else { 10 })
            .y_desc(self.unit)
            .y_label_formatter(&|v| short(if self.log { 10f64.powf(*v) } else { *v }))
            .label_style(("sans-serif", 12))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()?;
        let width = 0.8 / self.series.len() as f64;
        let text = ("sans-serif", 9).into_font().into_text_style(area);
        let text = text.pos(Pos::new(HPos::Center, VPos::Bottom));
        for (si, name) in self.series.iter().enumerate() {
            let bars: Vec<(f64, f64)> = (self.values.iter().enumerate())
                .filter_map(|(gi, v)| Some((gi as f64 - 0.4 + si as f64 * width, v[si]?)))
                .filter(|(_, v)| *v > 0.0)
                .collect();
            let bar = |&(x, v): &(f64, f64)| {
                Rectangle::new([(x, lo), (x + width * 0.9, y(v))], color(name).filled())
            };
            cc.draw_series(bars.iter().map(bar))?;
            let value = |&(x, v): &(f64, f64)| Text::new(short(v), (x + width * 0.45, y(v)), &text);
            cc.draw_series(bars.iter().map(value))?;
        }
        let dashed =
            |points, color: &RGBColor| DashedPathElement::new(points, 4, 3, color.stroke_width(2));
        for (_, color, values) in &self.marks {
            for (gi, v) in values.iter().enumerate() {
                // One value spans all groups.
                let (x, w) = if values.len() == 1 {
                    (n as f64 / 2.0 - 0.5, n as f64 / 2.0)
                } else {
                    (gi as f64, 0.45)
                };
                cc.draw_series(v.map(|v| dashed(vec![(x - w, y(v)), (x + w, y(v))], color)))?;
            }
        }
        // The legend, right of the plot: the series, then the marks.
        let (right, style) = (area.dim_in_pixel().0 as i32 - 150, ("sans-serif", 12).into_font());
        for (i, name) in self.series.iter().enumerate() {
            let y = 40 + 18 * i as i32;
            area.draw(&Rectangle::new(
                [(right + 8, y), (right + 20, y + 12)],
                color(name).filled(),
            ))?;
            area.draw_text(name, &style.clone().into_text_style(area), (right + 26, y))?;
        }
        for (i, (label, color, _)) in self.marks.iter().enumerate() {
            let y = 40 + 18 * (self.series.len() + i) as i32;
            area.draw(&DashedPathElement::new(
                vec![(right + 4, y + 6), (right + 22, y + 6)],
                4,
                3,
                color.stroke_width(2),
            ))?;
            area.draw_text(label, &style.clone().into_text_style(area), (right + 26, y))?;
        }
        Ok(())
    }
}

fn panels(f: &Figures) -> [Panel<'static>; 3] {
    // `values[group][series]`: the cell of each group (row) and series (column) of `pattern`.
    let values = |pattern: &str, groups: &[&str], series: &[&str]| -> Vec<Vec<Option<f64>>> {
        groups.iter().map(|g| series.iter().map(|s| cell(f, pattern, g, s)).collect()).collect()
    };
    let framed_p50 = vec![f.get("round-trip", "mt2", "framed", "p50"), None, None];
    let latency = Panel {
        title: "Round-trip latency, mt2 (lower is better)",
        unit: "µs",
        groups: vec!["p50", "p90", "p99"],
        series: &RT_IMPS,
        values: values("round-trip mt2 {c} {r}", &["p50", "p90", "p99"], &RT_IMPS),
        log: false,
        marks: vec![("target: framed p50", TARGET, framed_p50)],
    };
    const THROUGHPUT: [&str; 5] = ["blocking", "framed", "interprocess", "ours", "ours-serve"];
    let relative = THROUGHPUT.map(|imp| format!("{imp} / framed"));
    let groups = ["pipelined mt2 {c} msg/s", "large 64KiB {c} MiB/s", "large 1MiB {c} MiB/s"];
    let groups = [&groups[..], &["large 8MiB {c} MiB/s", "fanout 100 {c} deliveries/s"]].concat();
    let throughput = Panel {
        title: "Throughput relative to hand-written Framed (higher is better)",
        unit: "× framed",
        groups: vec!["pipelined", "64 KiB", "1 MiB", "8 MiB", "fan-out ×100"],
        series: &THROUGHPUT,
        values: values("{r}", &groups, &relative.each_ref().map(String::as_str)),
        log: false,
        marks: vec![
            ("framed = 1.0×", RGBColor(51, 51, 51), vec![Some(1.0)]),
            ("target (issue 7)", TARGET, vec![Some(1.2), None, Some(1.3), Some(1.3), None]),
        ],
    };
    const MEMORY: [&str; 4] = ["framed", "interprocess", "ours", "ours-serve"];
    let groups = ["server idle", "server after-1MiB", "client idle", "client after-1MiB"];
    let memory = Panel {
        title: "Heap per connection, 1,000 connections, incl. the object (log scale)",
        unit: "bytes",
        groups: vec!["server idle", "server after 1 MiB", "client idle", "client after 1 MiB"],
        series: &MEMORY,
        values: values("memory 1000 {c}/{r}", &groups, &MEMORY),
        log: true,
        marks: vec![("target: 512 B", TARGET, vec![Some(512.0)])],
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
