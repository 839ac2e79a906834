// Package adminload posts a config to Caddy's admin API (`POST /load`), as
// `caddy reload` does, for the tests and the reload soak.
//
// Caddy replaces its admin server on every config load, without a hand-over,
// so a /load sent right after the previous one can meet the closing admin
// socket: reset by the kernel, or read and dropped unanswered by net/http's
// Shutdown. Such a request was never processed, so it is sent again; each
// attempt uses a new connection, as `caddy reload` does.
package adminload

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"time"
)

var client = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}

// Attempts bounds the sends of one /load.
const Attempts = 5

// Post sends body (of the given content type, e.g. "text/caddyfile" or
// "application/json") to adminURL+"/load" and returns the status, the answer
// and how many times it was sent again after a connection-level error.
func Post(adminURL, contentType, body string) (status int, answer string, retried int, err error) {
	for attempt := 1; ; attempt++ {
		resp, err := client.Post(adminURL+"/load", contentType, strings.NewReader(body))
		if err != nil {
			if attempt < Attempts && ConnectionLevel(err) {
				retried++
				continue
			}
			return 0, "", retried, fmt.Errorf("POST %s/load: %w", adminURL, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b), retried, err
	}
}

// ConnectionLevel reports an error that happened before any byte of a
// response: the connection was refused, reset or closed.
func ConnectionLevel(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
