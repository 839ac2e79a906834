// Package handover is the `atlasgate_handover` listener wrapper: it hands a
// new connection that the outgoing configuration accepted but will not answer
// to the incoming configuration, so a config reload drops no request.
//
// Why it exists (reproduced with stock Caddy v2.11.9, see docs/operator-guide.md
// "Reloads"): on a reload Caddy starts the new servers, then calls
// http.Server.Shutdown on the old ones. Go's server closes, without a
// response, every connection whose request it reads after Shutdown began
// (net/http: `if c.server.shuttingDown() { return }` right after readRequest).
// A client that had just opened that connection sees EOF and, since the
// connection was new, Go's and most other HTTP clients do not retry. This
// wrapper sees that close — nothing was ever written on the connection, the
// client sent no error, and a newer listener for the same address is open —
// and instead of closing the socket it queues it, with the bytes the old
// server already read, for the newer listener's Accept. The new server then
// reads the same request from the start and answers it.
//
// What it cannot fix: a connection that the kernel queued on the old socket
// and that nobody accepted before Caddy closed it (SO_REUSEPORT hand-over) is
// reset by the kernel unless net.ipv4.tcp_migrate_req=1, which Provision
// checks and warns about; and a TLS connection whose handshake the old server
// already answered (the wrapper sits before `tls`, where bytes were written).
package handover

import (
	"net"
	"os"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Wrapper{})
}

// Wrapper is the `caddy.listeners.atlasgate_handover` listener wrapper. It has
// no options. Put it before `tls` in a server's listener_wrappers (Caddy puts
// wrappers listed without `tls` after it, where this one would not see the raw
// connection).
type Wrapper struct {
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Wrapper) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "caddy.listeners.atlasgate_handover",
		New: func() caddy.Module { return new(Wrapper) },
	}
}

// migrateReqPath is the kernel switch that moves connections queued on a
// closing SO_REUSEPORT socket to another socket of the group instead of
// resetting them. A variable so tests can point it elsewhere.
var migrateReqPath = "/proc/sys/net/ipv4/tcp_migrate_req"

var warnOnce sync.Once

// Provision keeps the logger and warns, once per process, when the kernel
// will reset connections queued on a closing listener.
func (w *Wrapper) Provision(ctx caddy.Context) error {
	w.logger = ctx.Logger()
	if b, err := os.ReadFile(migrateReqPath); err == nil && strings.TrimSpace(string(b)) == "0" {
		warnOnce.Do(func() {
			w.logger.Warn("net.ipv4.tcp_migrate_req is 0: a new connection queued on the old listener when a reload closes it is reset by the kernel; set it to 1 (sysctl, or the pod's securityContext.sysctls) to hand those over too")
		})
	}
	return nil
}

// WrapListener registers ln as the newest listener of its address.
func (w *Wrapper) WrapListener(ln net.Listener) net.Listener {
	key := ln.Addr().Network() + "/" + ln.Addr().String()
	v, _, _ := hubs.LoadOrNew(key, func() (caddy.Destructor, error) {
		return &hub{rescued: make(chan net.Conn, rescueQueue)}, nil
	})
	l := &listener{Listener: ln, hub: v.(*hub), key: key, logger: w.logger,
		accepted: make(chan net.Conn), done: make(chan struct{})}
	l.hub.add(l)
	go l.acceptLoop()
	return l
}

// UnmarshalCaddyfile sets up the wrapper. Syntax:
//
//	atlasgate_handover
func (w *Wrapper) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume wrapper name
	if d.NextArg() || d.NextBlock(0) {
		return d.Err("atlasgate_handover takes no options")
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Wrapper)(nil)
	_ caddy.ListenerWrapper = (*Wrapper)(nil)
	_ caddyfile.Unmarshaler = (*Wrapper)(nil)
)
