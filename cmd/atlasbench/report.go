package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// printHeader states the machine and the run parameters.
func printHeader(w io.Writer, p params) {
	caddyVersion := "unknown version"
	if out, err := exec.Command(p.caddyBin, "version").Output(); err == nil {
		if f := strings.Fields(string(out)); len(f) > 0 {
			caddyVersion = f[0]
		}
	}
	wrkVersion := "wrk"
	if out, _ := exec.Command(p.wrkBin, "--version").CombinedOutput(); len(out) > 0 {
		wrkVersion = strings.TrimSpace(strings.SplitN(string(out), "[", 2)[0])
	}
	fmt.Fprintln(w, "atlasbench: Caddy's reverse_proxy with a static Authorization (plain) vs. atlasgate_proxy (gateway)")
	fmt.Fprintln(w, "            vs. atlasgate_auth + atlasgate_policy + atlasgate_proxy with an API key (full)")
	fmt.Fprintf(w, "machine:    %d CPUs (nproc), %s, %s/%s, %s\n", runtime.NumCPU(), cpuModel(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintf(w, "caddy:      %s (%s)\n", p.caddyBin, caddyVersion)
	fmt.Fprintf(w, "upstream:   atlassim in-process over TLS (recording off), GET %s, all on 127.0.0.1\n", benchPath)
	users, paths := ruleMix(defaultRules)
	fmt.Fprintf(w, "full:       api_key authenticator, Authorization: Bearer agk_…; policy of %d rules (%d other users, %d other paths, then the caller's);\n",
		defaultRules, users, paths)
	fmt.Fprintln(w, "            audit events at info to a file through atlasgate_buffered, as shipped (full-1000: the same with 1,000 rules)")
	fmt.Fprintf(w, "runs:       warm-up %s; saturation %s -t%d -c%d -d%s --latency, %d alternating rounds (medians); fixed rate %d/s for %s (vegeta)\n",
		warmup, wrkVersion, wrkThreads(p.connections), p.connections, p.duration, p.rounds, p.rate, fixedDuration)
	fmt.Fprintln(w, "note:       the load generators, the simulator and Caddy share the machine's cores;")
	fmt.Fprintln(w, "            CPU-ms per 1000 requests is the figure least affected by that")
	fmt.Fprintln(w)
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// row is one line of the table: how to read a value from a result and how to
// print it.
type row struct {
	label  string
	value  func(*result) float64
	format func(float64) string
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func msFormat(v float64) string   { return fmt.Sprintf("%.2f ms", v) }
func intFormat(v float64) string  { return fmt.Sprintf("%.0f", v) }
func cores(v float64) string      { return fmt.Sprintf("%.2f", v) }
func percent(v float64) string    { return fmt.Sprintf("%.2f%%", 100*v) }
func megabytes(v float64) string  { return fmt.Sprintf("%.1f MB", v/(1<<20)) }
func cpuPer1000(v float64) string { return fmt.Sprintf("%.0f ms", v) }
func perThousand(cpu, n float64) float64 {
	if n <= 0 || cpu < 0 {
		return -1
	}
	return cpu * 1000 / (n / 1000) // CPU-ms per 1000 requests
}

var rows = []row{
	{"saturation req/s", func(r *result) float64 { return r.sat.rps }, intFormat},
	{"saturation p50", func(r *result) float64 { return ms(r.sat.p50) }, msFormat},
	{"saturation p99", func(r *result) float64 { return ms(r.sat.p99) }, msFormat},
	{"saturation errors", func(r *result) float64 { return float64(r.sat.errors) }, intFormat},
	{"fixed-rate p50", func(r *result) float64 { return ms(r.fixed.p50) }, msFormat},
	{"fixed-rate p99", func(r *result) float64 { return ms(r.fixed.p99) }, msFormat},
	{"fixed-rate success", func(r *result) float64 { return r.fixed.success }, percent},
	{"fixed-rate achieved req/s", func(r *result) float64 { return r.fixed.rate }, intFormat},
	{"CPU cores used (saturation)", func(r *result) float64 { return r.satCPU / r.satWall.Seconds() }, cores},
	{"CPU-ms / 1000 req (saturation)", func(r *result) float64 { return perThousand(r.satCPU, float64(r.sat.requests)) }, cpuPer1000},
	{"CPU-ms / 1000 req (fixed rate)", func(r *result) float64 { return perThousand(r.fixedCPU, float64(r.fixed.requests)) }, cpuPer1000},
	{"peak RSS (VmHWM)", func(r *result) float64 { return float64(r.peakRSS) }, megabytes},
}

// printTable prints every result and, for every result after the first, its
// ratio to the first (plain) for every row.
func printTable(w io.Writer, results []*result) {
	base := results[0]
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-32s", "")
	for _, r := range results {
		fmt.Fprintf(w, " %12s", r.name)
	}
	for _, r := range results[1:] {
		fmt.Fprintf(w, " %14s", r.name+"/"+base.name)
	}
	fmt.Fprintln(w)
	for _, row := range rows {
		fmt.Fprintf(w, "%-32s", row.label)
		for _, r := range results {
			fmt.Fprintf(w, " %12s", show(row.value(r), row.format))
		}
		for _, r := range results[1:] {
			fmt.Fprintf(w, " %14s", ratio(row.value(r), row.value(base)))
		}
		fmt.Fprintln(w)
	}
	for _, r := range results {
		if r.sat.errors > 0 || r.fixed.success < 1 {
			fmt.Fprintf(w, "\nnote: %s had %d saturation errors (non-2xx or socket) and %.2f%% fixed-rate success; errors: %s\n",
				r.name, r.sat.errors, 100*r.fixed.success, strings.Join(r.fixed.errors, "; "))
		}
	}
}

func show(v float64, format func(float64) string) string {
	if v < 0 {
		return "n/a"
	}
	return format(v)
}

func ratio(g, p float64) string {
	if g < 0 || p <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", g/p)
}
