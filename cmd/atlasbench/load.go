package main

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// wrkResult is what a wrk --latency run printed.
type wrkResult struct {
	requests int64
	rps      float64
	p50, p99 time.Duration
	errors   int64 // non-2xx/3xx responses and socket errors
}

var (
	wrkRequests = regexp.MustCompile(`(\d+) requests in `)
	wrkRPS      = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	wrkP50      = regexp.MustCompile(`(?m)^\s+50%\s+(\S+)`)
	wrkP99      = regexp.MustCompile(`(?m)^\s+99%\s+(\S+)`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func wrkThreads(connections int) int { return min(2, connections) }

// runWrk runs `wrk -t2 -c<connections> -d<d> --latency [-H <header>...] url`
// and parses its report.
func runWrk(ctx context.Context, bin, url string, header http.Header, connections int, d time.Duration) (*wrkResult, error) {
	secs := int((d + time.Second - 1) / time.Second)
	args := []string{"-t" + strconv.Itoa(wrkThreads(connections)), "-c" + strconv.Itoa(connections),
		"-d" + strconv.Itoa(secs) + "s", "--latency"}
	shown := append([]string{bin}, args...) // for errors: header values left out (the API key)
	for name, values := range header {
		for _, v := range values {
			args = append(args, "-H", name+": "+v)
			shown = append(shown, "-H", "'"+name+": …'")
		}
	}
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v\n%s", strings.Join(shown, " "), url, err, out)
	}
	r, err := parseWrk(string(out))
	if err != nil {
		return nil, fmt.Errorf("parsing wrk's output: %v\n%s", err, out)
	}
	return r, nil
}

func parseWrk(out string) (*wrkResult, error) {
	r := &wrkResult{}
	m := wrkRequests.FindStringSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("no request count")
	}
	r.requests, _ = strconv.ParseInt(m[1], 10, 64)
	if m = wrkRPS.FindStringSubmatch(out); m == nil {
		return nil, fmt.Errorf("no Requests/sec")
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	var err error
	for _, q := range []struct {
		re  *regexp.Regexp
		dst *time.Duration
	}{{wrkP50, &r.p50}, {wrkP99, &r.p99}} {
		if m = q.re.FindStringSubmatch(out); m == nil {
			return nil, fmt.Errorf("no latency distribution (%s)", q.re)
		}
		// wrk prints e.g. 812.00us, 1.23ms, 2.01s, 1.00m: all Go durations.
		if *q.dst, err = time.ParseDuration(m[1]); err != nil {
			return nil, err
		}
	}
	if m = wrkNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		r.errors += n
	}
	if m = wrkSocket.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.errors += n
		}
	}
	return r, nil
}

// fixedResult is what the fixed-rate run measured.
type fixedResult struct {
	requests uint64
	rate     float64 // achieved request rate
	p50, p99 time.Duration
	success  float64 // ratio of 2xx/3xx responses
	errors   []string
}

// runFixedRate sends GET url with header at a constant rate for d with vegeta's library
// (keep-alive HTTP/1.1, as many connections as the rate needs) and summarises
// the latencies. Vegeta paces by the clock, so a slow response does not delay
// the next request (no coordinated omission).
func runFixedRate(ctx context.Context, url string, header http.Header, rate int, d time.Duration) (*fixedResult, error) {
	atk := vegeta.NewAttacker(vegeta.Timeout(10*time.Second), vegeta.KeepAlive(true))
	defer context.AfterFunc(ctx, func() { atk.Stop() })()
	targeter := vegeta.NewStaticTargeter(vegeta.Target{Method: "GET", URL: url, Header: header})
	var m vegeta.Metrics
	for res := range atk.Attack(targeter, vegeta.Rate{Freq: rate, Per: time.Second}, d, "atlasbench") {
		m.Add(res)
	}
	m.Close()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if m.Requests == 0 {
		return nil, fmt.Errorf("vegeta sent no request")
	}
	return &fixedResult{
		requests: m.Requests, rate: m.Rate,
		p50: m.Latencies.P50, p99: m.Latencies.P99,
		success: m.Success, errors: m.Errors,
	}, nil
}
