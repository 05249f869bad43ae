/**
 * The HMI trend charts (browser only; loaded by the island with a dynamic
 * import so Chart.js is not part of the first-load JavaScript). Chart.js is
 * imported by its parts: only the line chart on linear axes is shipped.
 * The time axis is linear (epoch ms) with a local-time tick formatter, so no
 * date adapter is needed.
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
  Tooltip,
} from "chart.js";
import { formatLocalTime, type TrendPoint } from "./hmi_model.ts";

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

/** Horizontal threshold lines with labels on the temperature axis. */
function thresholdPlugin(
  lines: { value: number; color: string; label: string; below?: boolean }[],
): Plugin<"line"> {
  return {
    id: "thresholds",
    afterDatasetsDraw(chart) {
      const y = chart.scales.y;
      const { left, right, top, bottom } = chart.chartArea;
      const ctx = chart.ctx;
      ctx.save();
      ctx.font = "11px system-ui, sans-serif";
      ctx.textAlign = "left";
      for (const l of lines) {
        const py = y.getPixelForValue(l.value);
        if (py < top || py > bottom) continue;
        ctx.strokeStyle = l.color;
        ctx.fillStyle = l.color;
        ctx.lineWidth = 1;
        ctx.setLineDash([6, 4]);
        ctx.beginPath();
        ctx.moveTo(left, py);
        ctx.lineTo(right, py);
        ctx.stroke();
        // Raise label above its line, clear label below: they never overlap.
        ctx.fillText(l.label, left + 4, l.below ? py + 12 : py - 3);
      }
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

function timeAxis(windowMs: number) {
  return {
    type: "linear" as const,
    grid: { color: COLORS.grid },
    ticks: {
      color: COLORS.text,
      maxRotation: 0,
      autoSkip: true,
      maxTicksLimit: 6,
      callback: (v: number | string) => formatLocalTime(Number(v)),
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
    data: { datasets: [line("Temperature (C)", series.temp, COLORS.temp)] },
    options: {
      ...common,
      scales: {
        x: timeAxis(opts.windowMs),
        y: {
          type: "linear",
          suggestedMin: opts.clearBelowC - 20,
          suggestedMax: opts.raiseAboveC + 5,
          grid: { color: COLORS.grid },
          ticks: { color: COLORS.text },
          title: { display: true, text: "C", color: COLORS.text },
        },
      },
    },
    plugins: [
      thresholdPlugin([
        {
          value: opts.raiseAboveC,
          color: COLORS.raise,
          label: `raise ${opts.raiseAboveC} C`,
        },
        {
          value: opts.clearBelowC,
          color: COLORS.clear,
          label: `clear ${opts.clearBelowC} C`,
          below: true,
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
        },
        y1: {
          type: "linear",
          position: "right",
          min: 0,
          max: 100,
          grid: { drawOnChartArea: false },
          ticks: { color: COLORS.text },
          title: { display: true, text: "%", color: COLORS.text },
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
