package handover

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/atlasgate/atlasgate/internal/adminload"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

func freePort(t *testing.T) int {
	t.Helper()
	l := listen(t)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Real Caddy, reloaded 60 times through its admin API while clients send
// GETs on new connections and POSTs on kept-alive ones: with
// atlasgate_handover no request is dropped by the old server's shutdown —
// neither a new connection's (EOF) nor a kept-alive one's (EOF or reset on a
// reused connection). A reset of a new connection by the kernel (queued on
// the closed socket) is counted apart; with net.ipv4.tcp_migrate_req=1 there
// may be none either.
func TestReloadsDropNoRequest(t *testing.T) {
	admin, port := freePort(t), freePort(t)
	config := func(gen int) string {
		return fmt.Sprintf(`{"admin":{"listen":"127.0.0.1:%d"},"logging":{"logs":{"default":{"level":"ERROR"}}},
"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:%d"],"listener_wrappers":[{"wrapper":"atlasgate_handover"}],
"routes":[{"handle":[{"handler":"static_response","body":"generation %d"}]}]}}}}}`, admin, port, gen)
	}
	if err := caddy.Load([]byte(config(0)), true); err != nil {
		t.Fatal(err)
	}
	defer caddy.Stop()

	var mu sync.Mutex
	var ok, eof, reset, keepAliveLost int
	var other []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keepAlive := i%2 == 1
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: !keepAlive}}
			for {
				select {
				case <-stop:
					return
				default:
				}
				var reused bool
				req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
				if keepAlive {
					req, _ = http.NewRequest(http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/", port), strings.NewReader("{}"))
				}
				req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
					GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
				}))
				resp, err := client.Do(req)
				mu.Lock()
				switch {
				case err == nil && resp.StatusCode == 200:
					ok++
				case err != nil && reused:
					keepAliveLost++
					if keepAliveLost < 4 {
						other = append(other, "kept-alive: "+err.Error())
					}
				case errors.Is(err, syscall.ECONNRESET):
					reset++
				case err != nil && errors.Is(err, io.EOF):
					eof++
				case err != nil:
					other = append(other, err.Error())
				default:
					other = append(other, resp.Status)
				}
				mu.Unlock()
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	handed := HandedOver()
	for gen := 1; gen <= 60; gen++ {
		status, answer, _, err := adminload.Post(fmt.Sprintf("http://127.0.0.1:%d", admin), "application/json", config(gen))
		if err != nil || status != 200 {
			t.Fatalf("reload %d: %d %s %v", gen, status, answer, err)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d answered, %d handed over to the newer configuration, %d new connections reset by the kernel, %d EOF, %d lost on kept-alive connections", ok, HandedOver()-handed, reset, eof, keepAliveLost)
	if eof != 0 || keepAliveLost != 0 || len(other) != 0 {
		t.Errorf("across 60 reloads: %d new connections dropped (EOF), %d requests lost on kept-alive connections, %d other failures %v", eof, keepAliveLost, len(other), other)
	}
	if b, _ := os.ReadFile(migrateReqPath); strings.TrimSpace(string(b)) == "1" && reset != 0 {
		t.Errorf("%d connections reset although net.ipv4.tcp_migrate_req=1", reset)
	}
	if ok < 100 {
		t.Errorf("only %d requests answered", ok)
	}
}
