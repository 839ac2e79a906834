package handover

import (
	"bytes"
	"io"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"
)

// conn watches a connection's bytes so that it can move to a newer server in
// the two moments a reload would otherwise lose a request on it:
//
//   - unanswered: the server closes it without having answered what it read
//     since the connection opened or since its last complete response — the
//     request net/http reads after Shutdown began and drops. What it read is
//     replayed to the newer server.
//   - between requests: the old server closes a kept-alive connection after a
//     complete response (net/http does so for every connection once Shutdown
//     began, and closeIdleConns closes the idle ones), while the client may
//     already be writing its next request, which HTTP/1.1 would lose (a POST
//     is not retried). A response is complete when net/http clears the write
//     deadline (`c.rwc.SetWriteDeadline(time.Time{})` right after
//     finishRequest — never after an aborted response); if nothing was read
//     since, the connection sits between two requests. A reader blocked on it
//     is woken with a past deadline, and what it read meanwhile is kept for
//     the newer server.
//
// After a response only HTTP/1 connections move: TLS (this wrapper sits before
// `tls`), HTTP/2 prior knowledge and upgraded ones (101 Switching Protocols:
// WebSocket) never do, since their bytes mean nothing to a fresh server.
type conn struct {
	net.Conn
	owner *listener

	mu         sync.Mutex
	readEnded  *sync.Cond // signalled when a Read returns
	recorded   []byte     // read since the start or the last complete response
	spoiled    bool       // wrote, read an error, or read too much since then: no replay
	closed     bool
	first      []byte // up to the first 3 bytes read: is it HTTP/1?
	reading    bool   // a Read is blocked in the socket
	wrote      bool   // anything was ever written
	boundary   bool   // a response completed and nothing was written since
	carry      []byte // the next request's first byte, taken by net/http's background read
	upgraded   bool   // wrote 101 Switching Protocols
	responding bool   // a response is being written
	keepAlive  bool   // that response leaves the connection open
	handingOff bool   // Close is taking the connection from its reader
	stash      []byte
}

func newConn(c net.Conn, owner *listener) *conn {
	cn := &conn{Conn: c, owner: owner}
	cn.readEnded = sync.NewCond(&cn.mu)
	return cn
}

// aLongTimeAgo wakes a blocked Read at once (as net/http itself does).
var aLongTimeAgo = time.Unix(1, 0)

func (c *conn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if c.handingOff {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	c.reading = true
	c.mu.Unlock()

	n, err := c.Conn.Read(p)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.reading = false
	c.readEnded.Broadcast()
	if c.handingOff {
		// Taken by Close for a newer server: these bytes are its.
		c.stash = append(c.stash, p[:n]...)
		return 0, net.ErrClosed
	}
	if len(c.first) < 3 {
		c.first = append(c.first, p[:min(n, 3-len(c.first))]...)
	}
	if len(p) == 1 && n == 1 {
		// net/http's background read (the only 1-byte read it does) took,
		// during a handler, the first byte of the next request, which it
		// now holds itself: that byte starts the next recording.
		c.carry = append(c.carry[:0], p[0])
	}
	if !c.spoiled {
		if err != nil || len(c.recorded)+n > maxRecorded {
			c.spoil()
		} else {
			c.recorded = append(c.recorded, p[:n]...)
		}
	}
	return n, err
}

func (c *conn) Write(p []byte) (int, error) {
	c.markWritten(p)
	return c.Conn.Write(p)
}

// ReadFrom keeps the kernel's sendfile/splice path for file responses.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	c.markWritten(nil)
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(c.Conn, r)
}

// CloseWrite lets net/http send its FIN before lingering on a bad request.
func (c *conn) CloseWrite() error {
	c.markWritten(nil)
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// markWritten notes a write of p (nil: bytes it cannot see). The first
// write of a response decides whether the connection may move after it:
// only when request and response both keep it alive — after an HTTP/1.0
// exchange or a `Connection: close` the client waits for the close itself
// (a close-delimited body ends with it), so it must happen.
func (c *conn) markWritten(p []byte) {
	c.mu.Lock()
	if !c.responding && !interim(p) {
		c.responding = true
		c.keepAlive = !c.spoiled && keepsAlive(c.recorded, false) && keepsAlive(p, true)
		c.upgraded = c.upgraded || bytes.HasPrefix(p, []byte("HTTP/1.1 101 ")) || bytes.HasPrefix(p, []byte("HTTP/1.0 101 "))
	}
	c.spoil()
	c.wrote, c.boundary = true, false
	c.mu.Unlock()
}

// interim reports a 1xx response other than 101 (100 Continue): the final
// response follows on the same exchange.
func interim(p []byte) bool {
	return len(p) > 12 && bytes.HasPrefix(p, []byte("HTTP/1.1 1")) && !bytes.HasPrefix(p, []byte("HTTP/1.1 101"))
}

// keepsAlive reports whether an HTTP/1.1 request or response head, whole at
// the start of msg, leaves the connection open: version 1.1 and no
// `Connection: close`. Anything it cannot read says no.
func keepsAlive(msg []byte, response bool) bool {
	end := bytes.Index(msg, []byte("\r\n\r\n"))
	if end < 0 {
		return false
	}
	head := msg[:end+2]
	nl := bytes.IndexByte(head, '\n')
	line := bytes.TrimSuffix(head[:nl], []byte("\r"))
	if response && !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) || !response && !bytes.HasSuffix(line, []byte(" HTTP/1.1")) {
		return false
	}
	for rest := head[nl+1:]; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		field := rest[:i]
		rest = rest[i+1:]
		const name = "connection:"
		if len(field) > len(name) && bytes.EqualFold(field[:len(name)], []byte(name)) && containsFold(field[len(name):], "close") {
			return false
		}
	}
	return true
}

// containsFold is a case-insensitive bytes.Contains without allocating.
func containsFold(b []byte, sub string) bool {
	for i := 0; i+len(sub) <= len(b); i++ {
		if bytes.EqualFold(b[i:i+len(sub)], []byte(sub)) {
			return true
		}
	}
	return false
}

// SetWriteDeadline passes through; a zero deadline is net/http marking a
// response complete (see conn).
func (c *conn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() {
		c.markBoundary()
	}
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline clears the write deadline too.
func (c *conn) SetDeadline(t time.Time) error {
	if t.IsZero() {
		c.markBoundary()
	}
	return c.Conn.SetDeadline(t)
}

// markBoundary notes a complete response: recording starts again.
func (c *conn) markBoundary() {
	c.mu.Lock()
	c.boundary, c.spoiled, c.recorded = true, false, append(c.recorded[:0], c.carry...)
	c.carry, c.responding = c.carry[:0], false
	c.mu.Unlock()
}

// spoil is called with mu held.
func (c *conn) spoil() {
	c.spoiled = true
	// Keep a small buffer for the next request (no allocation per request on
	// a kept-alive connection); let a large one go.
	if cap(c.recorded) <= 4<<10 {
		c.recorded = c.recorded[:0]
	} else {
		c.recorded = nil
	}
}

// http1 reports whether the connection speaks HTTP/1 (a method's capital
// letters), not TLS or HTTP/2's "PRI" preface. Called with mu held.
func (c *conn) http1() bool {
	return len(c.first) > 0 && c.first[0] >= 'A' && c.first[0] <= 'Z' && !bytes.Equal(c.first, []byte("PRI"))
}

// Close hands the connection to a newer listener when it is unanswered or
// between requests (see conn) and one is open; otherwise it closes it.
func (c *conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	// At the start of the connection anything goes (a TLS ClientHello
	// replays as well as a request); after a response only HTTP/1 without
	// an upgrade, kept alive by both sides, has a message boundary the newer
	// server can use.
	movable := !c.spoiled && (!c.wrote || c.boundary && c.keepAlive && c.http1() && !c.upgraded)
	if movable && c.owner.hub.newerThan(c.owner) {
		c.handingOff = true
		if c.reading {
			c.mu.Unlock()
			_ = c.Conn.SetReadDeadline(aLongTimeAgo)
			c.mu.Lock()
			for c.reading {
				c.readEnded.Wait()
			}
		}
		pending := append(c.recorded, c.stash...)
		c.recorded, c.stash = nil, nil
		c.mu.Unlock()
		_ = c.Conn.SetReadDeadline(time.Time{})
		return c.handOver(pending)
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// handOver queues the raw connection, with the bytes to read first, for the
// newer listener; when the queue is full it closes it as the server meant to.
func (c *conn) handOver(pending []byte) error {
	// The newer server sets its own deadlines; none of the old one's stays.
	_ = c.Conn.SetDeadline(time.Time{})
	if !c.owner.hub.handOver(&replayed{Conn: c.Conn, pending: pending}) {
		return c.Conn.Close()
	}
	if ce := c.owner.logger.Check(zap.DebugLevel, "connection handed to the newer configuration"); ce != nil {
		ce.Write(zap.String("remote", c.RemoteAddr().String()), zap.Int("replayed_bytes", len(pending)))
	}
	handedOver.Add(1)
	return nil
}
