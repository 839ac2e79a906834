package handover

import (
	"net"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

const (
	// rescueQueue bounds the connections waiting for the newer listener;
	// beyond it a rescued connection is closed as it would have been anyway.
	rescueQueue = 256
	// maxRecorded bounds what a connection keeps of what it read before its
	// first write: a request head fits easily; a connection that read more
	// without answering is not replayed.
	maxRecorded = 64 << 10
)

// hubs holds one hub per listen address, shared by every configuration that
// listens there, so it outlives the reload that hands connections over.
var hubs = caddy.NewUsagePool()

// hub is what the listeners of one address share: which of them are open,
// and the connections handed from an outgoing listener to a newer one.
type hub struct {
	mu        sync.Mutex
	listeners []*listener // open, oldest first
	rescued   chan net.Conn
}

func (h *hub) add(l *listener) {
	h.mu.Lock()
	h.listeners = append(h.listeners, l)
	h.mu.Unlock()
}

func (h *hub) remove(l *listener) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, o := range h.listeners {
		if o == l {
			h.listeners = append(h.listeners[:i], h.listeners[i+1:]...)
			return
		}
	}
}

// newerThan reports whether a listener opened after l is still open: only
// then is there a server to hand l's connections to.
func (h *hub) newerThan(l *listener) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, o := range h.listeners {
		if o == l {
			return i < len(h.listeners)-1
		}
	}
	// l is closed already: any open listener is newer.
	return len(h.listeners) > 0
}

// handOver queues c for a newer listener; false when the queue is full.
func (h *hub) handOver(c net.Conn) bool {
	select {
	case h.rescued <- c:
		return true
	default:
		return false
	}
}

// Destruct runs when the last configuration using the address is gone;
// connections still queued then have no server left.
func (h *hub) Destruct() error {
	for {
		select {
		case c := <-h.rescued:
			c.Close()
		default:
			return nil
		}
	}
}

// listener accepts from its own socket and from the hub's queue of
// connections handed over by older listeners.
type listener struct {
	net.Listener
	hub      *hub
	key      string
	logger   *zap.Logger
	accepted chan net.Conn
	acceptEr atomic.Value // error that ended acceptLoop
	done     chan struct{}
	close    sync.Once
	closed   atomic.Bool
}

func (l *listener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			l.acceptEr.Store(errBox{err})
			close(l.accepted)
			return
		}
		select {
		case l.accepted <- c:
		case <-l.done:
			// Accepted as this listener closed: a newer one may serve it.
			if !l.hub.newerThan(l) || !l.hub.handOver(c) {
				c.Close()
			}
		}
	}
}

type errBox struct{ error }

// Accept returns the next connection of either kind. Connections from the
// hub are taken only while this listener is open, so a closing server never
// takes a connection it would drop.
func (l *listener) Accept() (net.Conn, error) {
	select {
	case c, ok := <-l.accepted:
		if !ok {
			return nil, l.acceptErr()
		}
		return newConn(c, l), nil
	case c := <-l.hub.rescued:
		if l.closed.Load() {
			if !l.hub.handOver(c) {
				c.Close()
			}
			return nil, net.ErrClosed
		}
		// Wrapped again: should this server be replaced before it answers,
		// the connection moves on once more.
		return newConn(c, l), nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *listener) acceptErr() error {
	if b, ok := l.acceptEr.Load().(errBox); ok {
		return b.error
	}
	return net.ErrClosed
}

// Close closes the socket and leaves the address's hub.
func (l *listener) Close() error {
	var err error
	l.close.Do(func() {
		l.closed.Store(true)
		close(l.done)
		err = l.Listener.Close()
		l.hub.remove(l)
		_, _ = hubs.Delete(l.key)
	})
	return err
}

// handedOver counts replayed connections (for tests and the reload soak).
var handedOver atomic.Int64

// HandedOver reports how many connections this process handed over.
func HandedOver() int64 { return handedOver.Load() }

// replayed is a handed-over connection: it first returns what the old server
// had read, then reads on.
type replayed struct {
	net.Conn
	pending []byte
}

func (r *replayed) Read(p []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(p, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	return r.Conn.Read(p)
}
