// Recent runs over time: duration (line, left axis) and changes made (bars, right axis),
// drawn with Chart.js on a canvas. Oldest run on the left.
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
} from "chart.js";
import { useEffect, useRef } from "react";
import type { Run } from "./api.ts";

Chart.register(BarController, BarElement, CategoryScale, Legend, LinearScale, LineController, LineElement, PointElement, Tooltip);

function label(run: Run): string {
  const d = new Date(run.started_at);
  return `#${run.run_id} ${d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })}`;
}

export function RunsChart({ runs }: { runs: Run[] }) {
  const canvas = useRef<HTMLCanvasElement | null>(null);
  const chart = useRef<Chart | null>(null);

  useEffect(() => {
    if (!canvas.current) return;
    chart.current = new Chart(canvas.current, {
      type: "bar",
      data: { labels: [], datasets: [] },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { position: "bottom" } },
        scales: {
          duration: { type: "linear", position: "left", beginAtZero: true, title: { display: true, text: "duration (ms)" } },
          changes: {
            type: "linear",
            position: "right",
            beginAtZero: true,
            ticks: { precision: 0 },
            grid: { drawOnChartArea: false },
            title: { display: true, text: "changes" },
          },
        },
      },
    });
    return () => {
      chart.current?.destroy();
      chart.current = null;
    };
  }, []);

  useEffect(() => {
    const c = chart.current;
    if (!c) return;
    const ordered = [...runs].filter((r) => r.status !== "skipped").reverse();
    c.data.labels = ordered.map(label);
    c.data.datasets = [
      {
        type: "line",
        label: "duration (ms)",
        data: ordered.map((r) => r.duration_ms ?? 0),
        yAxisID: "duration",
        borderColor: "#3b82f6",
        backgroundColor: "#3b82f6",
        tension: 0.2,
      },
      {
        type: "bar",
        label: "changes (inserted + updated + deleted)",
        data: ordered.map((r) => r.inserted + r.updated + r.deleted),
        yAxisID: "changes",
        backgroundColor: "rgba(16, 185, 129, 0.55)",
      },
    ] as never;
    c.update();
  }, [runs]);

  return (
    <div className="usd-chart" data-testid="runs-chart">
      <canvas ref={canvas} aria-label="Duration and changes of recent runs" role="img" />
    </div>
  );
}
