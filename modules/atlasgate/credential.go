package atlasgate

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
)

// Credential is implemented by the guest modules of the `atlasgate.credentials`
// namespace. A credential knows where its requests go (it owns the upstream, so a
// credential can never be sent to a host it was not configured for) and how to
// authenticate them.
type Credential interface {
	// Target returns the upstream base for a client request path: scheme, host and
	// a path prefix to put before the client's path (for example
	// `https://api.atlassian.com/ex/jira/<cloudId>`). An *UnavailableError means
	// the credential cannot be used right now.
	Target(ctx context.Context, path string) (*url.URL, error)

	// Origins lists every origin (scheme and host:port) that Target can return.
	// The gateway injects the credential into requests to these origins only.
	Origins() []*url.URL

	// Home is the base URL that clients address as the gateway's root: the
	// Atlassian site or Data Center base URL. Redirects to it are mapped back to
	// the gateway.
	Home() *url.URL

	// Inject adds the credential to an outgoing request. It runs after every
	// other header change, immediately before the request is written upstream.
	Inject(req *http.Request) error

	// RootCAs returns the certificate pool that upstream TLS connections of this
	// credential must chain to; nil means the system roots.
	RootCAs() *x509.CertPool
}

// UnavailableError reports a credential that cannot be used right now. The
// gateway answers 503 with the credential's name, the reason and the remedy;
// neither may hold a secret.
type UnavailableError struct {
	Credential string
	Reason     string
	Remedy     string
	Err        error

	// Status and Code override the answer's 503 and `credential_unavailable`
	// when the caller can act: e.g. 403 `authorization_required` for a
	// per-user credential the caller has not authorized yet.
	Status int
	Code   string
	// Link is where the caller can act (the console), if anywhere.
	Link string
	// Awaiting marks a credential nobody has authorized yet: a state the
	// console, the admin API and the metrics already show, so each request
	// that meets it is not logged above debug (no log flood until someone
	// presses Authorize).
	Awaiting bool
}

func (e *UnavailableError) Error() string {
	msg := fmt.Sprintf("credential %q is unavailable: %s", e.Credential, e.Reason)
	if e.Err != nil {
		// For logs: the cause (connection refused, HTTP 404, TLS failure, …).
		// Client answers use Reason and Remedy only.
		msg += ": " + e.Err.Error()
	}
	if e.Remedy != "" {
		msg += "; " + e.Remedy
	}
	return msg
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// Refresher is implemented by credentials whose token can go stale before its
// expiry (OAuth: a grant refreshed elsewhere, a revoked access token). When
// the upstream answers 401, the gateway calls Reauthenticate once to refresh
// and set a new credential on req, and replays the request if it can.
type Refresher interface {
	Reauthenticate(req *http.Request) error
}

// ReplayObserver is implemented by Refreshers that bound futile refreshes:
// the gateway tells it when a request replayed after Reauthenticate was
// refused (401) again, i.e. the refresh did not help.
type ReplayObserver interface {
	ReplayRefused(req *http.Request)
}
