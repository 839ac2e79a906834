// Package atlassim is an in-process stand-in for Atlassian's HTTP APIs: Jira and
// Confluence Cloud (site and api.atlassian.com /ex routing), the media host that
// attachment downloads redirect to, Bitbucket Cloud, the three Data Center
// products, and the OAuth 2.0 authorization server (3LO and service-account
// client credentials). The gateway's integration tests and the demo run
// against it.
//
// Each virtual host is its own TLS listener on loopback, because the facts the
// gateway must get right are host-level: which Host header and SNI it sends,
// which credential goes to which host, and that credentials never follow a
// redirect to another host. Every request is recorded so tests can assert on
// exactly what arrived.
package atlassim

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Virtual host names, used in Config.Addrs, URL, RateLimit.Host and Recorded.Host.
const (
	HostSite         = "site"          // https://acme.atlassian.net (Jira + Confluence Cloud)
	HostAPI          = "api"           // https://api.atlassian.com
	HostMedia        = "media"         // https://api.media.atlassian.com
	HostBitbucket    = "bitbucket"     // https://api.bitbucket.org
	HostJiraDC       = "jira-dc"       // Jira Data Center
	HostConfluenceDC = "confluence-dc" // Confluence Data Center
	HostBitbucketDC  = "bitbucket-dc"  // Bitbucket Data Center
	HostAuth         = "auth"          // https://auth.atlassian.com (OAuth 2.0 authorization server)
)

// hostNames lists every virtual host in start order. Adding a host means
// adding its name here and its router in Start.
var hostNames = []string{HostSite, HostAPI, HostMedia, HostBitbucket, HostJiraDC, HostConfluenceDC, HostBitbucketDC, HostAuth}

// maxRequestBody bounds how much of a request body handlers read.
const maxRequestBody = 8 << 20

// Config configures Start. The zero value is usable: ephemeral ports, no data,
// recording on.
type Config struct {
	// Clock returns the simulated time used for token expiry; nil means
	// time.Now. Tests move it to expire tokens without sleeping: pass a
	// ManualClock's Now, or move any clock forward with Sim.Advance.
	Clock func() time.Time
	// Addrs optionally fixes the listen address of a virtual host by name,
	// e.g. {"site": "127.0.0.1:9441"}; missing hosts listen on 127.0.0.1:0.
	Addrs map[string]string
	// Seed loads the demo data (see the Demo* constants).
	Seed bool
	// Logf, when set, receives one line per request.
	Logf func(format string, args ...any)
	// MaxRecorded is the size of the recorded-request ring buffer; default 10000.
	MaxRecorded int
	// Record enables request recording; nil means true. Benchmarks turn it off.
	Record *bool
	// AutoConsent makes the OAuth authorization server (HostAuth) skip the
	// consent page: /authorize redirects straight back with a code, as if
	// the consenting user (see ConsentAs) had pressed Accept. Also settable
	// per app (OAuthApp.AutoConsent) and at run time (SetAutoConsent).
	AutoConsent bool
	// OmitRefreshToken, when N > 0, makes every Nth successful refresh
	// response omit refresh_token, which Atlassian may do: the client must
	// keep the refresh token it holds, which then stays valid. 0 = never.
	// Also settable at run time (SetOmitRefreshToken).
	OmitRefreshToken int
}

// BearerAuthFunc validates a Bearer token presented at api.atlassian.com /ex
// routes and reports the account and scopes it carries. Tokens issued by the
// simulator's own authorization server (HostAuth) need no hook; one installed
// with SetBearerAuth sees only the tokens that server never issued.
type BearerAuthFunc func(token string) (accountID string, scopes []string, ok bool)

// Sim is a running simulator. All methods are safe for concurrent use.
type Sim struct {
	gzip    atomic.Bool // SetGzip
	cfg     Config
	pki     *pki
	rec     *recorder
	record  bool
	cloudID string
	// mediaKey signs media download tokens; random per run.
	mediaKey []byte
	hosts    map[string]*vhost
	wg       sync.WaitGroup
	// clockOffset (nanoseconds) is added to the clock by Advance.
	clockOffset atomic.Int64
	// oauth is the authorization server's state, with its own lock.
	oauth *oauthState

	mu         sync.RWMutex // guards everything below and the data in store.go
	bearerAuth BearerAuthFunc
	extra      map[string]*http.ServeMux
	rateLimits []*RateLimit
	data       store
}

// vhost is one simulated Atlassian host.
type vhost struct {
	name     string
	hostport string // the only Host header this host accepts
	url      string
	srv      *http.Server
	ln       net.Listener
	route    func(*call)
}

// Start generates the CA, opens every virtual host's listener and starts
// serving. Close releases everything.
func Start(cfg Config) (*Sim, error) {
	if cfg.MaxRecorded <= 0 {
		cfg.MaxRecorded = 10000
	}
	for name := range cfg.Addrs {
		if !isHost(name) {
			return nil, fmt.Errorf("atlassim: unknown virtual host %q in Addrs", name)
		}
	}
	p, err := newPKI()
	if err != nil {
		return nil, fmt.Errorf("atlassim: %w", err)
	}
	s := &Sim{
		cfg:      cfg,
		pki:      p,
		rec:      newRecorder(cfg.MaxRecorded),
		record:   cfg.Record == nil || *cfg.Record,
		cloudID:  DemoCloudID,
		mediaKey: []byte(randomHex(32)),
		hosts:    make(map[string]*vhost),
		extra:    make(map[string]*http.ServeMux),
		data:     newStore(),
		oauth:    newOAuthState(cfg),
	}
	routes := map[string]func(*call){
		HostSite:         s.routeSite,
		HostAPI:          s.routeAPI,
		HostMedia:        s.routeMedia,
		HostBitbucket:    s.routeBitbucket,
		HostJiraDC:       s.routeJiraDC,
		HostConfluenceDC: s.routeConfluenceDC,
		HostBitbucketDC:  s.routeBitbucketDC,
		HostAuth:         s.routeAuth,
	}
	errLog := log.New(io.Discard, "", 0) // TLS handshake noise from tests that distrust the CA
	if cfg.Logf != nil {
		errLog = log.New(logfWriter(cfg.Logf), "", 0)
	}
	for _, name := range hostNames {
		addr := cfg.Addrs[name]
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("atlassim: listening for %s on %s: %w", name, addr, err)
		}
		// The site answers as "localhost" so that clients send SNI (Go sends
		// none for IP literals) and tests can check it; the others use the IP.
		hostname := "127.0.0.1"
		if name == HostSite {
			hostname = "localhost"
		}
		vh := &vhost{
			name:     name,
			hostport: net.JoinHostPort(hostname, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)),
			ln:       ln,
			route:    routes[name],
		}
		vh.url = "https://" + vh.hostport
		vh.srv = &http.Server{
			Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serve(vh, w, r) }),
			TLSConfig:         &tls.Config{Certificates: []tls.Certificate{s.pki.leaf}, MinVersion: tls.VersionTLS12},
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          errLog,
		}
		s.hosts[name] = vh
	}
	if cfg.Seed {
		s.seed()
	}
	for _, vh := range s.hosts {
		s.wg.Go(func() { _ = vh.srv.ServeTLS(vh.ln, "", "") })
	}
	return s, nil
}

func isHost(name string) bool {
	for _, h := range hostNames {
		if h == name {
			return true
		}
	}
	return false
}

func (s *Sim) closeListeners() {
	for _, vh := range s.hosts {
		vh.ln.Close()
	}
}

// Close stops every virtual host immediately, dropping open connections.
func (s *Sim) Close() error {
	var errs []error
	for _, vh := range s.hosts {
		if err := vh.srv.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

// URL returns the base URL of a virtual host without a trailing slash, or ""
// for an unknown host name.
func (s *Sim) URL(host string) string {
	if vh, ok := s.hosts[host]; ok {
		return vh.url
	}
	return ""
}

// CloudID returns the site's cloudId (DemoCloudID).
func (s *Sim) CloudID() string { return s.cloudID }

func (s *Sim) now() time.Time {
	t := time.Now()
	if s.cfg.Clock != nil {
		t = s.cfg.Clock()
	}
	return t.Add(time.Duration(s.clockOffset.Load()))
}

// SetBearerAuth installs a validator for Bearer tokens at api.atlassian.com
// /ex routes that the built-in authorization server (HostAuth) did not
// issue. Without one, only that server's access tokens are accepted there.
func (s *Sim) SetBearerAuth(f BearerAuthFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bearerAuth = f
}

// Handle registers an extra handler on a virtual host, consulted before the
// built-in routes (after the Host check and rate limits, and recorded like any
// other request). pattern follows http.ServeMux syntax, e.g.
// "POST /oauth/token", and so can replace a built-in route (including the
// authorization server's on HostAuth and accessible-resources on HostAPI).
// Handlers may call SetPrincipal so the recorded request names the caller.
func (s *Sim) Handle(host, pattern string, h http.Handler) {
	s.mu.Lock()
	mux := s.extra[host]
	if mux == nil {
		mux = http.NewServeMux()
		s.extra[host] = mux
	}
	s.mu.Unlock()
	mux.Handle(pattern, h)
}

func (s *Sim) extraHandler(host string, r *http.Request) http.Handler {
	s.mu.RLock()
	mux := s.extra[host]
	s.mu.RUnlock()
	if mux == nil {
		return nil
	}
	if h, pattern := mux.Handler(r); pattern != "" {
		return h
	}
	return nil
}

type callKey struct{}

// SetPrincipal records, from inside a handler registered with Handle, who the
// request authenticated as and how ("basic", "bearer").
func SetPrincipal(r *http.Request, principal, authKind string) {
	if c, ok := r.Context().Value(callKey{}).(*call); ok {
		c.principal, c.authKind = principal, authKind
	}
}

// call carries one request through routing, authentication and the handler.
type call struct {
	s         *Sim
	vh        *vhost
	w         http.ResponseWriter
	r         *http.Request
	body      []byte
	path      string // path relative to the product (the /ex/... prefix stripped at api)
	base      string // absolute URL prefix for links the response contains
	product   string // "jira" or "confluence": selects the error shape
	viaEx     bool   // reached through api.atlassian.com/ex
	cloudID   string // the cloudId of an /ex route
	principal string
	authKind  string
	status    int
}

func (c *call) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.w.WriteHeader(code)
}

func (c *call) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return c.w.Write(b)
}

func (c *call) Header() http.Header { return c.w.Header() }

// serve is every virtual host's entry point: Host check, rate limits, then the
// extra handlers or the host's router, then recording.
func (s *Sim) serve(vh *vhost, w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxRequestBody))
	c := &call{s: s, vh: vh, w: w, body: body, path: r.URL.Path, base: vh.url}
	r = r.WithContext(context.WithValue(r.Context(), callKey{}, c))
	r.Body = io.NopCloser(bytes.NewReader(body))
	c.r = r
	c.authKind, _, _ = splitAuth(r.Header.Get("Authorization"))

	switch {
	case r.Host != vh.hostport:
		// Real Atlassian front ends route on Host; a gateway that forwards
		// the client's Host (or the wrong upstream's) must fail loudly.
		c.json(http.StatusMisdirectedRequest, map[string]any{
			"code":    http.StatusMisdirectedRequest,
			"message": fmt.Sprintf("Misdirected Request: this is %s, not %s", vh.hostport, r.Host),
		})
	case s.rateLimited(c):
	default:
		if h := s.extraHandler(vh.name, r); h != nil {
			h.ServeHTTP(c, r)
		} else {
			vh.route(c)
		}
	}
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if s.record {
		rec := Recorded{
			Host: vh.name, HostHeader: r.Host, Method: r.Method,
			Path: r.URL.Path, RawPath: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery,
			Header: r.Header.Clone(), Body: bytes.Clone(body[:min(len(body), maxRecordedBody)]),
			Principal: c.principal, AuthKind: c.authKind, Status: c.status,
		}
		if len(r.Trailer) > 0 {
			rec.Trailer = r.Trailer.Clone()
		}
		if r.TLS != nil {
			rec.SNI = r.TLS.ServerName
		}
		s.rec.add(rec)
	}
	if s.cfg.Logf != nil {
		s.cfg.Logf("%s %s %s -> %d principal=%q auth=%s", vh.name, r.Method, r.URL.RequestURI(), c.status, c.principal, c.authKind)
	}
}

// json writes v as an Atlassian-style JSON response.
func (c *call) json(status int, v any) {
	c.Header().Set("Content-Type", "application/json;charset=UTF-8")
	if status == http.StatusNoContent || v == nil {
		c.WriteHeader(status)
		return
	}
	c.jsonBody(status, v)
}

// decode parses the request body as JSON into v.
func (c *call) decode(v any) error { return json.Unmarshal(c.body, v) }

func logfWriter(logf func(string, ...any)) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		logf("%s", strings.TrimRight(string(p), "\n"))
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
