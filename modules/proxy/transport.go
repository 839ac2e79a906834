package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
)

// routeInfo travels in the request context from the handler to the transport.
type routeInfo struct {
	target *url.URL // upstream base, with the path prefix the handler added
	origin string   // originKey(target)
	home   *url.URL // the site the client addresses as the gateway root
	mount  string   // the path prefix under which the client addressed the gateway
	// holdMax caps a hold-back set from this request's response; 0: off.
	holdMax time.Duration
	holds   *holds
	links   *linkRewriter // nil: answers are not rewritten
	held    string        // what a hold applies to (holdName)
}

type routeInfoKey struct{}

// injectingTransport wraps Caddy's HTTP transport. It is the last thing that
// touches a request before it is written upstream, so this is where the
// credential is set: no header operation of the proxy runs after it.
type injectingTransport struct {
	base *reverseproxy.HTTPTransport
	name string
	cred atlasgate.Credential
}

// RoundTrip injects the credential, sends the request and cleans up the
// response.
func (t *injectingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	info, ok := req.Context().Value(routeInfoKey{}).(*routeInfo)
	if !ok {
		return nil, fmt.Errorf("credential %q: request did not come through atlasgate_proxy; refusing to send it", t.name)
	}
	t.base.SetScheme(req)
	// Defence in depth: the credential goes only to its own origin, whatever
	// happened to the request on the way here.
	if originKey(req.URL) != info.origin {
		return nil, fmt.Errorf("credential %q: refusing to send it to %s, which is not its upstream", t.name, req.URL.Host)
	}
	// The credential goes into a copy: Caddy logs the request it handed us
	// (the `upstream roundtrip` debug entry, with headers in clear under
	// `log_credentials`), and that one must never hold it.
	out := req.Clone(req.Context())
	out.Header.Del("Proxy-Authorization")
	out.Header.Del("Cookie")
	// Request trailers arrive after the policy and the header clean-up ran
	// (an Authorization trailer would reach Atlassian); none are forwarded.
	out.Trailer = nil
	// The gateway is Atlassian's client: internal addresses and host names
	// of the organisation's workloads are not Atlassian's business.
	for _, h := range forwardingHeaders {
		out.Header.Del(h)
	}
	if err := t.cred.Inject(out); err != nil {
		return nil, fmt.Errorf("credential %q: %w", t.name, err)
	}
	info.links.prepare(out)
	resp, err := t.base.RoundTrip(out)
	if err != nil {
		// A request the client gave up on says nothing about Atlassian.
		if req.Context().Err() == nil {
			atlasgate.ObserveUpstream(t.name, 0, nil, now())
		}
		return nil, err
	}
	atlasgate.ObserveUpstream(t.name, resp.StatusCode, resp.Header, now())
	if resp.StatusCode == http.StatusUnauthorized {
		resp, err = t.retryUnauthorized(out, resp)
		if err != nil {
			return nil, err
		}
	}
	if info.holdMax > 0 && info.holds != nil {
		info.holds.observe(info.held, resp, now(), info.holdMax)
	}
	// An Atlassian session cookie would let the client call Atlassian directly
	// as the injected identity, bypassing the gateway.
	resp.Header.Del("Set-Cookie")
	if loc := resp.Header.Get("Location"); loc != "" {
		resp.Header.Set("Location", mapLocation(loc, req.URL, info))
	}
	if err := info.links.rewrite(req, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// retryUnauthorized handles a 401 from the upstream for a credential whose
// token can go stale before its expiry (OAuth): refresh once and send the
// request once more — only when it can be replayed (no body, or a body the
// request can produce again). Otherwise the 401 goes to the client.
func (t *injectingTransport) retryUnauthorized(req *http.Request, resp *http.Response) (*http.Response, error) {
	r, ok := t.cred.(atlasgate.Refresher)
	if !ok {
		return resp, nil
	}
	replay := req.Clone(req.Context())
	switch {
	case req.Body == nil || req.Body == http.NoBody || req.ContentLength == 0 && req.GetBody == nil:
		replay.Body = http.NoBody
	case req.GetBody != nil:
		body, err := req.GetBody()
		if err != nil {
			return resp, nil
		}
		replay.Body = body
	default:
		return resp, nil
	}
	if err := r.Reauthenticate(replay); err != nil {
		var ue *atlasgate.UnavailableError
		if errors.As(err, &ue) {
			// The grant is dead, or storage cannot be read: the client gets
			// the gateway's answer naming the credential and the cause, not
			// the upstream's bare 401.
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			return nil, fmt.Errorf("credential %q: %w", t.name, err)
		}
		// Refused as futile (fresh tokens are refused too, e.g. a missing
		// scope): the upstream's 401 says why better than we can.
		return resp, nil
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	again, err := t.base.RoundTrip(replay)
	if err == nil && again.StatusCode == http.StatusUnauthorized {
		if o, ok := t.cred.(atlasgate.ReplayObserver); ok {
			o.ReplayRefused(replay)
		}
	}
	return again, err
}

// forwardingHeaders are removed from requests to Atlassian.
var forwardingHeaders = []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded", "Via"}

// mapLocation maps a redirect target on the credential's upstream (with its
// route prefix) or on its home site back to the gateway, as a path-absolute
// reference under the client's mount prefix. Any other URL — a
// signed media download on another host, say — is returned untouched.
func mapLocation(loc string, reqURL *url.URL, info *routeInfo) string {
	u, err := url.Parse(loc)
	if err != nil {
		return loc
	}
	abs := reqURL.ResolveReference(u)
	var rest string
	switch {
	case originKey(abs) == originKey(info.target) && hasPathPrefix(abs.EscapedPath(), info.target.EscapedPath()):
		rest = strings.TrimPrefix(abs.EscapedPath(), info.target.EscapedPath())
	case originKey(abs) == originKey(info.home) && hasPathPrefix(abs.EscapedPath(), info.home.EscapedPath()):
		rest = strings.TrimPrefix(abs.EscapedPath(), info.home.EscapedPath())
	default:
		return loc
	}
	if rest == "" {
		rest = "/"
	}
	// A path-absolute reference: right whatever scheme and host the client
	// used to reach the gateway (directly or through a load balancer).
	out := &url.URL{Path: info.mount + rest, RawQuery: abs.RawQuery, Fragment: abs.Fragment}
	if p, err := url.PathUnescape(out.Path); err == nil {
		out.RawPath = out.Path
		out.Path = p
	}
	return out.String()
}

// hasPathPrefix reports whether path is prefix or lies below it.
func hasPathPrefix(path, prefix string) bool {
	if prefix == "" {
		return true
	}
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// Interface guards
var _ http.RoundTripper = (*injectingTransport)(nil)
