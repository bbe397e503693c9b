//! `BENCHMARKS.svg`: three grouped bar charts drawn with plotters' SVG backend (text is left to
//! the SVG viewer, so no fonts are needed here).

use crate::{Figures, Result, cell, pairs};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::vec::IntoIter;

/// The panels: title; y axis; the figure key pattern (as in [`crate::grid`]); the groups (rows)
/// and the series (columns, the implementations named by their labels).
const PANELS: [&str; 3] = [
    "Round-trip latency, mt2 (lower is better); µs; round-trip mt2 {c} {r}; p50 | p90 | p99; floor | framed | interprocess | ours | ours-serve",
    "Throughput relative to hand-written Framed (higher is better); × framed; {r}; pipelined=pipelined mt2 {c} msg/s | 64 KiB=large 64KiB {c} MiB/s | 1 MiB=large 1MiB {c} MiB/s | 8 MiB=large 8MiB {c} MiB/s | fan-out ×1=fanout 1 {c} deliveries/s | fan-out ×10=fanout 10 {c} deliveries/s | fan-out ×100=fanout 100 {c} deliveries/s; blocking=blocking / framed | framed=framed / framed | interprocess=interprocess / framed | ours=ours / framed | ours-serve=ours-serve / framed",
    "Heap per connection, 1,000 connections, incl. the object (log scale); bytes; memory 1000 {c}/{r}; server idle=server idle | server after 1 MiB=server after-1MiB | client idle=client idle | client after 1 MiB=client after-1MiB; framed | interprocess | ours | ours-serve",
];

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

fn dashed<C: Clone>(points: Vec<C>, color: &RGBColor) -> DashedPathElement<IntoIter<C>, i32> {
    DashedPathElement::new(points, 4, 3, color.stroke_width(2))
}

/// A dashed mark: legend, colour, value per group (one value spans all groups).
type Mark<'a> = (&'a str, RGBColor, Vec<Option<f64>>);

/// Panel `spec` of [`PANELS`] as a grouped bar chart, one bar per series in every group, with
/// dashed `marks`; on a log scale (drawn linear in log10) if its title says so.
fn draw(area: &DrawingArea<SVGBackend, Shift>, f: &Figures, spec: &str, marks: &[Mark]) -> Result {
    let [title, unit, pattern, groups, series] = spec.split("; ").collect::<Vec<_>>()[..] else {
        return Err(format!("bad panel {spec}").into());
    };
    let (groups, series): (Vec<_>, Vec<_>) = (pairs(groups).collect(), pairs(series).collect());
    let row = |g: &(&str, &str)| series.iter().map(|s| cell(f, pattern, g.1, s.1)).collect();
    let values: Vec<Vec<Option<f64>>> = groups.iter().map(row).collect();
    let log = title.contains("log scale");
    let y = |v: f64| if log { v.log10() } else { v };
    let bars = values.iter().flatten().flatten().copied().filter(|v| *v > 0.0);
    let max = bars.clone().chain(marks.iter().flat_map(|m| m.2.iter().flatten().copied()));
    let max = max.map(y).fold(f64::MIN, f64::max);
    let min = bars.map(y).fold(max, f64::min);
    let (lo, hi) = if log { (min.floor(), max.ceil()) } else { (0.0, max * 1.12) };
    let n = groups.len();
    let mut cc = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 15))
        .margin(6)
        .margin_right(150)
        .x_label_area_size(22)
        .y_label_area_size(58)
        .build_cartesian_2d(-0.5..n as f64 - 0.5, lo..hi)?;
    cc.configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| groups.get(x.round() as usize).map_or("", |g| g.0).to_string())
        .y_labels(if log { (hi - lo) as usize + 1 } else { 10 })
        .y_desc(unit)
        .y_label_formatter(&|v| short(if log { 10f64.powf(*v) } else { *v }))
        .label_style(("sans-serif", 12))
        .light_line_style(RGBColor(240, 240, 240))
        .draw()?;
    let width = 0.8 / series.len() as f64;
    let text = ("sans-serif", 9).into_font().into_text_style(area);
    let text = text.pos(Pos::new(HPos::Center, VPos::Bottom));
    for (si, (name, _)) in series.iter().enumerate() {
        let bars = (values.iter().enumerate())
            .filter_map(|(gi, v)| Some((gi as f64 - 0.4 + si as f64 * width, v[si]?)))
            .filter(|(_, v)| *v > 0.0);
        for (x, v) in bars {
            let bar = [(x, lo), (x + width * 0.9, y(v))];
            cc.draw_series([Rectangle::new(bar, color(name).filled())])?;
            cc.draw_series([Text::new(short(v), (x + width * 0.45, y(v)), &text)])?;
        }
    }
    for (_, color, values) in marks {
        for (gi, v) in values.iter().enumerate() {
            let half = n as f64 / 2.0;
            let (x, w) = if values.len() == 1 { (half - 0.5, half) } else { (gi as f64, 0.45) };
            cc.draw_series(v.map(|v| dashed(vec![(x - w, y(v)), (x + w, y(v))], color)))?;
        }
    }
    // The legend, right of the plot: the series, then the marks.
    let (x, style) = (area.dim_in_pixel().0 as i32 - 150, ("sans-serif", 12).into_font());
    let legend = series.iter().map(|s| (s.0, color(s.0), false));
    for (i, (label, color, dash)) in
        legend.chain(marks.iter().map(|m| (m.0, m.1, true))).enumerate()
    {
        let y = 40 + 18 * i as i32;
        match dash {
            true => area.draw(&dashed(vec![(x + 4, y + 6), (x + 22, y + 6)], &color))?,
            false => area.draw(&Rectangle::new([(x + 8, y), (x + 20, y + 12)], color.filled()))?,
        }
        area.draw_text(label, &style.clone().into_text_style(area), (x + 26, y))?;
    }
    Ok(())
}

pub fn render(f: &Figures, machine: &[(&str, String)]) -> Result<String> {
    let framed_p50 = vec![f.get("round-trip", "mt2", "framed", "p50"), None, None];
    let marks = [
        vec![("target: framed p50", TARGET, framed_p50)],
        vec![
            ("framed = 1.0×", RGBColor(51, 51, 51), vec![Some(1.0)]),
            ("target (issue 7)", TARGET, vec![Some(1.2), None, Some(1.3), Some(1.3), None]),
        ],
        vec![("target: 512 B", TARGET, vec![Some(512.0)])],
    ];
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 930)).into_drawing_area();
        root.fill(&WHITE)?;
        let (panels, footer) = root.split_vertically(906);
        for ((area, spec), marks) in panels.split_evenly((3, 1)).iter().zip(PANELS).zip(&marks) {
            draw(area, f, spec, marks)?;
        }
        let style = ("sans-serif", 11).into_font().color(&RGBColor(85, 85, 85));
        let text = format!("{} · {} · cargo xtask bench", machine[0].1, machine[1].1);
        footer.draw_text(&text, &style, (8, 6))?;
        root.present()?;
    }
    Ok(svg)
}
