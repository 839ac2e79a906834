package console

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
)

// checkTimeout bounds the console's "Check now" request to Atlassian.
const checkTimeout = 10 * time.Second

// serveCheck is "Check now": one request to Atlassian with the credential, the
// way the proxy sends one (its own Target, Inject and CAs, no redirects
// followed), recorded like any proxied answer; then back to the console,
// whose row shows the fresh verdict. Same CSRF rules as Authorize.
func (h *Handler) serveCheck(w http.ResponseWriter, r *http.Request, name string) error {
	if !sameOrigin(r) {
		return h.errorPage(w, http.StatusForbidden, "Request refused",
			"The Check request came from another site. Open the console and press Check now there.")
	}
	c, ok := h.creds.Credential(name)
	if !ok {
		return h.errorPage(w, http.StatusNotFound, "Unknown credential", "No credential named \""+name+"\" is configured.")
	}
	status, err := check(r.Context(), name, c)
	h.auditLog(r, "credential checked", name, fmt.Sprint(status))
	if err != nil {
		return h.errorPage(w, http.StatusBadGateway, "Check failed", fmt.Sprintf("Credential %q: %v", name, err))
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, h.PathPrefix+"/#credential-"+name, http.StatusSeeOther)
	return nil
}

// check sends the probes of the credential's kind until one exists on the
// product (not 404) and records Atlassian's answer to it. It returns the
// status (0: no answer) and an error a person can act on when the check says
// nothing about the credential.
func check(ctx context.Context, name string, c atlasgate.Credential) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: c.RootCAs(), MinVersion: tls.VersionTLS12}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	probes := probePaths(c)
	for _, path := range probes {
		target, err := c.Target(ctx, path)
		if err != nil {
			var ue *atlasgate.UnavailableError
			if errors.As(err, &ue) {
				return 0, fmt.Errorf("cannot be used now: %s", ue.Reason)
			}
			return 0, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(target.String(), "/")+path, nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Accept", "application/json")
		if err := c.Inject(req); err != nil {
			return 0, fmt.Errorf("cannot be used now: %v", err)
		}
		resp, err := client.Do(req)
		if err != nil {
			atlasgate.ObserveUpstream(name, 0, nil, time.Now())
			return 0, fmt.Errorf("no answer from %s: %v", target.Host, errors.Unwrap(err))
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			continue // not this product: that says nothing about the credential
		}
		atlasgate.ObserveUpstream(name, resp.StatusCode, resp.Header, time.Now())
		return resp.StatusCode, nil
	}
	return http.StatusNotFound, fmt.Errorf("none of %s exists there, so the check cannot tell; the next request through the credential shows whether it works", strings.Join(probes, ", "))
}

// probePaths are cheap authenticated GETs, per product, tried in order: the
// first that exists decides.
func probePaths(c atlasgate.Credential) []string {
	host := ""
	if home := c.Home(); home != nil {
		host = home.Hostname()
	}
	switch {
	case host == "api.bitbucket.org":
		return []string{"/2.0/user"}
	case credentialType(c) == "bearer":
		// Jira, Confluence and Bitbucket Data Center.
		return []string{"/rest/api/2/myself", "/rest/api/user/current", "/rest/api/1.0/dashboard/pull-requests?limit=1"}
	default:
		// Jira and Confluence Cloud (one account per site), Bitbucket Cloud.
		return []string{"/rest/api/3/myself", "/2.0/user"}
	}
}
