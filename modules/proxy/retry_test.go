package proxy

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
)

// refusingCred is a credential whose refresh after a 401 fails with err.
type refusingCred struct{ err error }

func (refusingCred) Target(context.Context, string) (*url.URL, error) { return nil, nil }
func (refusingCred) Origins() []*url.URL                              { return nil }
func (refusingCred) Home() *url.URL                                   { return nil }
func (refusingCred) RootCAs() *x509.CertPool                          { return nil }
func (refusingCred) Inject(*http.Request) error                       { return nil }
func (c refusingCred) Reauthenticate(*http.Request) error             { return c.err }

// Defects 5 and 6 of issue 9: when the 401's refresh fails because the grant
// is dead or storage is unreachable, the client gets the gateway's answer
// naming the credential and the cause, not the upstream's bare 401; only a
// refresh refused for being futile lets the upstream's 401 through.
func TestUnauthorizedWithFailedRefresh(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		want503  bool
		contains string
	}{
		{"revoked grant", &atlasgate.UnavailableError{Reason: "it must be authorized again: invalid_grant"}, true, "authorized again"},
		{"storage unreachable", &atlasgate.UnavailableError{Reason: "its token set could not be read from storage"}, true, "storage"},
		{"futile refresh", errors.New("too many futile forced refreshes"), false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &injectingTransport{name: "jira", cred: refusingCred{tc.err}}
			req := httptest.NewRequest(http.MethodGet, "https://api.example/rest/api/3/myself", nil)
			upstream := &http.Response{StatusCode: http.StatusUnauthorized, Body: io.NopCloser(strings.NewReader(`{"code":401}`)), Header: http.Header{}}
			resp, err := tr.retryUnauthorized(req, upstream)
			var ue *atlasgate.UnavailableError
			if tc.want503 {
				if !errors.As(err, &ue) || !strings.Contains(ue.Reason, tc.contains) {
					t.Fatalf("got %v, %v; want the credential's unavailable error", resp, err)
				}
				return
			}
			if err != nil || resp != upstream {
				t.Fatalf("got %v, %v; want the upstream's 401", resp, err)
			}
		})
	}
}
