package hotpath

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/atlasgate/atlasgate"
	"github.com/atlasgate/atlasgate/integration/itest"
)

const (
	apiToken = "upstream-api-token"
	caller   = "bench"
)

// env is the benchmark's Caddy, loaded once per test binary: one server per
// variant, the upstream, the JWKS endpoint, a signed JWT and an API key.
type env struct {
	servers map[string]*caddyhttp.Server
	jwt     string
	apiKey  string
	dir     string
}

var (
	setupOnce sync.Once
	theEnv    *env
	setupErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if theEnv != nil {
		caddy.Stop()
		os.RemoveAll(theEnv.dir)
	}
	os.Exit(code)
}

func setup(b *testing.B) *env {
	setupOnce.Do(func() { theEnv, setupErr = newEnv(b) })
	if setupErr != nil {
		b.Fatal(setupErr)
	}
	return theEnv
}

// otherRules renders n rules that do not match the caller: two thirds name
// other users (the engine indexes them), the rest other paths with no identity
// condition (every request checks those).
func otherRules(n int) string {
	var sb strings.Builder
	for i := range n {
		if i%3 != 2 {
			fmt.Fprintf(&sb, "\t\trule user-%04d {\n\t\t\tusers user-%04d@example.com\n\t\t\tcredential jira\n\t\t}\n", i, i)
		} else {
			fmt.Fprintf(&sb, "\t\trule project-%04d {\n\t\t\tproduct jira\n\t\t\tpaths /rest/api/3/project/P%04d /rest/api/3/project/P%04d/*\n\t\t\tcredential jira\n\t\t}\n", i, i, i)
		}
	}
	return sb.String()
}

func gatewaySite(port, rules int) string {
	return fmt.Sprintf(`http://127.0.0.1:%d {
	atlasgate_auth op keys
	atlasgate_policy p%d {
%s		rule caller {
			users %s
			credential jira
		}
	}
	atlasgate_proxy
}
`, port, rules, otherRules(rules-1), caller)
}

func newEnv(b *testing.B) (*env, error) {
	e := &env{servers: map[string]*caddyhttp.Server{}}
	var err error
	if e.dir, err = os.MkdirTemp("", "hotpath-"); err != nil {
		return nil, err
	}
	// The upstream answers like a small Atlassian REST response.
	upstream := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"accountId":"5b10a2844c20165700ede21g","active":true}`)
	}))
	caFile := filepath.Join(e.dir, "ca.pem")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: upstream.Certificate().Raw})
	if err := os.WriteFile(caFile, ca, 0o600); err != nil {
		return nil, err
	}

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk := jose.JSONWebKey{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}})
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(jwks)
	}))
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	e.jwt, err = josejwt.Signed(signer).Claims(josejwt.Claims{
		Issuer: idp.URL, Subject: caller, Audience: josejwt.Audience{"atlasgate"},
		IssuedAt: josejwt.NewNumericDate(now), Expiry: josejwt.NewNumericDate(now.Add(2 * time.Hour)),
	}).Serialize()
	if err != nil {
		return nil, err
	}

	adminPort, plainPort, gw50Port, gw1000Port := itest.FreePort(b), itest.FreePort(b), itest.FreePort(b), itest.FreePort(b)
	cf := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
	storage file_system %s
	log {
		level ERROR
	}
	log audit {
		output atlasgate_buffered {
			output discard
		}
		include atlasgate.audit
		level INFO
	}
	atlasgate {
		credential jira api_token {
			site %s
			email bench@example.com
			token {env.HOTPATH_API_TOKEN}
			trusted_ca_file %s
		}
		authenticator op jwt {
			issuer %s
			discovery false
			jwks_uri %s
			audience atlasgate
			algorithms ES256
		}
		authenticator keys api_key
	}
}

http://127.0.0.1:%d {
	reverse_proxy %s {
		header_up Authorization "Basic YmVuY2hAZXhhbXBsZS5jb206dXBzdHJlYW0tYXBpLXRva2Vu"
		transport http {
			tls_trust_pool file %s
		}
	}
}

%s
%s`, adminPort, filepath.Join(e.dir, "storage"), upstream.URL, caFile, idp.URL, idp.URL,
		plainPort, upstream.URL, caFile, gatewaySite(gw50Port, 50), gatewaySite(gw1000Port, 1000))
	os.Setenv("HOTPATH_API_TOKEN", apiToken)
	if err := itest.Load(cf); err != nil {
		return nil, fmt.Errorf("loading config: %v", err)
	}
	app, err := caddy.ActiveContext().App("http")
	if err != nil {
		return nil, err
	}
	for _, srv := range app.(*caddyhttp.App).Servers {
		for name, port := range map[string]int{"plain": plainPort, "gw50": gw50Port, "gw1000": gw1000Port} {
			if len(srv.Listen) > 0 && strings.HasSuffix(srv.Listen[0], fmt.Sprintf(":%d", port)) {
				e.servers[name] = srv
			}
		}
	}
	if len(e.servers) != 3 {
		return nil, fmt.Errorf("found %d of 3 servers", len(e.servers))
	}

	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/atlasgate/api-keys/keys", adminPort), "application/json",
		strings.NewReader(`{"owner":"`+caller+`"}`))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var created struct{ Key string }
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil || created.Key == "" {
		return nil, fmt.Errorf("creating an API key: %s %v", resp.Status, err)
	}
	e.apiKey = created.Key
	return e, nil
}

// baseline is the last plain run's cost per request; the gateway runs report
// their cost over it (with -count>1 the variants alternate).
var baseline struct{ ns, cpu, allocs, bytes float64 }

// cpuTime is the process's user+system CPU time: on a shared machine it
// varies far less than wall time (the upstream's share is the same in every
// variant, being in-process too).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type cost struct{ ns, cpu, allocs, bytes float64 }

// run serves b.N requests through srv and returns the cost per request.
func run(b *testing.B, srv *caddyhttp.Server, authorization string) cost {
	b.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/rest/api/3/myself", nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	serve := func() {
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req.Clone(req.Context()))
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "accountId") {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	serve() // warm the caches: the JWT and API key verification, the connection pool
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := cpuTime()
	b.ResetTimer()
	for range b.N {
		serve()
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&after)
	n := float64(b.N)
	c := cost{float64(b.Elapsed().Nanoseconds()) / n, float64(cpu.Nanoseconds()) / n,
		float64(after.Mallocs-before.Mallocs) / n, float64(after.TotalAlloc-before.TotalAlloc) / n}
	b.ReportMetric(c.cpu, "cpu-ns/op")
	return c
}

// BenchmarkRequest: plain Caddy's reverse_proxy, then the gateway with a
// cached JWT and with a cached API key (50 rules), and a JWT with 1,000 rules.
// The gateway runs report over-plain-ns/op and over-plain-allocs/op:
// atlasgate's own cost per request (the rest, Caddy's server and the
// reverse-proxy round trip, is common to both).
func BenchmarkRequest(b *testing.B) {
	e := setup(b)
	b.Run("plain", func(b *testing.B) {
		c := run(b, e.servers["plain"], "")
		baseline.ns, baseline.cpu, baseline.allocs, baseline.bytes = c.ns, c.cpu, c.allocs, c.bytes
	})
	for _, v := range []struct{ name, server, auth string }{
		{"gateway/jwt/rules=50", "gw50", "Bearer " + e.jwt},
		{"gateway/apikey/rules=50", "gw50", "Bearer " + e.apiKey},
		{"gateway/jwt/rules=1000", "gw1000", "Bearer " + e.jwt},
	} {
		b.Run(v.name, func(b *testing.B) {
			c := run(b, e.servers[v.server], v.auth)
			if baseline.ns > 0 {
				b.ReportMetric(c.ns-baseline.ns, "over-plain-ns/op")
				b.ReportMetric(c.cpu-baseline.cpu, "over-plain-cpu-ns/op")
				b.ReportMetric(c.allocs-baseline.allocs, "over-plain-allocs/op")
				b.ReportMetric(c.bytes-baseline.bytes, "over-plain-B/op")
			}
		})
	}
}
