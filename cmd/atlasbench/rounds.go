package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// running is one started, checked and warmed-up Caddy with its request
// header and the saturation rounds measured so far.
type running struct {
	t      target
	c      *caddyProc
	url    string
	header http.Header
	rounds []*wrkResult
	cpu    float64 // Caddy CPU seconds over all rounds
	wall   time.Duration
}

// benchRounds starts every target's Caddy at once, then runs the saturation
// test in alternating rounds (plain, gateway, full, …, plain, gateway, …) so
// that a change in the machine's load hits every target alike; each target's
// figures are the medians of its rounds. The fixed-rate run follows, once
// per target.
func benchRounds(ctx context.Context, env *benchEnv, p params, targets []target) ([]*result, error) {
	var rs []*running
	defer func() {
		for _, r := range rs {
			r.c.stop()
		}
	}()
	for _, t := range targets {
		r, err := start(ctx, env, p, t)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", t.name, err)
		}
		rs = append(rs, r)
	}
	for i := range p.rounds {
		for _, r := range rs {
			fmt.Printf("   round %d/%d %s: wrk -t%d -c%d -d%s\n", i+1, p.rounds, r.t.name, wrkThreads(p.connections), p.connections, p.duration)
			cpu0, t0 := r.c.cpuSeconds(), time.Now()
			w, err := runWrk(ctx, p.wrkBin, r.url, r.header, p.connections, p.duration)
			if err != nil {
				return nil, fmt.Errorf("%s: saturation: %v", r.t.name, err)
			}
			r.cpu += r.c.cpuSeconds() - cpu0
			r.wall += time.Since(t0)
			r.rounds = append(r.rounds, w)
		}
	}
	var results []*result
	for _, r := range rs {
		res := &result{name: r.t.name, sat: median(r.rounds), satCPU: r.cpu, satWall: r.wall}
		fmt.Printf("== %s: fixed rate %d/s for %s\n", r.t.name, p.rate, fixedDuration)
		cpu0 := r.c.cpuSeconds()
		var err error
		if res.fixed, err = runFixedRate(ctx, r.url, r.header, p.rate, fixedDuration); err != nil {
			return nil, fmt.Errorf("%s: fixed rate: %v", r.t.name, err)
		}
		res.fixedCPU = r.c.cpuSeconds() - cpu0
		res.peakRSS = r.c.peakRSS()
		if err := r.c.err(); err != nil {
			return nil, fmt.Errorf("%s: Caddy failed during the runs: %v\n--- Caddy output ---\n%s", r.t.name, err, r.c.output())
		}
		results = append(results, res)
	}
	return results, nil
}

// start runs one target's Caddy, checks that it answers and warms it up.
func start(ctx context.Context, env *benchEnv, p params, t target) (*running, error) {
	fmt.Printf("== %s: starting Caddy\n", t.name)
	c, err := startCaddy(ctx, env, p.caddyBin, t)
	if err != nil {
		return nil, err
	}
	r := &running{t: t, c: c, url: c.url + benchPath}
	if t.apiKey {
		key, err := c.createAPIKey()
		if err != nil {
			c.stop()
			return nil, fmt.Errorf("creating an API key through the admin API: %v\n--- Caddy output ---\n%s", err, c.output())
		}
		r.header = http.Header{"Authorization": {"Bearer " + key}}
		fmt.Printf("   issued an API key for %q\n", keyOwner)
	}
	if err := checkOK(r.url, r.header); err != nil {
		c.stop()
		return nil, fmt.Errorf("GET %s: %v\n--- Caddy output ---\n%s", r.url, err, c.output())
	}
	fmt.Printf("   warm-up %s\n", warmup)
	if _, err := runWrk(ctx, p.wrkBin, r.url, r.header, p.connections, warmup); err != nil {
		c.stop()
		return nil, fmt.Errorf("warm-up: %v", err)
	}
	return r, nil
}

// median is the round-by-round median of each figure (taken separately);
// requests and errors are summed, as CPU is.
func median(rounds []*wrkResult) *wrkResult {
	m := &wrkResult{}
	var rps []float64
	var p50, p99 []time.Duration
	for _, w := range rounds {
		m.requests += w.requests
		m.errors += w.errors
		rps = append(rps, w.rps)
		p50 = append(p50, w.p50)
		p99 = append(p99, w.p99)
	}
	slices.Sort(rps)
	slices.Sort(p50)
	slices.Sort(p99)
	n := len(rounds) / 2
	m.rps, m.p50, m.p99 = rps[n], p50[n], p99[n]
	return m
}
