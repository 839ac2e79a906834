// Command atlasbench measures what the atlasgate gateway costs on top of
// Caddy's own reverse proxy (`make bench`).
//
// It starts the Atlassian simulator in-process (TLS, recording off) as the one
// upstream, then runs three Caddy processes from the -caddy binary, one at a
// time, each serving GET /rest/api/3/myself on a free 127.0.0.1 port:
//
//   - plain: Caddy's stock `reverse_proxy https://localhost:<site>` with the
//     upstream Host and a static `Authorization: Basic <email:token>` set by
//     header_up, trusting the simulator's CA through tls_trust_pool. This is
//     the fairest plain equivalent of credential injection: the same bytes go
//     upstream over the same kind of TLS connection pool, so the difference is
//     what atlasgate adds (stripping client credentials, routing, injecting in
//     the transport, dropping Set-Cookie, mapping Location).
//   - gateway: `atlasgate_proxy jira`, the credential defined in the global
//     atlasgate block with its token passed through the process environment.
//   - full: the whole request path of a production gateway: `atlasgate_auth
//     keys` (an api_key authenticator), `atlasgate_policy` with 300 rules that
//     do not match (200 naming other users, 100 for other paths of any caller)
//     before the one that allows the key's owner with credential jira, and
//     `atlasgate_proxy` injecting the credential the policy chose. Once Caddy
//     runs, atlasbench issues one key through the admin API
//     (POST /atlasgate/api-keys/keys) and every request carries it as
//     `Authorization: Bearer agk_…`. Audit events are on, as shipped: the
//     atlasgate.audit logger at info, written to a file through
//     atlasgate_buffered (the rest of the logging is at error level).
//   - full-1000: full with a policy of 1,000 rules in the same proportions.
//
// It starts all of them at once and warms each up (2s of wrk); then runs the
// saturation test with wrk (req/s, p50, p99) in -rounds alternating rounds
// (plain, gateway, full, full-1000, plain, …; each figure is the median of a
// configuration's rounds), then a fixed-rate test with vegeta (p50, p99,
// success ratio) per configuration; it
// samples the Caddy process in /proc: CPU seconds over each run (cores used,
// and CPU-ms per 1000 requests, the cost figure that does not depend on how the
// two cores are shared with the load generator and the simulator) and the peak
// RSS (VmHWM, the peak over the whole life of the process, read after its
// runs). It prints a table with the gateway/plain and full/plain ratios. It only
// reports: the exit status is non-zero only when something could not run.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

const (
	benchPath     = "/rest/api/3/myself"
	warmup        = 2 * time.Second
	fixedDuration = 10 * time.Second
)

// params are the run parameters printed at the top of the report.
type params struct {
	caddyBin, wrkBin string
	duration         time.Duration
	rounds           int
	rate             int
	connections      int
}

// result is what one Caddy configuration measured.
type result struct {
	name     string
	sat      *wrkResult
	satCPU   float64 // Caddy CPU seconds during the saturation run
	satWall  time.Duration
	fixed    *fixedResult
	fixedCPU float64 // Caddy CPU seconds during the fixed-rate run
	peakRSS  int64   // bytes (VmHWM)
}

func main() { os.Exit(run()) }

func run() int {
	var p params
	flag.StringVar(&p.caddyBin, "caddy", "bin/caddy", "the Caddy `binary` with the atlasgate modules")
	flag.DurationVar(&p.duration, "duration", 5*time.Second, "length of each saturation round (whole seconds)")
	flag.IntVar(&p.rounds, "rounds", 5, "saturation rounds per configuration, alternating between them; the medians are reported")
	flag.IntVar(&p.rate, "rate", 500, "requests per second of the fixed-rate run ("+fixedDuration.String()+")")
	flag.IntVar(&p.connections, "connections", 32, "connections of the saturation run")
	reloads := flag.Int("reloads", 0, "run the reload soak instead: this many reloads under load per configuration")
	clients := flag.Int("clients", 2, "reload soak: clients of each kind (GET/POST, new/kept-alive connections)")
	netns := flag.Bool("migrate-netns", false, "reload soak: run in a private network namespace with net.ipv4.tcp_migrate_req=1 (needs root, unshare and ip)")
	flag.Parse()
	if *netns && os.Getenv(netnsEnv) == "" {
		return reexecInNetns()
	}
	if p.duration < time.Second || p.rate < 1 || p.connections < 2 || p.rounds < 1 {
		fmt.Fprintln(os.Stderr, "atlasbench: need -duration ≥ 1s, -rate ≥ 1, -connections ≥ 2 and -rounds ≥ 1")
		return 2
	}
	var err error
	if p.wrkBin, err = exec.LookPath("wrk"); err != nil && *reloads == 0 {
		fmt.Fprintln(os.Stderr, "atlasbench: wrk is not on PATH; install it with `apt-get install -y wrk` (Debian/Ubuntu)")
		return 1
	}
	if p.caddyBin, err = filepath.Abs(p.caddyBin); err == nil {
		_, err = os.Stat(p.caddyBin)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "atlasbench: Caddy binary: %v; build it with `go build -o bin/caddy ./cmd/caddy`\n", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	printHeader(os.Stdout, p)
	env, err := newEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "atlasbench:", err)
		return 1
	}
	defer env.close()

	if *reloads > 0 {
		var results []*soakResult
		handover := fullTarget
		handover.name, handover.handover = "full+handover", true
		for _, t := range []target{plainTarget, fullTarget, handover} {
			r, err := reloadSoak(ctx, env, p.caddyBin, t, *reloads, max(1, *clients))
			if ctx.Err() != nil {
				return 130
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "atlasbench: %s: %v\n", t.name, err)
				return 1
			}
			results = append(results, r)
		}
		printSoak(os.Stdout, results)
		return 0
	}

	full1000 := fullTarget
	full1000.name, full1000.rules = "full-1000", 1000
	results, err := benchRounds(ctx, env, p, []target{plainTarget, gatewayTarget, fullTarget, full1000})
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "atlasbench: interrupted; stopped Caddy and removed the temporary files")
		return 130
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "atlasbench:", err)
		return 1
	}
	printTable(os.Stdout, results)
	return 0
}

// netnsEnv marks the re-executed atlasbench inside its network namespace.
const netnsEnv = "ATLASBENCH_IN_NETNS"

// reexecInNetns runs atlasbench again in a new network namespace whose
// loopback is up and whose tcp_migrate_req is 1: the setting an operator can
// choose for the gateway's namespace (it is per namespace), shown side by side
// with the machine's own.
func reexecInNetns() int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "atlasbench:", err)
		return 1
	}
	cmd := exec.Command("unshare", append([]string{"-n", "sh", "-c",
		`ip link set lo up && sysctl -qw net.ipv4.tcp_migrate_req=1 && exec "$0" "$@"`, self}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "atlasbench: in a private network namespace (needs root, unshare and ip): %v\n", err)
		return 1
	}
	return 0
}

// checkOK requires one 200 response before anything is measured.
func checkOK(url string, header http.Header) error {
	code, body, err := get(url, header)
	if err != nil {
		return err
	}
	if code != 200 {
		return fmt.Errorf("status %d, want 200: %.500s", code, body)
	}
	return nil
}
