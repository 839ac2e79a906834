package handover

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"
)

// sameAddr makes a second socket look like the first one's address, as the
// fresh SO_REUSEPORT socket of a reload does.
type sameAddr struct {
	net.Listener
	addr net.Addr
}

func (s sameAddr) Addr() net.Addr { return s.addr }

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

const request = "GET /rest/api/3/myself HTTP/1.1\r\nHost: gateway\r\n\r\n"

// An old server that read a request and closed the connection unanswered (as
// net/http does after Shutdown began) hands it to the newer listener, which
// reads the same request and answers on the same client connection.
func TestUnansweredConnectionIsHandedToNewerListener(t *testing.T) {
	w := &Wrapper{logger: zap.NewNop()}
	lnOld := listen(t)
	old := w.WrapListener(lnOld)
	defer old.Close()
	newer := w.WrapListener(sameAddr{listen(t), lnOld.Addr()})
	defer newer.Close()

	client, err := net.Dial("tcp", lnOld.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	io.WriteString(client, request)

	c, err := old.Accept()
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil || req.URL.Path != "/rest/api/3/myself" {
		t.Fatalf("old server read %v, %v", req, err)
	}
	before := HandedOver()
	old.Close() // the old configuration is shutting down...
	c.Close()   // ...and drops the request it read

	c2, err := newer.Accept()
	if err != nil {
		t.Fatal(err)
	}
	req2, err := http.ReadRequest(bufio.NewReader(c2))
	if err != nil || req2.URL.Path != "/rest/api/3/myself" || req2.Host != "gateway" {
		t.Fatalf("newer server read %v, %v", req2, err)
	}
	io.WriteString(c2, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
	c2.Close()
	resp, err := http.ReadResponse(bufio.NewReader(client), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("client got %v, %v; want the newer server's 200", resp, err)
	}
	if HandedOver() != before+1 {
		t.Errorf("handed over %d connections, want 1", HandedOver()-before)
	}
}

// A connection the server has written to, or one with no newer listener to
// take it, closes as usual: the client sees exactly what the server did.
func TestAnsweredOrLastConnectionCloses(t *testing.T) {
	cases := []struct {
		name   string
		newer  bool
		answer bool
	}{
		{"no newer listener", false, false},
		{"answered", true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := &Wrapper{logger: zap.NewNop()}
			lnOld := listen(t)
			old := w.WrapListener(lnOld)
			defer old.Close()
			if tc.newer {
				n := w.WrapListener(sameAddr{listen(t), lnOld.Addr()})
				defer n.Close()
			}
			client, err := net.Dial("tcp", lnOld.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			io.WriteString(client, request)
			c, err := old.Accept()
			if err != nil {
				t.Fatal(err)
			}
			http.ReadRequest(bufio.NewReader(c))
			if tc.answer {
				io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
			}
			before := HandedOver()
			c.Close()
			got, _ := io.ReadAll(client)
			if tc.answer != strings.HasPrefix(string(got), "HTTP/1.1 204") {
				t.Fatalf("client read %q", got)
			}
			if HandedOver() != before {
				t.Fatal("connection was handed over")
			}
		})
	}
}

func TestCaddyfile(t *testing.T) {
	for in, wantErr := range map[string]bool{
		"atlasgate_handover":            false,
		"atlasgate_handover now":        true,
		"atlasgate_handover {\n x\n}\n": true,
	} {
		err := new(Wrapper).UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		if (err != nil) != wantErr || (err != nil && !strings.Contains(err.Error(), "atlasgate_handover takes no options")) {
			t.Errorf("%q: error %v, want error %v", in, err, wantErr)
		}
	}
}
