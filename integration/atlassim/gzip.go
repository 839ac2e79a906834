package atlassim

import (
	"compress/gzip"
	"encoding/json"
	"net/http"
	"strings"
)

// SetGzip makes JSON answers gzip-compressed when the request accepts gzip,
// as Atlassian's front ends do (off by default, so that tests and benchmarks
// that read raw bodies are not surprised).
func (s *Sim) SetGzip(on bool) { s.gzip.Store(on) }

// jsonBody writes the status and v as JSON, compressed when SetGzip is on and
// the client accepts gzip.
func (c *call) jsonBody(status int, v any) {
	if !c.s.gzip.Load() || !acceptsGzip(c.r) {
		c.WriteHeader(status)
		_ = json.NewEncoder(c).Encode(v)
		return
	}
	c.Header().Set("Content-Encoding", "gzip")
	c.Header().Add("Vary", "Accept-Encoding")
	c.WriteHeader(status)
	zw := gzip.NewWriter(c)
	_ = json.NewEncoder(zw).Encode(v)
	_ = zw.Close()
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") && strings.ReplaceAll(params, " ", "") != "q=0" {
			return true
		}
	}
	return false
}
