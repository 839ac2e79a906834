package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/atlasgate/atlasgate/internal/adminload"
)

// The reload soak (`make bench-reload`, `atlasbench -reloads N`): N reloads
// through the admin API of one running Caddy while clients keep sending
// requests — new connections and kept-alive ones, GET (idempotent) and POST
// (not) — counting every request that did not get the expected answer, by
// cause. It runs stock Caddy (reverse_proxy, no atlasgate module), the full
// gateway, and the full gateway behind the atlasgate_handover listener
// wrapper, so that what is Caddy's, Go's or the kernel's is told apart from
// what is atlasgate's.

// The causes a failed request is filed under.
const (
	causeKernelReset = "new connection reset (kernel: queued on the closed socket)"
	causeDropped     = "new connection closed unanswered (net/http: read after Shutdown began)"
	causeKeepAlive   = "kept-alive connection closed by the old server (clients retry it only for idempotent requests)"
	causeStatus      = "unexpected HTTP status (the gateway's answer)"
	causeOther       = "other"
)

// loadKind is one kind of client.
type loadKind struct {
	name      string
	method    string
	keepAlive bool
}

var loadKinds = []loadKind{
	{"GET new conn", http.MethodGet, false},
	{"GET keep-alive", http.MethodGet, true},
	{"POST new conn", http.MethodPost, false},
	{"POST keep-alive", http.MethodPost, true},
}

// tally counts outcomes of one kind of client.
type tally struct {
	mu      sync.Mutex
	ok      int
	causes  map[string]int
	samples map[string]string // one error text per cause
}

func (t *tally) add(cause, sample string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cause == "" {
		t.ok++
		return
	}
	t.causes[cause]++
	if _, ok := t.samples[cause]; !ok {
		t.samples[cause] = sample
	}
}

// soakResult is what one configuration saw.
type soakResult struct {
	name    string
	reloads int
	kinds   map[string]*tally
}

// reloadSoak runs one target through n reloads under load.
func reloadSoak(ctx context.Context, env *benchEnv, bin string, t target, n, clientsPerKind int) (*soakResult, error) {
	fmt.Printf("== %s: starting Caddy\n", t.name)
	c, err := startCaddy(ctx, env, bin, t)
	if err != nil {
		return nil, err
	}
	defer c.stop()
	header := http.Header{}
	if t.apiKey {
		key, err := c.createAPIKey()
		if err != nil {
			return nil, fmt.Errorf("creating an API key: %v\n%s", err, c.output())
		}
		header.Set("Authorization", "Bearer "+key)
	}
	url := c.url + benchPath
	if err := checkOK(url, header); err != nil {
		return nil, fmt.Errorf("GET %s: %v\n%s", url, err, c.output())
	}
	// What each method answers before any reload is what it must answer
	// during them.
	want := map[string]int{}
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		resp, err := send(http.DefaultClient, m, url, header, nil)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %v", m, url, err)
		}
		want[m] = resp
	}

	r := &soakResult{name: t.name, reloads: n, kinds: map[string]*tally{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, k := range loadKinds {
		tl := &tally{causes: map[string]int{}, samples: map[string]string{}}
		r.kinds[k.name] = tl
		for range clientsPerKind {
			wg.Add(1)
			go func() {
				defer wg.Done()
				client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: !k.keepAlive}}
				defer client.CloseIdleConnections()
				for {
					select {
					case <-stop:
						return
					default:
					}
					var reused bool
					status, err := send(client, k.method, url, header, &reused)
					cause, sample := classify(status, want[k.method], err, reused)
					tl.add(cause, sample)
				}
			}()
		}
	}
	fmt.Printf("   %d reloads under load (%d clients of each kind)\n", n, clientsPerKind)
	var reloadErr error
	for gen := 1; gen <= n && reloadErr == nil && ctx.Err() == nil; gen++ {
		reloadErr = c.reload(gen)
	}
	close(stop)
	wg.Wait()
	if reloadErr != nil {
		return nil, fmt.Errorf("reload: %v\n%s", reloadErr, c.output())
	}
	return r, c.err()
}

// reload posts the target's config for generation gen to the admin API, as
// `caddy reload` does, and waits for the answer.
func (c *caddyProc) reload(gen int) error {
	cf, err := c.target.caddyfile(c.env, c.dir, c.port, c.adminPort, gen)
	if err != nil {
		return err
	}
	status, answer, retried, err := adminload.Post(c.admin, "text/caddyfile", cf)
	adminRetries.Add(int64(retried))
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("status %d: %s", status, answer)
	}
	return nil
}

// adminRetries counts /load requests sent again (see reload).
var adminRetries atomic.Int64

// send does one request and reports its status; reused, when not nil, tells
// whether it went on a kept-alive connection.
func send(client *http.Client, method, url string, header http.Header, reused *bool) (int, error) {
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(`{"jql":"project = DEMO","maxResults":1}`)
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return 0, err
	}
	req.Header = header.Clone()
	req.Header.Set("Content-Type", "application/json")
	if reused != nil {
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { *reused = i.Reused },
		}))
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

// classify files a request's outcome under a cause ("" when it succeeded).
func classify(status, want int, err error, reused bool) (cause, sample string) {
	switch {
	case err == nil && status == want:
		return "", ""
	case err == nil:
		return causeStatus, fmt.Sprintf("status %d, want %d", status, want)
	case reused:
		return causeKeepAlive, err.Error()
	case errors.Is(err, syscall.ECONNRESET):
		return causeKernelReset, err.Error()
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return causeDropped, err.Error()
	}
	return causeOther, err.Error()
}

// printSoak prints each configuration's requests and failures by cause.
func printSoak(w io.Writer, results []*soakResult) {
	migrate, err := os.ReadFile("/proc/sys/net/ipv4/tcp_migrate_req")
	setting := strings.TrimSpace(string(migrate))
	if err != nil {
		setting = "unknown"
	}
	fmt.Fprintf(w, "\nReload soak — net.ipv4.tcp_migrate_req=%s\n", setting)
	for _, r := range results {
		fmt.Fprintf(w, "\n%s: %d reloads\n", r.name, r.reloads)
		names := make([]string, 0, len(r.kinds))
		for n := range r.kinds {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			tl := r.kinds[n]
			failed := 0
			for _, v := range tl.causes {
				failed += v
			}
			fmt.Fprintf(w, "  %-16s %7d requests, %4d failed\n", n, tl.ok+failed, failed)
			for cause, v := range tl.causes {
				fmt.Fprintf(w, "      %5d  %s — e.g. %.120s\n", v, cause, tl.samples[cause])
			}
		}
	}
	fmt.Fprintf(w, "\nadmin API: %d /load requests sent again after a connection-level error (Caddy restarts its admin server on every load)\n", adminRetries.Load())
	fmt.Fprintln(w, "Only \""+causeStatus+"\" is the gateway's own; the other causes are explained in docs/operator-guide.md (Reloads).")
}
