package handover

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// serve runs a net/http server answering name on ln; idle receives each
// connection the server has finished a response on and is reading again.
func serve(ln net.Listener, name string, idle chan<- *conn) *http.Server {
	s := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, name+" "+r.Method)
		}),
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateIdle && idle != nil {
				go func() {
					cn := c.(*conn)
					// Idle for sure once its goroutine is blocked reading.
					for {
						cn.mu.Lock()
						r := cn.reading
						cn.mu.Unlock()
						if r {
							idle <- cn
							return
						}
						time.Sleep(time.Millisecond) // polls a condition; not a synchronisation by time
					}
				}()
			}
		},
	}
	go s.Serve(ln)
	return s
}

func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader, method string) string {
	t.Helper()
	body := ""
	if method == http.MethodPost {
		body = `{"fields":{"summary":"x"}}`
	}
	req, _ := http.NewRequest(method, "http://gateway/rest/api/3/issue", strings.NewReader(body))
	if err := req.Write(c); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatalf("%s on the kept-alive connection: %v", method, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return string(b)
}

// The old server's Shutdown closes a kept-alive connection between two
// requests; the client's next request — a POST, which no client retries —
// is answered by the newer server on the same connection.
func TestIdleKeptAliveConnectionMovesToNewerServer(t *testing.T) {
	w := &Wrapper{logger: zap.NewNop()}
	lnOld := listen(t)
	idle := make(chan *conn, 1)
	old := serve(w.WrapListener(lnOld), "old", idle)
	newer := serve(w.WrapListener(sameAddr{listen(t), lnOld.Addr()}), "new", nil)
	defer newer.Close()

	c, err := net.Dial("tcp", lnOld.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	if got := roundTrip(t, c, br, http.MethodGet); got != "old GET" {
		t.Fatalf("first answer %q", got)
	}
	<-idle
	before := HandedOver()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := old.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := roundTrip(t, c, br, http.MethodPost); got != "new POST" {
		t.Fatalf("answer after the old server shut down: %q, want the newer server's", got)
	}
	if HandedOver() != before+1 {
		t.Errorf("handed over %d connections, want 1", HandedOver()-before)
	}
}

// An upgraded connection (WebSocket) or one without a newer server closes
// when the server closes it, even while its reader waits.
func TestUpgradedConnectionIsNotMoved(t *testing.T) {
	w := &Wrapper{logger: zap.NewNop()}
	lnOld := listen(t)
	old := w.WrapListener(lnOld)
	newer := w.WrapListener(sameAddr{listen(t), lnOld.Addr()})
	defer newer.Close()
	client, err := net.Dial("tcp", lnOld.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	io.WriteString(client, "GET /ws HTTP/1.1\r\nHost: gateway\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	sc, err := old.Accept()
	if err != nil {
		t.Fatal(err)
	}
	cn := sc.(*conn)
	http.ReadRequest(bufio.NewReader(sc))
	io.WriteString(sc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	readDone := make(chan struct{})
	go func() { sc.Read(make([]byte, 10)); close(readDone) }()
	for {
		cn.mu.Lock()
		r := cn.reading
		cn.mu.Unlock()
		if r {
			break
		}
		time.Sleep(time.Millisecond) // polls a condition
	}
	old.Close()
	before := HandedOver()
	sc.Close()
	<-readDone
	got, _ := io.ReadAll(client)
	if !strings.HasPrefix(string(got), "HTTP/1.1 101") || HandedOver() != before {
		t.Fatalf("client read %q, handed over %d: the upgraded connection must just close", got, HandedOver()-before)
	}
}

// An HTTP/1.0 exchange, or one with Connection: close, ends with the close
// the client waits for (a close-delimited body ends there), even while a
// newer listener could take the connection.
func TestClosingExchangeStillCloses(t *testing.T) {
	for name, req := range map[string]string{
		"HTTP/1.0":          "GET /export HTTP/1.0\r\nHost: gateway\r\n\r\n",
		"Connection: close": "GET /export HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			w := &Wrapper{logger: zap.NewNop()}
			lnOld := listen(t)
			old := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "part one ")
				w.(http.Flusher).Flush() // length unknown from here on
				io.WriteString(w, "part two")
			})}
			go old.Serve(w.WrapListener(lnOld))
			defer old.Close()
			newer := serve(w.WrapListener(sameAddr{listen(t), lnOld.Addr()}), "new", nil)
			defer newer.Close()

			c, err := net.Dial("tcp", lnOld.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, req)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil || !strings.Contains(string(got), "part two") {
				t.Fatalf("client read %q, %v: want the whole answer and then the close", got, err)
			}
		})
	}
}
