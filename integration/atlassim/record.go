package atlassim

import (
	"net/http"
	"slices"
	"sync"
)

// maxRecordedBody caps how much of each request body is kept, so a test that
// uploads something large cannot make the simulator hold it indefinitely.
const maxRecordedBody = 1 << 20

// Recorded is one request as the simulator saw it. Tests use it to prove what
// the gateway actually sent upstream: which Host and SNI, which credential
// (Principal, AuthKind) and which headers survived.
type Recorded struct {
	Host       string // virtual host name (HostSite, HostAPI, ...)
	HostHeader string // r.Host as received
	SNI        string // TLS server name; empty when the client dialled an IP (Go sends no SNI for IPs)
	Method     string
	Path       string // r.URL.Path
	RawPath    string // r.URL.EscapedPath()
	RawQuery   string
	Header     http.Header // clone of the request headers
	Body       []byte      // at most 1 MiB
	Trailer    http.Header // request trailers as received, nil when none
	// Principal is who the request authenticated as: an accountId (Cloud), a
	// username (Data Center), "bb-access-token:<workspace>", or "" when no
	// credential was presented or it failed.
	Principal string
	// AuthKind is the scheme of the Authorization header presented ("basic",
	// "bearer", or "other" for any other scheme), whether or not it was
	// valid; "" when none arrived. The media
	// host needs no credential, so a non-empty AuthKind there means a
	// credential leaked across hosts.
	AuthKind string
	Status   int // status the simulator answered
}

// recorder is a fixed-size ring buffer: benchmarks push millions of requests
// through the simulator, so memory must stay bounded.
type recorder struct {
	mu    sync.Mutex
	buf   []Recorded
	start int // index of the oldest entry
	n     int // number of valid entries
}

func newRecorder(size int) *recorder { return &recorder{buf: make([]Recorded, size)} }

func (r *recorder) add(rec Recorded) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.buf) == 0 {
		return
	}
	if r.n < len(r.buf) {
		r.buf[(r.start+r.n)%len(r.buf)] = rec
		r.n++
		return
	}
	r.buf[r.start] = rec
	r.start = (r.start + 1) % len(r.buf)
}

func (r *recorder) list(keep func(*Recorded) bool) []Recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Recorded, 0, r.n)
	for i := range r.n {
		rec := &r.buf[(r.start+i)%len(r.buf)]
		if keep == nil || keep(rec) {
			c := *rec
			c.Header = rec.Header.Clone()
			c.Body = slices.Clone(rec.Body)
			c.Trailer = rec.Trailer.Clone()
			out = append(out, c)
		}
	}
	return out
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.buf)
	r.start, r.n = 0, 0
}

// Requests returns a copy of the recorded requests, oldest first. Only the
// last Config.MaxRecorded requests are kept.
func (s *Sim) Requests() []Recorded { return s.rec.list(nil) }

// RequestsTo returns the recorded requests to one virtual host, oldest first.
func (s *Sim) RequestsTo(host string) []Recorded {
	return s.rec.list(func(r *Recorded) bool { return r.Host == host })
}

// ResetRequests forgets every recorded request, typically between subtests.
func (s *Sim) ResetRequests() { s.rec.reset() }
