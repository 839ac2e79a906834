// Package logbuffer is the `atlasgate_buffered` log writer: it wraps another
// Caddy log writer (file, stderr, net…) with a buffer flushed on a short
// interval, so that an audit event per request costs a memory copy instead of
// a write system call.
//
// What it keeps and what it can lose: Caddy pools log writers by their key
// across config reloads, so a reload neither loses nor reorders buffered
// events; a clean stop closes the writer, which flushes it. A process killed
// with SIGKILL (or a machine that loses power) loses what was written in the
// last flush_interval — at most buffer_size bytes. That is the trade-off an
// operator chooses by using it; docs/operator-guide.md says so.
package logbuffer

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func init() {
	caddy.RegisterModule(Writer{})
}

// Defaults: a tenth of a second bounds what a crash loses and how late an
// event reaches a shipper tailing the file; 256 KiB holds about a thousand
// audit events, more than a busy gateway writes in that time.
const (
	defaultInterval = caddy.Duration(100 * time.Millisecond)
	defaultSize     = 256 << 10
)

// Writer is the `caddy.logging.writers.atlasgate_buffered` module.
type Writer struct {
	// The writer to buffer, e.g. {"output": "file", "filename": "…"} (the
	// key is "writer", as in a Caddy log, because "output" names this module).
	// Required.
	WriterRaw json.RawMessage `json:"writer,omitempty" caddy:"namespace=caddy.logging.writers inline_key=output"`
	// How often buffered events are written out. Default 100ms.
	FlushInterval caddy.Duration `json:"flush_interval,omitempty"`
	// Buffer size in bytes; a full buffer is written at once. Default 256 KiB.
	BufferSize int `json:"buffer_size,omitempty"`

	inner caddy.WriterOpener
}

// open holds the open buffered writers by key. Caddy shares a log writer
// between configurations but, in v2.11, never closes it when a configuration
// is unloaded (Logging.openLogs registers its cleanup on a copy of the
// context), so Cleanup — which Caddy does call — flushes it by key instead.
var open sync.Map // WriterKey → *buffered

// CaddyModule returns the Caddy module information.
func (Writer) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "caddy.logging.writers.atlasgate_buffered",
		New: func() caddy.Module { return new(Writer) },
	}
}

// Provision loads the inner writer and applies defaults.
func (w *Writer) Provision(ctx caddy.Context) error {
	if w.WriterRaw == nil {
		return fmt.Errorf("atlasgate_buffered: output: required (the writer to buffer, e.g. output file <path>; JSON: writer)")
	}
	mod, err := ctx.LoadModule(w, "WriterRaw")
	if err != nil {
		return fmt.Errorf("atlasgate_buffered: output: %v", err)
	}
	w.inner = mod.(caddy.WriterOpener)
	if w.FlushInterval == 0 {
		w.FlushInterval = defaultInterval
	}
	if w.BufferSize == 0 {
		w.BufferSize = defaultSize
	}
	return nil
}

// Validate checks the bounds.
func (w *Writer) Validate() error {
	if w.FlushInterval < 0 {
		return fmt.Errorf("atlasgate_buffered: flush_interval: must not be negative")
	}
	if w.BufferSize < 0 {
		return fmt.Errorf("atlasgate_buffered: buffer_size: must not be negative")
	}
	return nil
}

func (w *Writer) String() string { return "buffered " + w.inner.String() }

// WriterKey includes the inner writer's key, so Caddy shares one buffered
// writer per destination across reloads.
func (w *Writer) WriterKey() string {
	return fmt.Sprintf("atlasgate_buffered:%d:%d:%s", w.FlushInterval, w.BufferSize, w.inner.WriterKey())
}

// OpenWriter opens the inner writer and starts the flusher.
func (w *Writer) OpenWriter() (io.WriteCloser, error) {
	out, err := w.inner.OpenWriter()
	if err != nil {
		return nil, err
	}
	b := &buffered{key: w.WriterKey(), out: out, buf: bufio.NewWriterSize(out, w.BufferSize), stop: make(chan struct{}), done: make(chan struct{})}
	go b.flushEvery(time.Duration(w.FlushInterval))
	open.Store(b.key, b)
	return b, nil
}

// Cleanup runs when the configuration is unloaded (reload or stop, after the
// servers stopped): it writes out what is buffered, so a clean stop loses no
// event.
func (w *Writer) Cleanup() error {
	if w.inner == nil {
		return nil
	}
	if b, ok := open.Load(w.WriterKey()); ok {
		return b.(*buffered).Sync()
	}
	return nil
}

// buffered is the open writer. Zap writes one whole entry per Write call,
// so entries are never split between flushes.
type buffered struct {
	key  string
	mu   sync.Mutex
	out  io.WriteCloser
	buf  *bufio.Writer
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

func (b *buffered) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Sync writes out what is buffered (zap calls it for fatal entries).
func (b *buffered) Sync() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Flush()
}

func (b *buffered) flushEvery(d time.Duration) {
	defer close(b.done)
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = b.Sync()
		case <-b.stop:
			return
		}
	}
}

// Close stops the flusher, writes out the rest and closes the inner writer.
func (b *buffered) Close() error {
	var err error
	b.once.Do(func() {
		open.CompareAndDelete(b.key, b)
		close(b.stop)
		<-b.done
		err = b.Sync()
		if cerr := b.out.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// UnmarshalCaddyfile sets up the writer. Syntax:
//
//	output atlasgate_buffered {
//		output <writer> [<args…>] [{ … }]
//		flush_interval <duration>
//		buffer_size    <bytes>
//	}
func (w *Writer) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume writer name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "output":
			if !d.NextArg() {
				return d.ArgErr()
			}
			name := d.Val()
			var wo caddy.WriterOpener
			switch name {
			// Caddy's own writers live in the caddy package and have no
			// Caddyfile unmarshaler.
			case "stdout":
				wo = caddy.StdoutWriter{}
			case "stderr":
				wo = caddy.StderrWriter{}
			case "discard":
				wo = caddy.DiscardWriter{}
			default:
				unm, err := caddyfile.UnmarshalModule(d, "caddy.logging.writers."+name)
				if err != nil {
					return err
				}
				var ok bool
				if wo, ok = unm.(caddy.WriterOpener); !ok {
					return d.Errf("module %s is not a log writer", name)
				}
			}
			w.WriterRaw = caddyconfig.JSONModuleObject(wo, "output", name, nil)
		case "flush_interval":
			if !d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil {
				return d.Errf("flush_interval: %v", err)
			}
			w.FlushInterval = caddy.Duration(dur)
		case "buffer_size":
			if !d.NextArg() {
				return d.ArgErr()
			}
			var n int
			if _, err := fmt.Sscan(d.Val(), &n); err != nil || n <= 0 {
				return d.Errf("buffer_size: %q is not a positive number of bytes", d.Val())
			}
			w.BufferSize = n
		default:
			return d.Errf("atlasgate_buffered: unknown subdirective %q", d.Val())
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Writer)(nil)
	_ caddy.Validator       = (*Writer)(nil)
	_ caddy.CleanerUpper    = (*Writer)(nil)
	_ caddy.WriterOpener    = (*Writer)(nil)
	_ caddyfile.Unmarshaler = (*Writer)(nil)
)
