package itest

import (
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"
)

// retried counts the requests any RetryingClient sent a second time.
var retried atomic.Int64

// Retried returns how many requests RetryingClients of this test binary sent
// a second time: tests log it, to show how often the hand-over bit.
func Retried() int64 { return retried.Load() }

// RetryingClient is the HTTP client the operator guide recommends for calling
// the gateway across config reloads: an idempotent request (GET, HEAD,
// OPTIONS, or one carrying an Idempotency-Key) whose connection failed before
// any byte of a response arrived — EOF or ECONNRESET — is sent once more on a
// new connection. Any HTTP status is returned as it is, and a second failure
// is returned as the error.
//
// Two causes outside atlasgate make such failures possible on a brand-new
// connection during a reload, both reproduced with stock Caddy v2.11.9:
//   - Caddy hands the listener over with SO_REUSEPORT; a connection still
//     queued on the closing socket's accept queue is reset by the kernel
//     (ECONNRESET), unless net.ipv4.tcp_migrate_req=1 migrates it;
//   - Go's net/http Server.Shutdown closes, without a response, a connection
//     the old server accepted whose request it reads after Shutdown began
//     (server.go: `if c.server.shuttingDown() { return }` after readRequest),
//     which the client sees as EOF.
//
// The request never reached a handler in either case, so retrying it is safe.
func RetryingClient() *http.Client {
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &retryOnce{next: http.DefaultTransport.(*http.Transport).Clone()},
	}
}

type retryOnce struct{ next *http.Transport }

func (r *retryOnce) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err == nil || !idempotent(req) || !beforeResponse(err) {
		return resp, err
	}
	if req.Body != nil && req.Body != http.NoBody {
		if req.GetBody == nil {
			return nil, err
		}
		body, gerr := req.GetBody()
		if gerr != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.Body = body
	}
	retried.Add(1)
	return r.next.RoundTrip(req)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// transport (the goroutine count of a test includes its idle connections).
func (r *retryOnce) CloseIdleConnections() { r.next.CloseIdleConnections() }

func idempotent(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

// beforeResponse: the connection was closed (io.EOF) or reset (ECONNRESET)
// before any byte of the response; net/http wraps both, and a partial
// response would show as io.ErrUnexpectedEOF instead.
func beforeResponse(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}
