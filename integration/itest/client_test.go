package itest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// dropping is a server that closes the first `drops` connections right after
// reading the request, before any response byte — what a client sees as EOF
// when a reload's old server shuts down — and answers the rest with 200.
func dropping(t *testing.T, drops int64) (*httptest.Server, *atomic.Int64) {
	var seen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen.Add(1) <= drops {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			conn.Close()
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

func TestRetryingClientRetriesAnIdempotentRequestOnce(t *testing.T) {
	srv, seen := dropping(t, 1)
	resp, err := RetryingClient().Get(srv.URL)
	if err != nil {
		t.Fatalf("GET after one dropped connection: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || seen.Load() != 2 {
		t.Fatalf("status %d after %d requests, want 200 after 2", resp.StatusCode, seen.Load())
	}

	// A write with an Idempotency-Key is retried with its body.
	srv, seen = dropping(t, 1)
	req, _ := http.NewRequest(http.MethodPut, srv.URL, strings.NewReader(`{"a":1}`))
	req.Header.Set("Idempotency-Key", "k1")
	if resp, err = RetryingClient().Do(req); err != nil || resp.StatusCode != 200 || seen.Load() != 2 {
		t.Fatalf("PUT with Idempotency-Key: %v after %d requests", err, seen.Load())
	}
	resp.Body.Close()
}

func TestRetryingClientFailsOnSecondFailureAndNeverRetriesWrites(t *testing.T) {
	srv, seen := dropping(t, 2)
	if _, err := RetryingClient().Get(srv.URL); err == nil || seen.Load() != 2 {
		t.Fatalf("two dropped connections: err %v after %d requests, want an error after 2", err, seen.Load())
	}

	srv, seen = dropping(t, 1)
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(`{}`))
	if _, err := RetryingClient().Do(req); err == nil || seen.Load() != 1 {
		t.Fatalf("POST without Idempotency-Key: err %v after %d requests, want an error after 1", err, seen.Load())
	}
}

func TestRetryingClientReturnsStatusesAsTheyAre(t *testing.T) {
	var seen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer srv.Close()
	resp, err := RetryingClient().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || seen.Load() != 1 {
		t.Fatalf("status %d after %d requests, want 502 after 1", resp.StatusCode, seen.Load())
	}
}
