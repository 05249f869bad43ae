/**
 * The HMI trend charts (browser only; loaded by the island with a dynamic
 * import so Chart.js is not part of the first-load JavaScript). Chart.js is
 * imported by its parts: only the line chart on linear axes is shipped.
 * The time axis is linear (epoch ms) with round local-time ticks (see
 * timeTicks in hmi_model.ts), so no date adapter is needed. The series are
 * the trend store's (decimated, with null points where the line breaks);
 * the charts only draw them.
 */
import {
  Chart,
  type ChartDataset,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  type Plugin,
  PointElement,
  type Scale,
  Tooltip,
} from "chart.js";
import {
  formatLocalTime,
  spreadLabels,
  tickLabel,
  timeTicks,
  type TrendPoint,
} from "./hmi_model.ts";

Chart.register(
  LineController,
  LineElement,
  PointElement,
  LinearScale,
  Legend,
  Tooltip,
);

export interface TrendSeries {
  temp: TrendPoint[];
  power: TrendPoint[];
  soc: TrendPoint[];
}

export interface TrendCharts {
  /** Move the time axis to end at `nowMs` and redraw (no animation). */
  update(nowMs: number): void;
  destroy(): void;
}

/** Narrowest time axis, ms. */
const MIN_SPAN_MS = 30_000;

const COLORS = {
  temp: "#d9480f",
  power: "#1971c2",
  soc: "#2f9e44",
  raise: "#c92a2a",
  clear: "#e67700",
  grid: "rgba(128,128,128,0.2)",
  text: "#555",
};

/** Room right of the temperature plot for the threshold labels, px. */
const LABEL_GUTTER_PX = 78;
/** Width of the left value axes, px: both plots start at the same x. */
const LEFT_AXIS_PX = 68;
/** Fixed axis widths so the two charts' time axes line up. */
const fixWidth = (px: number) => (axis: Scale) => {
  axis.width = px;
};
/** Least distance between two threshold labels, px (11 px font). */
const LABEL_GAP_PX = 13;

/**
 * Horizontal threshold lines across the plot, labelled in a gutter right of
 * it: the labels never cover the data, and labels of nearby lines (60 and
 * 58 °C) are moved apart instead of overlapping.
 */
function thresholdPlugin(
  lines: { value: number; color: string; label: string }[],
): Plugin<"line"> {
  return {
    id: "thresholds",
    afterDatasetsDraw(chart) {
      const y = chart.scales.y;
      const { left, right, top, bottom } = chart.chartArea;
      const ctx = chart.ctx;
      const shown = lines
        .map((l) => ({ ...l, py: y.getPixelForValue(l.value) }))
        .filter((l) => l.py >= top && l.py <= bottom);
      const labelY = spreadLabels(shown.map((l) => l.py), LABEL_GAP_PX);
      ctx.save();
      ctx.font = "11px system-ui, sans-serif";
      ctx.textAlign = "left";
      ctx.textBaseline = "middle";
      shown.forEach((l, i) => {
        ctx.strokeStyle = l.color;
        ctx.fillStyle = l.color;
        ctx.lineWidth = 1;
        ctx.setLineDash([6, 4]);
        ctx.beginPath();
        ctx.moveTo(left, l.py);
        ctx.lineTo(right, l.py);
        ctx.stroke();
        ctx.fillText(l.label, right + 6, labelY[i]);
      });
      ctx.restore();
    },
  };
}

function line(
  label: string,
  data: TrendPoint[],
  color: string,
  yAxisID = "y",
): ChartDataset<"line", TrendPoint[]> {
  return {
    label,
    data,
    yAxisID,
    borderColor: color,
    backgroundColor: color,
    borderWidth: 2,
    pointRadius: 0,
    pointHitRadius: 6,
    spanGaps: false,
    tension: 0,
  };
}

/** Least room per time-axis label, px ("12:34:56" plus spacing). */
const TICK_PX = 84;

function timeAxis(windowMs: number) {
  let step = 60_000;
  return {
    type: "linear" as const,
    grid: { color: COLORS.grid },
    // Round ticks (every 30 s, 1 min, ...) instead of Chart.js's nice
    // numbers of epoch milliseconds, which start at the axis' odd minimum.
    afterBuildTicks(axis: Scale) {
      const tz = -new Date(axis.max).getTimezoneOffset() * 60_000;
      const t = timeTicks(
        axis.min,
        axis.max,
        Math.max(2, Math.floor(axis.width / TICK_PX)),
        tz,
      );
      step = t.step;
      axis.ticks = t.ticks.map((value) => ({ value }));
    },
    ticks: {
      color: COLORS.text,
      maxRotation: 0,
      autoSkip: false,
      callback: (v: number | string) => tickLabel(Number(v), step),
    },
    min: Date.now() - windowMs,
    max: Date.now(),
  };
}

/** Create both charts on the given canvases, plotting `series` (shared arrays). */
export function createTrendCharts(
  tempCanvas: HTMLCanvasElement,
  powerCanvas: HTMLCanvasElement,
  series: TrendSeries,
  opts: { raiseAboveC: number; clearBelowC: number; windowMs: number },
): TrendCharts {
  const common = {
    animation: false as const,
    responsive: true,
    maintainAspectRatio: false,
    normalized: true,
    interaction: {
      mode: "nearest" as const,
      axis: "x" as const,
      intersect: false,
    },
    plugins: {
      legend: { labels: { color: COLORS.text, boxWidth: 12 } },
      tooltip: {
        callbacks: {
          title: (items: { parsed: { x: number | null } }[]) =>
            items[0] ? formatLocalTime(items[0].parsed.x) : "",
        },
      },
    },
  };
  const temp = new Chart<"line", TrendPoint[]>(tempCanvas, {
    type: "line",
    data: {
      datasets: [line("Temperature (\u00b0C)", series.temp, COLORS.temp)],
    },
    options: {
      ...common,
      layout: { padding: { right: LABEL_GUTTER_PX } },
      scales: {
        x: timeAxis(opts.windowMs),
        y: {
          type: "linear",
          suggestedMin: opts.clearBelowC - 20,
          suggestedMax: opts.raiseAboveC + 5,
          // Headroom: the line never runs along the top edge.
          grace: "8%",
          grid: { color: COLORS.grid },
          ticks: { color: COLORS.text },
          title: { display: true, text: "\u00b0C", color: COLORS.text },
          afterFit: fixWidth(LEFT_AXIS_PX),
        },
      },
    },
    plugins: [
      thresholdPlugin([
        {
          value: opts.raiseAboveC,
          color: COLORS.raise,
          label: `raise ${opts.raiseAboveC} \u00b0C`,
        },
        {
          value: opts.clearBelowC,
          color: COLORS.clear,
          label: `clear ${opts.clearBelowC} \u00b0C`,
        },
      ]),
    ],
  });
  const power = new Chart<"line", TrendPoint[]>(powerCanvas, {
    type: "line",
    data: {
      datasets: [
        line("Power (W)", series.power, COLORS.power, "y"),
        line("SOC (%)", series.soc, COLORS.soc, "y1"),
      ],
    },
    options: {
      ...common,
      scales: {
        x: timeAxis(opts.windowMs),
        y: {
          type: "linear",
          position: "left",
          suggestedMin: 0,
          suggestedMax: 1000,
          grid: { color: COLORS.grid },
          ticks: { color: COLORS.text },
          title: { display: true, text: "W", color: COLORS.text },
          afterFit: fixWidth(LEFT_AXIS_PX),
        },
        y1: {
          type: "linear",
          position: "right",
          min: 0,
          max: 100,
          grid: { drawOnChartArea: false },
          ticks: { color: COLORS.text },
          title: { display: true, text: "%", color: COLORS.text },
          // As wide as the threshold-label gutter of the chart above.
          afterFit: fixWidth(LABEL_GUTTER_PX),
        },
      },
    },
  });
  return {
    update(nowMs) {
      // Until the window has filled, the axis starts at the oldest point
      // (at least MIN_SPAN_MS wide) instead of showing minutes of nothing.
      const oldest = Math.min(
        series.temp[0]?.x ?? nowMs,
        series.power[0]?.x ?? nowMs,
      );
      const min = Math.max(
        nowMs - opts.windowMs,
        Math.min(oldest, nowMs - MIN_SPAN_MS),
      );
      for (const c of [temp, power]) {
        const x = c.options.scales!.x!;
        x.min = min;
        x.max = nowMs;
        c.update("none");
      }
    },
    destroy() {
      temp.destroy();
      power.destroy();
    },
  };
}
